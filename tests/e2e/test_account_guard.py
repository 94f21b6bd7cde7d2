"""The AWS account guard on the emulator: credentials of another account change nothing.

The project records account 111111111111 for dev; moto answers every request
as EMULATED_ACCOUNT. `make` (the real targets, as processes) and Terraform
itself (allowed_account_ids) must refuse, naming both ids, and leave the
emulated account as it was: no state bucket, no resource.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import emulator
import pytest
from pipeline import EMULATED_ACCOUNT, SERVER_API_URL
from support.make import fake_docker, make_env, path_without, run_make, uv_binary
from support.rendering import render_template
from support.terraform import run_terraform

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

RECORDED = "111111111111"
REGION = "us-east-1"


@dataclass
class Guarded:
    project: Path
    server: emulator.MotoServer
    env: dict[str, str]
    tf_env: dict[str, str]
    baseline: set[str]

    def make(self, *args: str):
        return run_make(self.project, self.env, *args)

    def untouched(self) -> None:
        assert emulator.inventory(self.server, REGION) == self.baseline
        assert not self.server.client("s3", REGION).list_buckets()["Buckets"]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str]) -> Iterator[Guarded]:
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    uv = uv_binary()
    if uv is None:
        pytest.skip("no uv binary that runs in the rendered project")
    workdir = tmp_path_factory.mktemp("account-guard")
    project = render_template(
        {
            "terraform_backend": "s3",
            "prefect_backend": "server",
            "ci_provider": "none",
            "aws_account_id_dev": RECORDED,
        },
        workdir / "project",
    )
    server = emulator.MotoServer(workdir / "moto").start()
    try:
        # A Prefect API nothing listens on: every refusal here must come before Prefect is asked.
        env = make_env(tf_env, uv) | server.client_env(REGION) | {"PREFECT_API_URL": "http://127.0.0.1:9/api"}
        env["PREFECT_HOME"] = str(workdir / "prefect-home")
        # The rendered roots talk to the emulator through the override file, as in the other e2e tests.
        for root in (project / "infra" / "envs" / "dev", project / "infra" / "bootstrap"):
            emulator.write_override(root, server.url, local_backend=True)
        yield Guarded(project, server, env, tf_env, emulator.inventory(server, REGION))
    finally:
        server.stop()


def names_both_ids(output: str) -> bool:
    return RECORDED in output and EMULATED_ACCOUNT in output


@pytest.mark.parametrize(
    "target", ["up", "doctor", "infra-apply", "infra-plan", "bootstrap", "secret-set", "deploy"]
)
def test_make_refuses_another_account_naming_both_ids(guarded: Guarded, target: str) -> None:
    result = guarded.make(target, "ENV=dev")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert names_both_ids(output), output
    assert "infra/envs/dev/terraform.tfvars" in output, output
    guarded.untouched()
    assert not (guarded.project / "infra" / "envs" / "dev" / ".terraform").exists(), "terraform init ran"


def test_terraform_itself_refuses_another_account(guarded: Guarded) -> None:
    """Without make: the provider's allowed_account_ids stops a plan (and so an apply) at once."""
    root = guarded.project / "infra" / "envs" / "dev"
    env = guarded.tf_env | guarded.env
    run_terraform(["init", "-input=false"], cwd=root, env=env, check=True)
    try:
        result = run_terraform(
            ["plan", "-input=false", f"-var=prefect_api_url={SERVER_API_URL}"], cwd=root, env=env, check=False
        )
    finally:
        shutil.rmtree(root / ".terraform")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"AWS account ID not allowed: {EMULATED_ACCOUNT}" in output, output
    guarded.untouched()


def test_an_empty_record_is_refused_naming_the_file(guarded: Guarded) -> None:
    tfvars = guarded.project / "infra" / "envs" / "dev" / "terraform.tfvars"
    original = tfvars.read_text()
    tfvars.write_text(original.replace(f'aws_account_id = "{RECORDED}"', 'aws_account_id = ""'))
    try:
        result = guarded.make("infra-apply", "ENV=dev")
    finally:
        tfvars.write_text(original)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "No AWS account recorded for dev" in output and "infra/envs/dev/terraform.tfvars" in output, output
    guarded.untouched()


def test_an_unknown_env_is_refused(guarded: Guarded) -> None:
    result = guarded.make("infra-apply", "ENV=qa")
    assert result.returncode != 0
    assert "ENV must be one of: dev (got 'qa')" in result.stderr, result.stderr
    guarded.untouched()
    assert os.listdir(guarded.project / "infra" / "envs") == ["dev"]


def test_doctor_says_what_fails_and_how_to_fix_it(guarded: Guarded, tmp_path: Path) -> None:
    """A PATH without terraform (and a docker without engine): each failure gets its own fix line."""
    fake_docker(tmp_path / "docker")
    path = path_without(
        "terraform", tmp_path / "bin", f"{tmp_path / 'docker'}{os.pathsep}{guarded.env['PATH']}"
    )
    result = run_make(guarded.project, guarded.env | {"PATH": path}, "doctor", "ENV=dev")
    output = result.stderr
    assert result.returncode != 0, output
    assert "FAIL  terraform: not found on PATH\n      fix: install Terraform >= 1.10" in output, output
    assert "ok    docker: engine 27.0.0-fake" in output, output
    assert "ok    region: us-east-1" in output, output
    assert re.search(rf"FAIL  AWS account: .*{EMULATED_ACCOUNT}.*{RECORDED}.*\n      fix: ", output), output
    assert "FAIL  Prefect API" in output, output
    assert "check(s) failed for dev" in output
    guarded.untouched()
