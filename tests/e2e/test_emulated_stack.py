"""Apply the rendered stack on an AWS emulator (moto), run the Prefect ECS worker against it, destroy it.

For each answer set below, in order: bootstrap the state bucket (S3 backend),
create the "existing" VPC (existing_vpc), init + apply every env root in
parallel, `plan -detailed-exitcode` must be clean; then (see test_worker_flow_run.py)
a flow run goes through the real ECS worker; finally destroy must leave nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import emulator
import pytest
from answer_sets import ANSWER_SETS
from pipeline import EmulatedProject, create_existing_network

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

E2E_ANSWER_SETS = ["default", "s3-server", "existing-vpc-multi-env"]


@dataclass
class EmulatedStack:
    """One answer set's project on its own emulator, and what the tests learnt so far."""

    project: EmulatedProject
    server: emulator.MotoServer
    baseline: set[str] = field(default_factory=set)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied: bool = False


def _parallel(action, environments: list[str]) -> dict[str, Any]:
    with ThreadPoolExecutor(max_workers=len(environments)) as pool:
        return dict(zip(environments, pool.map(action, environments), strict=True))


@pytest.fixture(scope="module", params=E2E_ANSWER_SETS)
def stack(request, render, tf_env, tmp_path_factory) -> Iterator[EmulatedStack]:
    workdir = tmp_path_factory.mktemp(f"e2e-{request.param}")
    server = emulator.MotoServer(workdir / "moto").start()
    try:
        project = EmulatedProject(render(ANSWER_SETS[request.param]), workdir, server, tf_env)
        yield EmulatedStack(project=project, server=server)
    finally:
        server.stop()


def test_rendered_terraform_has_no_emulator_settings(project: Path) -> None:
    """Emulator endpoints and fake credentials exist only in the test's override file."""
    emulator_setting = re.compile(
        r"skip_credentials_validation|skip_requesting_account_id|skip_metadata_api_check"
        r"|s3_use_path_style|use_path_style|\bendpoints\s*[={]|\baccess_key\b|\bsecret_key\b"
        r"|(localhost|127\.0\.0\.1)(?!:8080/health)"  # the worker's health check probes its own container
    )
    hits = [
        f"{path.relative_to(project)}:{number}: {line.strip()}"
        for path in sorted((project / "infra").rglob("*"))
        if path.is_file() and path.suffix in {".tf", ".tfvars", ".hcl", ".tfbackend"}
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if emulator_setting.search(line)
    ]
    assert not hits, "emulator settings in the rendered Terraform:\n" + "\n".join(hits)
    assert not list(project.rglob(emulator.OVERRIDE_FILE))


def test_apply_then_plan_is_clean(stack: EmulatedStack) -> None:
    project = stack.project
    if project.uses_s3_backend:
        project.bootstrap()
    if project.answers.get("network_mode") == "existing_vpc":
        network = create_existing_network(stack.server, project.region)
        for env in project.environments:
            project.fill_tfvars(env, **network)
    # The state bucket (prevent_destroy) and the user's VPC outlive the stack by design.
    stack.baseline = emulator.inventory(stack.server, project.region)

    def apply(env: str) -> dict[str, Any]:
        project.init(env)
        return project.apply(env)

    stack.outputs = _parallel(apply, project.environments)
    stack.applied = True
    _parallel(project.plan_is_clean, project.environments)


def test_environments_do_not_share_resources(stack: EmulatedStack) -> None:
    if not stack.applied:
        pytest.skip("the stack was not applied (see test_apply_then_plan_is_clean)")
    for key in ("cluster_arn", "work_pool_name", "ecr_repository_url", "prefect_secret_arn"):
        values = [outputs[key] for outputs in stack.outputs.values()]
        assert len(set(values)) == len(values), f"{key} is shared between environments: {values}"


def test_destroy_leaves_nothing(stack: EmulatedStack) -> None:
    if not stack.applied:
        pytest.skip("the stack was not applied (see test_apply_then_plan_is_clean)")
    project = stack.project
    _parallel(project.destroy, project.environments)
    left = emulator.inventory(stack.server, project.region) - stack.baseline
    assert not left, "destroy left resources behind:\n" + "\n".join(sorted(left))
