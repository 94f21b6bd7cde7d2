"""Run the AWS emulator for the end-to-end tests: moto's server plus `moto_patches` and the task runner.

    python moto_launcher.py <run-task-capture-file>

Listens on 127.0.0.1 on ports the OS picks, prints "PORT <n>" (the AWS
endpoint) and "CONTROL <n>" (the tests' controls of the task runner, JSON
over HTTP: POST /<method> with the method's keyword arguments; GET serves
the tasks' metadata endpoint, ECS_CONTAINER_METADATA_URI_V4) once it
accepts requests, and serves until it gets SIGTERM; then it kills every
process group the task runner started.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import moto_patches
from moto.server import ThreadedMotoServer
from task_runner import TaskRunner

CONTROLS = (
    "configure",
    "set_capacity",
    "hold_run_tasks",
    "interrupt_as_spot",
    "kill_container",
    "emit_again",
    "stopped_as",
    "describe_process",
)


def control_server(runner: TaskRunner) -> ThreadingHTTPServer:
    class Control(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            name = self.path.strip("/")
            length = int(self.headers.get("Content-Length", 0))
            try:
                if name not in CONTROLS:
                    raise KeyError(f"no control {name!r}")
                body, status = getattr(runner, name)(**json.loads(self.rfile.read(length) or b"{}")), 200
            except Exception as error:
                body, status = {"error": f"{type(error).__name__}: {error}"}, 400
            self._reply(body, status)

        def do_GET(self) -> None:
            """The ECS task metadata endpoint (ECS_CONTAINER_METADATA_URI_V4) of the tasks."""
            try:
                body, status = runner.metadata(self.path), 200
            except KeyError as error:
                body, status = {"error": str(error)}, 404
            self._reply(body, status)

        def _reply(self, body: dict, status: int) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    capture = Path(sys.argv[1])
    runner = TaskRunner(capture.parent)
    moto_patches.apply(capture, runner)
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # server threads inherit the mask
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    runner.endpoint_url = f"http://127.0.0.1:{port}"
    control = control_server(runner)
    runner.metadata_url = f"http://127.0.0.1:{control.server_address[1]}"
    print(f"PORT {port}", flush=True)
    print(f"CONTROL {control.server_address[1]}", flush=True)
    signal.sigwait(stop_signals)
    runner.shutdown()
    control.shutdown()
    server.stop()


if __name__ == "__main__":
    main()
