"""Pytest fixtures for tests that run Terraform (registered in conftest.py).

* `terraform_bin`  path of `terraform`, or skip (fail under CI; fmt needs nothing else)
* `tf_env`         environment for `support.terraform.run_terraform`: CLI config using the
                   provider mirror, one plugin cache shared by the whole run
* `checkov_scan(target) -> report`
                   checkov's findings for "infra-<answer set>", "docker-<answer set>"
                   or "fixture-<name>" (tests/fixtures/tf/<name>): one checkov
                   process per run scans every answer set the run's checkov
                   tests use (tests/support/checkov_batch.py)
* `initialized_infra(project) -> Path`
                   a private copy of `project/infra` whose every root
                   (envs/*, bootstrap) ran `terraform init -backend=false`;
                   made once per worker and project, so validate and later
                   tests (plan/apply) share it

Tests marked `terraform` that use the `project` fixture are grouped per
answer set (xdist_group "tf-<answer set>"): one worker initializes a
project's roots once, and different answer sets still run in parallel.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from support import checkov_batch
from support.answer_sets import ANSWER_SETS
from support.terraform import (
    TF_FIXTURES,
    TerraformError,
    copy_infra,
    run_terraform,
    terraform_binary,
    terraform_env,
    terraform_roots,
    terraform_unavailable,
)
from support.tools import binary_missing, checkov_missing, require


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tryfirst: xdist's loadgroup reads xdist_group markers in its own hook.
    for item in items:
        callspec = getattr(item, "callspec", None)
        answer_set = callspec.params.get("answer_set") if callspec else None
        if answer_set and item.get_closest_marker("terraform") and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(f"tf-{answer_set}"))


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    require(binary_missing("terraform"))
    return terraform_binary()


@pytest.fixture(scope="session")
def tf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    require(terraform_unavailable())
    # Under xdist the parent of getbasetemp() is shared by the workers of this run.
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "terraform"
    shared.mkdir(parents=True, exist_ok=True)
    return terraform_env(shared)


@pytest.fixture(scope="session")
def initialized_infra(
    tf_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[Path], Path]:
    copies: dict[Path, Path] = {}

    def _initialized(project: Path) -> Path:
        if project not in copies:
            infra = copy_infra(project / "infra", tmp_path_factory.mktemp(f"infra-{project.name}") / "infra")
            failures = []
            for root in terraform_roots(infra):
                try:
                    run_terraform(["init", "-backend=false", "-input=false"], cwd=root, env=tf_env)
                except TerraformError as error:
                    failures.append(str(error))
            if failures:
                raise TerraformError("\n\n".join(failures))
            copies[project] = infra
        return copies[project]

    return _initialized


def _shared_tmp(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A directory shared by the xdist workers of this run (the parent of their basetemps)."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    shared.mkdir(parents=True, exist_ok=True)
    return shared


@pytest.fixture(scope="session")
def checkov_scan(
    request: pytest.FixtureRequest, render, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], dict]:
    require(checkov_missing())
    # Every worker collected the same items, so each derives the same batch.
    sets = sorted(
        {
            item.callspec.params["answer_set"]
            for item in request.session.items
            if "checkov_scan" in getattr(item, "fixturenames", ())
            and "answer_set" in getattr(getattr(item, "callspec", None), "params", {})
        }
    )
    shared = _shared_tmp(tmp_path_factory, "checkov")
    results = shared / "reports.json"
    with open(shared / "batch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reports = json.loads(results.read_text()) if results.exists() else {}
        if not reports or not all(f"infra-{name}" in reports for name in sets):
            targets = {f"fixture-{name}": TF_FIXTURES / name for name in ("bad_checkov",)}
            for name in sets:
                project = render(ANSWER_SETS[name])
                targets[f"infra-{name}"] = project / "infra"
                targets[f"docker-{name}"] = project / "Dockerfile"
            reports = checkov_batch.scan(targets, shared, ("terraform", "dockerfile"))
            results.write_text(json.dumps(reports))

    def _report(target: str) -> dict:
        assert target in reports, f"checkov_scan has no report for {target!r} (scanned: {sorted(reports)})"
        return reports[target]

    return _report
