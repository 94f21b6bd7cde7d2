"""The executing half of the emulator: every task RunTask starts runs its containers as local processes.

Lives in the emulator's process (`moto_patches` hooks it into RunTask,
StopTask and the task's network interface). Once `configure` has been called
(the tests' control call, see `emulator.MotoServer.execute_tasks`), each task
RunTask creates:

- gets a loopback address of its own (127.0.0.0/8) as private and public IP;
- starts every essential container of its task definition, with the
  definition's and the overrides' command and environment, its secrets read
  from the emulated Secrets Manager, the image's ENTRYPOINT/CMD/ENV/WORKDIR
  from the project's Dockerfile, and the image's WORKDIR bind-mounted from a
  directory of its own (`container_init.py` under `unshare --mount`);
- is RUNNING once its processes run, and STOPPED when an essential container
  exits or it is stopped, with the exit codes, stopCode and stoppedReason in
  DescribeTasks and in the "ECS Task State Change" events, which go through
  the emulated EventBridge (and so through the stack's rule to its queue).

StopTask (and a Spot interruption, a test control) sends SIGTERM to each
container's first process, then SIGKILL to its process group after the
container's stopTimeout, as ECS does.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONTAINER_INIT = HERE / "container_init.py"
TINI_EMULATION = HERE / "tini_emulation.py"
DEFAULT_STOP_TIMEOUT = 30  # ECS's default for Fargate
CAPACITY_UNAVAILABLE = (
    "Capacity is unavailable at this time. Please try again later or in a different availability zone"
)
SPOT_REASON = "Your Spot Task was interrupted."
ESSENTIAL_EXITED = "Essential container in task exited"


@dataclass
class ContainerProcess:
    name: str
    process: subprocess.Popen
    log: Path
    stop_timeout: int
    essential: bool
    exit_code: int | None = None
    reason: str | None = None

    def namespace(self) -> str | None:
        """The container's mount namespace, as container_init.py recorded it."""
        record = self.log.with_name("namespace")
        return record.read_text() if record.exists() else None


@dataclass
class RunningTask:
    task: Any  # moto's ecs Task
    directory: Path
    address: str
    containers: list[ContainerProcess] = field(default_factory=list)
    stopping: bool = False
    stopped: threading.Event = field(default_factory=threading.Event)
    last_event: dict[str, Any] | None = None


class TaskRunner:
    """Runs the tasks of one emulator; configured and driven by the tests' control calls."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.config: dict[str, Any] | None = None
        self.endpoint_url = ""
        self.metadata_url = ""  # the task metadata endpoint (the launcher's control server)
        self.tasks: dict[str, RunningTask] = {}
        self.unavailable: set[str] = set()
        self.lock = threading.RLock()
        self.run_task_held = threading.Condition(self.lock)
        self.holding_run_tasks = False
        self.held_run_tasks = 0
        self._addresses = itertools.count(2)
        self.pid_file = workdir / "task-sessions"

    # --- control calls ---------------------------------------------------------
    def configure(self, config: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.config = config
        return {"executing": True}

    def set_capacity(self, provider: str, available: bool) -> dict[str, Any]:
        with self.lock:
            (self.unavailable.discard if available else self.unavailable.add)(provider)
        return {"unavailable": sorted(self.unavailable)}

    def hold_run_tasks(self, hold: bool) -> dict[str, Any]:
        """While on, each RunTask waits; turned off, the waiting ones fail and start no task.

        What ECS sees when the caller's own task is stopped before its RunTask
        reaches it: the worker died mid-submission (Prefect #20485).
        """
        with self.run_task_held:
            self.holding_run_tasks = hold
            self.run_task_held.notify_all()
            return {"holding": hold, "held": self.held_run_tasks}

    def held_run_task(self) -> bool:
        """Called by RunTask: waits while RunTasks are held; True if this one was."""
        with self.run_task_held:
            if not self.holding_run_tasks:
                return False
            self.held_run_tasks += 1
            self.run_task_held.wait_for(lambda: not self.holding_run_tasks)
            return True

    def interrupt_as_spot(self, task_arn: str) -> dict[str, Any]:
        running = self.find(task_arn)
        self.stop(running, stop_code="SpotInterruption", reason=SPOT_REASON)
        return {"taskArn": running.task.task_arn}

    def kill_container(
        self, task_arn: str, reason: str = "OutOfMemoryError: Container killed due to memory usage"
    ):
        """The platform kills the task's containers (SIGKILL to PID 1), as an out-of-memory kill does."""
        running = self.find(task_arn)
        for container in running.containers:
            container.reason = reason
            _signal(container.process.pid, signal.SIGKILL, group=False)
        return {"taskArn": running.task.task_arn}

    def stopped_as(self, task_arn: str, stop_code: str, reason: str) -> dict[str, Any]:
        """A task that runs no process (tests that fake its events) is STOPPED with ECS's stop code."""
        from moto.ecs.models import ecs_backends

        for regions in ecs_backends.values():
            for backend in regions.values():
                for tasks in backend.tasks.values():
                    if (task := tasks.get(task_arn)) is not None:
                        task.last_status = task.desired_status = "STOPPED"
                        task.stop_code, task.stopped_reason = stop_code, reason
                        return {"taskArn": task_arn}
        raise KeyError(f"no task {task_arn}")

    def emit_again(self, task_arn: str) -> dict[str, Any]:
        """Deliver the task's last state-change event once more (a late or redelivered message)."""
        running = self.find(task_arn)
        if running.last_event is None:
            raise RuntimeError(f"task {task_arn} sent no event yet")
        self._put_event(running.task, running.last_event)
        return {"detail": running.last_event}

    def describe_process(self, task_arn: str) -> dict[str, Any]:
        running = self.find(task_arn)
        return {
            "taskArn": running.task.task_arn,
            "address": running.address,
            "directory": str(running.directory),
            "stopped": running.stopped.is_set(),
            "containers": {
                c.name: {"pid": c.process.pid, "exitCode": c.exit_code, "log": str(c.log)}
                for c in running.containers
            },
        }

    def metadata(self, path: str) -> dict[str, Any]:
        """The task metadata endpoint v4: /v4/<task id>/<container> and .../task, as the agent serves them."""
        parts = path.strip("/").split("/")
        if len(parts) not in (3, 4) or parts[0] != "v4" or parts[3:] not in ([], ["task"]):
            raise KeyError(f"no metadata at {path}")
        running = self.find(parts[1])
        if parts[3:] == ["task"]:
            return task_metadata(running)
        [container] = [c for c in running.task.containers if c.name == parts[2]]
        return container_metadata(running, container)

    def find(self, task_arn: str) -> RunningTask:
        with self.lock:
            for arn, running in self.tasks.items():
                if arn == task_arn or arn.endswith("/" + task_arn.rsplit("/", 1)[-1]):
                    return running
        raise KeyError(f"no task {task_arn} ran on the emulator")

    # --- hooks from moto_patches -------------------------------------------------
    @property
    def executing(self) -> bool:
        return self.config is not None

    def capacity_failure(self, provider: str | None) -> str | None:
        return CAPACITY_UNAVAILABLE if provider in self.unavailable else None

    def next_address(self) -> str:
        number = next(self._addresses)
        return f"127.77.{number // 250}.{number % 250 + 2}"

    def start(self, backend: Any, task: Any, address: str) -> None:
        """Start `task`'s containers in the background (RunTask answers at once, as on AWS)."""
        directory = self.workdir / "tasks" / task.id
        running = RunningTask(task=task, directory=directory, address=address)
        with self.lock:
            self.tasks[task.task_arn] = running
        task.emulated_status = "PROVISIONING"
        for container in task.containers:
            container.exitCode = None
            container.last_status = "PENDING"
        threading.Thread(target=self._run, args=(backend, running), daemon=True).start()

    def stop(self, running: RunningTask, *, stop_code: str, reason: str) -> None:
        """ECS stopping a task: desired STOPPED, SIGTERM now, SIGKILL after each stopTimeout."""
        task = running.task
        with self.lock:
            if running.stopping or running.stopped.is_set():
                return
            running.stopping = True
            task.desired_status = "STOPPED"
            task.stop_code = stop_code
            task.stopped_reason = reason
            task.stopping_at = _now()
        for container in running.containers:
            _signal(container.process.pid, signal.SIGTERM, group=False)
            timer = threading.Timer(container.stop_timeout, self._kill, args=(container,))
            timer.daemon = True
            timer.start()
        if not running.containers:  # stopped before its processes started
            self._finish(running)

    def shutdown(self) -> None:
        """Kill the processes of every container still running (the emulator stops).

        Only running ones: an ended container's session id and namespace inode
        may be reused by then, by another test's processes.
        """
        with self.lock:
            containers = [c for running in self.tasks.values() for c in running.containers]
        for container in containers:
            if container.process.poll() is None:
                _signal(container.process.pid, signal.SIGKILL, group=True, namespace=container.namespace())

    # --- the task's life ------------------------------------------------------------
    def _run(self, backend: Any, running: RunningTask) -> None:
        task = running.task
        try:
            definition = backend.describe_task_definition(task.task_definition_arn)
            for container_definition in definition.container_definitions:
                if running.stopping:
                    break
                running.containers.append(self._start_container(backend, running, container_definition))
        except Exception as error:  # the image or a secret is missing: ECS's TaskFailedToStart
            with self.lock:
                task.stop_code = "TaskFailedToStart"
                task.stopped_reason = f"CannotStartContainerError: {error}"
                running.stopping = True
            for container in running.containers:
                _signal(container.process.pid, signal.SIGKILL, group=True, namespace=container.namespace())
            self._finish(running)
            return
        if running.stopping and not running.containers:
            self._finish(running)
            return
        task.emulated_status = "RUNNING"
        task.started_at = _now()
        for container in task.containers:
            container.last_status = "RUNNING"
        self._emit(running)
        watchers = [
            threading.Thread(target=self._watch, args=(running, c), daemon=True) for c in running.containers
        ]
        for watcher in watchers:
            watcher.start()

    def _start_container(self, backend: Any, running: RunningTask, definition: dict) -> ContainerProcess:
        config = self.config or {}
        name = definition["name"]
        image = _image_of(config, definition.get("image", ""))
        override = next(
            (o for o in running.task.overrides.get("containerOverrides", []) if o.get("name") == name),
            {},
        )
        entrypoint = definition.get("entryPoint") or image["entrypoint"]
        command = override.get("command") or definition.get("command") or image["cmd"]
        argv = [*entrypoint, *command]
        if argv and argv[0].endswith("/tini") and not Path(argv[0]).exists():
            argv = [sys.executable, str(TINI_EMULATION), *argv[1:]]
        if not argv:
            raise RuntimeError(f"container {name} has neither an entrypoint nor a command")

        directory = running.directory / name
        workdir_source = directory / "workdir"
        home = directory / "home"
        workdir_source.mkdir(parents=True, exist_ok=True)
        Path(image["workdir"]).mkdir(parents=True, exist_ok=True)  # the bind mount's mount point
        home.mkdir(exist_ok=True)
        for source, target in image["copies"]:
            _copy_into(Path(image["root"]) / source, workdir_source / target)
        env = {
            **image["env"],
            "HOME": str(home),
            "HOSTNAME": running.address,
            "AWS_REGION": running.task.region_name,
            "AWS_DEFAULT_REGION": running.task.region_name,
            "ECS_CONTAINER_METADATA_URI_V4": f"{self.metadata_url}/v4/{running.task.id}/{name}",
        }
        env["PATH"] = f"{config['python_bin']}:{env.get('PATH', '/usr/local/bin:/usr/bin:/bin')}"
        env.update({item["name"]: item["value"] for item in definition.get("environment") or []})
        env.update({item["name"]: item["value"] for item in override.get("environment") or []})
        env.update(self._secrets(backend, running.task, definition.get("secrets") or []))
        # The task role's credentials, and AWS's endpoints, are the emulator's.
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        # The one substitution: Prefect's API is the test's local server.
        env["PREFECT_API_URL"] = config["prefect_api_url"]

        spec = directory / "container.json"
        spec.write_text(
            json.dumps(
                {"workdir": image["workdir"], "workdir_source": str(workdir_source), "argv": argv, "env": env}
            )
        )
        log = directory / "output.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    sys.executable,
                    str(CONTAINER_INIT),
                    str(spec),
                ],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        with self.lock, self.pid_file.open("a") as pids:
            pids.write(f"{process.pid}\n")
        return ContainerProcess(
            name=name,
            process=process,
            log=log,
            stop_timeout=int(definition.get("stopTimeout") or DEFAULT_STOP_TIMEOUT),
            essential=definition.get("essential", True),
        )

    def _secrets(self, backend: Any, task: Any, secrets: list[dict]) -> dict[str, str]:
        """ECS's `secrets`: Secrets Manager ARNs, optionally ':json-key:version-stage:version-id'."""
        from moto.secretsmanager.models import secretsmanager_backends

        manager = secretsmanager_backends[backend.account_id][task.region_name]
        values = {}
        for secret in secrets:
            arn, _, rest = secret["valueFrom"].partition(":secret:")
            name_and_key = rest.split(":")
            secret_id = f"{arn}:secret:{name_and_key[0]}"
            json_key = name_and_key[1] if len(name_and_key) > 1 else ""
            value = manager.get_secret_value(secret_id, None, None)["SecretString"]
            values[secret["name"]] = json.loads(value)[json_key] if json_key else value
        return values

    def _watch(self, running: RunningTask, container: ContainerProcess) -> None:
        code = container.process.wait()
        container.exit_code = 128 - code if code < 0 else code
        # When a container's PID 1 ends, the kernel kills the rest of its PID namespace.
        kill_session(container.process.pid, namespace=container.namespace())
        for moto_container in running.task.containers:
            if moto_container.name == container.name:
                moto_container.exitCode = container.exit_code
                moto_container.last_status = "STOPPED"
                moto_container.reason = container.reason
        if container.essential:  # no-op when the task is already stopping (StopTask, Spot)
            self.stop(running, stop_code="EssentialContainerExited", reason=ESSENTIAL_EXITED)
        if all(c.exit_code is not None for c in running.containers):
            self._finish(running)

    def _kill(self, container: ContainerProcess) -> None:
        if container.process.poll() is None:
            _signal(container.process.pid, signal.SIGKILL, group=True, namespace=container.namespace())

    def _finish(self, running: RunningTask) -> None:
        with self.lock:
            if running.stopped.is_set():
                return
            task = running.task
            task.desired_status = "STOPPED"
            task.emulated_status = "STOPPED"
            task.stopped_at = task.execution_stopped_at = _now()
            for container in task.containers:
                container.last_status = "STOPPED"
            running.stopped.set()
        self._emit(running)

    def _emit(self, running: RunningTask) -> None:
        """The "ECS Task State Change" event, through the emulated EventBridge (rules route it)."""
        running.last_event = task_state_detail(running)
        self._put_event(running.task, running.last_event)

    @staticmethod
    def _put_event(task: Any, detail: dict[str, Any]) -> None:
        from moto.events.models import events_backends

        backend = events_backends[task._account_id][task.region_name]
        backend.put_events(
            [
                {
                    "Source": "aws.ecs",
                    "DetailType": "ECS Task State Change",
                    "Resources": [task.task_arn],
                    "Detail": json.dumps(detail),
                }
            ]
        )


def task_state_detail(running: RunningTask) -> dict[str, Any]:
    """The event's detail, as AWS sends it (the fields a consumer reads)."""
    task = running.task
    exit_codes = {c.name: c.exit_code for c in running.containers}
    detail: dict[str, Any] = {
        "clusterArn": task.cluster_arn,
        "taskArn": task.task_arn,
        "taskDefinitionArn": task.task_definition_arn,
        "group": task.group,
        "startedBy": task.started_by,
        "launchType": task.launch_type or "FARGATE",
        "createdAt": ecs_time(getattr(task, "created_at", None)),
        "lastStatus": task.emulated_status,
        "desiredStatus": task.desired_status,
        "startedAt": ecs_time(getattr(task, "started_at", None)),
        "updatedAt": ecs_time(_now()),
        "attachments": task.attachments,
        "containers": [
            {
                "containerArn": container.container_arn,
                "name": container.name,
                "image": container.image,
                "lastStatus": container.last_status,
                "taskArn": task.task_arn,
                **(
                    {"exitCode": exit_codes[container.name]}
                    if exit_codes.get(container.name) is not None
                    else {}
                ),
                **({"reason": container.reason} if getattr(container, "reason", None) else {}),
            }
            for container in task.containers
        ],
        "overrides": task.overrides,
    }
    if task.capacity_provider_name:
        detail["capacityProviderName"] = task.capacity_provider_name
    if task.emulated_status == "STOPPED":
        detail.update(
            {
                "stopCode": task.stop_code,
                "stoppedReason": task.stopped_reason,
                "stoppingAt": ecs_time(getattr(task, "stopping_at", None)),
                "stoppedAt": ecs_time(task.stopped_at),
                "executionStoppedAt": ecs_time(task.stopped_at),
            }
        )
    return {key: value for key, value in detail.items() if value is not None}


def container_metadata(running: RunningTask, container: Any) -> dict[str, Any]:
    """A container's JSON of the task metadata endpoint v4 (the fields a consumer reads)."""
    task = running.task
    return {
        "DockerId": f"{task.id}-{container.name}",
        "Name": container.name,
        "DockerName": f"ecs-{container.name}",
        "Image": container.image,
        "Labels": {
            "com.amazonaws.ecs.cluster": task.cluster_arn,
            "com.amazonaws.ecs.container-name": container.name,
            "com.amazonaws.ecs.task-arn": task.task_arn,
            "com.amazonaws.ecs.task-definition-family": _family(task),
        },
        "DesiredStatus": "STOPPED" if task.desired_status == "STOPPED" else "RUNNING",
        "KnownStatus": container.last_status,
        "Type": "NORMAL",
        "ContainerARN": container.container_arn,
        "Networks": [
            {
                "NetworkMode": "awsvpc",
                "IPv4Addresses": [running.address],
                "PrivateDNSName": running.address,
            }
        ],
    }


def task_metadata(running: RunningTask) -> dict[str, Any]:
    """The task's JSON of the task metadata endpoint v4 (`${ECS_CONTAINER_METADATA_URI_V4}/task`)."""
    task = running.task
    return {
        "Cluster": task.cluster_arn,
        "TaskARN": task.task_arn,
        "Family": _family(task),
        "Revision": task.task_definition_arn.rsplit(":", 1)[-1],
        "DesiredStatus": task.desired_status,
        "KnownStatus": task.emulated_status,
        "LaunchType": task.launch_type or "FARGATE",
        "AvailabilityZone": f"{task.region_name}a",
        "Containers": [container_metadata(running, c) for c in task.containers],
    }


def _family(task: Any) -> str:
    return task.task_definition_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def _image_of(config: dict[str, Any], image: str) -> dict[str, Any]:
    repository = image.rsplit(":", 1)[0] if "@" not in image else image.split("@", 1)[0]
    images = config.get("images", {})
    if repository not in images:
        raise RuntimeError(f"CannotPullContainerError: {image} is not an image of the emulated registry")
    return images[repository]


def _copy_into(source: Path, target: Path) -> None:
    """The Dockerfile's COPY of `source`; a file the render lacks (uv.lock before `uv lock`) is skipped."""
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _signal(pid: int, signum: int, *, group: bool, namespace: str | None = None) -> None:
    """Signal a container's first process, or (group) every process of its session.

    The session, not the process group: tini puts its child in a group of its own.
    """
    if group:
        kill_session(pid, signum, namespace)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def kill_session(session_id: int, signum: int = signal.SIGKILL, namespace: str | None = None) -> None:
    """Signal every process of a container: its session (start_new_session), and with `namespace`
    every process in its mount namespace (processes that started sessions of their own)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            in_namespace = namespace is not None and os.readlink(stat.parent / "ns" / "mnt") == namespace
        except OSError:
            continue
        if int(fields[3]) == session_id or in_namespace:  # after "pid (comm)": state, ppid, pgrp, session
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signum)


def _now() -> datetime:
    return datetime.now(UTC)


def ecs_time(value: datetime | None) -> str | None:
    """A time as ECS writes it in its events: UTC, milliseconds, Z."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if value else None
