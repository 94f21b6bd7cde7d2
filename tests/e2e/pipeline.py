"""What a user does with a rendered project, step by step, against the emulator.

`EmulatedProject` copies a rendered project, points its env roots at a
`MotoServer` (override file, plus an S3 backend config when the project keeps
its state in S3) and runs the Terraform steps. Every step raises `StepFailed`
naming itself, so a test that breaks a render on purpose can assert *where*
the pipeline stops.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import emulator
from support.answers import recorded_answers
from support.terraform import TerraformError, run_terraform

CLOUD_API_URL = (
    "https://api.prefect.cloud/api/accounts/00000000-0000-4000-8000-000000000000"
    "/workspaces/00000000-0000-4000-8000-000000000001"
)
SERVER_API_URL = "https://prefect.example.com/api"
BACKEND_CONFIG_FILE = "emulator.s3.tfbackend"
# The account moto answers for credentials it did not issue: the account every
# emulated root records (aws_account_id), as a user fills it in.
EMULATED_ACCOUNT = "123456789012"


class StepFailed(AssertionError):
    """A pipeline step failed; `step` names it."""

    def __init__(self, step: str, detail: str):
        super().__init__(f"step {step!r} failed: {detail}")
        self.step = step


@contextmanager
def step(name: str) -> Iterator[None]:
    try:
        yield
    except StepFailed:
        raise
    except Exception as error:
        raise StepFailed(name, f"{type(error).__name__}: {error}") from error


@dataclass
class EmulatedProject:
    """A rendered project copied to `workdir`, wired to `server`."""

    rendered: Path
    workdir: Path
    server: emulator.MotoServer
    tf_env: dict[str, str]
    answers: dict[str, Any] = field(init=False)
    project: Path = field(init=False)
    # `terraform output -json` costs ~0.4 s of CPU and tests poll it: kept per
    # root until a Terraform run of this object or a local state file changes.
    _outputs_seen: dict[Path, tuple[Any, dict[str, Any]]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.project = self.workdir / "project"
        shutil.copytree(
            self.rendered, self.project, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".git")
        )
        self.answers = recorded_answers(self.project)

    # --- facts about the render -------------------------------------------------
    @property
    def region(self) -> str:
        return self.answers.get("aws_region", "us-east-1")

    @property
    def environments(self) -> list[str]:
        return sorted(path.name for path in (self.project / "infra" / "envs").iterdir() if path.is_dir())

    @property
    def uses_s3_backend(self) -> bool:
        return self.answers.get("terraform_backend") == "s3"

    @property
    def prefect_api_url(self) -> str:
        return SERVER_API_URL if self.answers.get("prefect_backend") == "server" else CLOUD_API_URL

    def env_root(self, env: str) -> Path:
        return self.project / "infra" / "envs" / env

    # --- steps ----------------------------------------------------------------
    def bootstrap(self) -> str:
        """Apply infra/bootstrap (local state, as documented) and return the state bucket name."""
        root = self.project / "infra" / "bootstrap"
        with step("bootstrap"):
            emulator.write_override(root, self.server.url, local_backend=False)
            self._tf(["init", "-input=false"], root)
            self._tf(["apply", "-auto-approve", "-input=false", *self._bootstrap_var_args()], root)
            outputs = self._outputs(root)
        bucket = next(
            (value for value in outputs.values() if isinstance(value, str) and "tfstate" in value), None
        )
        if bucket is None:
            raise StepFailed("bootstrap", f"no state bucket among the outputs {outputs}")
        self._write_backend_config(bucket)
        return bucket

    def _write_backend_config(self, bucket: str) -> None:
        # Test-only S3 backend settings, kept outside the rendered tree and given
        # to `terraform init -backend-config=...` (the rendered backend.tf has
        # only key, region, encrypt and use_lockfile).
        (self.workdir / BACKEND_CONFIG_FILE).write_text(
            f'bucket                      = "{bucket}"\n'
            'access_key                  = "test"\n'
            'secret_key                  = "test"\n'
            "skip_credentials_validation = true\n"
            "skip_metadata_api_check     = true\n"
            "skip_requesting_account_id  = true\n"
            "skip_region_validation      = true\n"
            "use_path_style              = true\n"
            f'endpoints = {{\n  s3  = "{self.server.url}"\n  sts = "{self.server.url}"\n}}\n'
        )

    def fill_tfvars(self, env: str, **variables: Any) -> None:
        """Append values to an env root's terraform.tfvars, as a user fills in the existing network."""
        tfvars = self.env_root(env) / "terraform.tfvars"
        lines = [f"{name} = {json.dumps(value)}" for name, value in variables.items()]
        tfvars.write_text(
            tfvars.read_text() + "\n# Filled in by the end-to-end test\n" + "\n".join(lines) + "\n"
        )

    def reuse_github_oidc_provider(self, env: str, arn: str | None = None) -> None:
        """Say in `env`'s terraform.tfvars that the account has GitHub's OIDC provider already.

        With `arn` the tfvars name it; without, Terraform looks it up by URL.
        """
        tfvars = self.env_root(env) / "terraform.tfvars"
        text, count = re.subn(
            r"^create_github_oidc_provider\s*=\s*(true|false)$",
            "create_github_oidc_provider = false",
            tfvars.read_text(),
            flags=re.MULTILINE,
        )
        assert count == 1, f"no create_github_oidc_provider line in {tfvars}"
        tfvars.write_text(text)
        if arn is not None:
            self.fill_tfvars(env, github_oidc_provider_arn=arn)

    def init(self, env: str) -> None:
        root = self.env_root(env)
        with step("init"):
            emulator.write_override(root, self.server.url, local_backend=False)
            args = ["init", "-input=false"]
            if self.uses_s3_backend:
                args.append(f"-backend-config={self.workdir / BACKEND_CONFIG_FILE}")
            self._tf(args, root)

    def apply(self, env: str) -> dict[str, Any]:
        with step("apply"):
            self._tf(["apply", "-auto-approve", "-input=false", *self._var_args(env)], self.env_root(env))
            return self._outputs(self.env_root(env))

    def plan_is_clean(self, env: str) -> None:
        """`plan -detailed-exitcode` right after apply must find nothing to change."""
        with step("plan"):
            result = self._tf(
                ["plan", "-detailed-exitcode", "-input=false", *self._var_args(env)],
                self.env_root(env),
                check=False,
            )
            if result.returncode != 0:
                raise AssertionError(
                    f"plan after apply exited {result.returncode} (2 = changes):\n"
                    f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
                )

    def planned_changes(self, env: str, *extra_args: str) -> dict[str, Any]:
        """`plan -detailed-exitcode -out` of an env root, as `terraform show -json` reads the plan."""
        return self._plan_json(self.env_root(env), [*self._var_args(env), *extra_args])

    def bootstrap_planned_changes(self) -> dict[str, Any]:
        """The same for infra/bootstrap (init first: the template may have changed its providers)."""
        root = self.project / "infra" / "bootstrap"
        with step("init"):
            self._tf(["init", "-input=false"], root)
        return self._plan_json(root, self._bootstrap_var_args())

    def _plan_json(self, root: Path, args: list[str]) -> dict[str, Any]:
        plan_file = self.workdir / f"{root.name}.tfplan"
        with step("plan"):
            result = self._tf(
                ["plan", "-detailed-exitcode", "-input=false", f"-out={plan_file}", *args], root, check=False
            )
            if result.returncode not in (0, 2):  # 2 = changes, which the caller inspects
                raise TerraformError(
                    f"`terraform plan` in {root} exited {result.returncode}\n"
                    f"{result.stderr[-6000:]}\n{result.stdout[-3000:]}"
                )
            return json.loads(self._tf(["show", "-json", str(plan_file)], root).stdout)

    def destroy(self, env: str) -> None:
        with step("destroy"):
            self._tf(["destroy", "-auto-approve", "-input=false", *self._var_args(env)], self.env_root(env))

    def outputs(self, env: str) -> dict[str, Any]:
        return self._outputs(self.env_root(env))

    def output_json(self, env: str, name: str) -> str:
        """`terraform output -json <name>`, as the Makefile pipes it."""
        return self._tf(["output", "-json", name], self.env_root(env)).stdout

    # --- helpers --------------------------------------------------------------
    def _var_args(self, env: str) -> list[str]:
        return [f"-var=prefect_api_url={self.prefect_api_url}", *self._account_var_args(self.env_root(env))]

    def _bootstrap_var_args(self) -> list[str]:
        return [
            f"-var=aws_region={self.region}",
            *self._account_var_args(self.project / "infra" / "bootstrap"),
        ]

    @staticmethod
    def _account_var_args(root: Path) -> list[str]:
        """The emulator's account, for roots that record one (releases before the account guard do not)."""
        if 'variable "aws_account_id"' not in (root / "variables.tf").read_text():
            return []
        return [f"-var=aws_account_id={EMULATED_ACCOUNT}"]

    def _outputs(self, root: Path) -> dict[str, Any]:
        state = root / "terraform.tfstate"
        fingerprint = (state.stat().st_mtime_ns, state.stat().st_size) if state.exists() else None
        seen = self._outputs_seen.get(root)
        if seen is None or seen[0] != fingerprint:
            result = self._tf(["output", "-json"], root)
            outputs = {name: output["value"] for name, output in json.loads(result.stdout).items()}
            self._outputs_seen[root] = seen = (fingerprint, outputs)
        return dict(seen[1])

    def _tf(self, args: list[str], root: Path, *, check: bool = True):
        if args[0] not in ("output", "show"):
            self._outputs_seen.pop(root, None)
        started = time.monotonic()
        result = run_terraform(args, cwd=root, env=self.tf_env, check=False)
        # Appended: a root planned twice (before and after an edit) keeps both logs.
        with (self.workdir / f"terraform-{root.name}-{args[0]}.log").open("a") as log:
            log.write(f"# terraform {' '.join(args)}: {time.monotonic() - started:.1f} s\n")
            log.write(result.stdout + result.stderr)
        if check and result.returncode != 0:
            raise TerraformError(
                f"`terraform {' '.join(args)}` in {root} exited {result.returncode}\n"
                f"{result.stderr[-6000:]}\n{result.stdout[-3000:]}"
            )
        return result


def create_existing_network(server: emulator.MotoServer, region: str) -> dict[str, Any]:
    """A VPC with two public subnets, made outside Terraform as a user's existing network would be."""
    ec2 = server.client("ec2", region)
    vpc_id = ec2.create_vpc(CidrBlock="10.80.0.0/16")["Vpc"]["VpcId"]
    # Like the default VPC (and moto's RunTask needs it: without DNS hostnames its
    # task ENIs lack a private DNS name and RunTask fails with a 500).
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    zones = [zone["ZoneName"] for zone in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnet_ids = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.80.{index}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for index, zone in enumerate(zones)
    ]
    return {"vpc_id": vpc_id, "subnet_ids": subnet_ids, "assign_public_ip": True}


GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"


def create_github_oidc_provider(server: emulator.MotoServer, region: str) -> str:
    """GitHub's OIDC provider, made outside Terraform as in an account that already deploys with Actions."""
    return server.client("iam", region).create_open_id_connect_provider(
        Url=GITHUB_OIDC_URL, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["a" * 40]
    )["OpenIDConnectProviderArn"]


# What a team adds in an existing VPC: a self-hosted Prefect server on :4200 for
# the worker, and a database (ports 5432-5433) in the VPC for the flow runs.
CUSTOM_EGRESS = {
    "worker_egress": [
        {"port": 443, "cidr_ipv4": "0.0.0.0/0"},
        {"port": 4200, "cidr_ipv4": "10.80.0.0/16", "description": "Prefect server"},
    ],
    "flow_run_egress": [
        {"port": 443, "cidr_ipv4": "0.0.0.0/0"},
        {"port": 5432, "to_port": 5433, "cidr_ipv4": "10.80.0.0/16", "description": "Warehouse"},
    ],
}
