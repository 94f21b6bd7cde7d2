"""Render this template the way the tests do (one place, imported by name).

Kept out of conftest.py: tests/e2e has a conftest too, and `from conftest
import ...` would resolve to whichever was imported first.
"""

from __future__ import annotations

import os
from pathlib import Path

from copier import run_copy
from copier_spec import REPO


def render_template(answers: dict, destination: Path, **kwargs) -> Path:
    """Render this template with `answers` (the rest defaults) into `destination`."""
    # An empty settings file: the user's defaults and trusted list don't leak in.
    settings = destination.parent / "copier-settings.yml"
    if not settings.exists():
        settings.write_text("{}\n")
    os.environ["COPIER_SETTINGS_PATH"] = str(settings)
    run_copy(
        str(REPO),
        destination,
        data=answers,
        defaults=True,
        unsafe=True,
        quiet=True,
        vcs_ref="HEAD",
        **kwargs,
    )
    return destination
