"""Fixtures of the end-to-end tests: Terraform's environment and the emulated deployments."""

from __future__ import annotations

import pytest
from support.terraform import terraform_env, terraform_unavailable
from support.tools import require


@pytest.fixture(scope="session")
def tf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    require(terraform_unavailable())
    # The parent of getbasetemp() is shared by every xdist worker of the run.
    return terraform_env(tmp_path_factory.getbasetemp().parent / "terraform")
