"""The flow-run container's command, run as ECS runs it, against a local Prefect server.

ECS starts the image's ENTRYPOINT (tini) with the work pool's command and
PREFECT__FLOW_RUN_ID; the worker has set the run Pending. Here that is a local
process: the command read from the rendered work_pool.py's base job template,
behind the rendered Dockerfile's ENTRYPOINT (the real tini when installed, else
tests/support/tini.py, which forwards signals the same way: to its child only),
with the image's PYTHONPATH and working directory. The flow enters a context
manager (standing for a Dask cluster) and sleeps; the test then:

- cancels the run from the API as the UI does (Cancelling): it must end
  Cancelled within 30 s, the context manager must be left and the process
  (the container) must exit;
- sends SIGTERM (Spot's warning, `aws ecs stop-task`): the process itself must
  report the run Crashed and exit non-zero, well within the 120 s stopTimeout;
- lets it finish: Completed; a flow exception: Failed; flow retries still retry.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling, Pending
from support.answer_sets import ANSWER_SETS
from support.answers import answers_of
from support.prefect_checks import load_project_module
from support.prefect_local import PrefectServer

pytestmark = [pytest.mark.prefect_server, pytest.mark.xdist_group("flow_run_command")]

CANCEL_WITHIN = 30
STOP_TIMEOUT = 120  # the work pool's stopTimeout: ECS kills the container after it
START_TIMEOUT = 180
TINI_EMULATION = Path(__file__).parents[1] / "support" / "tini.py"

FLOW = textwrap.dedent(
    """
    import contextlib
    import os
    import time
    from pathlib import Path

    from prefect import flow, runtime


    @contextlib.contextmanager
    def cluster(markers: Path):
        (markers / "entered").write_text(str(os.getpid()))
        try:
            yield
        finally:
            (markers / "left").write_text(str(runtime.flow_run.run_count))


    @flow(retries=1, retry_delay_seconds=0)
    def sleepy(marker_dir: str, seconds: float = 600, failing_attempts: int = 0) -> None:
        with cluster(Path(marker_dir)):
            if runtime.flow_run.run_count <= failing_attempts:
                raise RuntimeError(f"attempt {runtime.flow_run.run_count} fails")
            time.sleep(seconds)
    """
)


@dataclass
class Stack:
    client: SyncPrefectClient
    deployment_id: uuid.UUID
    entrypoint: list[str]
    command: list[str]
    env: dict[str, str]
    project: Path
    workdir: Path


@dataclass
class Container:
    process: subprocess.Popen
    run_id: uuid.UUID
    markers: Path

    def output(self) -> str:
        return (self.markers / "container.log").read_text()[-6000:]


def pool_command(project: Path) -> list[str]:
    """The command of the rendered work pool's base job template."""
    package = answers_of(project)["package_name"]
    work_pool = load_project_module(project, f"src/{package}/work_pool.py", "work_pool")
    return shlex.split(work_pool.build_base_job_template({})["variables"]["properties"]["command"]["default"])


def image_entrypoint(project: Path) -> list[str]:
    """The rendered Dockerfile's ENTRYPOINT, with tini or its stand-in."""
    instructions = dockerfile.parse_file(str(project / "Dockerfile"))
    (entrypoint,) = [instruction.value for instruction in instructions if instruction.cmd == "ENTRYPOINT"]
    tini, *arguments = entrypoint
    assert Path(tini).name == "tini", entrypoint
    if not Path(tini).is_file():
        # This machine lacks tini: tests/support/tini.py forwards signals the way it does.
        tini = shutil.which("tini") or f"{sys.executable} {TINI_EMULATION}"
    return [*shlex.split(tini), *arguments]


@pytest.fixture(scope="module")
def stack(render, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    project = render(ANSWER_SETS["default"])
    workdir = tmp_path_factory.mktemp("flow-run-command")
    flows = workdir / "flows"
    flows.mkdir()
    (flows / "sleepy.py").write_text(FLOW)
    server = PrefectServer(workdir / "server").start()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "PYTEST_"))}
    # The image's environment: its virtualenv first on PATH, the code on PYTHONPATH.
    env |= server.client_env() | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        "PYTHONPATH": str(project / "src"),
        "PYTHONUNBUFFERED": "1",
    }
    try:
        with SyncPrefectClient(server.api_url) as client:
            deployment_id = client.create_deployment(
                flow_id=client.create_flow_from_name("sleepy"),
                name="flow-run-command",
                entrypoint="sleepy.py:sleepy",
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(flows)}}],
            )
            yield Stack(
                client, deployment_id, image_entrypoint(project), pool_command(project), env, project, workdir
            )
    finally:
        server.stop()


@pytest.fixture
def start(stack: Stack) -> Iterator[Callable[..., Container]]:
    """Start a flow-run container for a new run of the deployment, as the ECS worker does."""
    started: list[Container] = []

    def start_container(command: list[str] | None = None, **parameters) -> Container:
        markers = stack.workdir / f"run-{len(started)}-{uuid.uuid4().hex[:8]}"
        markers.mkdir()
        run = stack.client.create_flow_run_from_deployment(
            stack.deployment_id, parameters={"marker_dir": str(markers), **parameters}
        )
        stack.client.set_flow_run_state(run.id, Pending())
        with (markers / "container.log").open("w") as log:
            process = subprocess.Popen(
                [*stack.entrypoint, *(command or stack.command)],
                cwd=stack.project,
                env=stack.env | {"PREFECT__FLOW_RUN_ID": str(run.id)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(Container(process, run.id, markers))
        return started[-1]

    yield start_container
    for container in started:
        # The engine runs in a session of its own: end it by the pid it wrote.
        pids = [container.process.pid]
        with contextlib.suppress(OSError, ValueError):
            pids.append(int((container.markers / "entered").read_text()))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        container.process.wait(timeout=30)


def wait_until_working(container: Container) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not (container.markers / "entered").exists():
        assert container.process.poll() is None, container.output()
        assert time.monotonic() < deadline, f"the flow did not start:\n{container.output()}"
        time.sleep(0.2)


def state_of(stack: Stack, container: Container) -> StateType:
    return stack.client.read_flow_run(container.run_id).state.type


def history(stack: Stack, container: Container) -> list[str]:
    return [state.name for state in stack.client.read_flow_run_states(container.run_id)]


def test_cancel_from_the_api_ends_the_run_and_the_container(stack: Stack, start):
    container = start()
    wait_until_working(container)
    cancelled_at = time.monotonic()
    stack.client.set_flow_run_state(container.run_id, Cancelling())
    try:
        code = container.process.wait(timeout=CANCEL_WITHIN)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"still running {CANCEL_WITHIN} s after Cancel, run {history(stack, container)}:\n"
            f"{container.output()}"
        )
    assert state_of(stack, container) == StateType.CANCELLED, (history(stack, container), container.output())
    assert time.monotonic() - cancelled_at <= CANCEL_WITHIN
    assert code == 0, container.output()
    assert (container.markers / "left").exists(), "the flow's with-block was not left"
    assert "Crashed" not in history(stack, container)


def test_sigterm_is_reported_crashed_by_the_container_itself(stack: Stack, start):
    container = start()
    wait_until_working(container)
    # ECS (Spot's warning, StopTask) signals the container's PID 1: tini.
    container.process.send_signal(signal.SIGTERM)
    try:
        code = container.process.wait(timeout=STOP_TIMEOUT - 20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after SIGTERM, run {history(stack, container)}:\n{container.output()}")
    # Nothing else reports here (no worker, no observer): the container did, before it exited.
    assert state_of(stack, container) == StateType.CRASHED, (history(stack, container), container.output())
    assert code != 0
    assert (container.markers / "left").exists(), "the flow's with-block was not left"
    assert "AwaitingRetry" not in history(stack, container)


@pytest.mark.parametrize(
    ("failing_attempts", "final", "run_count"),
    [(0, StateType.COMPLETED, 1), (1, StateType.COMPLETED, 2), (2, StateType.FAILED, 2)],
    ids=["completes", "retries", "fails"],
)
def test_a_run_ends_in_its_flows_own_state(stack: Stack, start, failing_attempts, final, run_count):
    container = start(seconds=0, failing_attempts=failing_attempts)
    container.process.wait(timeout=START_TIMEOUT)
    run = stack.client.read_flow_run(container.run_id)
    assert run.state.type == final, (history(stack, container), container.output())
    assert run.run_count == run_count
    if final == StateType.COMPLETED:
        assert container.process.returncode == 0, container.output()


def test_prefects_own_execute_leaves_a_sigtermed_run_running(stack: Stack, start):
    """Why the command is not `prefect flow-run execute`, which does watch for Cancel.

    Without PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR it has no SIGTERM handler
    and dies at once; its engine, in a session of its own, never hears of it and
    works on (in ECS until the container's end kills it): nothing reports the run.
    """
    container = start(command=["python", "-m", "prefect", "flow-run", "execute"])
    wait_until_working(container)
    container.process.send_signal(signal.SIGTERM)
    assert container.process.wait(timeout=STOP_TIMEOUT - 20) != 0
    engine = int((container.markers / "entered").read_text())
    time.sleep(5)
    os.kill(engine, 0)  # still alive, unaware
    assert state_of(stack, container) == StateType.RUNNING, history(stack, container)
