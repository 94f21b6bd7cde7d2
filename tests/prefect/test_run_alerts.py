"""Run alerts (src/<package>/alerts.py): notifying through a real Prefect server.

One `prefect server start` per module (its event, trigger and action services
run in-process) and an HTTP server on 127.0.0.1 that plays the team's webhook.
For a project with crash recovery and one without, the command
`make notifications-set` runs stores the webhook URL it reads on stdin and
installs the automations (with a short re-run bound); then, on that server:

- a Failed run notifies;
- with recovery, a run scheduled again after its crash (what the recovery
  handler does) stays quiet, while a run left Crashed after its last re-run
  notifies once, after the bound; without recovery, every Crashed run notifies
  at once;
- runs of another project or environment never notify;
- installing again updates the two automations in place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import SyncPrefectClient
from prefect.states import Crashed, Failed, Pending, Running, Scheduled
from support.answer_sets import ANSWER_SETS
from support.answers import answers_of, model_of
from support.prefect_checks import load_project_module
from support.prefect_local import PrefectServer

# Short enough for a test, long enough that the re-run below (2 s after its
# crash) is clearly inside it; Prefect refuses less than 10 s for proactive triggers.
RERUN_WITHIN = 12
# The server evaluates proactive triggers every 5 s, then the action service sends.
FIRE_WITHIN = 60
# Seconds between two state changes (see `to` below).
PACE = 0.5
SIGTERM = "Execution was aborted by a termination signal."
# One set with crash recovery, one without (crash_retries 0).
SETS = ["default", "server-s3-no-crash-retries"]


def alerts_module(project: Path):
    return load_project_module(project, f"src/{answers_of(project)['package_name']}/alerts.py", "alerts")


# --------------------------------------------------------------------------- rendered files


def test_crashed_trigger_follows_the_projects_recovery(render):
    """With recovery: proactive, quiet when the run is Scheduled again; without: every Crashed."""
    block_id = UUID(int=1)
    for name in SETS:
        project = render(ANSWER_SETS[name])
        slug = answers_of(project)["project_slug"]
        failed, crashed = alerts_module(project).automations("prod", block_id)
        scope = {f"prefect.tag.project:{slug}", "prefect.tag.env:prod"}
        for automation in (failed, crashed):
            assert {spec.root["prefect.resource.id"] for spec in automation.trigger.match_related} == scope
            assert [action.block_document_id for action in automation.actions] == [block_id]
        assert failed.trigger.expect == {"prefect.flow-run.Failed"}
        if model_of(ANSWER_SETS[name]).crash_recovery:
            assert crashed.trigger.posture == "Proactive"
            assert crashed.trigger.after == {"prefect.flow-run.Crashed"}
            # Crashed too, so a crash inside the window of the previous one restarts it.
            assert crashed.trigger.expect == {"prefect.flow-run.Scheduled", "prefect.flow-run.Crashed"}
            assert crashed.trigger.for_each == {"prefect.resource.id"}
        else:
            assert crashed.trigger.posture == "Reactive"
            assert crashed.trigger.expect == {"prefect.flow-run.Crashed"}


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXX", "Slack Webhook"),
        (
            "https://prod-1.westeurope.logic.azure.com:443/workflows/1/triggers/manual/paths/invoke?sig=x",
            "Microsoft Teams Webhook",
        ),
        ("https://alerts.example.com/hook?token=abc", "Custom Webhook"),
    ],
)
def test_webhook_kind_follows_the_url(render, url: str, kind: str):
    block = alerts_module(render({})).notification_block(url, "my-pipeline-dev-alerts")
    assert block.get_block_type_name() == kind
    # The URL is a secret of every kind: masked when the block is read back.
    assert url not in json.dumps(block.model_dump(mode="json"))


@pytest.mark.parametrize("url", ["hooks.slack.com/services/x", "ftp://example.com/hook", "https://"])
def test_a_url_that_is_not_http_is_refused(render, url: str):
    with pytest.raises(SystemExit, match="must be an https:// URL"):
        alerts_module(render({})).notification_block(url, "my-pipeline-dev-alerts")


# --------------------------------------------------------------------------- a real Prefect server


class Webhook:
    """An HTTP server on 127.0.0.1 that records the JSON bodies posted to it."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def about(self, run_name: str) -> list[dict]:
        return [body for body in self.received if run_name in body.get("subject", "")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    workdir = tmp_path_factory.mktemp("prefect-alerts")
    prefect_server = PrefectServer(workdir / "server").start()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "PYTEST_"))}
    try:
        yield prefect_server.api_url, env | prefect_server.client_env()
    finally:
        prefect_server.stop()


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()


def _alerts(env: dict, project: Path, *args: str, stdin: str | None = None) -> str:
    """What `make notifications-set` / `make alerts` run."""
    package = answers_of(project)["package_name"]
    result = subprocess.run(
        [sys.executable, "-m", f"{package}.alerts", *args],
        env=env | {"PYTHONPATH": str(project / "src")},
        cwd=project,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout


@flow(name="alerts-probe")
def probe() -> None:
    """Never run: its runs are driven through their states by the test."""


def _wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.prefect_server
@pytest.mark.parametrize("name", SETS)
def test_alerts_on_a_real_server(render, server: tuple[str, dict], webhook: Webhook, name: str):
    api_url, env = server
    project = render(ANSWER_SETS[name])
    slug = answers_of(project)["project_slug"]
    recovery = model_of(ANSWER_SETS[name]).crash_recovery
    bound = ["--rerun-within", str(RERUN_WITHIN)] if recovery else []

    assert "no run alerts" in _alerts(env, project, "dev", *bound)
    stored = _alerts(env, project, "dev", "--webhook-url-from-stdin", *bound, stdin=webhook.url + "\n")
    assert f"Stored the Custom Webhook block {slug}-dev-alerts" in stored
    assert f"Created automation {slug}-dev-notify-failed" in stored
    again = _alerts(env, project, "dev", *bound)
    assert f"Updated automation {slug}-dev-notify-crashed" in again

    with SyncPrefectClient(api_url) as client:
        for suffix in ("notify-failed", "notify-crashed"):
            assert len(client.read_automations_by_name(f"{slug}-dev-{suffix}")) == 1
        time.sleep(3)  # the server loads new automations on its own clock

        def to(run_id: UUID, state) -> None:
            # Paced: the server's SQLite drops a trigger update that collides with a write.
            client.set_flow_run_state(run_id, state, force=True)
            time.sleep(PACE)

        def run(label: str, tags: list[str]):
            created = client.create_flow_run(probe, name=f"{slug}-{label}", tags=tags)
            to(created.id, Pending())
            to(created.id, Running())
            return created

        scope = [f"project:{slug}", "env:dev"]
        failed = run("failed", scope)
        left = run("left-crashed", scope)
        rerun = run("re-run", scope)
        others = [
            run("other-project", ["project:someone-else", "env:dev"]),
            run("staging", [scope[0], "env:staging"]),
        ]

        to(failed.id, Failed(message="boom"))
        to(left.id, Crashed(message=SIGTERM))
        crashed_at = time.monotonic()
        if recovery:
            # The recovery handler re-runs it (Scheduled again, within the bound),
            # and that last re-run crashes too, within the bound of the first
            # crash; nothing schedules it again.
            to(left.id, Scheduled(message="Crash recovery: re-run 2 of 2"))
            to(left.id, Running())
            crashed_at = time.monotonic()
            to(left.id, Crashed(message=SIGTERM))
        for crashed in (rerun, *others):
            to(crashed.id, Crashed(message=SIGTERM))
        if recovery:
            # What the recovery handler does: Scheduled again, within the bound.
            to(rerun.id, Scheduled(message="Crash recovery: re-run 1 of 2"))

    (body,) = _wait_for(lambda: webhook.about(failed.name), FIRE_WITHIN, "the Failed run's notification")
    assert body["subject"] == f"{slug} dev: flow run {failed.name} Failed"
    assert f"Flow run {failed.name} ({failed.id}) is Failed: boom" in body["body"]

    (body,) = _wait_for(
        lambda: webhook.about(left.name), RERUN_WITHIN + FIRE_WITHIN, "the left-Crashed run's"
    )
    assert body["subject"] == f"{slug} dev: flow run {left.name} left Crashed"
    assert f"({left.id}) is Crashed: {SIGTERM}" in body["body"]
    if recovery:
        assert time.monotonic() - crashed_at >= RERUN_WITHIN, "notified before the re-run bound was over"
        assert f"not re-run within {RERUN_WITHIN} s" in body["body"]
    # Long enough for any notification of the quiet runs to have come.
    time.sleep(max(0.0, crashed_at + 2 * RERUN_WITHIN - time.monotonic()))
    if recovery:
        assert webhook.about(rerun.name) == [], "a run scheduled again after its crash notified"
    else:
        assert len(webhook.about(rerun.name)) == 1, "without recovery every Crashed run notifies"
    for other in others:
        assert webhook.about(other.name) == [], f"{other.name} is not this project and environment"
    assert len(webhook.about(left.name)) == 1
