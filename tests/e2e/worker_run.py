"""The Prefect half of the end-to-end pipeline: work pool, deploy, ECS worker, crash, recovery.

Each function is one step a user (or ECS) takes, run the way the rendered
Makefile runs it, against the local Prefect server and the emulated AWS:

- `create_work_pool`: `terraform output -json work_pool_job_variables | python -m <pkg>.work_pool`,
  then `prefect work-pool create --base-job-template ...` (as `make work-pool`);
- `deploy`: `prefect --no-prompt deploy --all` with the Makefile's variables (as `make deploy`);
  for ECR storage the Docker build/push steps are dropped (no Docker engine
  here) and the image name they would produce is set instead;
- `start_worker`: `prefect worker start --type ecs` with the environment Terraform
  gave the real worker's container, but pointed at the local server and the emulator;
- `stop_task`: the "ECS Task State Change" event ECS emits when a task stops,
  sent through EventBridge so the rule and queue Terraform made carry it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from emulator import MotoServer
from pipeline import EmulatedProject
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from support.prefect_checks import load_prefect_yaml
from support.prefect_local import PREFECT, PrefectServer, free_port, run_prefect
from task_runner import ecs_time

IMAGE_TAG = "e2e"
CODE_VERSION = "e2e-20260101T000000Z"
FAKE_PREFECT_API_KEY = "pnu_e2e0000000000000000000000000000000000"
FAKE_PREFECT_AUTH_STRING = "e2e:e2e"

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class PrefectProject:
    """One env of an applied `EmulatedProject`, seen from Prefect."""

    project: EmulatedProject
    env: str
    prefect: PrefectServer
    server: MotoServer

    @property
    def root(self) -> Path:
        return self.project.project

    @property
    def package(self) -> str:
        return self.project.answers["package_name"]

    def outputs(self) -> dict[str, Any]:
        return self.project.outputs(self.env)

    def cli_env(self) -> dict[str, str]:
        outputs = self.outputs()
        env = {
            **os.environ,
            **self.prefect.client_env(),
            **self.server.client_env(self.project.region),
            "PYTHONPATH": str(self.root / "src"),
            "WORK_POOL_NAME": outputs["work_pool_name"],
            "IMAGE_REPOSITORY": outputs["ecr_repository_url"],
            "IMAGE_TAG": IMAGE_TAG,
            "DEPLOY_ENV": self.env,
        }
        if outputs.get("code_bucket"):
            env["CODE_BUCKET"] = outputs["code_bucket"]
            env["CODE_VERSION"] = CODE_VERSION
        for name in ("PREFECT_API_KEY", "PREFECT_API_AUTH_STRING", "PREFECT_PROFILES_PATH"):
            env.pop(name, None)
        return env

    def client(self) -> SyncPrefectClient:
        return SyncPrefectClient(self.prefect.api_url)

    def run_python(
        self, args: list[str], input: str | None = None, timeout: int = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run this interpreter in the project with the CLI's environment; fail with its stderr."""
        result = subprocess.run(
            [sys.executable, *args],
            input=input,
            cwd=self.root,
            env=self.cli_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"python {' '.join(args[:2])} exited {result.returncode}:\n{result.stderr[-3000:]}"
            )
        return result

    # --- make work-pool ---------------------------------------------------------
    def create_work_pool(self) -> dict[str, Any]:
        job_variables = self.project.output_json(self.env, "work_pool_job_variables")
        built = self.run_python(["-m", f"{self.package}.work_pool"], input=job_variables)
        template_file = self.root / "build" / f"{self.env}-base-job-template.json"
        template_file.parent.mkdir(exist_ok=True)
        template_file.write_text(built.stdout)
        run_prefect(
            [
                "work-pool",
                "create",
                self.outputs()["work_pool_name"],
                "--type",
                "ecs",
                "--base-job-template",
                str(template_file),
                "--overwrite",
            ],
            env=self.cli_env(),
            cwd=self.root,
        )
        return json.loads(built.stdout)

    # --- make deploy ------------------------------------------------------------
    def deploy(self, edit: Callable[[dict[str, Any]], None] | None = None) -> None:
        """`make deploy`; `edit` may change the loaded prefect.yaml first (e.g. deploy one more flow)."""
        config = load_prefect_yaml(self.root)
        if edit is not None:
            edit(config)
        built_image = "{{ build-image.image }}"
        if config.get("build"):
            # No Docker engine here: skip building and pushing the image, deploy the name it would have.
            config["build"] = None
            config["push"] = None
            for deployment in config["deployments"]:
                variables = deployment.get("work_pool", {}).get("job_variables", {})
                if variables.get("image") == built_image:
                    variables["image"] = "{{ $IMAGE_REPOSITORY }}:{{ $IMAGE_TAG }}"
        prefect_file = self.root / "prefect.e2e.yaml"
        prefect_file.write_text(yaml.safe_dump(config, sort_keys=False))
        run_prefect(
            ["--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)],
            env=self.cli_env(),
            cwd=self.root,
            timeout=300,
        )

    # --- make automation ----------------------------------------------------------
    def handler_module(self) -> Path:
        return self.root / "src" / self.package / "crash_recovery.py"

    def create_automations(self) -> list[str]:
        """`make automation`: python -m <package>.crash_recovery <env>, when the project has recovery."""
        if not self.handler_module().is_file():
            return []
        module = f"{self.package}.crash_recovery"
        # Twice, as two deploys would: the second updates the first.
        for _ in range(2):
            built = self.run_python(["-m", module, self.env])
        return [built.stdout.strip()]

    def crash_recovery_runs(self, flow_run_id: uuid.UUID) -> list[FlowRun]:
        """The handler runs the automation created for crashes of `flow_run_id`."""
        slug = self.project.answers["project_slug"]
        with self.client() as client:
            handler = client.read_deployment_by_name(f"crash-recovery/{slug}-{self.env}")
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[handler.id]))
            )
        return [run for run in runs if str(flow_run_id) in str(run.parameters.get("crashed_flow_run"))]

    def run_crash_recovery_like_its_container(self, handler_run: FlowRun) -> str:
        """What the handler run's container does, with its parameters (no container runs here)."""
        code = (
            "import json, sys\n"
            f"from {self.package}.crash_recovery import crash_recovery\n"
            "print(crash_recovery(**json.loads(sys.argv[1]), return_state=True).message)\n"
        )
        result = self.run_python(["-c", code, json.dumps(handler_run.parameters)], timeout=180)
        return result.stdout.strip().splitlines()[-1]

    # --- the worker ---------------------------------------------------------------
    def worker_container(self) -> dict[str, Any]:
        """The worker's container definition, as Terraform registered it for the worker service."""
        outputs = self.outputs()
        ecs = self.server.client("ecs", self.project.region)
        service = ecs.describe_services(
            cluster=outputs["cluster_arn"], services=[outputs["worker_service_name"]]
        )["services"][0]
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        return definition["containerDefinitions"][0]

    def worker_container_environment(self) -> dict[str, str]:
        """The environment Terraform gave the worker's container (from the emulated task definition)."""
        return {item["name"]: item["value"] for item in self.worker_container().get("environment", [])}

    def worker_command(self) -> list[str]:
        """The command Terraform gave the worker's container, `python` being this interpreter."""
        command = self.worker_container().get("command") or [
            "prefect",
            "worker",
            "start",
            "--type",
            "ecs",
            "--pool",
            self.outputs()["work_pool_name"],
        ]
        if command[0] == "python":
            return [sys.executable, *command[1:]]
        if command[0] == "prefect":
            return [*PREFECT, *command[1:]]
        return command

    def start_worker(self, log_path: Path, **env_overrides: str) -> subprocess.Popen:
        container_env = self.worker_container_environment()
        # The real worker talks to the real API with the secret ECS injects; here
        # it talks to the local server (which ignores credentials).
        container_env.pop("PREFECT_API_URL", None)
        env = {
            **self.cli_env(),
            **container_env,
            **self.server.client_env(self.project.region),
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
            # --with-healthcheck's server: tests share the host's ports, a container has its own.
            "PREFECT_WORKER_WEBSERVER_PORT": str(free_port()),
            **env_overrides,
        }
        if self.project.answers.get("prefect_backend") == "server":
            env["PREFECT_API_AUTH_STRING"] = FAKE_PREFECT_AUTH_STRING
        else:
            env["PREFECT_API_KEY"] = FAKE_PREFECT_API_KEY
        log = log_path.open("w")
        return subprocess.Popen(
            self.worker_command(),
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    # --- runs ---------------------------------------------------------------------
    def run_deployment(self, name: str) -> FlowRun:
        with self.client() as client:
            deployment = client.read_deployment_by_name(name)
            return client.create_flow_run_from_deployment(deployment.id)

    def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        with self.client() as client:
            return client.read_flow_run(flow_run_id)

    def run_task_requests_for(self, flow_run_id: uuid.UUID) -> list[dict[str, Any]]:
        return [
            request
            for request in self.server.run_task_requests()
            if {"key": "prefect.io/flow-run-id", "value": str(flow_run_id)} in request.get("tags", [])
        ]

    def start_flow_run_like_the_container(self, flow_run_id: uuid.UUID) -> None:
        """What the flow-run container's engine does first: move the run to Running."""
        from prefect.states import Running

        with self.client() as client:
            client.set_flow_run_state(flow_run_id, Running())

    def crash_like_the_engine_on_sigterm(self, flow_run_id: uuid.UUID) -> None:
        """What the engine in the container reports when Spot's SIGTERM reaches it (tini, PID 1)."""
        import asyncio

        from prefect.exceptions import TerminationSignal
        from prefect.states import exception_to_crashed_state

        state = asyncio.run(exception_to_crashed_state(TerminationSignal(signal.SIGTERM)))
        with self.client() as client:
            client.set_flow_run_state(flow_run_id, state)

    def stop_task(
        self, run_task_request: dict[str, Any], *, exit_code: int, stop_code: str, reason: str
    ) -> str:
        """Stop the task `run_task_request` started as ECS would, and emit its STOPPED event.

        No process runs here: DescribeTasks then reports the task STOPPED with
        `stop_code`, which is what crash recovery reads.
        """
        region = self.project.region
        ecs = self.server.client("ecs", region)
        task_arn = run_task_request["startedTaskArns"][0]
        self.server.stopped_as(task_arn, stop_code=stop_code, reason=reason)
        task = ecs.describe_tasks(cluster=run_task_request["cluster"], tasks=[task_arn], include=["TAGS"])[
            "tasks"
        ][0]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        detail = {
            "clusterArn": task["clusterArn"],
            "taskArn": task["taskArn"],
            "taskDefinitionArn": task["taskDefinitionArn"],
            "lastStatus": "STOPPED",
            "desiredStatus": "STOPPED",
            "stopCode": stop_code,
            "stoppedReason": reason,
            "stoppedAt": now,
            "createdAt": ecs_time(task["createdAt"].astimezone(UTC)),
            "capacityProviderName": task.get("capacityProviderName", "FARGATE_SPOT"),
            "containers": [
                {
                    "name": container["name"],
                    "containerArn": container.get("containerArn", ""),
                    "lastStatus": "STOPPED",
                    "exitCode": exit_code,
                    "taskArn": task["taskArn"],
                }
                for container in run_task_request.get("overrides", {}).get("containerOverrides", [])
            ]
            or [
                {
                    "name": "prefect",
                    "lastStatus": "STOPPED",
                    "exitCode": exit_code,
                    "taskArn": task["taskArn"],
                }
            ],
        }
        result = self.server.client("events", region).put_events(
            Entries=[
                {
                    "Source": "aws.ecs",
                    "DetailType": "ECS Task State Change",
                    "Resources": [task["taskArn"]],
                    "Detail": json.dumps(detail),
                }
            ]
        )
        assert result["FailedEntryCount"] == 0, result
        return task["taskArn"]


def stop_process(process: subprocess.Popen) -> None:
    """End a process this test started (and its children) by its process group id."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


def check_run_task(side: PrefectProject, request: dict[str, Any]) -> None:
    """The worker's RunTask and task definition carry exactly what Terraform produced."""
    project, outputs = side.project, side.outputs()
    variables = outputs["work_pool_job_variables"]
    region = project.region

    assert request["cluster"] == variables["cluster"] == outputs["cluster_arn"]
    strategy = request.get("capacityProviderStrategy")
    assert strategy == variables["capacity_provider_strategy"], strategy
    for entry in strategy:
        assert {"capacityProvider", "weight", "base"} <= set(entry), f"strategy entry without a key: {entry}"
    assert "launchType" not in request, "a launch type would override the capacity provider strategy"
    assert request["networkConfiguration"]["awsvpcConfiguration"] == variables["network_configuration"]

    ecs = side.server.client("ecs", region)
    definition = ecs.describe_task_definition(taskDefinition=request["taskDefinition"])["taskDefinition"]
    assert definition["family"] == variables["family"]
    assert definition["executionRoleArn"] == variables["execution_role_arn"]
    # prefect-aws passes the task role as a RunTask override.
    task_role = request.get("overrides", {}).get("taskRoleArn", definition.get("taskRoleArn"))
    assert task_role == variables["task_role_arn"]
    assert (definition["cpu"], definition["memory"]) == (str(variables["cpu"]), str(variables["memory"]))
    assert definition["networkMode"] == "awsvpc"
    assert "FARGATE" in definition["requiresCompatibilities"]
    container = next(c for c in definition["containerDefinitions"] if c["name"] == "prefect")
    assert container["image"] == f"{outputs['ecr_repository_url']}:{IMAGE_TAG}"
    assert container["stopTimeout"] == 120
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert container["logConfiguration"]["options"].items() >= variables["cloudwatch_logs_options"].items()
    secret = (
        "PREFECT_API_AUTH_STRING" if project.answers.get("prefect_backend") == "server" else "PREFECT_API_KEY"
    )
    assert {"name": secret, "valueFrom": outputs["prefect_secret_arn"]} in container.get("secrets", [])

    # Cost allocation: Terraform's labels and the worker's own deployment tag, on the request and the task.
    sent = {tag["key"]: tag["value"] for tag in request.get("tags", [])}
    assert variables["labels"].keys() == {"project", "environment", "owner"}, variables["labels"]
    assert sent.items() >= variables["labels"].items(), sent
    flow_run_id = uuid.UUID(sent["prefect.io/flow-run-id"])
    deployment_id = side.read_flow_run(flow_run_id).deployment_id
    with side.client() as client:
        deployment = client.read_deployment(deployment_id)
    assert sent["prefect.io/deployment-name"] == deployment.name, sent
    (task,) = ecs.describe_tasks(
        cluster=request["cluster"], tasks=request["startedTaskArns"], include=["TAGS"]
    )["tasks"]
    assert {tag["key"]: tag["value"] for tag in task.get("tags", [])}.items() >= variables["labels"].items()

    # Everything the work pool points at exists in the account Terraform applied to.
    iam = side.server.client("iam", region)
    for role_arn in (variables["execution_role_arn"], variables["task_role_arn"]):
        iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])
    log_groups = side.server.client("logs", region).describe_log_groups()["logGroups"]
    assert variables["cloudwatch_logs_options"]["awslogs-group"] in {
        group["logGroupName"] for group in log_groups
    }
    network = variables["network_configuration"]
    ec2 = side.server.client("ec2", region)
    assert len(ec2.describe_subnets(SubnetIds=network["subnets"])["Subnets"]) == len(network["subnets"])
    ec2.describe_security_groups(GroupIds=network["securityGroups"])
    side.server.client("secretsmanager", region).describe_secret(SecretId=outputs["prefect_secret_arn"])
