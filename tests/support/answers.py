"""copier.yml and a rendered project's answers, read the way the tests need them.

* `copier_config()` / `questions()` / `asked_questions()` / `choice_values(name)`: copier.yml
* `recorded_answers(project)`: the project's .copier-answers.yml as Copier wrote it
* `answers_of(project)`: the same plus the computed (never asked) answers' defaults
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from extensions import question_choices
from model import Model

REPO = Path(__file__).resolve().parents[2]
COPIER_YML = REPO / "copier.yml"
ANSWERS_FILE = ".copier-answers.yml"
PRESETS_DIR = REPO / "presets"


@cache
def copier_config() -> dict:
    return yaml.safe_load(COPIER_YML.read_text())


@cache
def questions() -> dict[str, dict]:
    """Every question (settings start with "_"), computed ones included.

    Choices that copier.yml takes from the model (`"{{ choices('name') }}"`)
    are rendered to the list Copier offers.
    """
    return {
        name: {**spec, "choices": question_choices(spec)} if "choices" in spec else spec
        for name, spec in copier_config().items()
        if not name.startswith("_")
    }


def asked_questions() -> dict[str, dict]:
    return {name: spec for name, spec in questions().items() if spec.get("when") is not False}


def choice_values(name: str) -> list:
    choices = questions()[name]["choices"]
    return list(choices.values()) if isinstance(choices, dict) else list(choices)


@cache
def presets() -> dict[str, dict]:
    """Every team preset (presets/<name>.yml), by name."""
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(PRESETS_DIR.glob("*.yml"))}


def recorded_answers(project: Path) -> dict:
    """The project's .copier-answers.yml as Copier wrote it."""
    return yaml.safe_load((project / ANSWERS_FILE).read_text())


def answers_of(project: Path) -> dict:
    """The project's answers, computed defaults included."""
    stored = recorded_answers(project)
    computed = {name: spec["default"] for name, spec in questions().items() if spec.get("when") is False}
    return computed | stored


def with_defaults(answers: dict) -> dict:
    """`answers` plus the plain (not computed) default of every question not given."""
    defaults = {
        name: spec["default"]
        for name, spec in asked_questions().items()
        if "default" in spec and not (isinstance(spec["default"], str) and "{{" in spec["default"])
    }
    return {**defaults, **answers}


def model_of(answers: dict) -> Model:
    """The model (hooks/model.py) of an answer set, defaults filled in as Copier would."""
    return Model(with_defaults(answers))
