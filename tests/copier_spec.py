"""Read copier.yml the way the tests need it (questions, choices, defaults)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


@cache
def copier_config() -> dict:
    return yaml.safe_load((REPO / "copier.yml").read_text())


def questions() -> dict[str, dict]:
    """Every question (settings start with "_"), computed ones included."""
    return {name: spec for name, spec in copier_config().items() if not name.startswith("_")}


def asked_questions() -> dict[str, dict]:
    return {name: spec for name, spec in questions().items() if spec.get("when") is not False}


def choice_values(name: str) -> list:
    choices = questions()[name]["choices"]
    return list(choices.values()) if isinstance(choices, dict) else list(choices)
