"""Crash recovery: rendered only where it applies, and working on a real Prefect server.

The end-to-end tests start one `prefect server start` per module (it runs the
event, trigger and action services in-process; prefect_test_harness does not)
and a process worker that runs the rendered `crash-recovery` handler deployment.
Every answer set that renders recovery installs its automation with
`python -m <package>.crash_recovery <env>` (what `make automation` runs) into that
one server, under its own project tag, and proves:

- a Running run SIGTERMed N+1 times (what Fargate Spot does) comes back exactly N
  times, then stays Crashed;
- a run that crashes before Running (the worker's RunTask refused: run_count
  stays 0) comes back at most N times, then stays Crashed: no loop;
- after K Spot crashes the re-run's job variables carry the on-demand strategy,
  while non-Spot crashes keep the deployment's strategy;
- crashed runs of another project, another environment or a deployment without
  the fargate-spot tag are never touched;
- installing twice leaves one automation per environment and removes the
  workspace-wide automation of earlier releases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from model import Model
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import StateType
from prefect.states import Crashed, Pending, Running, Scheduled
from support.answer_sets import ANSWER_SETS
from support.answers import answers_of, model_of
from support.ecs_tasks import EcsTasks, aws_client, moto_in_process
from support.prefect_checks import (
    SPOT_TAG,
    is_crash_recovery_handler,
    load_prefect_yaml,
    load_project_module,
)
from support.prefect_local import PREFECT, PrefectServer

STEP_TIMEOUT = 180
# After the last crash, how long a run must stay Crashed (recovery takes a few seconds).
GRACE = 10
ON_DEMAND = [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
# The messages prefect-aws's worker and observer and Prefect's engine write (read in their source).
RUN_TASK_REFUSED = (
    "Failed to submit flow run to infrastructure: RuntimeError: Failed to run ECS task: "
    "Capacity is unavailable at this time. Please try again later or in a different availability zone"
)
IMAGE_MISSING = (
    "ECS task failed to start: CannotPullContainerError: pull image manifest has been retried "
    "5 time(s): failed to resolve ref. The capacity provider could not place the task."
)
CONTAINER_EXITED = "The following containers stopped with a non-zero exit code: ['prefect']"
RECOVERY_SETS = sorted(name for name, answers in ANSWER_SETS.items() if model_of(answers).crash_recovery)
# The handler differs between answer sets only by its constants: the server test runs one
# answer set per (crash_retries, spot_fallback_after), and
# test_every_recovery_set_renders_a_proven_handler ties every other set to it.
SERVER_SETS = ["default", "spot-only-batch"]
# Tests of the rendered handler: collected only where there is one.
on_recovery_sets = pytest.mark.parametrize("answer_set", RECOVERY_SETS, indirect=True)


def recovery_module(project: Path):
    answers = answers_of(project)
    return load_project_module(project, f"src/{answers['package_name']}/crash_recovery.py", "crash_recovery")


# --------------------------------------------------------------------------- rendered files


def test_recovery_is_rendered_only_when_crashes_are_retried(project: Path):
    answers = answers_of(project)
    expected = Model(answers).crash_recovery
    handler = project / "src" / answers["package_name"] / "crash_recovery.py"
    assert handler.is_file() == expected
    assert not (project / "automations").exists()
    handlers = [d for d in load_prefect_yaml(project)["deployments"] if is_crash_recovery_handler(d)]
    assert len(handlers) == expected
    makefile = (project / "Makefile").read_text()
    assert ("python -m $(PACKAGE).crash_recovery $(ENV)" in makefile) == expected
    assert "|| true" not in makefile
    if not expected:
        return
    module = recovery_module(project)
    assert answers["crash_retries"] == module.CRASH_RETRIES
    assert answers.get("spot_fallback_after", 1) == module.SPOT_FALLBACK_AFTER


@on_recovery_sets
def test_handler_deployment_runs_on_demand_outside_recovery(project: Path):
    """The handler never runs on Spot and is never itself recovered (no fargate-spot tag)."""
    answers = answers_of(project)
    assert Model(answers).crash_recovery, "on_recovery_sets selected a set without crash recovery"
    (handler,) = [d for d in load_prefect_yaml(project)["deployments"] if is_crash_recovery_handler(d)]
    assert handler["name"] == f"{answers['project_slug']}-{{{{ $DEPLOY_ENV }}}}"
    assert SPOT_TAG not in handler["tags"]
    assert handler["work_pool"]["job_variables"]["capacity_provider_strategy"] == ON_DEMAND
    assert handler["entrypoint"] == f"src/{answers['package_name']}/crash_recovery.py:crash_recovery"


@on_recovery_sets
def test_automation_is_scoped_to_the_project_and_environment(project: Path):
    answers = answers_of(project)
    assert Model(answers).crash_recovery, "on_recovery_sets selected a set without crash recovery"
    module = recovery_module(project)
    handler_id = uuid.uuid4()
    automation = module.automation("prod", handler_id)
    assert automation.name == f"{answers['project_slug']}-prod-crash-recovery"
    trigger = automation.trigger
    assert trigger.expect == {"prefect.flow-run.Crashed"}
    # No run_count guard: the handler counts Crashed states instead.
    assert set(trigger.match.root) == {"prefect.resource.id"}
    assert sorted(spec.root["prefect.resource.id"] for spec in trigger.match_related) == sorted(
        f"prefect.tag.{tag}" for tag in (SPOT_TAG, f"project:{answers['project_slug']}", "env:prod")
    )
    (action,) = automation.actions
    assert action.type == "run-deployment" and action.deployment_id == handler_id
    assert action.parameters["environment"] == "prod"
    assert action.parameters["crashed_flow_run"]["template"] == "{{ event.resource.id }}"


OPERATOR_STOP = "Task stopped by user"


def _engine_sigterm_message() -> str:
    """The engine's Crashed message on SIGTERM, built by Prefect's code: Spot and StopTask both give it."""
    from prefect.exceptions import TerminationSignal
    from prefect.states import exception_to_crashed_state

    return asyncio.run(exception_to_crashed_state(TerminationSignal(signal.SIGTERM))).message


SIGTERM_CRASH = _engine_sigterm_message()
NO_SPOT_CAPACITY = (
    "Capacity is unavailable at this time. Please try again later or in a different availability zone"
)


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, str]]:
    """moto in this process (tests set what AWS would on its tasks); its client environment."""
    with moto_in_process() as env:
        yield env


def _ecs_tasks(aws: dict[str, str]) -> EcsTasks:
    return EcsTasks(aws_client("ecs", aws))


@pytest.fixture
def ecs_tasks(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> EcsTasks:
    """A cluster of its own; the handler's boto3 client, made in this process, talks to moto too."""
    for key, value in aws.items():
        monkeypatch.setenv(key, value)
    return _ecs_tasks(aws)


def _crashed_run(message: str | None, infrastructure_pid: str | None = None) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        id=uuid.uuid4(),
        name="run",
        job_variables={},
        state=Crashed(message=message),
        infrastructure_pid=infrastructure_pid,
    )


@pytest.mark.parametrize(
    ("stop_code", "reason", "capacity_provider", "message", "spot", "stopped_by_caller"),
    [
        ("SpotInterruption", "Your Spot Task was interrupted.", "FARGATE_SPOT", SIGTERM_CRASH, True, False),
        # Operator's `aws ecs stop-task`: the engine writes the very message a Spot SIGTERM gives.
        ("UserInitiated", OPERATOR_STOP, "FARGATE_SPOT", SIGTERM_CRASH, False, True),
        ("UserInitiated", OPERATOR_STOP, "FARGATE", SIGTERM_CRASH, False, True),
        # Out of memory (exit 137): the observer names only the containers.
        (
            "EssentialContainerExited",
            "Essential container in task exited",
            "FARGATE_SPOT",
            CONTAINER_EXITED,
            False,
            False,
        ),
        (
            "ServiceSchedulerInitiated",
            "Scaling activity initiated",
            "FARGATE_SPOT",
            CONTAINER_EXITED,
            False,
            False,
        ),
        ("TaskFailedToStart", NO_SPOT_CAPACITY, "FARGATE_SPOT", "ECS task failed to start: ...", True, False),
        ("TaskFailedToStart", NO_SPOT_CAPACITY, "FARGATE", "ECS task failed to start: ...", False, False),
        (
            "TaskFailedToStart",
            "CannotPullContainerError: pull image manifest",
            "FARGATE_SPOT",
            IMAGE_MISSING,
            False,
            False,
        ),
    ],
)
def test_the_stop_code_decides_spot(
    render,
    ecs_tasks: EcsTasks,
    stop_code,
    reason,
    capacity_provider,
    message,
    spot: bool,
    stopped_by_caller: bool,
):
    """ECS's stop code of the run's task decides, through a real DescribeTasks (moto); never the message."""
    module = recovery_module(render({}))
    pid = ecs_tasks.stopped(stop_code, reason, capacity_provider=capacity_provider, exit_code=137)
    cause = module.crash_cause(_crashed_run(message, pid), [], uses_spot=True)
    assert (cause.spot, cause.stopped_by_caller) == (spot, stopped_by_caller), cause
    assert f"stop code {stop_code}" in cause.evidence
    assert not cause.still_running


@pytest.mark.parametrize(
    ("message", "uses_spot", "spot"),
    [
        (RUN_TASK_REFUSED, True, True),
        # A run moved to on-demand FARGATE that RunTask refuses for capacity: not Spot's doing.
        (RUN_TASK_REFUSED, False, False),
        (
            "Failed to submit flow run to infrastructure: RuntimeError: Failed to run ECS task, "
            "the task definition is inactive.",
            True,
            False,
        ),
    ],
)
def test_runtask_refusal_is_spot_only_for_lack_of_spot_capacity(render, message, uses_spot: bool, spot: bool):
    module = recovery_module(render({}))
    # The attempt never got a task: whatever the run's infrastructure_pid names is not asked.
    never_asked = lambda *task: pytest.fail(f"asked ECS about {task}")  # noqa: E731
    cause = module.crash_cause(
        _crashed_run(message, "flows::arn:aws:ecs:us-east-1:1:task/flows/old"), [], uses_spot, never_asked
    )
    assert cause.spot is spot and not cause.stopped_by_caller
    assert "RunTask refused" in cause.evidence


def test_a_task_of_an_earlier_attempt_says_nothing(render, ecs_tasks: EcsTasks):
    """The run's infrastructure_pid still names the last attempt's Spot-interrupted task: not this cause."""
    module = recovery_module(render({}))
    pid = ecs_tasks.stopped("SpotInterruption", "Your Spot Task was interrupted.")
    rescheduled = Scheduled(message=f"{module.RECOVERY_PREFIX}re-run 1 of 3 {module.BY_SPOT} (...).")
    rescheduled.timestamp = datetime.now(UTC) + timedelta(seconds=5)
    cause = module.crash_cause(_crashed_run("stuck in Pending", pid), [rescheduled], uses_spot=True)
    assert not cause.spot and "no ECS task of this attempt" in cause.evidence
    assert not module.crash_cause(_crashed_run(SIGTERM_CRASH, None), [], uses_spot=True).spot


def test_a_crash_while_its_task_runs_on_is_not_re_run_beside_it(render, ecs_tasks: EcsTasks):
    """A Crashed state ECS did not make (swept from Pending while its task started): no second task."""
    module = recovery_module(render({}))
    pid = f"{ecs_tasks.cluster}::{ecs_tasks.running()}"

    def describe_once(cluster: str, task_arn: str) -> dict:
        """DescribeTasks as the handler calls it, without its wait for a stop code."""
        return ecs_tasks.ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"][0]

    swept = _crashed_run("Pending for over 10 min", pid)
    cause = module.crash_cause(swept, [], True, describe_once)
    assert cause.still_running and not cause.spot and not cause.stopped_by_caller, cause
    assert cause.evidence.startswith("stop code none yet: task "), cause.evidence
    client = _FakeClient()
    outcome = module._recover(client, swept, [Crashed(message=swept.state.message)], cause)
    assert outcome.startswith("left Crashed") and "still has a running task" in outcome, outcome
    assert client.calls == [], "a re-run would start a second task beside the running one"


@pytest.mark.parametrize("moved_on", [False, True])
def test_the_handler_acts_only_on_the_crashed_state_it_was_started_for(render, monkeypatch, moved_on: bool):
    """The handler may wait minutes for ECS: a run that left that Crashed state meanwhile is not touched."""
    module = recovery_module(render({}))
    crashed = Crashed(message="crash")
    run = types.SimpleNamespace(
        id=uuid.uuid4(),
        name="run",
        tags=sorted(module.scope_tags("dev")),
        state=crashed,
        job_variables={},
        infrastructure_pid=None,
        deployment_id=None,
    )
    later = types.SimpleNamespace(**{**vars(run), "state": Running() if moved_on else crashed})

    class Client(_FakeClient):
        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

        def read_flow_run(self, run_id):
            # First as the automation found it, then once more just before acting.
            self.calls.append(("read",))
            return run if len(self.calls) == 1 else later

        def read_flow_run_states(self, run_id):
            return [Scheduled(), crashed]

    client = Client()
    monkeypatch.setattr(module, "get_client", lambda sync_client: client)
    monkeypatch.setattr(module, "get_run_logger", lambda: logging.getLogger("crash-recovery"))
    outcome = module.crash_recovery.fn(f"prefect.flow-run.{run.id}", "dev").message
    if moved_on:
        assert outcome == "not touched: run left that Crashed state for Running", outcome
        assert client.calls == [("read",), ("read",)]
    else:
        assert outcome.startswith("re-run 1 of"), outcome
        assert client.calls[-1][:2] == ("state", StateType.SCHEDULED)


def test_ecs_refusing_the_handler_still_recovers(render):
    """Without ecs:DescribeTasks (handler deployed before infra-apply) the crash is re-run, not Spot."""
    from botocore.exceptions import ClientError

    module = recovery_module(render({}))

    def denied(cluster, task_arn):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeTasks")

    pid = "flows::arn:aws:ecs:us-east-1:1:task/flows/abc"
    cause = module.crash_cause(_crashed_run(SIGTERM_CRASH, pid), [], True, denied)
    assert not cause.spot and not cause.stopped_by_caller
    assert "ECS not asked" in cause.evidence and "AccessDeniedException" in cause.evidence


def test_the_template_reads_no_message_for_spot(render):
    """Defect 3: the engine's SIGTERM message once counted as Spot, so an operator's StopTask did too."""
    text = (render({}) / "src").rglob("crash_recovery.py").__next__().read_text()
    assert "termination signal" not in text.lower() and "SPOT_SIGNS" not in text


def _handler_source(project: Path) -> tuple[tuple[int, int], str]:
    answers = answers_of(project)
    module = recovery_module(project)
    text = (project / "src" / answers["package_name"] / "crash_recovery.py").read_text()
    text = text.replace(answers["project_slug"], "<slug>").replace(answers["package_name"], "<package>")
    return (module.CRASH_RETRIES, module.SPOT_FALLBACK_AFTER), text


def test_every_recovery_set_renders_a_proven_handler(render):
    """Each recovery set's handler is one the server test ran, up to the project's names."""
    proven = dict(_handler_source(render(ANSWER_SETS[name])) for name in SERVER_SETS)
    for name in RECOVERY_SETS:
        constants, text = _handler_source(render(ANSWER_SETS[name]))
        assert constants in proven, (
            f"{name}: no server test runs crash_retries/spot_fallback_after {constants}"
        )
        assert text == proven[constants], name


class _FakeClient:
    """Records what the handler asks of the Prefect API."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def set_flow_run_state(self, run_id, state, force=False):
        self.calls.append(("state", state.type, state.state_details.scheduled_time, force))

    def update_flow_run(self, run_id, job_variables):
        self.calls.append(("job_variables", job_variables))


def _history(module, causes: list[bool]) -> list:
    """A run's states after len(causes) crashes, each but the last one re-run, Spot ones said so."""
    states = []
    for attempt, spot in enumerate(causes, start=1):
        states.append(Crashed(message="crash"))
        if attempt < len(causes):
            by = module.BY_SPOT if spot else "after a crash by a cause other than Spot"
            states.append(Scheduled(message=f"{module.RECOVERY_PREFIX}re-run {attempt} of 3 {by} (...)."))
    return states


@pytest.mark.parametrize("fallback_after", [0, 1, 2])
def test_spot_fallback_after_k_spot_crashes(render, fallback_after: int):
    project = render({"crash_retries": 3, "spot_fallback_after": fallback_after})
    module = recovery_module(project)
    assert fallback_after == module.SPOT_FALLBACK_AFTER
    for spot_crashes in range(4):
        causes = [True] * spot_crashes + [False] * (3 - spot_crashes)
        run = types.SimpleNamespace(
            id=uuid.uuid4(),
            name="run",
            job_variables={"cpu": 512},
            state=Crashed(message="crash"),
        )
        client = _FakeClient()
        cause = module.Cause(spot=causes[-1], stopped_by_caller=False, evidence="stop code X")
        outcome = module._recover(client, run, _history(module, causes), cause)
        moved = 0 < fallback_after <= spot_crashes
        assert ("on-demand FARGATE" in outcome) is moved, outcome
        updates = [call for call in client.calls if call[0] == "job_variables"]
        assert updates == (
            [("job_variables", {"cpu": 512, "capacity_provider_strategy": ON_DEMAND})] if moved else []
        )
        if moved:
            # Parked beyond the workers' look-ahead before the change, then scheduled.
            parked_until = client.calls[0][2]
            assert client.calls[0][3] and parked_until > datetime.now(UTC) + timedelta(minutes=30)
            assert client.calls.index(updates[0]) == 1
        assert client.calls[-1][:2] == ("state", StateType.SCHEDULED) and client.calls[-1][3]
    # One crash more than allowed: nothing is asked of the API.
    client = _FakeClient()
    run = types.SimpleNamespace(id=uuid.uuid4(), name="run", job_variables={}, state=Crashed())
    not_spot = module.Cause(spot=False, stopped_by_caller=False, evidence="stop code X")
    assert module._recover(client, run, _history(module, [False] * 4), not_spot).startswith("left Crashed")
    assert client.calls == []
    # Stopped on purpose (StopTask): left Crashed on its first crash.
    stopped = module.Cause(spot=False, stopped_by_caller=True, evidence="stop code UserInitiated")
    assert module._recover(client, run, _history(module, [False]), stopped).startswith("left Crashed")
    assert client.calls == []


# --------------------------------------------------------------------------- a real Prefect server

SLEEPY_FLOW = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    from prefect import flow, runtime


    @flow
    def sleepy(marker_dir: str) -> None:
        run_id, attempt = runtime.flow_run.id, runtime.flow_run.run_count
        marker = Path(marker_dir) / f"{run_id}-{attempt}"
        marker.with_suffix(".tmp").write_text(str(os.getpid()))
        marker.with_suffix(".tmp").rename(marker)
        time.sleep(600)
    """
)


def _wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _run(env: dict, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT, check=False
    )
    if check:
        assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def _prefect(env: dict, *args: str, cwd: Path | None = None) -> str:
    return _run(env, *PREFECT, *args, cwd=cwd).stdout


class Server:
    def __init__(self, api_url: str, env: dict, workdir: Path, ecs: EcsTasks) -> None:
        self.api_url, self.env, self.workdir, self.ecs = api_url, env, workdir, ecs

    def client(self) -> SyncPrefectClient:
        return SyncPrefectClient(self.api_url)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, aws: dict[str, str]) -> Iterator[Server]:
    """A local Prefect server (services on), a process pool "local" and its worker; ECS answered by moto."""
    workdir = tmp_path_factory.mktemp("prefect")
    prefect_server = PrefectServer(workdir / "server").start()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "PYTEST_", "AWS_"))
    }
    env |= (
        aws
        | prefect_server.client_env()
        | {
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
        }
    )
    ecs = _ecs_tasks(aws)
    worker = None
    try:
        _prefect(env, "work-pool", "create", "local", "--type", "process")
        # Runs of this pool are never picked up: the test plays its worker.
        _prefect(env, "work-pool", "create", "ecs-nobody-polls", "--type", "ecs")
        worker_log = (workdir / "worker.log").open("w")
        worker = subprocess.Popen(
            [*PREFECT, "worker", "start", "--pool", "local", "--type", "process"],
            env=env,
            cwd=workdir,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        yield Server(prefect_server.api_url, env, workdir, ecs)
    finally:
        if worker is not None:
            _stop(worker)
        prefect_server.stop()


def _deploy(
    server: Server, root: Path, name: str, deployments: list[dict], extra_env: dict | None = None
) -> None:
    """`prefect deploy --all` of `deployments`, with code pulled from `root`."""
    config = {
        "name": name,
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": str(root)}}],
        "deployments": deployments,
    }
    prefect_file = server.workdir / f"{name}.prefect.yaml"
    prefect_file.write_text(yaml.safe_dump(config))
    env = server.env | (extra_env or {})
    _prefect(env, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file), cwd=root)


def _install(server: Server, project: Path, environment: str) -> str:
    """What `make automation ENV=<environment>` runs."""
    package = answers_of(project)["package_name"]
    env = server.env | {"PYTHONPATH": str(project / "src")}
    return _run(env, sys.executable, "-m", f"{package}.crash_recovery", environment, cwd=project).stdout


def _handler_deployment(project: Path, environment: str) -> dict:
    """The rendered handler deployment, as `prefect deploy` resolves it, on the local process pool."""
    (handler,) = [d for d in load_prefect_yaml(project)["deployments"] if is_crash_recovery_handler(d)]
    handler = handler | {"name": handler["name"].replace("{{ $DEPLOY_ENV }}", environment)}
    handler["tags"] = [tag.replace("{{ $DEPLOY_ENV }}", environment) for tag in handler["tags"]]
    return handler | {"work_pool": {"name": "local"}}


def _handler_runs(client: SyncPrefectClient, handler_id: uuid.UUID, run_id: uuid.UUID) -> list:
    runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[handler_id])))
    return [run for run in runs if str(run_id) in str(run.parameters.get("crashed_flow_run"))]


def _crashed_count(client: SyncPrefectClient, run_id: uuid.UUID) -> int:
    return sum(state.type == StateType.CRASHED for state in client.read_flow_run_states(run_id))


def _story(server: Server, client: SyncPrefectClient, handler_id: uuid.UUID, run_id: uuid.UUID) -> str:
    """What a timed-out wait saw: the run's states, its handler runs' states, the server's errors."""

    def states(flow_run_id) -> str:
        return ", ".join(
            f"{state.name} {state.timestamp:%H:%M:%S} {(state.message or '')[:80]!r}"
            for state in client.read_flow_run_states(flow_run_id)
        )

    lines = [f"run {run_id}: {states(run_id)}"]
    lines += [f"handler run {run.id}: {states(run.id)}" for run in _handler_runs(client, handler_id, run_id)]
    server_log = (server.workdir / "server" / "server.log").read_text(errors="replace").splitlines()
    lines += [line for line in server_log if "ERROR" in line or "locked" in line][-20:]
    return "\n".join(lines)


def _wait_for_handler(server: Server, client, handler_id, run_id, count: int) -> list:
    """Wait until `count` handler runs for `run_id` have finished; returns their results."""

    def finished():
        runs = _handler_runs(client, handler_id, run_id)
        done = [run for run in runs if run.state and run.state.is_final()]
        return done if len(done) >= count else None

    try:
        done = _wait_for(finished, STEP_TIMEOUT, f"{count} crash-recovery run(s) for {run_id}")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}\n{_story(server, client, handler_id, run_id)}") from None
    assert all(run.state.type == StateType.COMPLETED for run in done), [run.state for run in done]
    return [run.state.message for run in sorted(done, key=lambda run: run.expected_start_time)]


@pytest.mark.prefect_server
@pytest.mark.parametrize("name", SERVER_SETS)
def test_crash_recovery_on_a_real_server(render, server: Server, name: str):
    project = render(ANSWER_SETS[name])
    answers = answers_of(project)
    retries, slug = answers["crash_retries"], answers["project_slug"]
    fallback_after = recovery_module(project).SPOT_FALLBACK_AFTER
    environment = "dev"
    scope = [f"project:{slug}", f"env:{environment}"]

    flows = server.workdir / f"flows-{name}"
    markers = flows / "markers"
    markers.mkdir(parents=True)
    (flows / "sleepy.py").write_text(SLEEPY_FLOW)
    sleepy = {"entrypoint": "sleepy.py:sleepy", "parameters": {"marker_dir": str(markers)}}
    nobody = {"work_pool": {"name": "ecs-nobody-polls"}}
    _deploy(
        server,
        flows,
        f"{slug}-flows",
        [
            {"name": f"spot-{slug}", "tags": [*scope, SPOT_TAG], **sleepy, "work_pool": {"name": "local"}},
            {"name": f"refused-{slug}", "tags": [*scope, SPOT_TAG], **sleepy, **nobody},
            {"name": f"on-demand-{slug}", "tags": [*scope, "on-demand"], **sleepy, **nobody},
            {
                "name": f"staging-{slug}",
                "tags": [f"project:{slug}", "env:staging", SPOT_TAG],
                **sleepy,
                **nobody,
            },
            {
                "name": f"other-{slug}",
                "tags": ["project:someone-else", "env:dev", SPOT_TAG],
                **sleepy,
                **nobody,
            },
        ],
    )
    _deploy(server, project, f"{slug}-handler", [_handler_deployment(project, environment)])

    with server.client() as client:
        # An automation of the previous release, which matched run_count 1..N workspace-wide.
        from prefect.events.schemas.automations import AutomationCore

        legacy = AutomationCore.model_validate(
            {
                "name": f"{slug}-crash-recovery",
                "trigger": {"type": "event", "expect": ["prefect.flow-run.Crashed"], "posture": "Reactive"},
                "actions": [{"type": "do-nothing"}],
            }
        )
        client.create_automation(legacy)
        assert _install(server, project, environment).startswith("Created automation")
        assert _install(server, project, environment).startswith("Updated automation")
        assert client.read_automations_by_name(f"{slug}-crash-recovery") == []
        assert len(client.read_automations_by_name(f"{slug}-{environment}-crash-recovery")) == 1
        handler_id = client.read_deployment_by_name(f"crash-recovery/{slug}-{environment}").id
        # The server loads new automations on its own clock.
        time.sleep(3)

        def start(deployment: str):
            return client.create_flow_run_from_deployment(
                client.read_deployment_by_name(f"sleepy/{deployment}").id
            )

        def crash_before_running(run_id, message: str, task: str | None = None) -> None:
            """What the ECS worker does when RunTask is refused (or the observer, task never started)."""
            client.set_flow_run_state(run_id, Pending())
            if task is not None:
                client.update_flow_run(run_id, infrastructure_pid=task)
            client.set_flow_run_state(run_id, Crashed(message=message))

        # Out of scope: another project, another environment, a deployment without fargate-spot.
        untouched = [start(f"{prefix}-{slug}").id for prefix in ("other", "staging", "on-demand")]
        for run_id in untouched:
            crash_before_running(run_id, RUN_TASK_REFUSED)

        # N+1 rounds, each crashing three runs the three ways: RunTask refused for lack of
        # Spot capacity and image missing (both before Running: run_count stays 0), and
        # SIGTERM while Running, as Fargate Spot sends it.
        refused, image_missing, spot_run = (
            start(f"refused-{slug}"),
            start(f"refused-{slug}"),
            start(f"spot-{slug}"),
        )
        for attempt in range(1, retries + 2):
            crash_before_running(refused.id, RUN_TASK_REFUSED)
            pull_failed = server.ecs.stopped(
                "TaskFailedToStart", IMAGE_MISSING.removeprefix("ECS task failed to start: ")
            )
            crash_before_running(image_missing.id, IMAGE_MISSING, pull_failed)
            marker = markers / f"{spot_run.id}-{attempt}"
            _wait_for(marker.exists, STEP_TIMEOUT, f"attempt {attempt} of {spot_run.id} to start")
            # The run's task as the ECS worker records it, interrupted by Spot: ECS's stop code, then SIGTERM.
            interrupted = server.ecs.stopped("SpotInterruption", "Your Spot Task was interrupted.")
            client.update_flow_run(spot_run.id, infrastructure_pid=interrupted)
            os.kill(int(marker.read_text()), signal.SIGTERM)
            for run, spot_crashes in ((refused, attempt), (image_missing, 0), (spot_run, attempt)):
                outcomes = _wait_for_handler(server, client, handler_id, run.id, attempt)
                if attempt > retries:
                    assert outcomes[-1].startswith("left Crashed"), outcomes
                    continue
                assert outcomes[-1].startswith(f"re-run {attempt} of {retries}"), outcomes
                current = client.read_flow_run(run.id)
                assert current.state.type in (StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING)
                on_demand = 0 < fallback_after <= spot_crashes
                strategy = (current.job_variables or {}).get("capacity_provider_strategy")
                assert strategy == (ON_DEMAND if on_demand else None), (attempt, current.job_variables)
            assert client.read_flow_run(refused.id).run_count == 0

        time.sleep(GRACE)
        for run_id in (refused.id, image_missing.id, spot_run.id):
            run = client.read_flow_run(run_id)
            assert run.state.type == StateType.CRASHED, f"{run.name} was re-run after its last allowed crash"
            assert _crashed_count(client, run_id) == retries + 1
            assert len(_handler_runs(client, handler_id, run_id)) == retries + 1
        assert client.read_flow_run(spot_run.id).run_count == retries + 1
        assert sorted(p.name for p in markers.glob(f"{spot_run.id}-*")) == [
            f"{spot_run.id}-{attempt}" for attempt in range(1, retries + 2)
        ]
        for run_id in untouched:
            assert client.read_flow_run(run_id).state.type == StateType.CRASHED
            assert _handler_runs(client, handler_id, run_id) == []


SUPERVISED_FLOW = SLEEPY_FLOW.replace("str(os.getpid())", "f'{os.getpid()} {os.getppid()}'")


@pytest.mark.prefect_server
def test_native_sigterm_reschedule_is_unbounded(server: Server):
    """Why the template does not use PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR=reschedule.

    Under `prefect flow-run execute` with that setting, every SIGTERM to the
    supervisor reschedules the run (AwaitingRetry) and leaves no Crashed state:
    nothing bounds it, and no crash counter can see it. Three SIGTERMs, three re-runs.
    """
    flows = server.workdir / "flows-native"
    markers = flows / "markers"
    markers.mkdir(parents=True)
    (flows / "sleepy.py").write_text(SUPERVISED_FLOW)
    command = f"{sys.executable} -m prefect flow-run execute"
    _deploy(
        server,
        flows,
        "native-reschedule",
        [
            {
                "name": "native-reschedule",
                "entrypoint": "sleepy.py:sleepy",
                "parameters": {"marker_dir": str(markers)},
                "work_pool": {
                    "name": "local",
                    "job_variables": {
                        "command": command,
                        "env": {"PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR": "reschedule"},
                    },
                },
            }
        ],
    )
    sigterms = 3
    with server.client() as client:
        run = client.create_flow_run_from_deployment(
            client.read_deployment_by_name("sleepy/native-reschedule").id
        )
        for attempt in range(1, sigterms + 1):
            marker = markers / f"{run.id}-{attempt}"
            _wait_for(marker.exists, STEP_TIMEOUT, f"attempt {attempt} of {run.id} to start")
            engine, supervisor = map(int, marker.read_text().split())
            assert engine != supervisor, "the engine runs as a child of the supervisor"
            os.kill(supervisor, signal.SIGTERM)

            def rescheduled(attempt=attempt):
                states = client.read_flow_run_states(run.id)
                return sum(state.name == "AwaitingRetry" for state in states) >= attempt

            _wait_for(rescheduled, STEP_TIMEOUT, f"SIGTERM {attempt} to reschedule {run.id}")
        _wait_for((markers / f"{run.id}-{sigterms + 1}").exists, STEP_TIMEOUT, "the unbounded re-run")
        states = client.read_flow_run_states(run.id)
        assert not [state for state in states if state.type == StateType.CRASHED]
        assert sum(state.name == "AwaitingRetry" for state in states) == sigterms
        client.set_flow_run_state(run.id, Crashed(message="test over"), force=True)
    for marker in markers.glob(f"{run.id}-*"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(marker.read_text().split()[0]), signal.SIGKILL)


# --------------------------------------------------------------------------- environments in one workspace


def _deployable(project: Path) -> dict:
    """The rendered prefect.yaml without the image build/push and upload steps (no Docker or S3 here)."""
    config = load_prefect_yaml(project)
    config["build"] = config["push"] = None
    config["pull"] = [{"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}]
    for deployment in config["deployments"]:
        deployment["work_pool"]["job_variables"]["image"] = "example.invalid/flows:e2e"
    return config


@pytest.mark.prefect_server
def test_two_environments_share_one_workspace(render, server: Server):
    project = render(ANSWER_SETS["existing-vpc-multi-env"])
    answers = answers_of(project)
    slug = answers["project_slug"]
    prefect_file = project / "prefect.shared-workspace.yaml"
    prefect_file.write_text(yaml.safe_dump(_deployable(project)))
    for environment in ("dev", "prod"):
        pool = f"{slug}-{environment}"
        _prefect(server.env, "work-pool", "create", pool, "--type", "ecs", "--overwrite")
        env = server.env | {
            "DEPLOY_ENV": environment,
            "WORK_POOL_NAME": pool,
            "PYTHONPATH": str(project / "src"),
        }
        # Twice: the second deploy updates, never duplicates.
        for _ in range(2):
            _prefect(env, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file), cwd=project)
        _install(server, project, environment)

    deployments = _deployable(project)["deployments"]
    with server.client() as client:
        for environment in ("dev", "prod"):
            for deployment in deployments:
                # Prefect names a flow after its function, with hyphens.
                flow_name = deployment["entrypoint"].rsplit(":", 1)[1].replace("_", "-")
                name = deployment["name"].replace("{{ $DEPLOY_ENV }}", environment)
                assert name.endswith(f"-{environment}"), name
                found = client.read_deployment_by_name(f"{flow_name}/{name}")
                assert found.work_pool_name == f"{slug}-{environment}"
                assert {f"project:{slug}", f"env:{environment}"} <= set(found.tags)
                other = "prod" if environment == "dev" else "dev"
                assert f"env:{other}" not in found.tags
            assert len(client.read_automations_by_name(f"{slug}-{environment}-crash-recovery")) == 1


# --------------------------------------------------------------------------- the Prefect API guard


def test_api_guard_records_then_refuses_another_api(render, tmp_path: Path):
    """`make check-api` / infra-apply's guard: record once, then refuse any other API."""
    source = render(ANSWER_SETS["existing-vpc-multi-env"])
    package = answers_of(source)["package_name"]
    project = tmp_path / "project"
    (project / "infra" / "envs").mkdir(parents=True)
    for environment in ("dev", "prod"):
        target = project / "infra" / "envs" / environment
        target.mkdir()
        (target / "terraform.tfvars").write_text(
            (source / "infra/envs" / environment / "terraform.tfvars").read_text()
        )
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env |= {"PYTHONPATH": str(source / "src"), "PREFECT_HOME": str(tmp_path / "home")}

    def guard(environment: str, api: str, *flags: str) -> subprocess.CompletedProcess:
        return _run(
            env | {"PREFECT_API_URL": api},
            sys.executable,
            "-m",
            f"{package}.prefect_api",
            environment,
            *flags,
            cwd=project,
            check=False,
        )

    dev_api = "https://api.prefect.cloud/api/accounts/a/workspaces/dev"
    prod_api = "https://api.prefect.cloud/api/accounts/a/workspaces/prod"
    refused = guard("dev", dev_api)
    assert refused.returncode != 0 and "No Prefect API recorded for dev" in refused.stderr
    assert guard("dev", dev_api, "--record").returncode == 0
    assert f'\nprefect_api_url = "{dev_api}"\n' in (project / "infra/envs/dev/terraform.tfvars").read_text()
    assert guard("dev", dev_api + "/").returncode == 0
    assert guard("prod", prod_api, "--record").returncode == 0
    mismatch = guard("dev", prod_api, "--record")
    assert mismatch.returncode != 0 and "Refusing to act on dev" in mismatch.stderr
    assert guard("prod", dev_api).returncode != 0
    assert "not an environment" in guard("staging", dev_api).stderr


def test_makefile_guards_every_target_that_acts_on_an_environment(project: Path):
    makefile = (project / "Makefile").read_text()
    rules = {line.split(":", 1)[0]: line for line in makefile.splitlines() if line and not line[0].isspace()}
    for target in ("work-pool", "deploy", "automation", "infra-destroy"):
        assert "check-api" in rules[target], rules[target]
    for target in ("infra-plan", "infra-apply"):
        body = makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
        assert "$(CHECK_API) --record" in body
    assert 'export DEPLOY_ENV="$(ENV)"' in makefile
    workflow = project / ".github" / "workflows" / "deploy.yml"
    if workflow.is_file():
        jobs = yaml.safe_load(workflow.read_text())["jobs"]
        deploy_jobs = [job for name, job in jobs.items() if name.startswith("deploy-")]
        assert deploy_jobs, list(jobs)
        for job in deploy_jobs:
            runs = [step.get("run", "") for step in job["steps"]]
            deploy = next(i for i, run in enumerate(runs) if "prefect --no-prompt deploy" in run)
            assert any("make check-api" in run for run in runs[:deploy])
            assert any('echo "DEPLOY_ENV=$ENV"' in run for run in runs[:deploy])
