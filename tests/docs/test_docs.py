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
from support.answers import COPIER_YML, REPO, asked_questions, recorded_answers

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
