"""The worker container's command: `prefect worker start`, plus two things of our own.

1. A guard on prefect-aws's observer. The observer (prefect_aws/observers/ecs.py)
marks a flow run Crashed for every STOPPED task tagged with the run's id. Crash
recovery re-runs the same flow run, so a late STOPPED event of an earlier
attempt's task (SQS keeps messages for a day) would crash the attempt that runs
now. The guard lets the handler act only on the task the run's
infrastructure_pid ("<cluster>::<task arn>", written by the worker at RunTask)
names, and, while a re-run is being submitted (Pending, infrastructure_pid still
naming the earlier task until RunTask answers), not on a task created before the
run was last scheduled.

2. A sweeper for runs left Pending (Prefect #20485). The worker proposes Pending,
then calls RunTask; a worker that dies in between (Fargate Spot reclaims it)
leaves the run Pending, and nothing else ever moves it. A thread marks every run
of the worker's pool Pending for over STUCK_PENDING_MINUTES (default 10)
Crashed, so crash recovery re-runs it like any crash. The worker ECS starts in
place of the dead one is the one that does it.

Terraform passes this file as `python -c <file> worker start ...` to the
upstream prefect-aws image: no image of our own.
"""

import functools
import os
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from prefect import get_client
from prefect.cli import app
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger
from prefect.states import Crashed
from prefect_aws.observers import ecs

logger = get_logger("worker.current_task_guard")
sweeper_logger = get_logger("worker.stuck_pending_sweeper")


async def current_attempt(flow_run_id: str) -> tuple[str | None, datetime | None]:
    """The task ARN the run's infrastructure_pid names, and when the run was last scheduled.

    Only states named Scheduled count (a new run, a crash recovery re-run):
    a flow's own retries (AwaitingRetry) run again in the same task.
    """
    async with get_client() as client:
        try:
            flow_run = await client.read_flow_run(uuid.UUID(flow_run_id))
            states = await client.read_flow_run_states(flow_run.id)
        except ObjectNotFound:
            return None, None
    _cluster, separator, task_arn = (flow_run.infrastructure_pid or "").partition("::")
    scheduled = [state.timestamp for state in states if state.name == "Scheduled"]
    return (task_arn if separator else None), max(scheduled, default=None)


def only_current_task(handler):
    @functools.wraps(handler)
    async def guarded(event: dict, tags: dict[str, str]) -> None:
        detail = event.get("detail", {})
        stopped = detail.get("taskArn")
        flow_run_id = tags.get("prefect.io/flow-run-id")
        current, scheduled = (None, None)
        if stopped and flow_run_id:
            current, scheduled = await current_attempt(flow_run_id)
        created = datetime.fromisoformat(detail["createdAt"]) if detail.get("createdAt") else None
        if current and current != stopped:
            reason = f"the run's current task is {current}"
        elif created and scheduled and created < scheduled:
            reason = f"it was created at {created:%H:%M:%S}, before the run was last scheduled"
        else:
            await handler(event, tags)
            return
        logger.info(
            "Not marking flow run %s Crashed: task %s stopped, %s", flow_run_id, stopped, reason
        )

    return guarded


def guard_crash_handler() -> None:
    handlers = ecs.ecs_observer.event_handlers["task"]
    for index, registered in enumerate(handlers):
        if registered.handler is ecs.mark_runs_as_crashed:
            handlers[index] = registered._replace(handler=only_current_task(registered.handler))
            return
    sys.exit(
        "worker_entrypoint.py: prefect-aws no longer registers mark_runs_as_crashed with its ECS "
        "observer; check how this prefect-aws version crashes runs before starting the worker."
    )


def crash_stuck_pending_runs(pool: str, minutes: float) -> None:
    """One sweep: every run of the pool Pending for over `minutes` is proposed Crashed.

    Not forced: the server aborts Crashed for a run that has reached a terminal
    state since the read. It would accept Crashed for a run that went Running in
    that one request's window: crash recovery then re-runs it.
    """
    message = (
        f"Pending for over {minutes:g} min: the worker that submitted it stopped "
        "before its task started (Prefect #20485)"
    )
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PENDING]))
            ),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
        )
        oldest = datetime.now(UTC) - timedelta(minutes=minutes)
        for run in runs:
            if run.state is None or run.state.timestamp > oldest:
                continue
            result = client.set_flow_run_state(run.id, Crashed(message=message))
            if result.status == SetStateStatus.ACCEPT:
                sweeper_logger.warning("Marked flow run %s Crashed: %s", run.id, message)
            else:
                sweeper_logger.info("Flow run %s left as it is: %s", run.id, result.details.reason)


def sweep_forever(pool: str, minutes: float) -> None:
    interval = min(30.0, minutes * 60 / 2)
    sweeper_logger.info(
        "Marking runs of work pool %s Pending for over %g min Crashed, checking every %g s",
        pool,
        minutes,
        interval,
    )
    while True:
        try:
            crash_stuck_pending_runs(pool, minutes)
        except Exception:
            sweeper_logger.exception(
                "Sweep for stuck Pending runs failed; next one in %g s", interval
            )
        time.sleep(interval)


def pool_argument(argv: list[str]) -> str | None:
    """The value of `--pool`/`-p` (or `--pool=...`) in `prefect worker start`'s arguments."""
    for flag, value in zip(argv, [*argv[1:], None], strict=True):
        if flag in ("--pool", "-p"):
            return value
        if flag.startswith("--pool="):
            return flag.partition("=")[2]
    return None


if __name__ == "__main__":
    guard_crash_handler()
    if pool := pool_argument(sys.argv):
        minutes = float(os.environ.get("STUCK_PENDING_MINUTES", "10"))
        sweeper = threading.Thread(
            target=sweep_forever, args=(pool, minutes), name="sweeper", daemon=True
        )
        sweeper.start()
    sys.argv = ["prefect", *sys.argv[1:]]
    sys.exit(app())
