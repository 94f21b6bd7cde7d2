"""Pytest fixtures for tests that run Terraform (registered in conftest.py).

* `terraform_bin`  path of `terraform`, or skip (fmt needs nothing else)
* `tf_env`         environment for `tf_tools.run_terraform`: CLI config using the
                   provider mirror, one plugin cache shared by the whole run
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

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from tf_tools import (
    TerraformError,
    copy_infra,
    run_terraform,
    terraform_binary,
    terraform_env,
    terraform_roots,
    terraform_unavailable,
)


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
    binary = terraform_binary()
    if binary is None:
        pytest.skip("terraform is not on PATH")
    return binary


@pytest.fixture(scope="session")
def tf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    reason = terraform_unavailable()
    if reason:
        pytest.skip(reason)
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
