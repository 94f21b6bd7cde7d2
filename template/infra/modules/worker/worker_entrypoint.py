"""The worker container's command: `prefect worker start` with one guard on prefect-aws's observer.

The observer (prefect_aws/observers/ecs.py) marks a flow run Crashed for every
STOPPED task tagged with the run's id. Crash recovery re-runs the same flow run,
so a late STOPPED event of an earlier attempt's task (SQS keeps messages for a
day) would crash the attempt that runs now. The guard lets the handler act only
on the task the run's infrastructure_pid ("<cluster>::<task arn>", written by
the worker at RunTask) names.

Terraform passes this file as `python -c <file> worker start ...` to the
upstream prefect-aws image: no image of our own.
"""

import functools
import sys
import uuid

from prefect import get_client
from prefect.cli import app
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger
from prefect_aws.observers import ecs

logger = get_logger("worker.current_task_guard")


async def current_task_arn(flow_run_id: str) -> str | None:
    """The task ARN the run's infrastructure_pid names; None if it names none."""
    async with get_client() as client:
        try:
            flow_run = await client.read_flow_run(uuid.UUID(flow_run_id))
        except ObjectNotFound:
            return None
    _cluster, separator, task_arn = (flow_run.infrastructure_pid or "").partition("::")
    return task_arn if separator else None


def only_current_task(handler):
    @functools.wraps(handler)
    async def guarded(event: dict, tags: dict[str, str]) -> None:
        stopped = event.get("detail", {}).get("taskArn")
        flow_run_id = tags.get("prefect.io/flow-run-id")
        current = await current_task_arn(flow_run_id) if stopped and flow_run_id else None
        if current and current != stopped:
            logger.info(
                "Not marking flow run %s Crashed: task %s stopped, the run's current task is %s",
                flow_run_id,
                stopped,
                current,
            )
            return
        await handler(event, tags)

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


if __name__ == "__main__":
    guard_crash_handler()
    sys.argv = ["prefect", *sys.argv[1:]]
    sys.exit(app())
