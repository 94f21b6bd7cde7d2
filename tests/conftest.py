"""Render fixture shared by every test of the template.

`render(answers)` renders this working tree (`vcs_ref="HEAD"`, so uncommitted
changes are included, as Copier does for a dirty local template) into a
directory shared by all xdist workers of this run, once per distinct answer
set, isolated from the user's Copier settings.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from support.answer_sets import ANSWER_SETS, VALUE_SWEEPS
from support.rendering import render_template
from support.xdist_order import waiting_groups_first

Render = Callable[..., Path]

pytest_plugins = ["support.tf_fixtures"]

# `pytest -m quick`, the edit loop (README, "How the template is tested"): every
# static check on these two sets, which between them take the other choice of
# nearly every shape question (cloud/server, ecr/s3, local/s3 state, github/none
# CI, one/two environments), plus the checks' own tests on broken fixtures.
QUICK_SETS = ("default", "s3-server")
# Tests that mostly wait (an emulator, a Prefect server, the generated project): never quick.
WAITING_MARKERS = ("slow", "e2e", "prefect_server")
# Modules whose tests are not static checks of one render (many renders, the
# update path, an emulator or a Prefect server): never quick.
NOT_QUICK_MODULES = {
    "test_bad_input.py",
    "test_update.py",
    "test_presets.py",
    "test_escaping.py",
    "test_crash_recovery.py",
    "test_emulated_stack.py",
}


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: a worker per core for `-m quick` (all CPU); three per core for the whole
    suite, whose emulator and Prefect-server groups spend most of their time waiting
    (with two per core, both cores idled half of the first minutes)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    cores = len(os.sched_getaffinity(0))
    return cores if "quick" in (config.getoption("markexpr") or "") else 3 * cores


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in NOT_QUICK_MODULES or any(
            item.get_closest_marker(marker) for marker in WAITING_MARKERS
        ):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "swept_project" in params:
            continue
        if params.get("answer_set", QUICK_SETS[0]) in QUICK_SETS:
            item.add_marker(pytest.mark.quick)


# Under its own name (a module has one function per name); trylast: after the conftests
# that add xdist_group markers (tryfirst) and after `-m` deselects by the quick marker.
@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_in_xdist_order(items: list[pytest.Item]) -> None:
    waiting_groups_first(items, WAITING_MARKERS)


def run_shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A directory shared by the xdist workers of one run, never across runs."""
    base = tmp_path_factory.getbasetemp()
    # getbasetemp() is per worker; its parent belongs to this run only.
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    root.mkdir(parents=True, exist_ok=True)
    return root


def _render_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where renders are cached, for the whole run.

    RENDER_CACHE_DIR overrides it (the validation-cost benchmark shares one
    render between the pytest runs it times).
    """
    if override := os.environ.get("RENDER_CACHE_DIR"):
        root = Path(override)
        root.mkdir(parents=True, exist_ok=True)
        return root
    return run_shared_dir(tmp_path_factory, "renders")


@pytest.fixture(scope="session")
def render(tmp_path_factory: pytest.TempPathFactory) -> Render:
    """Return a function answers -> rendered project directory (cached)."""
    root = _render_root(tmp_path_factory)

    def _render(answers: dict) -> Path:
        key = hashlib.sha256(json.dumps(answers, sort_keys=True).encode()).hexdigest()[:16]
        destination = root / key
        with open(root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (destination / ".copier-answers.yml").exists():
                shutil.rmtree(destination, ignore_errors=True)
                render_template(answers, destination)
        return destination

    return _render


@pytest.fixture(scope="session", params=sorted(ANSWER_SETS))
def answer_set(request: pytest.FixtureRequest) -> tuple[str, dict]:
    return request.param, ANSWER_SETS[request.param]


@pytest.fixture(scope="session")
def project(render: Render, answer_set: tuple[str, dict]) -> Path:
    """A rendered project, once for each named answer set."""
    return render(answer_set[1])


@pytest.fixture(scope="session", params=sorted(VALUE_SWEEPS))
def swept_project(request: pytest.FixtureRequest, render: Render) -> tuple[dict, Path]:
    answers = VALUE_SWEEPS[request.param]
    return answers, render(answers)


@pytest.fixture(scope="session")
def generated_pytest_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pytest cache for the generated projects' suites of this run (their migrated Prefect database)."""
    return run_shared_dir(tmp_path_factory, "generated-pytest-cache")
