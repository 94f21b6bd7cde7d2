"""checkov on every rendered infra/: no failed check; every skip says why.

checkov's dependencies conflict with Prefect's, so it runs isolated through
`uvx --from checkov==3.3.30` (skipped, with the reason, without uvx); one run
per answer set (~15 s), offline (--skip-download).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHECKOV = "checkov==3.3.30"
FIXTURES = Path(__file__).parent / "fixtures" / "tf"
# checkov's own suppression syntax: "checkov:skip=<ID>[:<reason>]".
SKIP_COMMENT = re.compile(r"checkov:skip=\s*([A-Za-z_\d]*)(?::([^\n]*))?")


def run_checkov(directory: Path) -> dict:
    """checkov's JSON report of `directory` (terraform framework only)."""
    uvx = shutil.which("uvx")
    if uvx is None:
        pytest.skip(f"uvx is not on PATH: checkov runs isolated via `uvx --from {CHECKOV}`")
    command = [
        uvx,
        "--from",
        CHECKOV,
        "checkov",
        "--directory",
        str(directory),
        "--framework",
        "terraform",
        "--output",
        "json",
        "--quiet",
        "--compact",
        "--skip-download",
    ]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, check=False)
    # exit code 1 means "failed checks"; anything else non-zero is checkov itself failing
    if result.returncode not in (0, 1) or not result.stdout.strip():
        pytest.fail(f"`{' '.join(command)}` exited {result.returncode}:\n{result.stderr[-4000:]}")
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    return {
        "failed": [check for each in reports for check in each.get("results", {}).get("failed_checks", [])],
        "parsing_errors": [
            error for each in reports for error in each.get("results", {}).get("parsing_errors", [])
        ],
        "summary": [each.get("summary", each) for each in reports],
    }


def describe(check: dict) -> str:
    start, end = check.get("file_line_range", [0, 0])
    return (
        f"{check['check_id']} {check.get('check_name', '')}\n"
        f"    {check.get('resource')} at {check.get('file_path', '').lstrip('/')}:{start}-{end}"
    )


def skips_without_reason(directory: Path) -> list[str]:
    """Every `checkov:skip=` comment of the .tf files that lacks an ID or a reason."""
    problems = []
    for path in sorted(directory.rglob("*.tf")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in SKIP_COMMENT.finditer(line):
                check_id, reason = match.group(1), (match.group(2) or "").strip()
                if not check_id or not reason:
                    problems.append(f"{path.relative_to(directory)}:{number}: {line.strip()}")
    return problems


@pytest.mark.terraform
def test_checkov_passes(project: Path) -> None:
    report = run_checkov(project / "infra")
    assert not report["parsing_errors"], f"checkov could not parse: {report['parsing_errors']}"
    assert not report["failed"], f"{len(report['failed'])} failed checkov check(s):\n" + "\n".join(
        describe(check) for check in report["failed"]
    )
    assert any(summary.get("resource_count") for summary in report["summary"]), report["summary"]


def test_every_checkov_skip_has_a_reason(project: Path) -> None:
    problems = skips_without_reason(project / "infra")
    assert not problems, (
        "checkov skips need `#checkov:skip=<ID>:<why it is safe>`; these lack the ID or the reason:\n  "
        + "\n  ".join(problems)
    )


# ---------------------------------------------------------------------------
# The checks fail on broken fixtures
# ---------------------------------------------------------------------------
@pytest.mark.terraform
def test_checkov_reports_failures_of_insecure_fixture() -> None:
    report = run_checkov(FIXTURES / "bad_checkov")
    failed = {check["check_id"] for check in report["failed"]}
    assert "CKV2_AWS_6" in failed  # no public access block
    # --quiet leaves skipped checks out of the report, but counts them
    assert "CKV_AWS_18" not in failed and "CKV_AWS_144" not in failed
    assert sum(summary.get("skipped", 0) for summary in report["summary"]) == 2
    assert "aws_s3_bucket.open at main.tf:1-5" in describe(report["failed"][0])


def test_skip_without_reason_is_reported() -> None:
    assert skips_without_reason(FIXTURES / "bad_checkov") == ["main.tf:3: #checkov:skip=CKV_AWS_144"]
    assert skips_without_reason(FIXTURES / "good") == []
