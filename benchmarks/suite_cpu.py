"""Where a command's CPU goes, by kind of process: `suite_cpu.py [--show KIND] [-- COMMAND ...]`.

Runs COMMAND (default: the README's test command, `bash .ci/run`) and samples
/proc twice a second, keeping each descendant process's latest user+system CPU
and what it runs. Processes that live less than half a second are missed, so
the total is a little under `time`'s; the split is what to cut first when the
suite outgrows its budget.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
# First match wins; the pattern is searched in the process's command line.
KINDS = [
    ("terraform-provider-aws", r"terraform-provider-aws"),
    ("terraform", r"^\S*terraform "),
    ("prefect server", r"prefect server start|uvicorn .*prefect\.server"),
    # A flow run in a task is two processes that import Prefect: the container's
    # command (`<package>.flow_run`, or `flow-run execute`) and the engine it
    # starts; a process worker's run is the engine alone.
    ("flow runs", r"\.flow_run\b|flow-run execute|prefect[./]runner[./]_workspace_|prefect\.engine"),
    ("prefect worker", r"worker start|The worker container's command"),
    ("prefect CLI", r"-m prefect |/prefect "),
    ("moto (emulator)", r"moto"),
    ("checkov", r"checkov"),
    ("copier", r"copier"),
    ("dask", r"dask"),
    ("generated project's pytest", r"generated-pytest"),
    ("pytest (xdist workers)", r"exec\(eval\(sys\.stdin|pytest"),
    ("uv (incl. bytecode compile)", r"\buv\b|pip_compileall"),
]


# What differs between runs of the same command: temporary paths, ids, ports.
VARYING = [
    (re.compile(r"/tmp/\S*/"), ".../"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\d{4,}"), "<n>"),
]


def kind_of(command: str) -> str:
    return next((kind for kind, pattern in KINDS if re.search(pattern, command)), "other")


def command_shape(command: str) -> str:
    """`command` without what changes from one run of it to the next."""
    for pattern, replacement in VARYING:
        command = pattern.sub(replacement, command)
    return command[:150]


def _stat(pid: str) -> tuple[str, str, float] | None:
    """(parent pid, start time, CPU seconds) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[1], fields[19], (int(fields[11]) + int(fields[12])) / TICKS


def _command(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def sample(command: list[str]) -> tuple[int, float, dict[tuple[str, str], list]]:
    started = time.monotonic()
    root = subprocess.Popen(command)
    root_stat = _stat(str(root.pid))
    ours = {str(root.pid): root_stat[1] if root_stat else ""}  # pid -> start time
    seen: dict[tuple[str, str], list] = {}  # (pid, start time) -> [command, CPU]
    while root.poll() is None:
        stats = {pid: stat for pid in filter(str.isdigit, os.listdir("/proc")) if (stat := _stat(pid))}
        # By start time, so a parent is placed before its children; a reused pid
        # is someone else's process until its parent is ours.
        for pid, (parent, start, cpu) in sorted(stats.items(), key=lambda item: int(item[1][1])):
            if ours.get(pid) != start:
                parent_stat = stats.get(parent)
                if not (parent_stat and ours.get(parent) == parent_stat[1]):
                    continue
                ours[pid] = start
            entry = seen.setdefault((pid, start), ["", 0.0])
            # Read each time: a forked child shows its parent's command until it execs.
            entry[:] = [_command(pid) or entry[0], cpu]
        time.sleep(0.5)
    return root.returncode, time.monotonic() - started, seen


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--show",
        metavar="KIND",
        help="also list the commands of KIND that cost most, the runs of each added up",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="after --; default: bash .ci/run")
    args = parser.parse_args(argv)
    command = (args.command[1:] if args.command[:1] == ["--"] else args.command) or ["bash", ".ci/run"]
    code, wall, seen = sample(command)
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for entry_command, cpu in seen.values():
        totals = by_kind[kind_of(entry_command)]
        totals[0] += cpu
        totals[1] += 1
    total = sum(cpu for cpu, _ in by_kind.values())
    print(f"`{' '.join(command)}` exited {code} after {wall / 60:.1f} min; sampled CPU {total / 60:.1f} min")
    for kind, (cpu, count) in sorted(by_kind.items(), key=lambda item: -item[1][0]):
        print(f"  {kind:32} {cpu:7.0f} s  {cpu / total:6.1%}  {count:5d} processes")
    if args.show:
        by_shape: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        for entry_command, cpu in seen.values():
            if kind_of(entry_command) == args.show:
                totals = by_shape[command_shape(entry_command)]
                totals[0] += cpu
                totals[1] += 1
        for shape, (cpu, count) in sorted(by_shape.items(), key=lambda item: -item[1][0])[:20]:
            print(f"    {cpu:7.1f} s  {count:4d} x  {shape!r}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
