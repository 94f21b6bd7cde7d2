"""Team presets: answer files for `copier copy --data-file presets/<name>.yml`.

A preset holds answers to declared questions only, so Copier records them in
the project's answers file and later updates keep them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.answers import PRESETS_DIR, REPO, asked_questions, presets, recorded_answers
from support.rendering import LEFTOVER_JINJA, PARSED_SUFFIXES, parse_by_suffix, project_files

PRESETS = presets()


@pytest.fixture(scope="module", params=sorted(PRESETS))
def preset(request: pytest.FixtureRequest, render) -> tuple[str, dict, Path]:
    answers = PRESETS[request.param]
    return request.param, answers, render(answers)


def test_there_are_three_team_presets() -> None:
    assert {"minimal-dev", "spot-batch", "regulated-prod"} <= set(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_answers_only_asked_questions(name: str) -> None:
    answers = PRESETS[name]
    assert isinstance(answers, dict) and answers, f"{name} is not a mapping of answers"
    unknown = set(answers) - set(asked_questions())
    assert not unknown, f"{name} answers undeclared or computed questions: {sorted(unknown)}"
    # Project identity is the team's to choose, never a preset's.
    assert not {"project_name", "project_slug", "package_name"} & set(answers)


def test_presets_differ_where_teams_differ() -> None:
    minimal, batch, regulated = PRESETS["minimal-dev"], PRESETS["spot-batch"], PRESETS["regulated-prod"]
    assert minimal["environments"] == ["dev"] and minimal["terraform_backend"] == "local"
    assert batch["code_storage"] == "s3" and batch["spot_weight"] > batch["on_demand_weight"] > 0
    assert batch["crash_retries"] > minimal["crash_retries"]
    assert regulated["network_mode"] == "existing_vpc" and regulated["terraform_backend"] == "s3"
    assert regulated["environments"] == ["dev", "staging", "prod"]
    assert regulated["spot_weight"] == 0 and regulated["on_demand_base"] >= 1
    for one, other in [(minimal, batch), (batch, regulated), (minimal, regulated)]:
        assert sum(one.get(key) != other.get(key) for key in asked_questions()) >= 5


def test_preset_renders_and_is_recorded(preset: tuple[str, dict, Path]) -> None:
    name, answers, project = preset
    recorded = recorded_answers(project)
    for key, value in answers.items():
        assert recorded[key] == value, f"{name}: answers file has {key}={recorded.get(key)!r}"
    for env in answers["environments"]:
        assert (project / "infra" / "envs" / env / "terraform.tfvars").is_file()


def test_preset_passes_the_file_checks(preset: tuple[str, dict, Path]) -> None:
    """The checks test_render.py runs on every answer set: parse, no Jinja left, no empty file."""
    _, _, project = preset
    problems = []
    for path in project_files(project):
        relative = path.relative_to(project)
        text = path.read_text(errors="replace")
        if not text.strip():
            problems.append(f"{relative}: empty")
        if LEFTOVER_JINJA.search(text):
            problems.append(f"{relative}: unrendered Jinja")
        if path.suffix in PARSED_SUFFIXES:
            try:
                parse_by_suffix(path)
            except Exception as error:  # each parser raises its own type
                problems.append(f"{relative}: {type(error).__name__}: {error}")
    assert not problems, "\n".join(problems)


def test_documented_command_line(tmp_path: Path) -> None:
    """`copier copy --data-file presets/<name>.yml` as docs/presets.md shows it."""
    settings = tmp_path / "copier-settings.yml"
    settings.write_text("{}\n")
    destination = tmp_path / "project"
    command = [
        *(sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--quiet"),
        *("--vcs-ref", "HEAD", "--data-file", str(PRESETS_DIR / "spot-batch.yml")),
        *("--data", "project_name=Nightly Scoring", str(REPO), str(destination)),
    ]
    env = {**os.environ, "COPIER_SETTINGS_PATH": str(settings)}
    subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    recorded = recorded_answers(destination)
    assert recorded["project_slug"] == "nightly-scoring"
    assert {key: recorded[key] for key in PRESETS["spot-batch"]} == PRESETS["spot-batch"]
