"""Documentation that must not drift from what it documents.

- docs/questions.md is exactly what scripts/gen_question_docs.py makes of
  copier.yml (regenerated in memory), and names every asked question with
  its help, type, choices and default;
- docs/design.md covers the decisions the README points to;
- every rendered project's docs/runbook.md names its real log groups, secret,
  work pool and recovery settings.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from model import Model
from support.answer_sets import sets_where
from support.answers import COPIER_YML, REPO, asked_questions, recorded_answers
from support.hcl import blocks, parse_file, unquote

QUESTIONS_MD = REPO / "docs" / "questions.md"
DESIGN_MD = REPO / "docs" / "design.md"


def _generator():
    path = REPO / "scripts" / "gen_question_docs.py"
    spec = importlib.util.spec_from_file_location("gen_question_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_questions_md_matches_copier_yml() -> None:
    expected = _generator().render(COPIER_YML.read_text())
    assert QUESTIONS_MD.read_text() == expected, (
        "docs/questions.md is out of date with copier.yml: run `uv run python scripts/gen_question_docs.py`"
    )


def _section(markdown: str, name: str) -> str:
    match = re.search(rf"^### `{name}`\n(.*?)(?=^##)", markdown + "\n##", re.MULTILINE | re.DOTALL)
    assert match, f"docs/questions.md has no section for {name}"
    return match.group(1)


def test_every_asked_question_is_documented() -> None:
    markdown = QUESTIONS_MD.read_text()
    for name, spec in asked_questions().items():
        section = _section(markdown, name)
        assert spec["help"].strip() in section, f"{name}: help text missing"
        assert f"Type: `{spec.get('type', 'str')}`" in section, f"{name}: type missing"
        choices = spec.get("choices") or []
        values = choices.values() if isinstance(choices, dict) else choices
        for value in values:
            assert f"`{value}`" in section, f"{name}: choice {value!r} missing"
        assert "Default:" in section, f"{name}: default missing"


def test_generated_docs_follow_a_new_question() -> None:
    copier_text = COPIER_YML.read_text()
    changed = copier_text.replace(
        "# Questions: delivery\n# " + "-" * 75 + "\n",
        "# Questions: delivery\n# " + "-" * 75 + "\n"
        "alarm_email:\n  type: str\n  help: Who hears about a stopped worker\n  default: ops@example.com\n\n",
    )
    assert changed != copier_text, "the delivery section marker moved; update this test"
    markdown = _generator().render(changed)
    assert "### `alarm_email`" in markdown
    assert "Who hears about a stopped worker" in _section(markdown, "alarm_email")
    assert markdown != QUESTIONS_MD.read_text()


@pytest.mark.parametrize(
    "topic",
    [
        "NAT gateway",
        "work pool",
        'Resource "*"',
        "Spot",
        "state",
        "OIDC",
        "SNS topic",
    ],
)
def test_design_doc_covers(topic: str) -> None:
    assert topic.lower() in DESIGN_MD.read_text().lower(), f"docs/design.md says nothing about {topic}"


def test_runbook_names_the_projects_resources(project: Path) -> None:
    answers = recorded_answers(project)
    slug = answers["project_slug"]
    runbook = (project / "docs" / "runbook.md").read_text()
    secret = "prefect-api-key" if answers["prefect_backend"] == "cloud" else "prefect-auth-string"
    for name in (
        f"/ecs/{slug}-<env>/worker",
        f"/ecs/{slug}-<env>/flow-runs",
        f"{slug}-<env>/{secret}",
        f"{slug}-<env>-worker",
        "make secret-set ENV=<env>",
        f"{slug}-<env>-alarms",
        f"{slug}-<env>-ecs-task-events-dlq-not-empty",
        f"{slug}-<env>-notify-crashed",
        "make notifications-set ENV=<env>",
        "make infra-destroy ENV=<env>",
        answers["aws_region"],
    ):
        assert name in runbook, f"runbook does not mention {name}"
    for env in answers["environments"]:
        assert env in runbook


def test_runbook_explains_crash_recovery_as_configured(project: Path) -> None:
    answers = recorded_answers(project)
    runbook = (project / "docs" / "runbook.md").read_text()
    spot = Model(answers).spot
    assert ("## Spot interruptions and crashed runs" in runbook) is spot
    if spot:
        assert "`stopTimeout` is 120 s" in runbook
    recovery = Model(answers).crash_recovery
    assert (f"{answers['project_slug']}-<env>-crash-recovery" in runbook) is recovery
    if recovery:
        assert f"re-run at most {answers['crash_retries']} time(s)" in runbook


def test_runbook_covers_github_deploys_only_with_github(project: Path) -> None:
    answers = recorded_answers(project)
    runbook = (project / "docs" / "runbook.md").read_text()
    assert ("## Deploys from GitHub Actions" in runbook) is (answers["ci_provider"] == "github")


# Where each AWS service a task's role calls is reached from a private subnet.
ENDPOINT_OF_SERVICE = {
    "ecr": "`ecr.api`",
    "ecs": "`ecs`",
    "ec2": "`ec2`",
    "sqs": "`sqs`",
    "secretsmanager": "`secretsmanager`",
    "logs": "`logs`",
    "s3": "S3 gateway endpoint",
}
RUNTIME_MODULES = ("worker", "flow_runs", "dask")


def runtime_actions(project: Path) -> set[str]:
    """Every action the worker's, flow runs' and Dask's policies allow (trust policies left out)."""
    actions = set()
    for module in RUNTIME_MODULES:
        for path in sorted((project / "infra" / "modules" / module).glob("*.tf")):
            for kind, _, body in blocks(parse_file(path), "data"):
                if kind != "aws_iam_policy_document":
                    continue
                for statement in body.get("statement", []):
                    actions |= {unquote(action) for action in statement["actions"]}
    return actions - {"sts:AssumeRole", "iam:PassRole"}  # trust; PassRole is no API call


# A new VPC reaches every service through its internet gateway: no table there.
@pytest.mark.parametrize("answer_set", sets_where("network_mode", "existing_vpc"), indirect=True)
def test_readme_names_an_endpoint_for_every_service_the_roles_call(project: Path) -> None:
    """Issue 21 (5): an existing VPC's table lists the endpoint of every service a role calls."""
    readme = (project / "README.md").read_text()
    table = readme[readme.index("| Service: what is called |") :].split("\n\n")[0]
    services = {action.split(":")[0] for action in runtime_actions(project)}
    assert services, "no IAM action found: this check would prove nothing"
    unknown = services - set(ENDPOINT_OF_SERVICE)
    assert not unknown, f"roles call {sorted(unknown)}, which the endpoint map does not know"
    rows = {
        service: [row for row in table.splitlines() if row.lower().startswith(f"| {name}")]
        for service, name in {
            "ecr": "ecr",
            "ecs": "ecs",
            "ec2": "ec2",
            "sqs": "sqs",
            "secretsmanager": "secrets manager",
            "logs": "cloudwatch logs",
            "s3": "s3",
        }.items()
        if service in services
    }
    for service, found in rows.items():
        if service == "s3" and not found:  # image layers: named in the ECR rows
            found = [row for row in table.splitlines() if ENDPOINT_OF_SERVICE["s3"] in row]
        assert found, f"the README's endpoint table has no row for {service}"
        assert any(ENDPOINT_OF_SERVICE[service] in row for row in found), f"{service}: no endpoint named"
    if recorded_answers(project)["worker_image_mirror"]:
        assert "Docker Hub" not in table, "a mirrored worker image needs no Docker Hub"
    else:
        assert "Docker Hub" in table
