"""The rendered project's own checks: its test suite, ruff, and its Makefile."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from model import Model
from support.answers import answers_of
from support.snapshot import git
from support.tools import binary_missing, require

MAKE_TARGETS = {
    "help",
    "install",
    "lint",
    "format",
    "test",
    "run",
    "up",
    "down",
    "doctor",
    "check-api",
    "check-account",
    "infra-init",
    "infra-plan",
    "infra-apply",
    "infra-destroy",
    "work-pool",
    "secret-set",
    "deploy",
    "automation",
    "notifications-set",
    "alerts",
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


@pytest.mark.slow
def test_generated_test_suite_passes(project: Path, tmp_path: Path, generated_pytest_cache: Path):
    # The suites of all answer sets share one pytest cache, so all but the first
    # start their Prefect server on the migrated database the first one kept.
    cache = ["-o", f"cache_dir={generated_pytest_cache}"]
    env = clean_env(tmp_path) | {"TMPDIR": str(tmp_path)}
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", *cache], project, env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # The Dask flow's tests (dask_cluster) add 9 to the ~20 of the other examples.
    count = r"[23]\d" if answers_of(project).get("dask_cluster") else r"[12]\d"
    assert re.search(rf"\b{count} passed\b", result.stdout), result.stdout[-500:]
    # The server stopped with the session (it removes its folder once it has exited).
    assert not list(tmp_path.glob("prefect-tests-*"))
    # Kept before any test wrote to it: migrated, block types registered, no runs.
    [migrated] = (generated_pytest_cache / "d" / "prefect-server").glob("*.db")
    with contextlib.closing(sqlite3.connect(migrated)) as database:
        assert database.execute("select count(*) from alembic_version").fetchone() == (1,)
        assert database.execute("select count(*) from block_type").fetchone()[0] > 0
        assert database.execute("select count(*) from flow_run").fetchone() == (0,)


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
    require(binary_missing("make", "install GNU make"))
    env = clean_env(tmp_path) | {"MAKEFLAGS": ""}

    def _make(*args: str) -> subprocess.CompletedProcess:
        return run(["make", "--no-print-directory", *args], project, env, timeout=60)

    return _make


def test_make_help_lists_every_target(make, project: Path):
    result = make()
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).splitlines()}
    s3_targets = {"image", "image-tag", "code-prune"}
    expected = MAKE_TARGETS | (s3_targets if answers_of(project)["code_storage"] == "s3" else set())
    if answers_of(project)["terraform_backend"] == "s3":
        expected.add("bootstrap")
    if answers_of(project)["worker_image_mirror"]:
        expected.add("worker-image-mirror")
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

    # The webhook URL is read hidden and reaches Python on stdin, never on a command line.
    notifications = make("-n", "notifications-set", f"ENV={env_name}").stdout
    assert "read -rsp" in notifications
    assert (
        f"| uv run python -m {answers['package_name']}.alerts {env_name} --webhook-url-from-stdin"
        in notifications
    )

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
    # The Prefect API is checked first; the automation needs the handler deployment, so it comes last.
    assert -1 < deploy.find(f"python -m {answers['package_name']}.prefect_api {env_name}") < final
    assert f'export DEPLOY_ENV="{env_name}"' in deploy
    automation = deploy.find(f"python -m {answers['package_name']}.crash_recovery {env_name}")
    if Model(answers).crash_recovery:
        assert final < automation
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
        prefix = re.escape(f'export {variable}="${{{variable}:-$(')
        read = re.escape(f"terraform -chdir=infra/envs/{env_name} output")
        assert re.search(prefix + r"[^\n]*" + read, deploy), variable


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
        # infra/envs/*/backend.tf: the bucket name holds the account id recorded for the env, given at init.
        account = f"$(uv run --quiet python -m {answers['package_name']}.aws_account {env_name})"
        assert f'bucket="{answers["project_slug"]}-tfstate-{account}"' in init
        assert '-backend-config="bucket=$bucket"' in init
        # A missing state bucket is created (infra/bootstrap) before init needs it.
        assert init.index("aws s3api head-bucket") < init.index("terraform -chdir=infra/bootstrap apply")
        assert init.index("terraform -chdir=infra/bootstrap apply") < init.index(f"{tf} init")
    else:
        assert "-backend-config" not in init and "infra/bootstrap" not in init


def test_make_automation_matches_crash_retries(make, project: Path):
    answers = answers_of(project)
    env_name = answers["environments"][0]
    result = make("-n", "automation", f"ENV={env_name}")
    assert result.returncode == 0, result.stderr
    if Model(answers).crash_recovery:
        assert f"python -m {answers['package_name']}.crash_recovery {env_name}" in result.stdout
        assert (project / "src" / answers["package_name"] / "crash_recovery.py").is_file()
    else:
        assert "Nothing to create" in result.stdout
        assert not (project / "src" / answers["package_name"] / "crash_recovery.py").exists()


def test_makefile_recipes_are_tab_indented(project: Path):
    lines = (project / "Makefile").read_text().splitlines()
    assert not [n for n, line in enumerate(lines, 1) if re.match(r" +\S", line)]


# Every target that reads `terraform output` (issue 12: a fresh clone with S3
# state has no .terraform, and `terraform output` then fails).
OUTPUT_READERS = ("work-pool", "secret-set", "deploy", "logs")


def test_every_output_read_initialises_the_root_first(make, project: Path):
    answers = answers_of(project)
    env_name = answers["environments"][-1]
    tf = f"terraform -chdir=infra/envs/{env_name}"
    init = f"{tf} init -input=false"
    if answers["terraform_backend"] == "s3":
        # The same backend config as infra-init: the account recorded for the env, once checked.
        account = f"$(uv run --quiet python -m {answers['package_name']}.aws_account {env_name})"
        init += f' -backend-config="bucket={answers["project_slug"]}-tfstate-{account}"'
    ready = f"{{ test -f infra/envs/{env_name}/.terraform/terraform.tfstate || {init} > /dev/null; }} && "
    s3_storage = answers["code_storage"] == "s3"
    targets = [*OUTPUT_READERS, *(("image", "code-prune") if s3_storage else ("ecr-login",))]
    for target in targets:
        result = make("-n", target, f"ENV={env_name}")
        assert result.returncode == 0, result.stderr
        reads = [match.start() for match in re.finditer(re.escape(f"{tf} output "), result.stdout)]
        assert reads, f"make {target} reads no terraform output"
        for start in reads:
            assert result.stdout[:start].endswith(ready), (
                f"make {target}: {result.stdout[start - 200 : start]}"
            )


@pytest.mark.terraform
def test_output_readers_work_in_a_fresh_clone(render, tf_env: dict[str, str], tmp_path: Path):
    """`make logs` in a clone whose env root was never initialised: init, then read the state."""
    require(binary_missing("make", "install GNU make"))
    clone = tmp_path / "clone"
    shutil.copytree(render({}), clone, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl"))
    env_root = clone / "infra" / "envs" / "dev"
    state = {
        "version": 4,
        "terraform_version": "1.10.0",
        "serial": 1,
        "lineage": "00000000-0000-4000-8000-000000000000",
        "outputs": {
            "worker_log_group": {"value": "/ecs/fresh-clone/worker", "type": "string"},
            "aws_region": {"value": "eu-west-1", "type": "string"},
        },
        "resources": [],
        "check_results": None,
    }
    (env_root / "terraform.tfstate").write_text(json.dumps(state))
    # A stand-in for the AWS CLI that records how it was called.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "aws-args"}\n')
    (bin_dir / "aws").chmod(0o755)
    env = (
        clean_env(tmp_path)
        | {key: value for key, value in tf_env.items() if key.startswith("TF_")}
        | {"PATH": f"{bin_dir}:{tf_env.get('PATH', os.environ['PATH'])}", "MAKEFLAGS": ""}
    )
    result = run(["make", "--no-print-directory", "logs", "ENV=dev"], clone, env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "aws-args").read_text().split() == [
        "logs",
        "tail",
        "/ecs/fresh-clone/worker",
        "--follow",
        "--region",
        "eu-west-1",
    ]
    assert (env_root / ".terraform" / "terraform.tfstate").is_file()
    assert "Initializing" not in result.stdout, "init is not quiet"


def test_dependency_image_tag_covers_every_file_that_shapes_the_image(render, tmp_path: Path):
    """s3 storage: a change to any input of the dependency image gives a new tag (tags are immutable)."""
    require(binary_missing("make", "install GNU make"))
    project = tmp_path / "project"
    shutil.copytree(render({"code_storage": "s3"}), project)
    (project / "uv.lock").write_text("version = 1\n")
    env = clean_env(tmp_path) | {"MAKEFLAGS": ""}

    def tag() -> str:
        result = run(["make", "--silent", "image-tag"], project, env, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    first = tag()
    assert re.fullmatch(r"deps-[0-9a-f]{12}", first), first
    assert tag() == first, "the tag is not stable"
    seen = {first}
    inputs = ("Dockerfile", ".dockerignore", ".python-version", "pyproject.toml", "uv.lock")
    for changed, name in enumerate(inputs, 1):
        with (project / name).open("a") as file:
            file.write("\n# changed\n")
        seen.add(tag())
        assert len(seen) == 1 + changed, f"changing {name} kept the tag"
    # Only files that go into the image count: the flow code is pulled from S3 at run time.
    flows = next((project / "src").glob("*/flows/etl.py"))
    flows.write_text(flows.read_text() + "\n")
    assert tag() in seen
    # The deploy workflow takes the very same tag instead of hashing on its own.
    workflow = (project / ".github" / "workflows" / "deploy.yml").read_text()
    assert 'image_tag="$(make --silent image-tag)"' in workflow and "sha256sum" not in workflow
    # A missing input is an error, not the hash of nothing.
    (project / "uv.lock").unlink()
    missing = run(["make", "--silent", "image-tag"], project, env, timeout=60)
    assert missing.returncode != 0 and "uv.lock" in missing.stderr


# The Makefile's rule is the same for every answer set.
@pytest.mark.parametrize("answer_set", ["default"], indirect=True)
def test_source_fingerprint_sees_every_change_of_the_project_and_never_fails(project: Path, tmp_path: Path):
    """`make up` skips its deploy step while this fingerprint matches the last deploy's.

    It is the project folder's content as git keeps it, committed or not (a
    fresh render is a repository without commits). Deleted, renamed and oddly
    named files change it (each once made the step exit silently), the rest of
    a monorepo does not, and outside git it never matches, so the source is
    deployed again instead of taken for deployed.
    """
    require(binary_missing("make", "install GNU make") or binary_missing("git", "install git"))
    monorepo = tmp_path / "monorepo"
    copy = monorepo / "pipelines" / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".git"))
    env = clean_env(tmp_path) | {"MAKEFLAGS": ""}

    def fingerprint() -> str:
        result = run(
            ["make", "--silent", "--eval", "fingerprint: ; @echo $(SOURCE_FINGERPRINT)", "fingerprint"],
            copy,
            env,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    outside_git = fingerprint()
    assert outside_git.startswith("unknown-") and fingerprint() != outside_git
    git(monorepo, "init", "--quiet")
    uncommitted = fingerprint()
    assert re.fullmatch(r"[0-9a-f]{16}", uncommitted) and fingerprint() == uncommitted
    (copy / "build").mkdir()
    (copy / "build" / "dev-deployed").write_text("git-ignored\n")
    assert fingerprint() == uncommitted, "a git-ignored file changed it"
    git(monorepo, "add", "--all")
    git(monorepo, "commit", "--quiet", "--message", "pipelines")
    clean = fingerprint()
    assert clean == uncommitted, "committing the same content changed it"
    (monorepo / "elsewhere.txt").write_text("another team's file\n")
    assert fingerprint() == clean, "a change outside the project redeploys it"
    seen = {clean}
    changes = {
        "an edit": lambda: (copy / "README.md").write_text("edited\n"),
        "an untracked file": lambda: (copy / "src" / "new flow.py").write_text("# new\n"),
        "a deletion": lambda: (copy / "README.md").unlink(),
        "a staged rename": lambda: git(copy, "mv", "README.md", "GUIDE.md"),
        "a name git quotes": lambda: (copy / "src" / "données.py").write_text("# new\n"),
    }
    for what, change in changes.items():
        change()
        changed = fingerprint()
        assert changed not in seen, f"{what} kept the fingerprint"
        seen.add(changed)
        git(copy, "reset", "--quiet", "--hard")
        git(copy, "clean", "--quiet", "--force", "--", ".")
        assert fingerprint() == clean, f"undoing {what} did not restore the fingerprint"


# The setting lives in the project's pyproject.toml, the same for every answer
# set, and a flow run costs ~30 s: one set is enough.
@pytest.mark.slow
@pytest.mark.parametrize("answer_set", ["default"], indirect=True)
def test_first_make_run_succeeds_with_an_empty_prefect_home(project: Path, tmp_path: Path):
    """`make run` on a fresh machine: the throw-away server's first start migrates a new database."""
    require(binary_missing("make", "install GNU make"))
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    # `uv run` sets UV; a pyenv shim on PATH may not run uv in the project's Python version.
    candidates = [os.environ.get("UV"), str(Path(sys.base_prefix) / "bin" / "uv"), shutil.which("uv")]
    uv = next(
        (
            candidate
            for candidate in candidates
            if candidate
            and Path(candidate).is_file()
            and run([candidate, "--version"], copy, dict(os.environ)).returncode == 0
        ),
        None,
    )
    require(None if uv else f"no uv binary that runs in the project (tried {candidates})")
    env = clean_env(tmp_path) | {
        "MAKEFLAGS": "",
        "PATH": f"{Path(uv).parent}{os.pathsep}{os.environ['PATH']}",
        # `uv run` uses this interpreter's environment, which has the project's
        # dependencies, instead of installing them into a new .venv.
        "UV_PROJECT_ENVIRONMENT": sys.prefix,
        "UV_NO_SYNC": "1",
        "PYTHONPATH": "src",
    }
    prefect_home = Path(env["PREFECT_HOME"])
    assert not prefect_home.exists()

    timeout = run(
        [
            sys.executable,
            "-c",
            "from prefect.settings import get_current_settings as s; "
            "print(s().server.ephemeral.startup_timeout_seconds)",
        ],
        copy,
        env,
    )
    assert timeout.stdout.strip() == "180", "pyproject.toml must raise the ephemeral server's startup timeout"

    result = run(["make", "--no-print-directory", "run", "FLOW=etl"], copy, env, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Timed out while attempting to connect" not in output
    assert re.search(r"Flow run '[\w-]+' - Finished in state Completed\(\)", output), output[-2000:]
    assert prefect_home.is_dir(), "the run did not use the empty PREFECT_HOME"
