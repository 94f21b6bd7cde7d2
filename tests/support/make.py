"""Run a rendered project's make targets as processes, with this interpreter's packages.

`uv run` in the Makefile uses this interpreter's environment (it has the
project's dependencies) instead of installing them into a new .venv, and the
project's package imports from src/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def uv_binary() -> str | None:
    """A uv that runs in any folder (`uv run` sets UV; a pyenv shim may pick another Python)."""
    candidates = [os.environ.get("UV"), str(Path(sys.base_prefix) / "bin" / "uv"), shutil.which("uv")]
    for candidate in candidates:
        if not candidate or not Path(candidate).is_file():
            continue
        if subprocess.run([candidate, "--version"], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def make_env(base: dict[str, str], uv: str, *, path_first: list[Path] = ()) -> dict[str, str]:
    """`base` plus what running the rendered Makefile needs here (PATH: `path_first`, uv, then base's)."""
    path = [str(folder) for folder in path_first] + [str(Path(uv).parent), base.get("PATH", os.defpath)]
    return {
        **{key: value for key, value in base.items() if not key.startswith(("PYTEST_", "MAKE"))},
        "PATH": os.pathsep.join(path),
        "UV_PROJECT_ENVIRONMENT": sys.prefix,
        "UV_NO_SYNC": "1",
        "PYTHONPATH": "src",
        **_global_pyenv_version(),
    }


def _global_pyenv_version() -> dict[str, str]:
    """A pyenv shim (the aws CLI's here) runs the global Python, not the project's .python-version."""
    if "PYENV_VERSION" in os.environ or shutil.which("pyenv") is None:
        return {}
    found = subprocess.run(
        ["pyenv", "version-name"], cwd=Path.home(), capture_output=True, text=True, check=False
    )
    return {"PYENV_VERSION": found.stdout.strip()} if found.returncode == 0 and found.stdout.strip() else {}


def run_make(project: Path, env: dict[str, str], *args: str, timeout: float = 600, stdin: str | None = None):
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=project,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def path_without(tool: str, folder: Path, path: str | None = None) -> str:
    """A PATH of one `folder` that links every program of `path` (default: PATH) except `tool`."""
    folder.mkdir(parents=True, exist_ok=True)
    for directory in (path or os.environ["PATH"]).split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = folder / entry.name
            if entry.name != tool and not link.exists() and os.access(entry.path, os.X_OK):
                link.symlink_to(entry.path)
    return str(folder)


FAKE_DOCKER = """#!/bin/sh
# A docker CLI without an engine, as in a CI runner: records every call, answers `version`,
# and `buildx imagetools create --tag <registry>/<repository>:<tag> <source>` (which copies a
# manifest between registries, no engine needed) puts a manifest into that ECR repository.
printf '%s\\n' "$*" >> "{log}"
case "$1" in
  version) echo 27.0.0-fake ;;
  login) cat > /dev/null; echo "Login Succeeded" ;;
  buildx)
    if [ "$2 $3 $4" = "imagetools create --tag" ]; then
      reference="${{5#*/}}"
      index='{{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}}'
      aws ecr put-image --repository-name "${{reference%:*}}" --image-tag "${{reference##*:}}" \\
        --image-manifest "$index" > /dev/null
    fi ;;
esac
"""


def fake_docker(folder: Path) -> Path:
    """Put a recording `docker` into `folder`; returns the log its calls go to."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "docker-calls.log"
    script = folder / "docker"
    script.write_text(FAKE_DOCKER.format(log=log))
    script.chmod(0o755)
    return log
