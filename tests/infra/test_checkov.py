"""checkov on every rendered infra/: no failed check; every skip says why.

checkov runs once per test run over every answer set's infra/ (the
`checkov_scan` fixture, tests/support/checkov_batch.py: isolated in uv's tool
environment, offline); skipped with the reason when no uv is found
(support.tools), failed under CI.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.terraform import TF_FIXTURES

FIXTURES = TF_FIXTURES
# checkov's own suppression syntax: "checkov:skip=<ID>[:<reason>]".
SKIP_COMMENT = re.compile(r"checkov:skip=\s*([A-Za-z_\d]*)(?::([^\n]*))?")


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
def test_checkov_passes(answer_set: tuple[str, dict], checkov_scan) -> None:
    report = checkov_scan(f"infra-{answer_set[0]}")
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
def test_checkov_reports_failures_of_insecure_fixture(checkov_scan) -> None:
    report = checkov_scan("fixture-bad_checkov")
    failed = {check["check_id"] for check in report["failed"]}
    assert "CKV2_AWS_6" in failed  # no public access block
    # skipped checks are counted, not failed
    assert "CKV_AWS_18" not in failed and "CKV_AWS_144" not in failed
    assert sum(summary.get("skipped", 0) for summary in report["summary"]) == 2
    assert "aws_s3_bucket.open at main.tf:1-5" in describe(report["failed"][0])


def test_skip_without_reason_is_reported() -> None:
    assert skips_without_reason(FIXTURES / "bad_checkov") == ["main.tf:3: #checkov:skip=CKV_AWS_144"]
    assert skips_without_reason(FIXTURES / "good") == []
