"""Flow runs whose ECS tasks really run (the executing emulator), from schedule to end, crash and recovery.

Each scenario runs the probe flow (task_execution.PROBE_FLOW) of the applied
default (code in the ECR image) and s3-server (code pulled from the emulated
bucket) stacks: the real ECS worker submits it, the task runs
`python -m prefect.engine` under tini with the task's environment, ECS's
events reach the worker's observer through the stack's EventBridge rule and
queue, and the crash-recovery automation's handler runs in a task of its own.
The probe notes each attempt in a file, so the tests see how often the flow
body really ran.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from answer_stacks import EXECUTING_SETS
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Cancelling
from task_execution import ExecutingStack, Probe
from worker_run import check_run_task, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

SETS = EXECUTING_SETS
ON_DEMAND = [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
# How long a test watches for something that must not happen (the worker's
# observer polls its queue every few seconds).
QUIET_PERIOD = 20

Executing = Callable[[str], ExecutingStack]


def _handler_outcomes(executing: ExecutingStack, probe: Probe, count: int, timeout: float = 240) -> list[str]:
    """The messages of the first `count` crash-recovery handler runs for the probe's run, once they end."""

    def finished() -> list[FlowRun] | None:
        runs = executing.side.crash_recovery_runs(probe.flow_run_id)
        done = [run for run in runs if run.state is not None and run.state.is_final()]
        return sorted(done, key=lambda run: run.created)[:count] if len(done) >= count else None

    runs = wait_for(f"{count} crash-recovery handler run(s) to finish", finished, timeout=timeout)
    return [run.state.message or "" for run in runs]


def _cleanup(executing: ExecutingStack, probe: Probe) -> None:
    """Let a held probe end, and stop its tasks (a failed test must not leave them running)."""
    probe.release()
    ecs = executing.server.client("ecs", executing.region)
    for arn in probe.task_arns():
        if executing.describe_task(arn)["lastStatus"] != "STOPPED":
            ecs.stop_task(cluster=executing.side.outputs()["cluster_arn"], task=arn, reason="test cleanup")


@pytest.mark.parametrize("name", SETS)
def test_a_scheduled_run_completes_in_its_task(executing_stack: Executing, name: str) -> None:
    executing = executing_stack(name)
    probe = executing.run_probe("scheduled", hold=False)
    try:
        run = probe.wait_for_state(StateType.COMPLETED, timeout=240)
        # Consecutive states of one type once: the worker's Pending is "Pending" then "Submitting".
        types = [t for t, _ in itertools.groupby(probe.state_types())]
        assert types == [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.COMPLETED], (
            types
        )
        assert run.run_count == 1
        assert [(n["event"], n["attempt"]) for n in probe.notes()] == [("started", 1), ("finished", 1)]
        (arn,) = probe.task_arns()
        task = executing.stopped_task(arn)
        assert task["stopCode"] == "EssentialContainerExited", task
        assert [c["exitCode"] for c in task["containers"]] == [0]
        output = executing.server.task_process(arn)["containers"]["prefect"]["log"]
        assert "Finished in state Completed()" in Path(output).read_text()
        time.sleep(5)
        assert len(probe.run_task_requests()) == 1, "a completed run is never run again"
    finally:
        _cleanup(executing, probe)


@pytest.mark.parametrize("name", SETS)
def test_cancel_from_the_api_ends_cancelled_and_stops_the_task(executing_stack: Executing, name: str) -> None:
    executing = executing_stack(name)
    probe = executing.run_probe("cancel")
    try:
        probe.wait_for_attempt(1)
        (arn,) = probe.task_arns()
        # What the UI's Cancel button and `prefect flow-run cancel` do.
        with executing.side.client() as client:
            client.set_flow_run_state(probe.flow_run_id, Cancelling(message="Cancelled from the API"))
        probe.wait_for_state(StateType.CANCELLED, timeout=30)
        task = executing.stopped_task(arn, timeout=60)
        assert task["containers"][0].get("exitCode") is not None, task
        assert "finished" not in [n["event"] for n in probe.notes()], "the flow body ran on after Cancel"
        time.sleep(QUIET_PERIOD)
        assert len(probe.run_task_requests()) == 1, "a cancelled run is not run again"
        assert probe.flow_run().state.type == StateType.CANCELLED
    finally:
        _cleanup(executing, probe)


@pytest.mark.parametrize("name", SETS)
def test_spot_interruption_reruns_on_fargate_and_the_last_attempt_completes(
    executing_stack: Executing, name: str
) -> None:
    executing = executing_stack(name)
    probe = executing.run_probe("spot")
    try:
        probe.wait_for_attempt(1)
        (first,) = probe.task_arns()
        assert executing.describe_task(first)["capacityProviderName"] == "FARGATE_SPOT"
        executing.server.interrupt_as_spot(first)
        assert executing.stopped_task(first)["stopCode"] == "SpotInterruption"
        requests = probe.wait_for_rerun_task(timeout=300)
        probe.release()
        assert requests[1]["capacityProviderStrategy"] == ON_DEMAND, "spot_fallback_after = 1"
        probe.wait_for_state(StateType.COMPLETED, timeout=240)
        assert probe.started_attempts() == [1, 2]
        (outcome,) = _handler_outcomes(executing, probe, 1)
        retries = _crash_retries(executing)
        assert outcome.startswith(
            f"re-run 1 of {retries} after a crash by Spot (stop code SpotInterruption"
        ), outcome
        assert outcome.endswith("on on-demand FARGATE"), outcome
        assert probe.flow_run().job_variables["capacity_provider_strategy"] == ON_DEMAND
        assert len(probe.run_task_requests()) == 2 <= retries + 1
        _one_handler_run_per_crash_on_demand(executing, probe)
    finally:
        _cleanup(executing, probe)


@pytest.mark.parametrize("name", SETS)
def test_no_spot_capacity_at_run_task_reruns_on_fargate(executing_stack: Executing, name: str) -> None:
    executing = executing_stack(name)
    executing.server.set_capacity("FARGATE_SPOT", available=False)
    try:
        probe = executing.run_probe("no-capacity", hold=False)
        try:
            probe.wait_for_state(StateType.COMPLETED, timeout=300)
            requests = probe.run_task_requests()
            started = [request for request in requests if request["startedTaskArns"]]
            # prefect-aws retries a failed RunTask (create_task_run_max_attempts) before giving up.
            assert requests[0]["startedTaskArns"] == [], "RunTask found no Spot capacity"
            assert len(started) == 1 and started[0] is requests[-1], requests
            assert started[0]["capacityProviderStrategy"] == ON_DEMAND
            assert probe.started_attempts() == [1], "the body ran once: the first attempt never started"
            assert "by Spot" in _handler_outcomes(executing, probe, 1)[0]
        finally:
            _cleanup(executing, probe)
    finally:
        executing.server.set_capacity("FARGATE_SPOT", available=True)


def _crash_retries(executing: ExecutingStack) -> int:
    return executing.stack.project.answers["crash_retries"]


def _one_handler_run_per_crash_on_demand(executing: ExecutingStack, probe: Probe) -> None:
    """Each Crashed state started one handler run, and the handler itself never ran on Spot."""
    crashes = probe.state_types().count(StateType.CRASHED)
    handler_runs = executing.side.crash_recovery_runs(probe.flow_run_id)
    assert len(handler_runs) == crashes >= 1, (crashes, handler_runs)
    for run in handler_runs:
        (request, *_) = executing.side.run_task_requests_for(run.id)
        assert request["capacityProviderStrategy"] == ON_DEMAND, "the handler itself never runs on Spot"


def _crash_is_not_taken_for_spot(executing: ExecutingStack, probe: Probe, stop_code: str) -> str:
    """The handler's outcome for a crash whose task stopped with `stop_code`."""
    (arn,) = probe.task_arns()
    assert executing.stopped_task(arn)["stopCode"] == stop_code
    (outcome,) = _handler_outcomes(executing, probe, 1)
    assert "by Spot" not in outcome, outcome
    requests = probe.run_task_requests()
    assert all(request["capacityProviderStrategy"] != ON_DEMAND for request in requests), (
        "the re-run was moved to on-demand as after a Spot interruption"
    )
    return outcome


@pytest.mark.parametrize("name", SETS)
def test_an_operator_stop_task_is_not_taken_for_spot(executing_stack: Executing, name: str) -> None:
    """Defect 3: StopTask makes the engine write the very Crashed message a Spot interruption
    does; only the task's stop code (UserInitiated) tells them apart. The stop was meant:
    the handler leaves the run Crashed."""
    executing = executing_stack(name)
    probe = executing.run_probe("operator-stop")
    try:
        probe.wait_for_attempt(1)
        (arn,) = probe.task_arns()
        ecs = executing.server.client("ecs", executing.region)
        ecs.stop_task(
            cluster=executing.side.outputs()["cluster_arn"], task=arn, reason="stopped by the operator"
        )
        probe.release()
        outcome = _crash_is_not_taken_for_spot(executing, probe, "UserInitiated")
        assert outcome.startswith("left Crashed") and "stop code UserInitiated" in outcome, outcome
        # Crashed since the stop, through the automation's latency and the handler's whole run.
        types = probe.state_types()
        since_crash = [t for t, _ in itertools.groupby(types[types.index(StateType.CRASHED) :])]
        assert since_crash == [StateType.CRASHED], f"a stop on purpose was undone: {types}"
        assert len(probe.run_task_requests()) == 1
        _one_handler_run_per_crash_on_demand(executing, probe)
    finally:
        _cleanup(executing, probe)


@pytest.mark.parametrize("name", SETS)
def test_a_crash_with_exit_137_is_not_taken_for_spot(executing_stack: Executing, name: str) -> None:
    executing = executing_stack(name)
    probe = executing.run_probe("killed")
    try:
        probe.wait_for_attempt(1)
        (arn,) = probe.task_arns()
        executing.server.kill_container(arn)  # as an out-of-memory kill does
        task = executing.stopped_task(arn)
        assert [c["exitCode"] for c in task["containers"]] == [137]
        probe.release()
        outcome = _crash_is_not_taken_for_spot(executing, probe, "EssentialContainerExited")
        assert outcome.startswith(
            f"re-run 1 of {_crash_retries(executing)} after a crash by a cause other than Spot "
            "(stop code EssentialContainerExited"
        ), outcome
        assert outcome.endswith("on the deployment's capacity providers"), outcome
        assert "capacity_provider_strategy" not in (probe.flow_run().job_variables or {})
        _, rerun = probe.wait_for_rerun_task(timeout=180)
        check_run_task(executing.side, rerun)
        _one_handler_run_per_crash_on_demand(executing, probe)
    finally:
        _cleanup(executing, probe)


@pytest.mark.parametrize("name", SETS)
def test_a_late_stopped_event_leaves_the_current_attempt_alone(executing_stack: Executing, name: str) -> None:
    executing = executing_stack(name)
    probe = executing.run_probe("late-event")
    try:
        probe.wait_for_attempt(1)
        (first,) = probe.task_arns()
        executing.server.interrupt_as_spot(first)
        probe.wait_for_attempt(2, timeout=300)
        before = len(probe.state_types())
        detail = executing.server.emit_again(first)  # the first attempt's STOPPED event, delivered late
        assert detail["lastStatus"] == "STOPPED" and detail["stopCode"] == "SpotInterruption"
        time.sleep(QUIET_PERIOD)
        late = probe.state_types()[before:]
        assert StateType.CRASHED not in late, f"the late event crashed the running attempt: {late}"
        assert probe.flow_run().state.type == StateType.RUNNING
        probe.release()
        probe.wait_for_state(StateType.COMPLETED, timeout=120)
        time.sleep(5)
        assert probe.started_attempts() == [1, 2], "the flow body ran once per attempt"
        assert len(probe.run_task_requests()) == 2, "no extra attempt"
    finally:
        _cleanup(executing, probe)


# The bound the replacement worker is started with (the stack's default is 10 min):
# above the time a task takes to start here under load, so only the stuck run is crashed.
STUCK_PENDING_MINUTES = 1


@pytest.mark.parametrize("name", SETS)
def test_a_worker_killed_mid_submission_leaves_no_run_pending(executing_stack: Executing, name: str) -> None:
    """Prefect #20485: the worker proposed Pending and dies before its RunTask reaches ECS.

    The worker ECS starts in its place marks the run Crashed once it has been
    Pending longer than the bound, and crash recovery re-runs it like any crash.
    """
    executing = executing_stack(name)
    held = executing.server.hold_run_tasks(True)
    try:
        probe = executing.run_probe("worker-killed", hold=False)
        wait_for("the worker's RunTask", lambda: executing.server.hold_run_tasks(True) > held, timeout=120)
        executing.kill_worker()
    finally:
        executing.server.hold_run_tasks(False)
    try:
        assert probe.flow_run().state.type == StateType.PENDING
        assert probe.task_arns() == [], "the held RunTask started a task"
        executing.start_worker(STUCK_PENDING_MINUTES=str(STUCK_PENDING_MINUTES))
        probe.wait_for_state(StateType.COMPLETED, timeout=STUCK_PENDING_MINUTES * 60 + 240)
        types = [t for t, _ in itertools.groupby(probe.state_types())]
        assert types[:3] == [StateType.SCHEDULED, StateType.PENDING, StateType.CRASHED], types
        with executing.side.client() as client:
            states = client.read_flow_run_states(probe.flow_run_id)
        (crashed,) = [state for state in states if state.type == StateType.CRASHED]
        assert f"Pending for over {STUCK_PENDING_MINUTES} min" in crashed.message, crashed.message
        (outcome,) = _handler_outcomes(executing, probe, 1)
        assert outcome.startswith("re-run 1 of"), outcome
        assert probe.started_attempts() == [1], "the body ran once: the first attempt never started"
        assert len(probe.task_arns()) == 1, "one task: the re-run's"
    finally:
        _cleanup(executing, probe)
        executing.kill_worker()
        executing.start_worker()  # the stack's own bound again
