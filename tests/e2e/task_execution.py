"""Running a rendered project's ECS tasks for real on its emulated stack (see docs/emulator.md).

`execute_tasks(stack, prefect)` switches a stack's emulator to executing: from
then on every RunTask on it (the worker's, a recovery re-run's,
dask-cloudprovider's) starts its containers as processes built from the
project's Dockerfile, talking to the emulator and to `prefect`'s API.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from container_image import image_config
from emulator import MotoServer
from prefect.client.schemas.objects import FlowRun, StateType
from stacks import EmulatedStack, Stacks
from support.prefect_local import PrefectServer
from worker_run import (
    FAKE_PREFECT_API_KEY,
    FAKE_PREFECT_AUTH_STRING,
    PrefectProject,
    stop_process,
    wait_for,
)


def execution_unavailable() -> str | None:
    """Why this machine cannot run emulated containers (None when it can)."""
    if os.geteuid() != 0:
        return "emulated containers bind-mount the image's WORKDIR: needs root (unshare --mount)"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "emulated containers need util-linux's unshare and mount"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"unshare --mount fails here: {probe.stderr.decode().strip()}"
    return None


def execute_tasks(stack: EmulatedStack, prefect: PrefectServer) -> None:
    """Every ECR repository of the stack holds the image of the project's Dockerfile."""
    image = image_config(stack.project.project)
    images = {outputs["ecr_repository_url"]: image for outputs in stack.outputs.values()}
    stack.server.execute_tasks(images=images, prefect_api_url=prefect.api_url)


# A flow the tests add to the rendered project (as a user adds one): it notes
# each attempt in `record` and waits while the file `hold` exists.
PROBE_FLOW = '''\
"""Lifecycle probe of the end-to-end tests: notes each attempt, waits while told to."""

import json
import os
import time

from prefect import flow
from prefect.runtime import flow_run


@flow(name="lifecycle-probe")
def lifecycle_probe(record: str, hold: str = "") -> int:
    attempt = flow_run.run_count

    def note(event: str) -> None:
        with open(record, "a") as notes:
            notes.write(json.dumps({"event": event, "attempt": attempt, "pid": os.getpid()}) + "\\n")

    note("started")
    while hold and os.path.exists(hold):
        time.sleep(0.2)
    note("finished")
    return attempt
'''
PROBE_DEPLOYMENT = "lifecycle-probe/lifecycle-probe-{env}"

# In a project with Dask, a flow whose task fails on the flow's own Dask cluster
# (a worker raises ZeroDivisionError), written as the primes flow is: Prefect
# loads a flow's file as a top-level module, sent by value like the package.
DASK_FAILURE_FLOW = '''\
"""Dask failure probe of the end-to-end tests: a task fails on the flow run's Dask cluster."""

import sys

import cloudpickle
from prefect import flow, task

from {package}.dask_cluster import task_runner

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@task
def divide(number: int) -> float:
    return 1 / number


@flow(name="dask-failure-probe", task_runner=task_runner())
def dask_failure_probe() -> float:
    return divide.submit(0).result()
'''
DASK_FAILURE_DEPLOYMENT = "dask-failure-probe/dask-failure-probe-{env}"


@dataclass
class ExecutingStack:
    """An applied stack whose tasks execute, its worker running, the probe deployed."""

    stack: EmulatedStack
    side: PrefectProject
    scratch: Path

    @property
    def server(self) -> MotoServer:
        return self.stack.server

    @property
    def region(self) -> str:
        return self.stack.project.region

    def run_probe(self, label: str, *, hold: bool = True, deployment: str = PROBE_DEPLOYMENT) -> Probe:
        probe = Probe(self, self.scratch / label)
        probe.directory.mkdir(parents=True)
        if hold:
            probe.hold_file.touch()
        with self.side.client() as client:
            target = client.read_deployment_by_name(deployment.format(env=self.side.env))
            probe.flow_run_id = client.create_flow_run_from_deployment(
                target.id,
                parameters={
                    "record": str(probe.record),
                    "hold": str(probe.hold_file),
                },
            ).id
        return probe

    def kill_worker(self) -> None:
        """The worker's own task dies at once (SIGKILL): out of memory, or Spot's stopTimeout ran out."""
        worker = self.stack.worker
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=20)

    def start_worker(self, **env: str) -> None:
        """What the worker's ECS service does once its task stopped: start another (`env` added)."""
        logs = sorted(self.stack.project.workdir.glob("executing-worker*.log"))
        log = self.stack.project.workdir / f"executing-worker-{len(logs) + 1}.log"
        self.stack.worker = self.side.start_worker(log, **env)

    def describe_task(self, task_arn: str) -> dict[str, Any]:
        ecs = self.server.client("ecs", self.region)
        return ecs.describe_tasks(cluster=self.side.outputs()["cluster_arn"], tasks=[task_arn])["tasks"][0]

    def stopped_task(self, task_arn: str, timeout: float = 60) -> dict[str, Any]:
        return wait_for(
            f"task {task_arn} to be STOPPED",
            lambda: (task := self.describe_task(task_arn))["lastStatus"] == "STOPPED" and task,
            timeout=timeout,
        )


@dataclass
class Probe:
    """One flow run of the probe deployment and what its attempts left behind."""

    executing: ExecutingStack
    directory: Path
    flow_run_id: uuid.UUID | None = None

    @property
    def record(self) -> Path:
        return self.directory / "attempts.jsonl"

    @property
    def hold_file(self) -> Path:
        return self.directory / "hold"

    def release(self) -> None:
        self.hold_file.unlink(missing_ok=True)

    def notes(self) -> list[dict[str, Any]]:
        text = self.record.read_text() if self.record.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    def started_attempts(self) -> list[int]:
        return [note["attempt"] for note in self.notes() if note["event"] == "started"]

    def flow_run(self) -> FlowRun:
        return self.executing.side.read_flow_run(self.flow_run_id)

    def state_types(self) -> list[StateType]:
        with self.executing.side.client() as client:
            states = client.read_flow_run_states(self.flow_run_id)
        return [state.type for state in sorted(states, key=lambda state: state.timestamp)]

    def wait_for_state(self, state_type: StateType, timeout: float) -> FlowRun:
        return wait_for(
            f"flow run {self.flow_run_id} to be {state_type.value} (states so far: {self.state_types()})",
            lambda: (run := self.flow_run()).state.type == state_type and run,
            timeout=timeout,
        )

    def wait_for_attempt(self, attempt: int, timeout: float = 120) -> None:
        wait_for(
            f"attempt {attempt} of flow run {self.flow_run_id} to start its body",
            lambda: attempt in self.started_attempts(),
            timeout=timeout,
            interval=0.5,
        )

    def run_task_requests(self) -> list[dict[str, Any]]:
        return self.executing.side.run_task_requests_for(self.flow_run_id)

    def wait_for_rerun_task(self, timeout: float) -> list[dict[str, Any]]:
        """The run's RunTask requests, once a re-run's has come."""
        return wait_for(
            f"a re-run's RunTask for flow run {self.flow_run_id}",
            lambda: len(requests := self.run_task_requests()) > 1 and requests,
            timeout=timeout,
        )

    def task_arns(self) -> list[str]:
        return [arn for request in self.run_task_requests() for arn in request["startedTaskArns"]]


def prepare(stacks: Stacks, name: str, scratch: Path) -> ExecutingStack:
    """The stack `name` with executing tasks: work pool, deploy (+ the probe), automation, worker."""
    stack = stacks.applied_stack(name)
    if stack.worker is not None:
        stop_process(stack.worker)
    env = stack.environments[0]
    prefect = stacks.prefect_server(name)
    side = stack.prefect
    first = side is None
    if side is None:
        side = stack.prefect = PrefectProject(stack.project, env, prefect, stack.server)
        side.create_work_pool()
    package = stack.project.answers["package_name"]
    flows = side.root / "src" / package / "flows"
    (flows / "lifecycle_probe.py").write_text(PROBE_FLOW)
    dask = bool(stack.project.answers.get("dask_cluster"))
    if dask:
        (flows / "dask_failure_probe.py").write_text(DASK_FAILURE_FLOW.format(package=package))
    side.deploy(edit=lambda config: add_probe_deployment(config, package, dask=dask))
    if first:
        side.create_automations()
    store_prefect_secrets(stack)
    execute_tasks(stack, prefect)
    stack.worker = side.start_worker(stack.project.workdir / "executing-worker.log")
    return ExecutingStack(stack, side, scratch)


def store_prefect_secrets(stack: EmulatedStack) -> None:
    """`make secret-set`: the Prefect API key (Cloud) or auth string (server) each task's secret reads."""
    server = stack.project.answers.get("prefect_backend") == "server"
    value = FAKE_PREFECT_AUTH_STRING if server else FAKE_PREFECT_API_KEY
    secrets = stack.server.client("secretsmanager", stack.project.region)
    for outputs in stack.outputs.values():
        secrets.put_secret_value(SecretId=outputs["prefect_secret_arn"], SecretString=value)


def add_probe_deployment(config: dict[str, Any], package: str, *, dask: bool = False) -> None:
    """The probes, deployed like the project's etl-daily deployment (same pool, image, tags, pull steps)."""
    etl = next(d for d in config["deployments"] if d["name"].startswith("etl-daily-"))
    probes = [("lifecycle-probe", "lifecycle_probe", "End-to-end lifecycle probe.")]
    if dask:
        probes.append(("dask-failure-probe", "dask_failure_probe", "End-to-end Dask failure probe."))
    for name, module, description in probes:
        probe = copy.deepcopy(etl)
        probe.pop("schedules", None)
        probe.update(
            name=f"{name}-{{{{ $DEPLOY_ENV }}}}",
            description=description,
            entrypoint=f"src/{package}/flows/{module}.py:{module}",
            parameters={},
        )
        config["deployments"].append(probe)
