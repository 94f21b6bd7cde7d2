"""Copies of this template's working tree, as a plain folder or a git repository.

The working tree includes other people's uncommitted files: the copy takes every
file git would track (`git ls-files -co --exclude-standard`), which is what
`copier copy --vcs-ref HEAD` of the dirty repository renders too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from support.answers import REPO

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    result = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def tracked_files(repo: Path = REPO) -> list[str]:
    listing = git(repo, "ls-files", "-z", "-co", "--exclude-standard")
    return sorted(
        {
            name
            for name in listing.split("\0")
            if name and ((repo / name).is_file() or (repo / name).is_symlink())
        }
    )


def copy_template(destination: Path) -> Path:
    """A plain copy of the template's working tree (no .git)."""
    for name in tracked_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_symlink():
            target.symlink_to(os.readlink(REPO / name))
        else:
            shutil.copy2(REPO / name, target)
    return destination
