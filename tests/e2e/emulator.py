"""The AWS emulator of the end-to-end tests and how a rendered root is pointed at it.

`MotoServer` runs `moto_launcher.py` (moto's server plus `moto_patches`) as a
subprocess on 127.0.0.1 and a port the OS picks; its task runner starts the
containers of the ECS tasks once `execute_tasks` is called (docs/emulator.md).
`write_override` drops a
Terraform override file into a rendered env root so its AWS provider talks to
that server with fake credentials. The rendered tree itself never contains
emulator settings (a test asserts it), so the override is the only difference
between what the tests apply and what a user applies to AWS.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from support.hcl import parse_file
from task_runner import kill_session

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "moto_launcher.py"
STARTUP_TIMEOUT = 120
OVERRIDE_FILE = "zz_emulator_override.tf"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}

# Every AWS provider endpoint key the stack may use; unused ones cost nothing.
PROVIDER_SERVICES = (
    "cloudwatch",
    "ec2",
    "ecr",
    "ecs",
    "eventbridge",
    "iam",
    "kms",
    "logs",
    "s3",
    "secretsmanager",
    "sns",
    "sqs",
    "ssm",
    "sts",
)


@dataclass
class MotoServer:
    """moto's server in a subprocess, stopped by its PID."""

    workdir: Path
    process: subprocess.Popen | None = None
    port: int | None = None
    control_port: int | None = None
    log_path: Path = field(init=False)
    run_task_capture: Path = field(init=False)
    stopped: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "moto.log"
        self.run_task_capture = self.workdir / "run_task_requests.jsonl"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        env = {
            **os.environ,
            **FAKE_CREDENTIALS,
            # AWS-managed policies (AmazonECSTaskExecutionRolePolicy ...) exist in every account.
            "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
            "PYTHONPATH": str(HERE),
        }
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(LAUNCHER), str(self.run_task_capture)],
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            text=True,
        )
        self.port, self.control_port = self._read_ports()
        return self

    def _read_ports(self) -> tuple[int, int]:
        assert self.process is not None and self.process.stdout is not None
        ports: dict[str, int] = {}
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while time.monotonic() < deadline:
                if selector.select(timeout=1):
                    # The launcher prints both lines at once: the second may already be
                    # in the reader's buffer, where the selector would not see it.
                    while len(ports) < 2 and (line := self.process.stdout.readline()):
                        name, _, value = line.partition(" ")
                        if name in ("PORT", "CONTROL"):
                            ports[name] = int(value)
                    if len(ports) == 2:
                        return ports["PORT"], ports["CONTROL"]
                if self.process.poll() is not None:
                    break
        self.stop()
        raise RuntimeError(f"moto did not start within {STARTUP_TIMEOUT} s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        """Stop the emulator, which kills its running tasks' processes first.

        Only if it could not (killed, or dead before), kill the sessions its task
        runner recorded: a last resort, because process ids are reused (the
        system's pid_max may be 32768) and a finished task's session id can name
        another test's process by now.
        """
        if self.stopped:
            return
        self.stopped = True
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        if self.process.returncode == 0:
            return
        groups = self.workdir / "task-sessions"
        for pid in groups.read_text().split() if groups.exists() else []:
            kill_session(int(pid))

    # --- the task runner's controls (see task_runner.py) ------------------------------
    def control(self, name: str, **arguments: Any) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}/{name}",
            data=json.dumps(arguments).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"emulator control {name}: {json.loads(error.read())['error']}") from None

    def execute_tasks(self, *, images: dict[str, dict[str, Any]], prefect_api_url: str) -> None:
        """From now on every RunTask starts its containers: `images` maps repository URL -> image config."""
        self.control(
            "configure",
            config={
                "images": images,
                "prefect_api_url": prefect_api_url,
                "python_bin": str(Path(sys.executable).parent),
            },
        )

    def interrupt_as_spot(self, task_arn: str) -> None:
        """Fargate Spot reclaims the task: SIGTERM, stopCode SpotInterruption, SIGKILL after stopTimeout."""
        self.control("interrupt_as_spot", task_arn=task_arn)

    def set_capacity(self, provider: str, *, available: bool) -> None:
        """RunTask on `provider` fails with "Capacity is unavailable at this time..." until made available."""
        self.control("set_capacity", provider=provider, available=available)

    def hold_run_tasks(self, hold: bool) -> int:
        """While on, RunTasks wait; off, the waiting ones fail and start nothing. Returns how many waited."""
        return self.control("hold_run_tasks", hold=hold)["held"]

    def stopped_as(self, task_arn: str, *, stop_code: str, reason: str) -> None:
        """DescribeTasks reports a task that runs no process STOPPED with `stop_code` and `reason`."""
        self.control("stopped_as", task_arn=task_arn, stop_code=stop_code, reason=reason)

    def kill_container(self, task_arn: str) -> None:
        """The platform SIGKILLs the task's containers, as an out-of-memory kill does (exit 137)."""
        self.control("kill_container", task_arn=task_arn)

    def emit_again(self, task_arn: str) -> dict[str, Any]:
        """Send the task's last "ECS Task State Change" event again (a late delivery); return its detail."""
        return self.control("emit_again", task_arn=task_arn)["detail"]

    def task_process(self, task_arn: str) -> dict[str, Any]:
        """The task's containers: pid, exitCode (None while running), log (their stdout and stderr)."""
        return self.control("describe_process", task_arn=task_arn)

    def client(self, service: str, region: str):
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def client_env(self, region: str) -> dict[str, str]:
        """Environment variables that point boto3/aiobotocore clients at the emulator."""
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def run_task_requests(self) -> list[dict]:
        if not self.run_task_capture.exists():
            return []
        return [json.loads(line) for line in self.run_task_capture.read_text().splitlines() if line]


def aws_provider_aliases(root: Path) -> list[str | None]:
    """The aliases of the `provider "aws"` blocks of a root (None is the default one)."""
    aliases: list[str | None] = [None]
    for tf_file in sorted(root.glob("*.tf")):
        if tf_file.name == OVERRIDE_FILE:
            continue
        document = parse_file(tf_file)
        for block in document.get("provider", []):
            for config in (block.get("aws"), block.get('"aws"')):
                if config and config.get("alias"):
                    aliases.append(str(config["alias"]).strip('"'))
    return aliases


def write_override(root: Path, endpoint: str, *, local_backend: bool) -> Path:
    """Point every AWS provider of `root` at `endpoint`; optionally swap the backend for a local one.

    An override file merges into the configuration it sits next to: its
    provider blocks replace the arguments of the same-named (and aliased)
    provider, and its backend block replaces the root's backend.
    """
    endpoints = "\n".join(f'    {service:<14} = "{endpoint}"' for service in PROVIDER_SERVICES)
    blocks = []
    if local_backend:
        blocks.append('terraform {\n  backend "local" {}\n}\n')
    for alias in aws_provider_aliases(root):
        alias_line = f'  alias                       = "{alias}"\n' if alias else ""
        blocks.append(
            'provider "aws" {\n'
            f"{alias_line}"
            '  access_key                  = "test"\n'
            '  secret_key                  = "test"\n'
            "  skip_credentials_validation = true\n"
            "  skip_metadata_api_check     = true\n"
            # The account id comes from moto's STS, as from AWS's: the provider
            # compares it with a referenced security group's owner and would
            # otherwise plan "<account>/sg-..." -> "sg-..." after every apply.
            "  skip_requesting_account_id  = false\n"
            "  s3_use_path_style           = true\n"
            "  endpoints {\n"
            f"{endpoints}\n"
            "  }\n"
            "}\n"
        )
    path = root / OVERRIDE_FILE
    path.write_text("\n".join(blocks))
    return path


def add_s3_backend(override: Path, endpoint: str, *, key: str, region: str) -> None:
    """Add an S3 backend on the emulator to an override file (the bucket: `init -backend-config`).

    As `make` runs `terraform init -backend-config="bucket=..."` against the
    rendered backend "s3" block: this one replaces it with the same settings
    plus the emulator's endpoints.
    """
    block = (
        'terraform {\n  backend "s3" {\n'
        f'    key                         = "{key}"\n'
        f'    region                      = "{region}"\n'
        "    encrypt                     = true\n"
        "    use_lockfile                = true\n"
        '    access_key                  = "test"\n'
        '    secret_key                  = "test"\n'
        "    skip_credentials_validation = true\n"
        "    skip_metadata_api_check     = true\n"
        "    use_path_style              = true\n"
        f'    endpoints = {{\n      s3  = "{endpoint}"\n      sts = "{endpoint}"\n    }}\n'
        "  }\n}\n"
    )
    override.write_text(override.read_text() + "\n" + block)


def inventory(server: MotoServer, region: str) -> set[str]:
    """Everything a stack could leave behind in the emulated account, as "kind:id" strings.

    Default resources AWS creates by itself (the default VPC, its subnets and
    security group, AWS-managed IAM policies) are not listed.
    """
    found: set[str] = set()
    ecs = server.client("ecs", region)
    # Deleted clusters and services stay describable as INACTIVE for a while (in AWS too).
    for arn in ecs.list_clusters()["clusterArns"]:
        if ecs.describe_clusters(clusters=[arn])["clusters"][0]["status"] == "INACTIVE":
            continue
        found.add(f"ecs-cluster:{arn}")
        service_arns = ecs.list_services(cluster=arn)["serviceArns"]
        for service in (
            ecs.describe_services(cluster=arn, services=service_arns)["services"] if service_arns else []
        ):
            if service["status"] != "INACTIVE":
                found.add(f"ecs-service:{service['serviceArn']}")
    for arn in ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]:
        found.add(f"ecs-task-definition:{arn}")
    iam = server.client("iam", region)
    for role in iam.list_roles()["Roles"]:
        if not role["Path"].startswith("/aws-service-role/"):
            found.add(f"iam-role:{role['RoleName']}")
    for policy in iam.list_policies(Scope="Local")["Policies"]:
        found.add(f"iam-policy:{policy['Arn']}")
    for provider in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        found.add(f"iam-oidc-provider:{provider['Arn']}")
    for bucket in server.client("s3", region).list_buckets().get("Buckets", []):
        found.add(f"s3-bucket:{bucket['Name']}")
    for url in server.client("sqs", region).list_queues().get("QueueUrls", []):
        found.add(f"sqs-queue:{url.rsplit('/', 1)[-1]}")
    for secret in server.client("secretsmanager", region).list_secrets()["SecretList"]:
        found.add(f"secret:{secret['Name']}")
    for group in server.client("logs", region).describe_log_groups()["logGroups"]:
        found.add(f"log-group:{group['logGroupName']}")
    for repository in server.client("ecr", region).describe_repositories()["repositories"]:
        found.add(f"ecr-repository:{repository['repositoryName']}")
    events = server.client("events", region)
    for rule in events.list_rules()["Rules"]:
        found.add(f"event-rule:{rule['Name']}")
    for alarm in server.client("cloudwatch", region).describe_alarms()["MetricAlarms"]:
        found.add(f"alarm:{alarm['AlarmName']}")
    for topic in server.client("sns", region).list_topics()["Topics"]:
        found.add(f"sns-topic:{topic['TopicArn']}")
    ec2 = server.client("ec2", region)
    for vpc in ec2.describe_vpcs()["Vpcs"]:
        if not vpc.get("IsDefault"):
            found.add(f"vpc:{vpc['VpcId']}")
    for subnet in ec2.describe_subnets()["Subnets"]:
        if not subnet.get("DefaultForAz"):
            found.add(f"subnet:{subnet['SubnetId']}")
    for group in ec2.describe_security_groups()["SecurityGroups"]:
        if group["GroupName"] != "default":
            found.add(f"security-group:{group['GroupId']}")
    for gateway in ec2.describe_internet_gateways()["InternetGateways"]:
        found.add(f"internet-gateway:{gateway['InternetGatewayId']}")
    return found
