"""The flow-run container's command: `prefect flow-run execute`, with SIGTERM reported as a crash.

    python -m <package>.flow_run    (the run named by PREFECT__FLOW_RUN_ID)

Prefect 3.8's `prefect flow-run execute` (prefect/cli/flow_run.py) watches the
run and, on a Cancel from the API, stops the engine (in its own session) so the
run ends Cancelled and the flow's `with` blocks unwind. But on SIGTERM (a Spot
interruption, `aws ecs stop-task`) it either dies at once, leaving the engine to
be killed unreported and the run Running, or, with
PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR, reschedules (AwaitingRetry, exit 0,
unbounded) or relinquishes the run (no state at all). This module runs the same
supervision and on SIGTERM passes the signal on to the engine, which reports
the run Crashed (what crash recovery counts), then exits 143.

This file is in the image for both code storages: it runs before the code is pulled,
so it imports only Prefect.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path
from uuid import UUID

import anyio
from prefect.runner._flow_run_executor import FlowRunExecutorContext
from prefect.runner._workspace_starter import WorkspaceResolvingEngineCommandStarter

# How long the engine gets to report the crash and leave its `with` blocks
# (a Dask cluster's shutdown) before it is killed: well inside the task's
# 120 s stopTimeout (work_pool.STOP_TIMEOUT_SECONDS), after which ECS kills all.
ENGINE_STOP_GRACE_SECONDS = 90
EXIT_TERMINATED = 128 + signal.SIGTERM


async def execute(flow_run_id: UUID) -> int:
    """What `prefect flow-run execute` does, plus SIGTERM forwarded to the engine."""
    terminating = anyio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminating.set)
    with tempfile.TemporaryDirectory(prefix="prefect-flow-run-") as workspace_root:
        async with FlowRunExecutorContext() as context:
            flow_run = await context.client.read_flow_run(flow_run_id)
            starter = WorkspaceResolvingEngineCommandStarter(
                workspace_root=Path(workspace_root), control_channel=context.control_channel
            )
            context.call_after_exit(starter.close)
            executor = context.create_executor(
                flow_run, starter, propose_submitting=False, hook_runner=starter.hook_runner
            )

            async def stop_engine_on_sigterm() -> None:
                await terminating.wait()
                # A SIGTERM while the engine starts waits for it to be registered.
                while context.process_manager.get(flow_run_id) is None:
                    await anyio.sleep(0.1)
                await context.process_manager.kill(
                    flow_run_id, grace_seconds=ENGINE_STOP_GRACE_SECONDS
                )

            async with anyio.create_task_group() as group:
                group.start_soon(stop_engine_on_sigterm)
                result = await executor.submit()
                group.cancel_scope.cancel()
    if terminating.is_set():
        return EXIT_TERMINATED
    return 0 if result is None or not result.status_code else 1


def main() -> int:
    flow_run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    if not flow_run_id:
        print("PREFECT__FLOW_RUN_ID is not set: no flow run to execute", file=sys.stderr)
        return 2
    return asyncio.run(execute(UUID(flow_run_id)))


if __name__ == "__main__":
    raise SystemExit(main())
