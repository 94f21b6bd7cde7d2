"""The rendered project's own checks: its test suite, ruff, and its Makefile."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prefect_checks import answers_of

MAKE_TARGETS = {
    "help",
    "install",
    "lint",
    "format",
    "test",
    "run",
    "infra-init",
    "infra-plan",
    "infra-apply",
    "infra-destroy",
    "work-pool",
    "secret-set",
    "deploy",
    "automation",
    "logs",
}


def clean_env(tmp_path: Path) -> dict[str, str]:
    """This interpreter's environment minus pytest/xdist and Prefect profile leftovers."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "PREFECT_", "COV_")) and key != "PYTHONPATH"
    }
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def run(command: list[str], cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_generated_test_suite_passes(project: Path, tmp_path: Path):
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        project,
        clean_env(tmp_path),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # The Dask flow's tests (dask_cluster) add 8 to the 1x of the other examples.
    count = r"2\d" if answers_of(project).get("dask_cluster") else r"1\d"
    assert re.search(rf"\b{count} passed\b", result.stdout), result.stdout[-500:]


def test_rendered_python_is_ruff_clean(project: Path, tmp_path: Path):
    env = clean_env(tmp_path)
    # The project's own [tool.ruff] settings apply (rendered python_version as target).
    for command in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = run([sys.executable, "-m", "ruff", *command], project, env)
        assert result.returncode == 0, result.stdout + result.stderr


def test_pyproject_pins_prefect_and_groups_deploy_tools(project: Path):
    import tomllib

    answers = answers_of(project)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    dependencies = pyproject["project"]["dependencies"]
    assert f"prefect=={answers['prefect_version']}" in dependencies
    assert f"prefect-aws=={answers['prefect_aws_version']}" in dependencies
    assert f"fastapi{answers['fastapi_constraint']}" in dependencies
    groups = pyproject["dependency-groups"]
    assert {"pytest", "ruff"} <= {re.split(r"[<>=]", d)[0] for d in groups["dev"]}
    if answers["code_storage"] == "ecr":
        assert groups["deploy"] == [f"prefect-docker=={answers['prefect_docker_version']}"]
    else:
        assert "deploy" not in groups
    assert pyproject["tool"]["pytest"]["ini_options"]["pythonpath"] == ["src"]
    assert pyproject["project"]["requires-python"] == f"=={answers['python_version']}.*"


@pytest.fixture
def make(project: Path, tmp_path: Path):
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    env = clean_env(tmp_path) | {"MAKEFLAGS": ""}

    def _make(*args: str) -> subprocess.CompletedProcess:
        return run(["make", "--no-print-directory", *args], project, env, timeout=60)

    return _make


def test_make_help_lists_every_target(make, project: Path):
    result = make()
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).splitlines()}
    expected = MAKE_TARGETS | ({"image"} if answers_of(project)["code_storage"] == "s3" else set())
    if answers_of(project)["terraform_backend"] == "s3":
        expected.add("bootstrap")
    assert listed == expected


def test_make_targets_use_terraform_outputs(make, project: Path):
    answers = answers_of(project)
    env_name = answers["environments"][-1]
    work_pool = make("-n", "work-pool", f"ENV={env_name}").stdout
    assert f"terraform -chdir=infra/envs/{env_name} output -json work_pool_job_variables" in work_pool
    assert (
        f"python -m {answers['package_name']}.work_pool > build/{env_name}-base-job-template.json"
        in work_pool
    )
    assert "--type ecs" in work_pool and "--overwrite" in work_pool

    deploy = make("-n", "deploy", f"ENV={env_name}").stdout
    for variable in ("WORK_POOL_NAME", "IMAGE_REPOSITORY", "IMAGE_TAG"):
        assert f"export {variable}=" in deploy
    assert ("export CODE_BUCKET=" in deploy) == (answers["code_storage"] == "s3")
    assert "prefect --no-prompt deploy --all" in deploy

    secret = make("-n", "secret-set", f"ENV={env_name}").stdout
    assert "read -rsp" in secret and "file:///dev/stdin" in secret and "--force-new-deployment" in secret

    # Every AWS target depends on check-env, which refuses an environment that was not chosen.
    assert make("check-env", f"ENV={env_name}").returncode == 0
    wrong = make("check-env", "ENV=nowhere")
    assert wrong.returncode != 0 and "ENV must be one of" in wrong.stderr


def test_make_deploy_sets_up_everything_it_needs_first(make, project: Path):
    """`make deploy` alone works after infra-apply and secret-set: work pool, automation, image."""
    answers = answers_of(project)
    env_name = answers["environments"][0]
    result = make("-n", "deploy", f"ENV={env_name}")
    assert result.returncode == 0, result.stderr
    deploy = result.stdout
    final = deploy.index("prefect --no-prompt deploy --all")
    assert -1 < deploy.find("prefect work-pool create") < final
    automation = deploy.find("prefect automation create --from-file automations/crash-recovery.yaml")
    if answers["crash_retries"] > 0 and answers["spot_weight"] > 0:
        assert -1 < automation < final
    else:
        assert automation == -1
    if answers["code_storage"] == "s3":
        # The dependency image is built only when ECR lacks its tag.
        describe = deploy.find("aws ecr describe-images")
        assert -1 < describe < deploy.find("docker build") < deploy.find("docker push") < final
    else:
        # prefect-docker's push step needs the registry login.
        assert -1 < deploy.find("docker login") < final
    # Already-exported values win over terraform output (CI without Terraform state).
    for variable in ("WORK_POOL_NAME", "IMAGE_REPOSITORY"):
        assert f'export {variable}="${{{variable}:-$(terraform -chdir=infra/envs/{env_name} output' in deploy


def test_ecr_image_tag_is_new_per_deploy_and_overridable(make, project: Path):
    """ECR tags are immutable: a commit's second deploy must not reuse its first tag."""
    answers = answers_of(project)
    deploy = make("-n", "deploy").stdout
    (tag,) = re.findall(r'export IMAGE_TAG="([^"]*)"', deploy)
    if answers["code_storage"] == "ecr":
        assert re.fullmatch(r"[\w.-]+-\d{8}T\d{6}Z", tag), tag
    else:
        assert tag.startswith("deps-"), "the dependency image's tag follows uv.lock"
    overridden = make("-n", "deploy", "IMAGE_TAG=v1.2.3").stdout
    assert re.findall(r'export IMAGE_TAG="([^"]*)"', overridden) == ["v1.2.3"]


def test_make_infra_targets_init_first(make, project: Path):
    answers = answers_of(project)
    env_name = answers["environments"][-1]
    tf = f"terraform -chdir=infra/envs/{env_name}"
    for target, command in (("infra-apply", "apply"), ("infra-plan", "plan"), ("infra-destroy", "destroy")):
        result = make("-n", target, f"ENV={env_name}")
        assert result.returncode == 0, result.stderr
        init = result.stdout.find(f"{tf} init -input=false")
        assert -1 < init < result.stdout.index(f"{tf} {command}"), target
    init = make("-n", "infra-init", f"ENV={env_name}").stdout
    if answers["terraform_backend"] == "s3":
        # infra/envs/*/backend.tf: the bucket name holds the account id, given at init.
        account = "$(aws sts get-caller-identity --query Account --output text)"
        assert f'bucket="{answers["project_slug"]}-tfstate-{account}"' in init
        assert '-backend-config="bucket=$bucket"' in init
        # A missing state bucket is created (infra/bootstrap) before init needs it.
        assert init.index("aws s3api head-bucket") < init.index("terraform -chdir=infra/bootstrap apply")
        assert init.index("terraform -chdir=infra/bootstrap apply") < init.index(f"{tf} init")
    else:
        assert "-backend-config" not in init and "infra/bootstrap" not in init


def test_make_automation_matches_crash_retries(make, project: Path):
    answers = answers_of(project)
    result = make("-n", "automation")
    assert result.returncode == 0, result.stderr
    if answers["crash_retries"] > 0 and answers["spot_weight"] > 0:
        assert "prefect automation create --from-file automations/crash-recovery.yaml" in result.stdout
        assert (project / "automations" / "crash-recovery.yaml").is_file()
    else:
        assert "Nothing to create" in result.stdout
        assert not (project / "automations").exists()


def test_makefile_recipes_are_tab_indented(project: Path):
    lines = (project / "Makefile").read_text().splitlines()
    assert not [n for n, line in enumerate(lines, 1) if re.match(r" +\S", line)]
