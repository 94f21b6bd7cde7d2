"""checkov once per test run, over every directory the run's tests need scanned.

checkov's start-up (uv's tool environment plus its imports, ~8 s of CPU) costs more than
scanning one rendered infra/ (~1-2 s), so the `checkov_scan` fixture
(tf_fixtures.py) copies every target into one directory, runs one checkov
process over it and splits the report per target. Under xdist the first worker
that needs a report runs the batch under a lock; the others read its result.

checkov's dependencies conflict with Prefect's, so it runs isolated through
`uv tool run --from checkov==3.3.30` (support.tools finds the uv), offline
(--skip-download). Without --quiet the
report lists passed and skipped checks with their file, which is what lets a
batch say per target how many it passed and skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from support.tools import checkov_command

TIMEOUT = 1800


class CheckovError(RuntimeError):
    """checkov itself failed (not: found failed checks)."""


def run_checkov(directory: Path, frameworks: tuple[str, ...] = ("terraform",)) -> list[dict]:
    """checkov's JSON reports (one per framework) of everything under `directory`."""
    runner = checkov_command()
    if runner is None:
        raise CheckovError("no uv to run checkov with (support.tools.checkov_missing)")
    command = [
        *runner,
        "--directory",
        str(directory),
        "--framework",
        *frameworks,
        "--output",
        "json",
        "--compact",
        "--skip-download",
    ]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"}
    # Let Python cache checkov's bytecode in its uv tool environment: compiling
    # its ~2,300 modules is most of a run's start-up.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env, check=False)
    # exit code 1 means "failed checks"; anything else non-zero is checkov itself failing
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise CheckovError(f"`{' '.join(command)}` exited {result.returncode}:\n{result.stderr[-4000:]}")
    report = json.loads(result.stdout)
    return report if isinstance(report, list) else [report]


def split_reports(reports: list[dict], targets: list[str], root: Path | None = None) -> dict[str, dict]:
    """Per target (a top-level folder of the scanned directory): its failed checks,
    parsing errors and a summary, with file paths relative to the target as a
    checkov run on the target alone reports them."""
    split: dict[str, dict] = {
        target: {"failed": [], "parsing_errors": [], "summary": []} for target in targets
    }

    def target_of(path: str) -> tuple[str, str] | None:
        if root is not None and path.startswith(f"{root}/"):
            path = path[len(str(root)) :]
        head, _, rest = path.lstrip("/").partition("/")
        return (head, "/" + rest) if head in split else None

    for report in reports:
        results = report.get("results", {})
        counts = {target: {"passed": 0, "failed": 0, "skipped": 0, "resources": set()} for target in targets}
        for kind in ("passed", "failed", "skipped"):
            for check in results.get(f"{kind}_checks", []):
                found = target_of(check.get("file_path", ""))
                if found is None:
                    raise CheckovError(
                        f"checkov reported a file outside every target: {check.get('file_path')}"
                    )
                target, relative = found
                check = {**check, "file_path": relative}
                counts[target][kind] += 1
                counts[target]["resources"].add((relative, check.get("resource")))
                if kind == "failed":
                    split[target]["failed"].append(check)
        for error in results.get("parsing_errors", []):
            found = target_of(error)
            for target in [found[0]] if found else targets:  # unattributable: every target fails
                split[target]["parsing_errors"].append(error)
        for target, count in counts.items():
            if count["resources"]:
                split[target]["summary"].append(
                    {
                        "check_type": report.get("check_type"),
                        "passed": count["passed"],
                        "failed": count["failed"],
                        "skipped": count["skipped"],
                        "resource_count": len(count["resources"]),
                    }
                )
    return split


def scan(targets: dict[str, Path], workdir: Path, frameworks: tuple[str, ...]) -> dict[str, dict]:
    """Copy each target (a directory, or a single file) to workdir/<name>/ and scan them all at once."""
    batch = workdir / "batch"
    shutil.rmtree(batch, ignore_errors=True)
    batch.mkdir(parents=True)
    ignore = shutil.ignore_patterns(".terraform", "*.tfstate", "*.tfstate.*", ".terraform.lock.hcl")
    for name, source in targets.items():
        if source.is_dir():
            shutil.copytree(source, batch / name, ignore=ignore)
        else:
            (batch / name).mkdir()
            shutil.copy2(source, batch / name / source.name)
    return split_reports(run_checkov(batch, frameworks), sorted(targets), batch)
