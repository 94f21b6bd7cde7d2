"""The github_oidc module on accounts with and without GitHub's OIDC provider, on the emulator.

An AWS account holds one OIDC provider per URL; accounts that already deploy
with GitHub Actions have it, and creating a second fails with
EntityAlreadyExists. The module creates it, looks it up by URL, or takes its
ARN; the full stack runs all three in test_emulated_stack.py, this file shows
each on its own (and the failures) in seconds.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import emulator
import pytest
from pipeline import create_github_oidc_provider
from support.terraform import run_terraform

pytestmark = [pytest.mark.e2e, pytest.mark.terraform]

REGION = "us-east-1"
ECR_ARN = "arn:aws:ecr:us-east-1:123456789012:repository/my-pipeline-{env}"


def module_call(env: str, **arguments: object) -> str:
    lines = [
        f'module "{env}" {{',
        '  source             = "./github_oidc"',
        f'  name               = "my-pipeline-{env}"',
        '  github_repository  = "acme/my-pipeline"',
        f'  github_environment = "{env}"',
        f'  ecr_repository_arn = "{ECR_ARN.format(env=env)}"',
        f'  work_pool_job_variables = jsonencode({{ cluster = "my-pipeline-{env}" }})',
        *(f"  {name} = {json.dumps(value)}" for name, value in arguments.items()),
        "}",
        f'output "{env}_role" {{ value = module.{env}.deploy_role_arn }}',
        f'output "{env}_provider" {{ value = module.{env}.oidc_provider_arn }}',
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[emulator.MotoServer]:
    server = emulator.MotoServer(tmp_path / "moto").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def root(render, tmp_path: Path, moto: emulator.MotoServer, tf_env: dict[str, str]) -> Path:
    """A root holding a copy of the rendered module, pointed at the emulator."""
    root = tmp_path / "root"
    shutil.copytree(render({}) / "infra" / "modules" / "github_oidc", root / "github_oidc")
    (root / "main.tf").write_text(f'provider "aws" {{\n  region = "{REGION}"\n}}\n')
    emulator.write_override(root, moto.url, local_backend=False)
    return root


def apply(root: Path, tf_env: dict[str, str], calls: str, *, check: bool = True):
    (root / "modules.tf").write_text(calls)
    run_terraform(["init", "-input=false"], cwd=root, env=tf_env)  # installs the module calls
    return run_terraform(["apply", "-auto-approve", "-input=false"], cwd=root, env=tf_env, check=check)


def outputs(root: Path, tf_env: dict[str, str]) -> dict:
    result = run_terraform(["output", "-json"], cwd=root, env=tf_env)
    return {name: value["value"] for name, value in json.loads(result.stdout).items()}


def trusted_providers(moto: emulator.MotoServer, role_arn: str) -> list[str]:
    role = moto.client("iam", REGION).get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
    return [s["Principal"]["Federated"] for s in role["AssumeRolePolicyDocument"]["Statement"]]


def test_account_with_githubs_provider_reuses_it(root: Path, moto, tf_env) -> None:
    existing = create_github_oidc_provider(moto, REGION)
    # Creating another is what AWS refuses: the reason the module can reuse it.
    refused = apply(root, tf_env, module_call("dev"), check=False)
    assert refused.returncode != 0
    assert "EntityAlreadyExists" in refused.stderr, refused.stderr[-2000:]

    apply(
        root,
        tf_env,
        module_call("dev", create_oidc_provider=False)
        + module_call("prod", create_oidc_provider=False, oidc_provider_arn=existing),
    )
    values = outputs(root, tf_env)
    assert values["dev_provider"] == values["prod_provider"] == existing
    for env in ("dev", "prod"):
        assert trusted_providers(moto, values[f"{env}_role"]) == [existing]
    iam = moto.client("iam", REGION)
    assert [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]] == [existing]


def test_account_without_it_creates_it_once(root: Path, moto, tf_env) -> None:
    # Looking up a provider that does not exist fails at plan time, before anything changes.
    missing = apply(root, tf_env, module_call("staging", create_oidc_provider=False), check=False)
    assert missing.returncode != 0
    assert "OIDC" in missing.stderr or "OpenID" in missing.stderr, missing.stderr[-2000:]
    assert not moto.client("iam", REGION).list_roles()["Roles"]

    apply(root, tf_env, module_call("dev"))
    created = outputs(root, tf_env)["dev_provider"]
    apply(root, tf_env, module_call("dev") + module_call("staging", create_oidc_provider=False))
    values = outputs(root, tf_env)
    assert values["staging_provider"] == values["dev_provider"] == created
    assert trusted_providers(moto, values["staging_role"]) == [created]


def test_creating_and_naming_a_provider_at_once_is_refused(root: Path, tf_env) -> None:
    arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    result = apply(root, tf_env, module_call("dev", oidc_provider_arn=arn), check=False)
    assert result.returncode != 0
    assert "create_oidc_provider = false" in " ".join(result.stderr.split()), result.stderr[-2000:]
