"""One local Prefect server (SQLite) for the whole test session.

The same server `prefect_test_harness` starts, with two differences that about
halve `make test`: it boots while pytest imports and collects the tests, and it
starts from a copy of an already-migrated database instead of migrating a new
one (the slowest part of a start). The migrated copy is kept in pytest's cache,
one per set of installed Prefect packages (their migrations and block types);
`pytest --cache-clear` drops it.
"""

import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import closing
from importlib.metadata import distributions
from pathlib import Path

import pytest

STARTUP_TIMEOUT_SECONDS = 120


class LocalServer:
    def __init__(self, migrated: Path | None):
        self.migrated = migrated
        self.workdir = Path(tempfile.mkdtemp(prefix="prefect-tests-"))
        self.database = self.workdir / "prefect.db"
        settings = {
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{self.database}",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # Only the services a temporary server runs (as prefect_test_harness does).
            "PREFECT__SERVER_EPHEMERAL": "1",
        }
        if migrated and migrated.exists():
            shutil.copyfile(migrated, self.database)
            settings["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] = "false"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.log = self.workdir / "server.log"
        command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--log-level", "error", "--factory", "prefect.server.api.server:create_app"]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command,
                env={**os.environ, **settings},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            code = self.process.poll()
            problem = f"exited with code {code}" if code is not None else "did not answer"
            pytest.exit(
                f"The local Prefect server for the tests {problem} (timeout "
                f"{STARTUP_TIMEOUT_SECONDS} s). Its output:\n{self.log.read_text()}",
                returncode=1,
            )
        if self.migrated and not self.migrated.exists():
            self.keep_migrated_copy()

    def keep_migrated_copy(self) -> None:
        """Snapshot the database before any test writes to it (SQLite's online backup)."""
        partial = self.migrated.with_name(f"{self.migrated.name}.{os.getpid()}")
        source, copy = sqlite3.connect(self.database), sqlite3.connect(partial)
        with closing(source), closing(copy):
            source.backup(copy)
        partial.replace(self.migrated)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


SERVER = pytest.StashKey[LocalServer]()


def prefect_packages_key() -> str:
    """Changes with any installed prefect* package's version."""
    packages = sorted(
        f"{dist.name}=={dist.version}"
        for dist in distributions()
        if (dist.name or "").lower().startswith("prefect")
    )
    return hashlib.sha256(" ".join(packages).encode()).hexdigest()[:16]


def pytest_configure(config: pytest.Config) -> None:
    cache = getattr(config, "cache", None)
    migrated = cache.mkdir("prefect-server") / f"{prefect_packages_key()}.db" if cache else None
    config.stash[SERVER] = server = LocalServer(migrated)
    # Set before the tests import prefect, which reads its settings on import.
    os.environ["PREFECT_API_URL"] = server.api_url


def pytest_unconfigure(config: pytest.Config) -> None:
    if server := config.stash.get(SERVER, None):
        server.stop()


@pytest.fixture(autouse=True, scope="session")
def prefect_api(pytestconfig: pytest.Config):
    pytestconfig.stash[SERVER].wait_until_healthy()
    yield
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    # Deliver what the tests logged and emitted before the server stops.
    APILogWorker.drain_all()
    EventsWorker.drain_all()
