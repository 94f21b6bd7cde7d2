"""AWS facts the questions are validated against (one place for each)."""

from __future__ import annotations

import importlib
import keyword
import re
import unicodedata
from functools import cache
from pathlib import Path

import yaml

# The tables and limits are the model's (hooks/model.py): loaded by
# hooks/extensions.py from this same checkout before this module, imported
# plainly where hooks/ is on sys.path (tests, scripts, benchmarks).
model = importlib.import_module(__name__.removesuffix("aws_limits") + "model")
FARGATE_MEMORY_BY_CPU = model.FARGATE_MEMORY_BY_CPU
SLUG_MAX = model.SLUG_MAX
LABEL_MAX = model.LABEL_MAX
DASK_MAX_WORKERS = model.DASK_MAX_WORKERS


def fargate_size_error(cpu: object, memory: object) -> str:
    """Return why cpu/memory is not a Fargate task size, or an empty string."""
    try:
        cpu_units, memory_mib = int(cpu), int(memory)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return f"cpu {cpu!r} and memory {memory!r} must be whole numbers"
    allowed = FARGATE_MEMORY_BY_CPU.get(cpu_units)
    if allowed is None:
        return f"{cpu_units} is not a Fargate cpu value; use one of {sorted(FARGATE_MEMORY_BY_CPU)}"
    if memory_mib not in allowed:
        return (
            f"{memory_mib} MiB is not valid with {cpu_units} cpu units on Fargate; "
            f"use {allowed[0]} to {allowed[-1]} in steps of {allowed[1] - allowed[0]}"
        )
    return ""


def dask_min_workers_error(minimum: object) -> str:
    """Return why `minimum` is not a valid adaptive minimum, or an empty string."""
    if isinstance(minimum, bool) or not isinstance(minimum, int) or not 0 <= minimum <= DASK_MAX_WORKERS:
        return f"must be a whole number from 0 to {DASK_MAX_WORKERS} (got {minimum!r})"
    return ""


def dask_max_workers_error(minimum: object, maximum: object) -> str:
    """Return why `maximum` is not a valid adaptive maximum for `minimum`, or an empty string."""
    if isinstance(maximum, bool) or not isinstance(maximum, int) or not 1 <= maximum <= DASK_MAX_WORKERS:
        return f"must be a whole number from 1 to {DASK_MAX_WORKERS} (got {maximum!r})"
    if isinstance(minimum, int) and maximum < minimum:
        return f"{maximum} is below dask_min_workers ({minimum})"
    return ""


# Prefect takes any string as a deployment tag (its schemas constrain neither
# characters nor length), and the labels reach only prefect.yaml through
# yaml_string, so "team:web" or "env:prod" are fine. Rejected is only what
# breaks: an empty tag, a duplicate, a control character (a newline splits the
# tag wherever it is printed) and a tag too long to read or filter on
# (model.LABEL_MAX).


def labels_error(labels: object) -> str:
    """Return why `labels` is not a list of usable Prefect tags, or an empty string."""
    if not isinstance(labels, list):
        return f'must be a YAML list of strings such as [etl, "team:web"] (got {labels!r})'
    for label in labels:
        if not isinstance(label, str):
            return f"{label!r} is not text: quote it"
        if not label.strip():
            return f"{label!r}: a tag must not be empty"
        if any(unicodedata.category(char) == "Cc" for char in label):
            return f"{label!r} contains a control character (newline, tab, ...)"
        if len(label) > LABEL_MAX:
            return f"{label[:20]!r}... is {len(label)} characters; at most {LABEL_MAX}"
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        return f"contains duplicates: {', '.join(duplicates)}"
    return ""


# Copier casts `--data`/`--data-file` answers before it runs any validator, and
# its cast errors ("invalid literal for int() with base 10: 'abc'", "Not a YAML
# list: 'dev'") do not say which of twenty answers is wrong. This check runs
# first (a computed value at the top of copier.yml) and names the question.
@cache
def _question_types() -> dict[str, dict]:
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "copier.yml").read_text())
    return {
        name: spec
        for name, spec in config.items()
        if not name.startswith("_") and isinstance(spec, dict) and spec.get("when") is not False
    }


def _type_error(name: str, spec: dict, value: object) -> str:
    kind = spec.get("type", "str")
    if spec.get("multiselect"):
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                value = None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return f"{name} must be a list such as [dev, prod] (got {value!r})"
        return ""
    if kind == "int":
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value))
        ):
            return f"{name} must be a whole number (got {value!r})"
    elif kind == "bool":
        # Copier would read any other word as true ("maybe" -> True).
        words = {"y", "yes", "t", "true", "on", "n", "no", "f", "false", "off"}
        if not isinstance(value, bool) and not (isinstance(value, str) and value.strip().lower() in words):
            return f"{name} must be true or false (got {value!r})"
    elif kind == "yaml":
        if isinstance(value, str):
            try:
                yaml.safe_load(value)
            except yaml.YAMLError as error:
                problem = " ".join(str(error).split())
                return f"{name} is not valid YAML ({problem})"
    elif kind == "str" and (value is None or isinstance(value, (bool, list, dict))):
        return f"{name} must be a single text value (got {value!r})"
    return ""


def answer_types_error(data: object) -> str:
    """Return why a given answer cannot be cast to its question's type, or ''."""
    if not isinstance(data, dict):
        return ""
    questions = _question_types()
    for name, value in data.items():
        if name in questions and (problem := _type_error(name, questions[name], value)):
            return problem
    return ""


def require_answer_types(data: object) -> str:
    """Raise ValueError naming the question whose answer has the wrong type."""
    if problem := answer_types_error(data):
        raise ValueError(f"Invalid answer: {problem}")
    return "checked"


# Names the generated project already imports or uses as top-level folders.
SHADOWED_MODULES = frozenset({"prefect", "flows", "tests", "test"})


# Validators of copier.yml as functions: Copier compiles a question's inline
# Jinja validator on every render of the questions; a call to a global is one
# short expression (benchmarks/README.md, render speed). Each message names its question.
def project_slug_error(slug: str) -> str:
    if not re.search(model.SLUG_PATTERN, slug) or "--" in slug:
        return (
            "project_slug must start with a letter, end with a letter or digit and use only "
            f'a-z, 0-9 and single hyphens (got "{slug}")'
        )
    if len(slug) > SLUG_MAX:
        return (
            f'project_slug "{slug}" is {len(slug)} characters; at most {SLUG_MAX} keep every derived '
            "AWS name (IAM roles: 64, S3 buckets: 63) within its limit"
        )
    return ""


def owner_error(owner: str) -> str:
    if not owner.strip():
        return "owner must not be empty"
    if len(owner) > model.TAG_VALUE_MAX or not re.search(r"^[A-Za-z0-9 _.:/=+@-]+$", owner):
        return (
            f'owner "{owner}" must be a valid AWS tag value: at most {model.TAG_VALUE_MAX} letters, '
            "digits, spaces and _ . : / = + - @"
        )
    return ""


def github_repository_error(ci_provider: str, repository: str) -> str:
    if ci_provider == "github" and not re.search(model.GITHUB_REPOSITORY_PATTERN, repository):
        return f'github_repository must be "owner/name" (got "{repository}")'
    return ""


def aws_account_id_error(question: str, answer: object) -> str:
    """Return why `answer` is not an AWS account id, or an empty string (empty: filled in later)."""
    account = model.aws_account_id(answer)
    if account and not re.fullmatch(model.AWS_ACCOUNT_ID_PATTERN, account):
        return f'{question} must be the 12-digit AWS account id, e.g. 123456789012 (got "{answer}")'
    return ""


def alarm_email_error(email: str) -> str:
    if email and not re.search(model.EMAIL_PATTERN, email):
        return f'alarm_email must be empty or one e-mail address such as ops@example.com (got "{email}")'
    return ""


def package_name_error(name: str) -> str:
    """Return why `name` cannot be the flows package, or an empty string."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        return f'must be a lower-case Python identifier (got "{name}")'
    if name in {word.lower() for word in keyword.kwlist} or name in SHADOWED_MODULES:
        return f'"{name}" is a Python keyword or shadows a module the project imports'
    return ""
