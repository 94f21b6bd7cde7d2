"""Running a rendered project's ECS tasks for real on its emulated stack (see docs/emulator.md).

`execute_tasks(stack, prefect)` switches a stack's emulator to executing: from
then on every RunTask on it (the worker's, a recovery re-run's,
dask-cloudprovider's) starts its containers as processes built from the
project's Dockerfile, talking to the emulator and to `prefect`'s API.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from container_image import image_config
from stacks import EmulatedStack
from support.prefect_local import PrefectServer


def execution_unavailable() -> str | None:
    """Why this machine cannot run emulated containers (None when it can)."""
    if os.geteuid() != 0:
        return "emulated containers bind-mount the image's WORKDIR: needs root (unshare --mount)"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "emulated containers need util-linux's unshare and mount"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"unshare --mount fails here: {probe.stderr.decode().strip()}"
    return None


def execute_tasks(stack: EmulatedStack, prefect: PrefectServer) -> None:
    """Every ECR repository of the stack holds the image of the project's Dockerfile."""
    image = image_config(stack.project.project)
    images = {outputs["ecr_repository_url"]: image for outputs in stack.outputs.values()}
    stack.server.execute_tasks(images=images, prefect_api_url=prefect.api_url)
