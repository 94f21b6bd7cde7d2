"""A throwaway Prefect server (sqlite, own PREFECT_HOME) and the project's Prefect CLI steps against it.

The server is `prefect server start` in a subprocess on 127.0.0.1, with its
event and automation services on (the default), so automations react to
flow-run events as they do in Prefect Cloud or a self-hosted server.

Migrating a new SQLite database is most of a server's start (~9 s of CPU
here), so the first server keeps a copy of its database as it is once healthy
(migrated, block types registered, nothing else) and later servers start from
that copy without migrating or registering block types. The copy is keyed, as
in the generated project's conftest, by every installed prefect* package
(their migrations and block types).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import closing
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path

STARTUP_TIMEOUT = 240  # generous: it starts while the applies load the machine
PREFECT = [sys.executable, "-m", "prefect"]
_PREFECT_PACKAGES = " ".join(
    sorted(f"{dist.name}=={dist.version}" for dist in distributions() if dist.name.startswith("prefect"))
)
MIGRATED_DATABASE = Path(tempfile.gettempdir()) / (
    f"prefect-migrated-{hashlib.sha256(_PREFECT_PACKAGES.encode()).hexdigest()[:16]}-{os.getuid()}.db"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PrefectServer:
    workdir: Path
    process: subprocess.Popen | None = None
    port: int = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def client_env(self) -> dict[str, str]:
        """Settings every Prefect process of the test uses (CLI, worker, client)."""
        return {
            "PREFECT_HOME": str(self.workdir / "home"),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
            "PREFECT_LOGGING_LEVEL": "INFO",
        }

    def start(self) -> PrefectServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        database = self.workdir / "prefect.db"
        env = {
            **os.environ,
            **self.client_env(),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{database}",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
        }
        migrated = MIGRATED_DATABASE.exists()
        if migrated:
            database.write_bytes(MIGRATED_DATABASE.read_bytes())
            env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] = "false"
            # ~0.8 s of CPU a start.
            env["PREFECT_API_BLOCKS_REGISTER_ON_START"] = "false"
        env.pop("PREFECT_API_KEY", None)
        log = (self.workdir / "server.log").open("w")
        self.process = subprocess.Popen(
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stop() ends the server and its children
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        if not migrated:
                            keep_migrated_copy(database)
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"Prefect server did not start within {STARTUP_TIMEOUT} s:\n"
            f"{(self.workdir / 'server.log').read_text()[-4000:]}"
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


def keep_migrated_copy(database: Path) -> None:
    """Snapshot a just-started server's database for later servers (SQLite's online backup)."""
    partial = MIGRATED_DATABASE.with_name(f"{MIGRATED_DATABASE.name}.{os.getpid()}")
    with closing(sqlite3.connect(database)) as source, closing(sqlite3.connect(partial)) as copy:
        source.backup(copy)
    partial.replace(MIGRATED_DATABASE)


def run_prefect(args: list[str], *, env: dict[str, str], cwd: Path, stdin: str | None = None, timeout=180):
    """Run the Prefect CLI; raise with its output when it fails."""
    result = subprocess.run(
        [*PREFECT, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"`prefect {' '.join(args)}` exited {result.returncode}\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result
