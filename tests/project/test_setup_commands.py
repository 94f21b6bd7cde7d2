"""The README's set-up commands work as written, and CI runs the README's test command.

The commands run the way a new user runs them: from a fresh clone, with an
empty HOME and a PATH of only the system directories (so no uv or copier
this machine already has can hide a problem), on Debian's system Python, which
is marked externally managed (PEP 668) and refuses `pip install` outside a
virtual environment.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from support.answers import REPO
from support.readme import network_settings, readme_command
from support.snapshot import copy_template, git

SYSTEM_PYTHON = Path("/usr/bin/python3")
SYSTEM_PATH = "/usr/bin:/bin"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert readme_command("test suite") in ci_lines


def test_readme_renders_outside_the_clone() -> None:
    """Inside the template's clone the project would be part of the template's git repository."""
    destination = readme_command("render").split()[-1]
    assert destination.startswith("../"), destination


def _externally_managed() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (Path(probe.stdout.strip()) / "EXTERNALLY-MANAGED").exists()


@pytest.mark.skipif(
    not _externally_managed(), reason="needs a system /usr/bin/python3 marked EXTERNALLY-MANAGED"
)
def test_readme_commands_work_on_an_externally_managed_system_python(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    clone = copy_template(work / "copier-prefect-ecs")
    git(clone, "init", "--quiet")
    git(clone, "add", "--all")
    git(clone, "commit", "--quiet", "-m", "clone")
    env = {"HOME": str(home), "PATH": SYSTEM_PATH, "LANG": "C.UTF-8"}
    env |= network_settings()
    # Share this machine's package cache: the downloads are not what is tested.
    cache = Path(os.environ.get("UV_CACHE_DIR") or Path.home() / ".cache" / "uv")
    if cache.is_dir():
        env["UV_CACHE_DIR"] = str(cache)

    def bash(command: str, timeout: int = 1200) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    which = bash("command -v python3 uv uvx copier; true").stdout.split()
    assert which[:1] == [str(SYSTEM_PYTHON)] and len(which) == 1, f"not a clean PATH: {which}"
    # What the README used to say, and why it changed.
    refused = bash("python3 -m pip install --quiet uv")
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr

    rendered = bash(readme_command("render"))
    assert rendered.returncode == 0, rendered.stdout[-3000:] + rendered.stderr[-3000:]
    project = (clone / readme_command("render").split()[-1]).resolve()
    assert (project / ".copier-answers.yml").is_file() and (project / "prefect.yaml").is_file()
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=project, capture_output=True, text=True, check=False
    )
    assert top.stdout.strip() == str(project), "the rendered project is not its own git repository"

    # The test command as written, asked only to collect (the suite itself runs in CI).
    tested = bash(f"{readme_command('test suite')} --collect-only -q")
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    assert re.search(r"\d+ tests collected", tested.stdout), tested.stdout[-1000:]
