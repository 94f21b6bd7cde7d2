"""AWS facts the questions are validated against (one place for each)."""

from __future__ import annotations

import keyword
import re
from functools import cache
from pathlib import Path

import yaml

# Valid Fargate task sizes: cpu units -> allowed memory (MiB).
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html
FARGATE_MEMORY_BY_CPU: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

# The longest environment name and the longest suffix the Terraform appends to
# "<slug>-<env>-" decide how long the slug may be. IAM role names are the
# tightest limit (64); S3 bucket names add "-<account id>" (12 digits) and
# stop at 63.
LONGEST_ENVIRONMENT = "staging"
LONGEST_ROLE_SUFFIX = "flow-run-execution"
LONGEST_BUCKET_SUFFIX = "flow-code-123456789012"
IAM_ROLE_NAME_MAX = 64
S3_BUCKET_NAME_MAX = 63
SLUG_MAX = min(
    IAM_ROLE_NAME_MAX - len(f"--{LONGEST_ENVIRONMENT}-{LONGEST_ROLE_SUFFIX}"),
    S3_BUCKET_NAME_MAX - len(f"--{LONGEST_ENVIRONMENT}-{LONGEST_BUCKET_SUFFIX}"),
)


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


# Adaptive Dask clusters: each worker is its own Fargate task, and a new
# account's default Fargate quota is a few hundred vCPU; beyond this bound a
# team should raise the quota and this limit together, deliberately.
DASK_MAX_WORKERS = 100


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


# Prefect tags become AWS-side names nowhere, but they travel through YAML,
# CLI flags and URLs: keep them to characters that need no quoting anywhere.
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def labels_error(labels: object) -> str:
    """Return why `labels` is not a list of simple tags, or an empty string."""
    if not isinstance(labels, list):
        return f"must be a YAML list of strings such as [etl, nightly] (got {labels!r})"
    for label in labels:
        if not isinstance(label, str) or not LABEL_PATTERN.fullmatch(label):
            return f"{label!r} must be 1-63 letters, digits, '_', '.' or '-' (no commas, quotes or spaces)"
    if len(set(labels)) != len(labels):
        return "contains duplicates"
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


def package_name_error(name: str) -> str:
    """Return why `name` cannot be the flows package, or an empty string."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        return f'must be a lower-case Python identifier (got "{name}")'
    if name in {word.lower() for word in keyword.kwlist} or name in SHADOWED_MODULES:
        return f'"{name}" is a Python keyword or shadows a module the project imports'
    return ""
