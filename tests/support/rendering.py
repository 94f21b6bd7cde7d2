"""Render this template the way the tests do: the one render path, and what a render must look like.

* `render_template(answers, destination)`  copy (this working tree at HEAD, or
                                           `src` at `vcs_ref`) with Copier's API
* `update_project(project, vcs_ref)`       `copier update` the way a team runs it
* `project_files` / `parse_by_suffix` / `LEFTOVER_JINJA`: the file checks every render passes

Kept out of conftest.py: tests/e2e has a conftest too, and `from conftest
import ...` would resolve to whichever was imported first.
"""

from __future__ import annotations

import ast
import json
import os
import re
import tomllib
from pathlib import Path

import yaml
from copier import run_copy, run_update

from support.answers import REPO
from support.hcl import loads


def isolate_copier_settings(directory: Path) -> Path:
    """Point Copier at an empty settings file: the user's defaults and trusted list don't leak in."""
    settings = directory / "copier-settings.yml"
    if not settings.exists():
        directory.mkdir(parents=True, exist_ok=True)
        settings.write_text("{}\n")
    os.environ["COPIER_SETTINGS_PATH"] = str(settings)
    return settings


def render_template(
    answers: dict, destination: Path, *, src: Path = REPO, vcs_ref: str | None = "HEAD", **kwargs
) -> Path:
    """Render the template at `src` (this working tree) with `answers` (the rest defaults) into `destination`.

    `vcs_ref="HEAD"` includes uncommitted changes, as Copier does for a dirty
    local template; None renders a plain (non-git) copy as it is.
    """
    isolate_copier_settings(destination.parent)
    run_copy(
        str(src),
        destination,
        data=answers,
        defaults=True,
        unsafe=True,
        quiet=True,
        vcs_ref=vcs_ref,
        **kwargs,
    )
    return destination


def update_project(project: Path, vcs_ref: str, answers: dict | None = None) -> None:
    """`copier update` to `vcs_ref` with the recorded answers (plus `answers`), conflicts inline."""
    run_update(
        project,
        data=answers or {},
        vcs_ref=vcs_ref,
        defaults=True,
        overwrite=True,
        conflict="inline",
        unsafe=True,
        quiet=True,
    )


# Jinja left behind: a tag, a comment, or an expression with a Jinja filter or
# a name of ours. Prefect's own "{{ $ENV }}" / "{{ step.output }}" templating in
# prefect.yaml and GitHub's "${{ }}" (whose `||` is no filter) are legitimate and not matched.
LEFTOVER_JINJA = re.compile(
    r"{%-?\s|{#|\{\{[^}]*(?<!\|)\|(?!\|)\s*\w|\{\{\s*(project_|package_name|aws_region|environments)"
)
SKIPPED_DIRS = {".git", ".terraform", "__pycache__", ".venv"}


def project_files(project: Path) -> list[Path]:
    return [
        path
        for path in sorted(project.rglob("*"))
        if path.is_file() and not SKIPPED_DIRS.intersection(path.relative_to(project).parts)
    ]


def parse_by_suffix(path: Path) -> None:
    """Parse a rendered file with the parser its suffix calls for (PARSED_SUFFIXES); raise if it fails."""
    text = path.read_text()
    if path.suffix in {".tf", ".tfvars"}:
        loads(text)
    elif path.suffix in {".yml", ".yaml"}:
        list(yaml.safe_load_all(text))
    elif path.suffix == ".toml":
        tomllib.loads(text)
    elif path.suffix == ".json":
        json.loads(text)
    elif path.suffix == ".py":
        compile(text, str(path), "exec", flags=ast.PyCF_ONLY_AST)


PARSED_SUFFIXES = {".tf", ".tfvars", ".yml", ".yaml", ".toml", ".json", ".py"}
