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

The same command also marks runs of its pool Crashed that have been Pending for
over STUCK_PENDING_MINUTES (Prefect #20485: a worker that dies between
proposing Pending and RunTask leaves its run Pending forever); the stack's
stuck_pending_minutes sets it.
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
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.states import AwaitingRetry, Crashed, Pending, Running, Scheduled
from support.ecs_tasks import EcsTasks, aws_client, moto_in_process
from support.hcl import parse_file, unquote_tree
from support.prefect_local import PREFECT, PrefectServer, free_port
from support.terraform import env_roots, run_terraform

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
        (task,) = self.ecs.ecs.describe_tasks(cluster=self.ecs.cluster, tasks=[task_arn])["tasks"]
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
                "createdAt": task["createdAt"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
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


def _start_worker(stack: Stack, command: list[str], log: Path, **extra_env: str) -> subprocess.Popen:
    env = (
        stack.env
        | extra_env
        | {
            "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME": stack.queue_name,
            "PREFECT_WORKER_WEBSERVER_PORT": str(free_port()),
        }
    )
    return subprocess.Popen(
        command,
        env=env,
        cwd=stack.workdir,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _entrypoint_command(render, pool: str) -> list[str]:
    """The worker container's command as the stack gives it: the rendered entrypoint, by python -c."""
    source = (render({}) / ENTRYPOINT).read_text()
    return [sys.executable, "-c", source, "worker", "start", "--type", "ecs", "--pool", pool]


def _stop_worker(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


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
            _stop_worker(process)


@pytest.mark.prefect_server
def test_an_earlier_attempts_event_while_the_re_run_is_submitted(render, stack: Stack):
    """Pending for its re-run, the run names the earlier task until RunTask answers.

    That task's late STOPPED event must not crash it. A flow's own retry
    (AwaitingRetry) stays in its task, whose STOPPED event still does.
    """
    command = _entrypoint_command(render, "guarded")
    with stack.client() as client:
        run = client.create_flow_run(_guarded_run)
        earlier = stack.ecs.stopped(
            "SpotInterruption", "Your Spot Task was interrupted.", flow_run_id=str(run.id)
        )
        client.update_flow_run(run.id, infrastructure_pid=earlier)
        client.set_flow_run_state(run.id, Running())
        client.set_flow_run_state(run.id, Crashed(message="Execution was aborted by a termination signal."))
        # What crash recovery does, then what the worker does before its RunTask answers.
        rerun = Scheduled(message="Crash recovery: re-run 1 of 2 ...")
        client.set_flow_run_state(run.id, rerun, force=True)
        client.set_flow_run_state(run.id, Pending())

        log = stack.workdir / "worker-submission-window.log"
        stack.new_queue()
        process = _start_worker(stack, command, log)
        try:
            stack.send_stopped(earlier.partition("::")[2], "SpotInterruption")
            _wait_for(stack.queue_drained, f"the worker's observer to handle the event ({log})")
            assert client.read_flow_run(run.id).state.type == StateType.PENDING, log.read_text()
            assert "before the run was last scheduled" in log.read_text()

            current = stack.ecs.running(flow_run_id=str(run.id))
            client.update_flow_run(run.id, infrastructure_pid=f"{stack.ecs.cluster}::{current}")
            client.set_flow_run_state(run.id, Running())
            client.set_flow_run_state(run.id, AwaitingRetry(), force=True)
            client.set_flow_run_state(run.id, Running())
            stack.ecs.ecs.stop_task(cluster=stack.ecs.cluster, task=current, reason="out of memory")
            stack.send_stopped(current, "EssentialContainerExited")
            _wait_for(
                lambda: client.read_flow_run(run.id).state.type == StateType.CRASHED,
                f"the retried attempt's own task to crash the run ({log})",
            )
        finally:
            _stop_worker(process)


def test_stack_sets_the_stuck_pending_bound_of_the_worker_container(render):
    """stuck_pending_minutes: each environment's tfvars, through the stack, to the container's env."""
    project = render({})
    infra = project / "infra"
    stack_variables = [infra / "stack/variables.tf"]
    for env_root in env_roots(project):
        assert "\nstuck_pending_minutes = 10\n" in (env_root / "terraform.tfvars").read_text(), env_root
        (stack_call,) = unquote_tree(parse_file(env_root / "main.tf")["module"])
        assert stack_call["stack"]["stuck_pending_minutes"] == "${var.stuck_pending_minutes}", env_root
        stack_variables.append(env_root / "variables.tf")
    for path in stack_variables:
        variables = {
            name: body for block in unquote_tree(parse_file(path)["variable"]) for name, body in block.items()
        }
        assert variables["stuck_pending_minutes"]["default"] == 10, path
    calls = unquote_tree(parse_file(infra / "stack/main.tf")["module"])
    (worker_call,) = [call["worker"] for call in calls if "worker" in call]
    assert worker_call["stuck_pending_minutes"] == "${var.stuck_pending_minutes}"
    main = (infra / "modules/worker/main.tf").read_text()
    assert '{ name = "STUCK_PENDING_MINUTES", value = tostring(var.stuck_pending_minutes) },' in main
    assert 'os.environ.get("STUCK_PENDING_MINUTES", "10")' in (project / ENTRYPOINT).read_text()


@pytest.mark.terraform
@pytest.mark.parametrize(("minutes", "accepted"), [(2, False), (3, True), (180, True), (181, False)])
def test_stuck_pending_minutes_is_validated(
    render, terraform_bin: str, tmp_path: Path, minutes: int, accepted: bool
):
    """The stack's variable block, planned on its own: 3 to 180 minutes pass, 2 and 181 fail by name."""
    text = (render({}) / "infra/stack/variables.tf").read_text()
    (block,) = re.findall(
        r'^variable "stuck_pending_minutes" \{$.*?^\}$', text, flags=re.MULTILINE | re.DOTALL
    )
    (tmp_path / "main.tf").write_text(block + "\n")
    plan = ["plan", "-input=false", f"-var=stuck_pending_minutes={minutes}"]
    result = run_terraform(plan, cwd=tmp_path, env=None, check=False)
    assert (result.returncode == 0) == accepted, result.stderr
    if not accepted:
        assert "stuck_pending_minutes must be from 3 to 180" in result.stderr, result.stderr


STUCK_AFTER_SECONDS = 15


@pytest.mark.prefect_server
def test_worker_crashes_runs_of_its_pool_pending_past_the_bound(render, stack: Stack):
    """A run Pending past STUCK_PENDING_MINUTES turns Crashed; young, Running and other pools' runs do not.

    With a 15 s bound the sweeper checks every 7.5 s. The young run is created
    10 s after the old one, so the sweep that crashes the old one (old run
    Pending 15 to 22.5 s) sees it Pending 5 to 12.5 s, and the next sweep comes
    7.5 s later: its state is read in between.
    """
    pool = f"stuck-{uuid.uuid4().hex[:8]}"
    command = _entrypoint_command(render, pool)
    with stack.client() as client:
        flow_id = client.create_flow(_guarded_run)
        deployments = {}
        for name in (pool, f"other-{pool}"):
            client.create_work_pool(WorkPoolCreate(name=name, type="ecs"))
            deployments[name] = client.create_deployment(flow_id, name, work_pool_name=name)

        def pending_run(pool_name: str):
            return client.create_flow_run_from_deployment(deployments[pool_name], state=Pending())

        log = stack.workdir / f"worker-{pool}.log"
        stack.new_queue()
        process = _start_worker(stack, command, log, STUCK_PENDING_MINUTES=str(STUCK_AFTER_SECONDS / 60))
        try:
            _wait_for(lambda: "checking every 7.5 s" in log.read_text(), f"the sweeper to start ({log})")
            old = pending_run(pool)
            other_pool = pending_run(f"other-{pool}")
            running = pending_run(pool)
            client.set_flow_run_state(running.id, Running())
            time.sleep(10)
            young = pending_run(pool)

            state = _wait_for(
                lambda: (s := client.read_flow_run(old.id).state).type == StateType.CRASHED and s,
                f"the sweeper to crash the run Pending for over {STUCK_AFTER_SECONDS} s ({log})",
            )
            states = {
                name: client.read_flow_run(run.id).state
                for name, run in [("young", young), ("running", running), ("other pool", other_pool)]
            }
            # Under load a later sweep may have reached the young run by now: never before its bound.
            young_pending, *young_crashed = client.read_flow_run_states(young.id)[-2:]
            if states["young"].type == StateType.CRASHED:
                waited = (young_crashed[0].timestamp - young_pending.timestamp).total_seconds()
                assert waited >= STUCK_AFTER_SECONDS, (waited, log.read_text())
            else:
                assert states["young"].type == StateType.PENDING, (states, log.read_text())
            assert states["running"].type == StateType.RUNNING, (states, log.read_text())
            assert states["other pool"].type == StateType.PENDING, (states, log.read_text())
            assert state.message == (
                "Pending for over 0.25 min: the worker that submitted it stopped before its task "
                "started (Prefect #20485)"
            )
            pending = client.read_flow_run_states(old.id)[-2]
            assert pending.type == StateType.PENDING
            assert (state.timestamp - pending.timestamp).total_seconds() >= STUCK_AFTER_SECONDS
        finally:
            _stop_worker(process)
