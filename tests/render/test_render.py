"""Checks that hold for every rendered file of every answer set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.answer_sets import ANSWER_SETS, VALUE_SWEEPS
from support.answers import asked_questions, choice_values, recorded_answers
from support.rendering import LEFTOVER_JINJA, PARSED_SUFFIXES, parse_by_suffix, project_files


def test_renders_a_complete_project(project: Path) -> None:
    expected = [
        "README.md",
        "Makefile",
        "pyproject.toml",
        "Dockerfile",
        ".dockerignore",
        ".gitignore",
        "prefect.yaml",
        ".copier-answers.yml",
    ]
    missing = [name for name in expected if not (project / name).is_file()]
    assert not missing, f"missing files: {missing}"
    answers = recorded_answers(project)
    package = project / "src" / answers["package_name"]
    assert len(list((package / "flows").glob("*.py"))) >= 3, "expected at least two flows besides __init__"
    assert list((project / "tests").glob("test_*.py")), "the project has no tests"
    for env in answers["environments"]:
        assert (project / "infra" / "envs" / env / "main.tf").is_file(), f"no Terraform root for {env}"
    for env in {"dev", "staging", "prod"} - set(answers["environments"]):
        assert not (project / "infra" / "envs" / env).exists(), f"root for unchosen env {env}"


def test_no_empty_files_and_no_leftover_jinja(project: Path) -> None:
    problems = []
    for path in project_files(project):
        text = path.read_text(errors="replace")
        relative = path.relative_to(project)
        if not text.strip():
            problems.append(f"{relative}: empty")
        if match := LEFTOVER_JINJA.search(text):
            problems.append(f"{relative}: unrendered Jinja {match.group(0)!r}")
        if path.suffix == ".jinja":
            problems.append(f"{relative}: template suffix left")
    assert not problems, "\n".join(problems)


def test_every_file_parses(project: Path) -> None:
    failures = []
    parsed = 0
    for path in project_files(project):
        if path.suffix in PARSED_SUFFIXES:
            try:
                parse_by_suffix(path)
                parsed += 1
            except Exception as error:  # each parser raises its own type
                failures.append(f"{path.relative_to(project)}: {type(error).__name__}: {error}")
    assert not failures, "\n".join(failures)
    assert parsed > 20


def test_answers_file_keeps_answers_but_no_secrets_or_computed_values(
    project: Path, answer_set: tuple[str, dict]
) -> None:
    recorded = recorded_answers(project)
    for name, value in answer_set[1].items():
        if isinstance(value, list) and "choices" in asked_questions()[name]:
            # Copier records a multiselect in the order of its choices.
            assert sorted(recorded[name]) == sorted(value)
        else:
            assert recorded[name] == value
    always_asked = {name for name, spec in asked_questions().items() if "when" not in spec}
    assert always_asked <= set(recorded)
    assert "prefect_version" not in recorded
    text = (project / ".copier-answers.yml").read_text().lower()
    assert "api_key" not in text and "auth_string" not in text


def test_value_sweep_renders(swept_project: tuple[dict, Path]) -> None:
    answers, project = swept_project
    for path in project_files(project):
        if path.suffix in PARSED_SUFFIXES:
            parse_by_suffix(path)
        assert not LEFTOVER_JINJA.search(path.read_text(errors="replace")), path
    tfvars = "\n".join(p.read_text() for p in (project / "infra" / "envs").rglob("terraform.tfvars"))
    assert f'"{answers["aws_region"]}"' in tfvars
    assert re.search(rf"\b{answers['log_retention_days']}\b", tfvars)
    assert f"python:{answers['python_version']}" in (project / "Dockerfile").read_text()


@pytest.mark.parametrize("name", sorted(q for q, spec in asked_questions().items() if "choices" in spec))
def test_answer_sets_use_every_choice(name: str) -> None:
    used = [answers.get(name) for answers in [*ANSWER_SETS.values(), *VALUE_SWEEPS.values()]]
    used_values = set()
    for value in used:
        used_values.update(value if isinstance(value, list) else [value])
    defaults = asked_questions()[name].get("default")
    used_values.update(defaults if isinstance(defaults, list) else [defaults])
    missing = [value for value in choice_values(name) if value not in used_values]
    assert not missing, f"no answer set uses {name}={missing}"
