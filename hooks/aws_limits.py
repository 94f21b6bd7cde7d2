"""AWS facts the questions are validated against (one place for each)."""

from __future__ import annotations

import re

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
            f"use {allowed[0]}–{allowed[-1]} in steps of {allowed[1] - allowed[0]}"
        )
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
