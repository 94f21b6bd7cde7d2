"""A flow run's Dask cluster on the executing emulator (the e2e set with `dask_cluster`).

The real ECS worker submits the run; its task runs the flow, whose
`StackFargateCluster` (dask_cloudprovider's real calls) registers and runs a
scheduler task and worker tasks; the emulator runs their commands
(`dask scheduler`, `dask worker`) as processes on loopback addresses, so the
flow's Dask client, the scheduler and the workers really connect. However the
run ends (Completed, Failed, Cancelled from the API), every Dask task it
started is STOPPED.

`dask worker` binds its fixed ports on every interface, so two workers cannot
run side by side here: the sizes below keep Dask's adaptive target at one
worker (docs/emulator.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from answer_stacks import E2E_ANSWER_SETS
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Cancelling
from support.answer_sets import ANSWER_SETS
from task_execution import DASK_FAILURE_DEPLOYMENT, ExecutingStack
from worker_run import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

DASK_SETS = [name for name in E2E_ANSWER_SETS if ANSWER_SETS[name].get("dask_cluster")]
PRIMES_BELOW_100_000 = 9_592
DASK_CONTAINERS = ("dask-scheduler", "dask-worker")

Executing = Callable[[str], ExecutingStack]


def _run(executing: ExecutingStack, deployment: str, **parameters: int) -> uuid.UUID:
    with executing.side.client() as client:
        target = client.read_deployment_by_name(deployment.format(env=executing.side.env))
        return client.create_flow_run_from_deployment(target.id, parameters=parameters).id


def _flow_task(executing: ExecutingStack, flow_run_id: uuid.UUID) -> str:
    requests = wait_for(
        f"the worker's RunTask for {flow_run_id}",
        lambda: executing.side.run_task_requests_for(flow_run_id),
        timeout=120,
    )
    return requests[0]["startedTaskArns"][0]


def _final_run(executing: ExecutingStack, flow_run_id: uuid.UUID) -> FlowRun:
    return wait_for(
        f"flow run {flow_run_id} to end",
        lambda: (run := executing.side.read_flow_run(flow_run_id)).state.is_final() and run,
        timeout=300,
        interval=2,
    )


def _logs(executing: ExecutingStack, task_arn: str) -> str:
    containers = executing.server.task_process(task_arn)["containers"].values()
    return "".join(Path(container["log"]).read_text() for container in containers)


def _dask_tasks(executing: ExecutingStack, known: set[str]) -> dict[str, str]:
    """Task ARN -> container (dask-scheduler, dask-worker) of the Dask tasks started since `known`."""
    tasks = {}
    for request in executing.server.run_task_requests():
        names = [o["name"] for o in request.get("overrides", {}).get("containerOverrides", [])]
        if names and names[0] in DASK_CONTAINERS:
            tasks.update({arn: names[0] for arn in request["startedTaskArns"] if arn not in known})
    return tasks


def _all_stopped(executing: ExecutingStack, arns: list[str]) -> list[dict[str, Any]]:
    def stopped() -> list[dict[str, Any]] | None:
        tasks = [executing.describe_task(arn) for arn in arns]
        return tasks if all(task["lastStatus"] == "STOPPED" for task in tasks) else None

    return wait_for(f"every Dask task to be STOPPED: {arns}", stopped, timeout=90)


def _assert_cluster_ran_and_stopped(
    executing: ExecutingStack, flow_task: str, dask_tasks: dict[str, str]
) -> dict[str, Any]:
    """A scheduler and a worker ran their real commands, connected, and are STOPPED now;
    their task definitions, registered by the cluster, are deregistered. Returns the
    flow run's own task, STOPPED."""
    assert sorted(set(dask_tasks.values())) == list(DASK_CONTAINERS), dask_tasks
    # The run's state is final before its process closes the cluster; once its
    # task is STOPPED, the process and whatever it does on the way out are done.
    stopped_flow_task = executing.stopped_task(flow_task)
    # dask_cloudprovider's exit-time finalizers found the event loop closed.
    assert "IOLoop is closed" not in (flow_log := _logs(executing, flow_task)), flow_log[-3000:]
    ecs = executing.server.client("ecs", executing.region)
    for task in _all_stopped(executing, list(dask_tasks)):
        definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
        assert definition["status"] == "INACTIVE", f"{task['taskDefinitionArn']} is still registered"
        log = _logs(executing, task["taskArn"])
        if dask_tasks[task["taskArn"]] == "dask-scheduler":
            assert "Scheduler at:" in log, log
        else:
            assert "Registered to:" in log, log
    return stopped_flow_task


@pytest.fixture
def executing(executing_stack: Executing, name: str) -> ExecutingStack:
    executing = executing_stack(name)
    # dask_cloudprovider asks for the effective setting before each RunTask: AWS
    # reports "enabled" (its default since 2021), moto nothing unless it was set.
    ecs = executing.server.client("ecs", executing.region)
    ecs.put_account_setting(name="taskLongArnFormat", value="enabled")
    return executing


@pytest.mark.parametrize("name", DASK_SETS)
def test_primes_runs_on_its_dask_cluster_and_stops_it(executing: ExecutingStack) -> None:
    known = set(_dask_tasks(executing, set()))
    flow_run_id = _run(executing, "primes/primes-weekly-{env}", limit=100_000, chunks=4)
    flow_task = _flow_task(executing, flow_run_id)
    run = _final_run(executing, flow_run_id)
    log = _logs(executing, flow_task)
    assert run.state.type == StateType.COMPLETED, f"{run.state}\n{log}"
    assert f"{PRIMES_BELOW_100_000} primes below 100000 (4 ranges)" in log, log
    stopped = _assert_cluster_ran_and_stopped(executing, flow_task, _dask_tasks(executing, known))
    assert stopped["containers"][0]["exitCode"] == 0


@pytest.mark.parametrize("name", DASK_SETS)
def test_a_failed_dask_task_fails_the_run_and_stops_its_cluster(executing: ExecutingStack) -> None:
    known = set(_dask_tasks(executing, set()))
    flow_run_id = _run(executing, DASK_FAILURE_DEPLOYMENT)
    flow_task = _flow_task(executing, flow_run_id)
    run = _final_run(executing, flow_run_id)
    log = _logs(executing, flow_task)
    assert run.state.type == StateType.FAILED, f"{run.state}\n{log}"
    assert "ZeroDivisionError" in log, log
    _assert_cluster_ran_and_stopped(executing, flow_task, _dask_tasks(executing, known))


@pytest.mark.parametrize("name", DASK_SETS)
def test_cancel_stops_the_run_and_every_dask_task(executing: ExecutingStack) -> None:
    known = set(_dask_tasks(executing, set()))
    # One range, long enough to be cancelled while a worker computes it.
    flow_run_id = _run(executing, "primes/primes-weekly-{env}", limit=200_000_000, chunks=1)
    flow_task = _flow_task(executing, flow_run_id)
    worker = wait_for(
        "a Dask worker to register with the scheduler",
        lambda: next(
            (
                arn
                for arn, container in _dask_tasks(executing, known).items()
                if container == "dask-worker" and "Registered to:" in _logs(executing, arn)
            ),
            None,
        ),
        timeout=180,
        interval=2,
    )
    with executing.side.client() as client:
        client.set_flow_run_state(flow_run_id, Cancelling(message="Cancelled from the API"))
    run = _final_run(executing, flow_run_id)
    assert run.state.type == StateType.CANCELLED, f"{run.state}\n{_logs(executing, flow_task)}"
    dask_tasks = _dask_tasks(executing, known)
    assert worker in dask_tasks
    _assert_cluster_ran_and_stopped(executing, flow_task, dask_tasks)
