"""The worker container's command, run as a process: a late STOPPED event never crashes the current attempt.

prefect-aws's observer, inside `prefect worker start`, marks a run Crashed for
any STOPPED task tagged with the run's id. Crash recovery re-runs the same flow
run, so the first attempt's late event would crash the second (defect 4). The
worker's command (infra/modules/worker/main.tf) runs worker_entrypoint.py,
which lets the handler act only on the task the run's infrastructure_pid names.

The test runs that command, as Terraform writes it, against a local Prefect
server and moto (ECS and the observer's SQS queue), sends the "ECS Task State
Change" events ECS would, and reads the run's state. The same events through
the upstream `prefect worker start` show the defect.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import StateType
from prefect.states import Pending, Running
from support.ecs_tasks import EcsTasks, aws_client, moto_in_process
from support.prefect_local import PREFECT, PrefectServer, free_port

TIMEOUT = 120
ENTRYPOINT = Path("infra/modules/worker/worker_entrypoint.py")


@flow(name="guarded-run")
def _guarded_run() -> None:
    """Only its name matters: runs of it are created through the API."""


def command_of(project: Path) -> list[str]:
    """The worker container's command in the rendered Terraform, var.work_pool_name and file() as HCL."""
    main = (project / "infra/modules/worker/main.tf").read_text()
    (items,) = re.findall(r"^\s*command\s*=\s*\[(.*\"worker\", \"start\".*)\]$", main, flags=re.MULTILINE)
    return [item.strip() for item in items.split(", ")]


def test_worker_command_runs_the_entrypoint_file(render):
    project = render({})
    assert command_of(project) == [
        '"python"',
        '"-c"',
        'file("${path.module}/worker_entrypoint.py")',
        '"worker"',
        '"start"',
        '"--type"',
        '"ecs"',
        '"--pool"',
        "var.work_pool_name",
        '"--with-healthcheck"',
    ]
    # ECS refuses task definitions over 64 KiB; the file is most of this one.
    assert (project / ENTRYPOINT).stat().st_size < 8 * 1024


@pytest.mark.slow  # starts a Python process that imports Prefect: kept out of the quick loop
def test_entrypoint_refuses_a_prefect_aws_without_the_handler(render):
    """A prefect-aws upgrade that renames or drops mark_runs_as_crashed stops the worker, loudly."""
    source = (render({}) / ENTRYPOINT).read_text()
    drop_handler = (
        "from prefect_aws.observers import ecs as _ecs\n"
        "_ecs.ecs_observer.event_handlers['task'][:] = [h for h in _ecs.ecs_observer.event_handlers['task']"
        " if h.handler.__name__ != 'mark_runs_as_crashed']\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", drop_handler + source, "worker", "start", "--type", "ecs", "--pool", "none"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode != 0
    assert "no longer registers mark_runs_as_crashed" in result.stderr


class Stack:
    """A local Prefect server and moto: the ECS cluster, the observer's queue, an ECS work pool."""

    def __init__(self, server: PrefectServer, aws: dict[str, str], workdir: Path) -> None:
        self.server, self.aws, self.workdir = server, aws, workdir
        self.ecs = EcsTasks(aws_client("ecs", aws))
        self.sqs = aws_client("sqs", aws)
        self.new_queue()
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "AWS_"))
        }
        self.env |= aws | server.client_env()

    def client(self) -> SyncPrefectClient:
        return SyncPrefectClient(self.server.api_url)

    def new_queue(self) -> None:
        """A queue per worker: a stopped worker's pending long poll could take the next message."""
        self.queue_name = f"observer-{uuid.uuid4().hex[:8]}"
        self.queue_url = self.sqs.create_queue(QueueName=self.queue_name)["QueueUrl"]

    def send_stopped(self, task_arn: str, stop_code: str) -> None:
        """The "ECS Task State Change" event ECS sends when a task stops, as the queue delivers it."""
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "ECS Task State Change",
            "source": "aws.ecs",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1",
            "resources": [task_arn],
            "detail": {
                "clusterArn": self.ecs.arn,
                "taskArn": task_arn,
                "lastStatus": "STOPPED",
                "desiredStatus": "STOPPED",
                "stopCode": stop_code,
                "stoppedReason": "Your Spot Task was interrupted.",
                "containers": [{"name": "prefect", "lastStatus": "STOPPED", "exitCode": 143}],
            },
        }
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(event))

    def queue_drained(self) -> bool:
        """The observer deletes a message once every handler of it has run."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return all(int(count) == 0 for count in attributes.values())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("worker-entrypoint")
    with moto_in_process() as aws:
        server = PrefectServer(workdir / "server").start()
        try:
            stack = Stack(server, aws, workdir)
            subprocess.run(
                [*PREFECT, "work-pool", "create", "guarded", "--type", "ecs"],
                env=stack.env,
                check=True,
                capture_output=True,
                timeout=TIMEOUT,
            )
            yield stack
        finally:
            server.stop()


def _wait_for(condition: Callable[[], object], what: str) -> object:
    deadline = time.monotonic() + TIMEOUT
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {TIMEOUT} s waiting for {what}")
        time.sleep(0.5)
    return value


def _start_worker(stack: Stack, command: list[str], log: Path) -> subprocess.Popen:
    env = stack.env | {
        "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME": stack.queue_name,
        "PREFECT_WORKER_WEBSERVER_PORT": str(free_port()),
    }
    return subprocess.Popen(
        command,
        env=env,
        cwd=stack.workdir,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.prefect_server
@pytest.mark.parametrize("worker", ["entrypoint", "upstream"])
def test_late_stopped_event_of_an_earlier_task(render, stack: Stack, worker: str):
    """Attempt 1 ran in task A, attempt 2 runs in task B: A's STOPPED event must leave the run Running."""
    project = render({})
    arguments = ["worker", "start", "--type", "ecs", "--pool", "guarded", "--with-healthcheck"]
    if worker == "entrypoint":
        source = (project / ENTRYPOINT).read_text()
        command = [sys.executable, "-c", source, *arguments]
    else:
        command = [*PREFECT, *arguments]

    with stack.client() as client:
        run = client.create_flow_run(_guarded_run)
        earlier = stack.ecs.stopped(
            "SpotInterruption", "Your Spot Task was interrupted.", flow_run_id=str(run.id)
        )
        current = stack.ecs.running(flow_run_id=str(run.id))
        client.set_flow_run_state(run.id, Pending())
        client.update_flow_run(run.id, infrastructure_pid=f"{stack.ecs.cluster}::{current}")
        client.set_flow_run_state(run.id, Running())

        log = stack.workdir / f"worker-{worker}.log"
        stack.new_queue()
        process = _start_worker(stack, command, log)
        try:
            stack.send_stopped(earlier.partition("::")[2], "SpotInterruption")
            _wait_for(stack.queue_drained, f"the worker's observer to handle the event ({log})")
            state = client.read_flow_run(run.id).state
            if worker == "upstream":
                # Defect 4 as prefect-aws ships it: the earlier task's event crashes the current attempt.
                assert state.type == StateType.CRASHED, state
                return
            assert state.type == StateType.RUNNING, (state, log.read_text())
            assert "the run's current task is" in log.read_text()

            stack.send_stopped(current, "SpotInterruption")
            _wait_for(
                lambda: client.read_flow_run(run.id).state.type == StateType.CRASHED,
                f"the current task's STOPPED event to crash the run ({log})",
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
