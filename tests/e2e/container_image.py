"""What the task runner needs from the rendered project's Dockerfile: the image it would build.

No Docker engine here, so the image is read, not built: its last stage's
ENTRYPOINT, CMD, ENV and WORKDIR, and the COPY instructions that put the
project's files into it (sources in the build context; `COPY --from` copies
tools such as uv and is skipped). The task runner copies those files into the
directory that stands in for the image's WORKDIR of each task and runs the
command with this interpreter's environment in place of the image's
(`uv sync` of the same uv.lock, see docs/emulator.md).
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from pathlib import Path
from typing import Any

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the last stage, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    parsed = [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]
    last_from = max(i for i, (name, _) in enumerate(parsed) if name == "FROM")
    return parsed[last_from:]


def _exec_form(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else ["/bin/sh", "-c", arguments]


def _env(arguments: str, env: dict[str, str]) -> dict[str, str]:
    tokens = shlex.split(arguments)
    if tokens and "=" not in tokens[0]:  # legacy `ENV NAME value`
        return {tokens[0]: " ".join(tokens[1:])}
    expand = re.compile(r"\$\{?(\w+)\}?")
    return {
        name: expand.sub(lambda match: env.get(match.group(1), ""), value)
        for name, value in (token.split("=", 1) for token in tokens)
    }


def image_config(project: Path, dockerfile: str = "Dockerfile") -> dict[str, Any]:
    """The task runner's description of the image `project/dockerfile` builds."""
    env = {"PATH": BASE_PATH}
    config: dict[str, Any] = {"root": str(project), "entrypoint": [], "cmd": [], "workdir": "/", "copies": []}
    for name, arguments in instructions(project / dockerfile):
        if name == "ENV":
            env.update(_env(arguments, env))
        elif name == "WORKDIR":
            config["workdir"] = posixpath.join(config["workdir"], arguments)
        elif name == "ENTRYPOINT":
            config["entrypoint"], config["cmd"] = _exec_form(arguments), []
        elif name == "CMD":
            config["cmd"] = _exec_form(arguments)
        elif name == "COPY" and "--from" not in arguments:
            *sources, target = [token for token in shlex.split(arguments) if not token.startswith("--")]
            for source in sources:
                config["copies"].append(
                    (source.rstrip("/"), _copy_target(project, source, target, config["workdir"]))
                )
    config["env"] = env
    return config


def _copy_target(project: Path, source: str, target: str, workdir: str) -> str:
    """Where COPY puts `source`, relative to WORKDIR: a directory's contents go into the target,
    a file into a target ending in "/" (or ".") keeps its name."""
    destination = posixpath.join(workdir, target)
    is_directory_target = target.endswith("/") or target in (".", "..")
    if is_directory_target and not (project / source).is_dir():
        destination = posixpath.join(destination, posixpath.basename(source.rstrip("/")))
    return posixpath.relpath(destination, workdir)
