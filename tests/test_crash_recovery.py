"""The crash-recovery automation: rendered correctly, and working on a real Prefect server.

The end-to-end test starts `prefect server start` (which runs the event,
trigger and action services in-process; prefect_test_harness does not run
them) and a process worker, creates the rendered automation with
`prefect automation create --from-file`, and SIGTERMs the flow-run process the
way Fargate Spot does. A run of a "fargate-spot" deployment must come back
exactly `crash_retries` times, with run_count going up, and then stay Crashed;
a crashed run of a deployment without the tag must not come back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.schemas.automations import AutomationCore
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_checks import SPOT_TAG, answers_of

PREFECT = [sys.executable, "-m", "prefect"]
AUTOMATION = Path("automations") / "crash-recovery.yaml"
STARTUP_TIMEOUT = 180
STEP_TIMEOUT = 180
# After the last crash, how long the run must stay Crashed (the automation reacts in ~1 s).
GRACE = 15


def crash_recovery_expected(answers: dict) -> bool:
    return answers["crash_retries"] > 0 and answers["spot_weight"] > 0


def test_automation_is_rendered_when_crashes_are_retried(project: Path):
    answers = answers_of(project)
    path = project / AUTOMATION
    assert path.is_file() == crash_recovery_expected(answers)
    if not path.is_file():
        return
    automation = AutomationCore.model_validate(yaml.safe_load(path.read_text()))
    trigger = automation.trigger
    assert trigger.expect == {"prefect.flow-run.Crashed"}
    run_counts = trigger.match.root["prefect.run-count"]
    assert run_counts == [str(attempt) for attempt in range(1, answers["crash_retries"] + 1)]
    assert trigger.match_related.root == {
        "prefect.resource.role": "tag",
        "prefect.resource.id": f"prefect.tag.{SPOT_TAG}",
    }
    (action,) = automation.actions
    assert action.type == "change-flow-run-state"
    assert action.state == StateType.SCHEDULED
    assert automation.name == f"{answers['project_slug']}-crash-recovery"


# --------------------------------------------------------------------------- end to end

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[tuple[str, dict]]:
    """A `prefect server start` on a free port with a throw-away PREFECT_HOME."""
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "PYTEST_"))}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
    }
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def healthy() -> bool:
        assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
        return False

    try:
        _wait_for(healthy, STARTUP_TIMEOUT, "the Prefect server")
        yield api_url, env | {"PREFECT_API_URL": api_url}
    finally:
        _stop(server)
        log.close()


def _prefect(env: dict, *args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [*PREFECT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT, check=False
    )
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.prefect_server
def test_crashed_spot_runs_are_rerun_at_most_crash_retries_times(render, prefect_server, tmp_path: Path):
    project = render({})
    retries = answers_of(project)["crash_retries"]
    automation_file = project / AUTOMATION
    api_url, env = prefect_server

    flows = tmp_path / "flows"
    markers = tmp_path / "markers"
    flows.mkdir()
    markers.mkdir()
    (flows / "sleepy.py").write_text(SLEEPY_FLOW)
    deployment = {
        "entrypoint": "sleepy.py:sleepy",
        "parameters": {"marker_dir": str(markers)},
        "work_pool": {"name": "local"},
    }
    (flows / "prefect.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "crash-recovery-test",
                "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": str(flows)}}],
                "deployments": [
                    {"name": "spot", "tags": ["etl", SPOT_TAG], **deployment, "work_pool": {"name": "local"}},
                    {
                        "name": "on-demand",
                        "tags": ["etl", "on-demand"],
                        **deployment,
                        "work_pool": {"name": "local"},
                    },
                ],
            }
        )
    )
    _prefect(env, "work-pool", "create", "local", "--type", "process")
    _prefect(env, "--no-prompt", "deploy", "--all", cwd=flows)
    assert "Created automation" in _prefect(env, "automation", "create", "--from-file", str(automation_file))

    worker_log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [*PREFECT, "worker", "start", "--pool", "local", "--type", "process"],
        env=env,
        cwd=flows,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pids: list[int] = []
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:

            def crashed_run_counts(run_id) -> list[str]:
                """prefect.run-count of every Crashed event of the run, as the automation sees them."""
                response = httpx.post(
                    f"{api_url}/events/filter",
                    json={
                        "filter": {
                            "event": {"name": ["prefect.flow-run.Crashed"]},
                            "resource": {"id": [f"prefect.flow-run.{run_id}"]},
                        },
                        "limit": 50,
                    },
                    timeout=30,
                )
                response.raise_for_status()
                return sorted(event["resource"]["prefect.run-count"] for event in response.json()["events"])

            def start(name: str):
                found = client.read_deployment_by_name(f"sleepy/{name}")
                return client.create_flow_run_from_deployment(found.id).id

            def crash(run_id, attempt: int) -> None:
                """SIGTERM the flow-run process (what ECS does on a Spot interruption)."""
                marker = markers / f"{run_id}-{attempt}"
                _wait_for(marker.exists, STEP_TIMEOUT, f"attempt {attempt} of {run_id} to start")
                pid = int(marker.read_text())
                pids.append(pid)
                os.kill(pid, signal.SIGTERM)

                def crashed() -> bool:
                    # The Crashed state may last well under a second before the automation
                    # reschedules the run, so look for the event rather than the state.
                    return str(attempt) in crashed_run_counts(run_id)

                _wait_for(crashed, STEP_TIMEOUT, f"attempt {attempt} of {run_id} to be CRASHED")

            spot_run, on_demand_run = start("spot"), start("on-demand")
            crash(on_demand_run, 1)
            for attempt in range(1, retries + 2):
                crash(spot_run, attempt)

            # The guard works because every Crashed event names the attempt it ended.
            assert crashed_run_counts(spot_run) == [str(attempt) for attempt in range(1, retries + 2)]

            time.sleep(GRACE)
            for run_id, attempts in ((spot_run, retries + 1), (on_demand_run, 1)):
                run = client.read_flow_run(run_id)
                assert run.state.type == StateType.CRASHED, (
                    f"{run_id} was re-run after its last allowed crash"
                )
                assert run.run_count == attempts
                assert sorted(p.name for p in markers.glob(f"{run_id}-*")) == [
                    f"{run_id}-{attempt}" for attempt in range(1, attempts + 1)
                ]
    finally:
        _stop(worker)
        worker_log.close()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
