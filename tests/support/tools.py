"""External tools the checks run, found the way the README's test command can find them.

A check that needs a tool this machine lacks calls `require(reason)`: locally it
skips with the reason; under CI (`CI=true`, as GitHub Actions and most CI
services set it) it fails with the reason, so a green CI run never silently
drops a layer of checks.

uv, and through it checkov, is found from the uv that runs the tests, not from
PATH: the README installs uv into ~/.venvs/uv and calls it by path, so neither
`uv` nor `uvx` is on a fresh machine's PATH. `uv run` exports its own path as
`UV` to every process it starts (uv's EnvVars::UV, since uv 0.6).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Where the README's set-up commands install uv.
README_UV = Path("~/.venvs/uv/bin/uv")
CHECKOV = "checkov==3.3.30"


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(reason: str | None) -> None:
    """Nothing when `reason` is None; else skip with it, or fail with it under CI."""
    if reason is None:
        return
    if under_ci():
        pytest.fail(f"{reason} (CI is set: a missing tool fails the run, it does not skip)", pytrace=False)
    pytest.skip(reason)


def uv_binary() -> str | None:
    """The uv running these tests (`UV`), else uv on PATH, else the README's ~/.venvs/uv/bin/uv."""
    candidates = [os.environ.get("UV"), shutil.which("uv"), str(README_UV.expanduser())]
    return next((c for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None)


def checkov_command() -> list[str] | None:
    """checkov, isolated in uv's tool environment (its dependencies conflict with Prefect's)."""
    uv = uv_binary()
    return None if uv is None else [uv, "tool", "run", "--from", CHECKOV, "checkov"]


def checkov_missing() -> str | None:
    if checkov_command() is None:
        return (
            f"no uv to run checkov with (`uv tool run --from {CHECKOV}`): not run by `uv run`, "
            f"no `uv` on PATH and no {README_UV}"
        )
    return None


def binary_missing(name: str, hint: str = "") -> str | None:
    """Why `name` can't run here (it is not on PATH), or None."""
    if shutil.which(name) is None:
        return f"{name} is not on PATH" + (f": {hint}" if hint else "")
    return None
