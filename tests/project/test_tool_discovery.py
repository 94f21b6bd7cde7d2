"""The README's test command finds every tool the checks need with only the system directories on PATH.

The README installs uv into ~/.venvs/uv and calls it by path, so a fresh machine
has neither `uv` nor `uvx` on PATH; checkov must still run (found through the
uv that runs the tests, support/tools.py). Under CI a tool that is missing
fails the run instead of skipping a layer of checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.answers import REPO
from support.readme import network_settings, readme_command
from support.terraform import terraform_unavailable
from support.tools import CHECKOV, README_UV, binary_missing, checkov_missing, require

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the checks that may skip ask for, as support.tools answers it in the probed process.
PROBE = """
import json, subprocess, sys
sys.path[:0] = ["tests", "hooks"]
from support import tools
from support.terraform import terraform_unavailable

runner = tools.checkov_command()
version = runner and subprocess.run([*runner, "--version"], capture_output=True, text=True, timeout=900)
print(json.dumps({
    "uv": tools.uv_binary(),
    "checkov": runner,
    "checkov_version": version and version.stdout.strip(),
    "missing": {
        "checkov": tools.checkov_missing(),
        "terraform": terraform_unavailable(),
        "make": tools.binary_missing("make"),
        "git": tools.binary_missing("git"),
    },
}))
"""
PASSED_ON = ("HOME", "LANG", "UV_CACHE_DIR", "TF_PROVIDER_MIRROR")


def system_env(**extra: str) -> dict[str, str]:
    env = {key: os.environ[key] for key in PASSED_ON if key in os.environ}
    env |= network_settings()
    return env | {"PATH": SYSTEM_PATH} | extra


def readme_runner() -> str:
    """The README's test command without its final `pytest`: the uv invocation that runs the suite."""
    command = readme_command("test suite").split("&&")[-1].strip()
    assert command.endswith(" pytest"), command
    return command.removesuffix("pytest")


def test_readme_test_command_finds_checkov_with_only_system_directories_on_path(tmp_path: Path) -> None:
    installed = README_UV.expanduser().is_file()
    require(None if installed else f"the README's uv is not installed at {README_UV}: run its set-up first")
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    result = subprocess.run(
        ["bash", "-c", f"{readme_runner()}python {probe}"],
        cwd=REPO,
        env=system_env(CI="true"),
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["uv"] == str(README_UV.expanduser()), "checkov's runner is not the uv that runs the tests"
    assert found["checkov"][:3] == [found["uv"], "tool", "run"] and CHECKOV in found["checkov"]
    assert found["checkov_version"] == CHECKOV.split("==")[1], found
    assert found["missing"]["checkov"] is None
    # Every tool this process finds, the system PATH finds too: no check relies on a PATH entry
    # outside the system directories.
    here = {
        "checkov": checkov_missing(),
        "terraform": terraform_unavailable(),
        "make": binary_missing("make"),
        "git": binary_missing("git"),
    }
    lost = {tool: reason for tool, reason in found["missing"].items() if reason and not here[tool]}
    assert not lost, f"found here but not with PATH={SYSTEM_PATH}: {lost}"


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 failed"), (None, "1 skipped")])
def test_a_missing_tool_fails_under_ci_and_skips_otherwise(
    tmp_path: Path, ci: str | None, outcome: str
) -> None:
    """No uv anywhere (not run by `uv run`, none on PATH, no ~/.venvs/uv): checkov is missing."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_needs_checkov.py").write_text(
        "from support.tools import checkov_missing, require\n\n\n"
        "def test_needs_checkov():\n    require(checkov_missing())\n"
    )
    (tmp_path / "bin").mkdir()
    env = {"HOME": str(tmp_path), "PATH": str(tmp_path / "bin"), "PYTHONPATH": str(REPO / "tests")}
    if ci:
        env["CI"] = ci
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-rA", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert outcome in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
    assert "no uv to run checkov with" in result.stdout
