"""The Dask scheduler and worker commands the project registers with ECS really start a cluster.

The rendered `StackFargateCluster` starts against moto's ECS server, so its
task definitions and RunTask container overrides are the ones AWS would get.
The command each container would run (the override's, which replaces the
definition's) then runs here as a local process in this environment (the
packages the project's image installs), with the worker pointed at the local
scheduler instead of the task's private IP: the worker must join and compute
the primes flow's ranges with the sizes the commands give it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import boto3
import pytest
from support.answer_sets import ANSWER_SETS
from support.hcl import load_module

# The commands listen on the dask module's fixed ports on every interface, as
# the e2e Dask scenarios' do: never both at once (tests/e2e/conftest.py puts
# this module and the stacks with a Dask cluster in one xdist group).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]
USES_DASK_PORTS = True

REGION = "us-east-1"
DASK_PORTS = ("scheduler", "dashboard", "worker", "nanny")
START_TIMEOUT = 60
PRIMES_BELOW_100_000 = 9_592  # a known value


@dataclass(frozen=True)
class DaskProject:
    dask_cluster: ModuleType
    primes: ModuleType
    ports: dict[str, int]  # the dask module's, which its security group admits


@pytest.fixture
def moto_ecs(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": url,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def dask_project(render, monkeypatch: pytest.MonkeyPatch) -> Iterator[DaskProject]:
    """The rendered s3-server project's dask_cluster and primes modules, and its Dask ports."""
    project = render(ANSWER_SETS["s3-server"])
    variables = load_module(project / "infra" / "modules" / "dask").variables
    ports = {name: int(variables[f"{name}_port"].body["default"]) for name in DASK_PORTS}
    [package_dir] = [path.parent for path in (project / "src").glob("*/dask_cluster.py")]
    monkeypatch.syspath_prepend(str(project / "src"))
    package = package_dir.name
    try:
        yield DaskProject(
            importlib.import_module(f"{package}.dask_cluster"),
            importlib.import_module(f"{package}.flows.primes"),
            ports,
        )
    finally:
        for name in [name for name in sys.modules if name.split(".")[0] == package]:
            del sys.modules[name]


def _stack_env(url: str, ports: dict[str, int]) -> dict[str, str]:
    """A stack in moto, as the work pool's DASK_ECS_* variables name it (private IPs: no patch needed)."""
    ecs, ec2 = boto3.client("ecs"), boto3.client("ec2")
    ecs.put_account_setting(name="taskLongArnFormat", value="enabled")
    cluster_arn = ecs.create_cluster(clusterName="event-ingest-dev")["cluster"]["clusterArn"]
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # As the stack's VPC: task ENIs get a private DNS name (moto needs it to start a task).
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group_id = ec2.create_security_group(GroupName="event-ingest-dev-dask", Description="dask", VpcId=vpc_id)[
        "GroupId"
    ]
    # moto moves a task on to STOPPED on every describe unless told to wait.
    body = {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1_000_000}}
    request = urllib.request.Request(
        f"{url}/moto-api/state-manager/set-transition", data=json.dumps(body).encode(), method="POST"
    )
    urllib.request.urlopen(request, timeout=10).close()
    return {
        "DASK_ECS_CLUSTER_ARN": cluster_arn,
        "DASK_ECS_REGION": REGION,
        "DASK_ECS_VPC_ID": vpc_id,
        "DASK_ECS_SUBNETS": subnet_id,
        "DASK_ECS_SECURITY_GROUPS": group_id,
        "DASK_ECS_ASSIGN_PUBLIC_IP": "false",
        "DASK_ECS_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/event-ingest-dev-dask-execution",
        "DASK_ECS_TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/event-ingest-dev-dask-task",
        "DASK_ECS_LOG_GROUP": "/ecs/event-ingest-dev/dask",
        "DASK_ECS_NAME_PREFIX": "event-ingest-dev-dask",
        "DASK_ECS_WORKER_PORT": str(ports["worker"]),
        "DASK_ECS_NANNY_PORT": str(ports["nanny"]),
    }


def _start_tasks(dask_cluster: ModuleType, env: dict[str, str]) -> list[str]:
    """Start the scheduler and one worker task the way a flow run does; return their task ARNs.

    moto runs no scheduler, so the cluster's client fails to connect once the
    scheduler task is RUNNING; one worker is then started from the cluster's
    own worker spec, as adaptive scaling would.
    """
    import dask

    stack = dask_cluster.Stack.from_env(env)
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/event-ingest:1"
    kwargs = dask_cluster.fargate_cluster_kwargs(stack, image, "t1")

    async def run() -> list[str]:
        with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
            cluster = dask_cluster.StackFargateCluster(asynchronous=True, **kwargs)
            try:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(cluster._start(), START_TIMEOUT)
                scheduler = cluster.scheduler
                assert scheduler is not None and scheduler.task_arn, "the scheduler task was never started"
                spec = cluster.new_spec
                worker = spec["cls"](scheduler=scheduler.address, name="0", **spec["options"])
                await asyncio.wait_for(worker.start(), START_TIMEOUT)
                return [scheduler.task_arn, worker.task_arn]
            finally:
                # dask_cloudprovider's finalizers would deregister at exit, on a closed loop.
                for finalizer in list(weakref.finalize._registry):
                    info = finalizer.peek()
                    if info and info[1] == cluster.sync:
                        finalizer.detach()

    return asyncio.run(run())


def _commands(cluster_arn: str, task_arns: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """Container name -> (the task definition's command, the command ECS runs: the override's)."""
    ecs = boto3.client("ecs")
    commands = {}
    for task in ecs.describe_tasks(cluster=cluster_arn, tasks=task_arns)["tasks"]:
        definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
        [container] = definition["containerDefinitions"]
        [override] = task["overrides"]["containerOverrides"]
        assert override["name"] == container["name"]
        commands[container["name"]] = (container["command"], override.get("command") or container["command"])
    return commands


def _free(ports: dict[str, int]) -> None:
    for name, port in ports.items():
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(f"port {port} (Dask {name}) is in use by another process")


def _spawn(command: list[str]) -> subprocess.Popen:
    """Start a container's command as the image would: its first word looked up on this venv's PATH."""
    venv_bin = Path(sys.executable).parent
    path = f"{venv_bin}{os.pathsep}{os.environ['PATH']}"
    executable = shutil.which(command[0], path=str(venv_bin))
    assert executable, f"{command[0]!r} (from {command}) is not a command of the image's environment"
    return subprocess.Popen(
        command,
        env={**os.environ, "PATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited {process.returncode}: {process.communicate()[0]}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"nothing listens on {port} after {START_TIMEOUT}s")


def _stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return process.communicate()[0]


def test_registered_scheduler_and_worker_commands_run_a_cluster(
    dask_project: DaskProject, moto_ecs: str
) -> None:
    from distributed import Client

    dask_cluster, ports = dask_project.dask_cluster, dask_project.ports
    env = _stack_env(moto_ecs, ports)
    commands = _commands(env["DASK_ECS_CLUSTER_ARN"], _start_tasks(dask_cluster, env))

    scheduler_definition, scheduler_command = commands["dask-scheduler"]
    worker_definition, worker_command = commands["dask-worker"]
    # Every argument dask_cloudprovider passes survives: idle timeout, the
    # scheduler's address, name, threads and memory of the answers' sizes, ports.
    program = scheduler_command.index("--idle-timeout")
    assert scheduler_command[program:] == ["--idle-timeout", dask_cluster.SCHEDULER_IDLE_TIMEOUT]
    [address] = [argument for argument in worker_command if argument.startswith("tcp://")]
    at = worker_command.index(address)
    # The scheduler's port is dask's default, which the command leaves as it is.
    assert address.startswith("tcp://10.") and address.endswith(f":{ports['scheduler']}"), worker_command
    threads, memory_gb = dask_cluster.WORKER_CPU // 1024, dask_cluster.WORKER_MEMORY // 1024
    assert worker_command[at + 1 :] == [
        *("--name", "0", "--nthreads", str(threads), "--memory-limit", f"{memory_gb}GB"),
        *("--death-timeout", "60"),
        *("--worker-port", str(ports["worker"]), "--nanny-port", str(ports["nanny"])),
    ]
    # The definitions' own commands (what ECS runs without an override) use the same program.
    assert scheduler_definition[:program] == scheduler_command[:program]
    assert worker_definition[:at] == worker_command[:at]

    _free(ports)
    local_scheduler = f"tcp://127.0.0.1:{ports['scheduler']}"
    scheduler = _spawn(scheduler_command)
    worker = None
    try:
        _wait_for_port(ports["scheduler"], scheduler)
        # Locally the scheduler's task address is loopback; nothing else changes.
        worker = _spawn([*worker_command[:at], local_scheduler, *worker_command[at + 1 :]])
        with Client(local_scheduler, timeout=START_TIMEOUT) as client:
            client.wait_for_workers(1, timeout=START_TIMEOUT)
            info = client.scheduler_info()
            [(address, worker_info)] = info["workers"].items()
            # Inside the security group's range: the worker and its nanny on their ports,
            # the dashboard (when bokeh is installed) on the module's.
            assert address.endswith(f":{ports['worker']}")
            assert worker_info["nanny"].endswith(f":{ports['nanny']}")
            assert info["services"].get("dashboard", ports["dashboard"]) == ports["dashboard"]
            assert str(worker_info["name"]) == "0"  # dask reads a numeric --name as a number
            assert worker_info["nthreads"] == threads
            assert worker_info["memory_limit"] == memory_gb * 10**9
            limit, chunks = 100_000, 8
            step = limit // chunks
            starts = list(range(0, limit, step))
            count_range = dask_project.primes.count_range.fn
            counts = client.map(count_range, starts, [start + step for start in starts])
            assert sum(client.gather(counts)) == PRIMES_BELOW_100_000
    finally:
        output = "\n".join(_stop(process) for process in (worker, scheduler) if process)
    assert "Traceback" not in output, output
