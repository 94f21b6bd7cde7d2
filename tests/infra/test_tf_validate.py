"""terraform fmt and terraform validate on every rendered infra/ root.

Uses this machine's terraform and the hashicorp/aws provider from the
filesystem mirror (tests/support/terraform.py); skips, with the reason, where either
is missing. Roots are validated in a private copy of infra/ so the shared
render stays free of .terraform/ directories and lock files.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from support.answers import recorded_answers
from support.terraform import TF_FIXTURES, TerraformError, run_terraform, terraform_roots

FIXTURES = TF_FIXTURES

pytestmark = pytest.mark.terraform


def _fmt_problems(directory: Path) -> str | None:
    """None when `terraform fmt -check` is happy, else each file's unified diff."""
    listed = run_terraform(
        ["fmt", "-check", "-recursive", "-list=true", "-no-color"], cwd=directory, env=None, check=False
    )
    if listed.returncode == 0:
        return None
    report = [f"not formatted per `terraform fmt` (in {directory}):", listed.stderr.strip()]
    for name in listed.stdout.split():
        path = directory / name
        formatted = run_terraform(
            ["fmt", "-no-color", "-"], cwd=directory, env=None, stdin=path.read_text()
        ).stdout
        report += difflib.unified_diff(
            path.read_text().splitlines(), formatted.splitlines(), name, f"{name} (formatted)", lineterm=""
        )
    return "\n".join(line for line in report if line)


def _validate(root: Path, env: dict[str, str]) -> str | None:
    try:
        run_terraform(["validate"], cwd=root, env=env)
    except TerraformError as error:
        return str(error)
    return None


def test_terraform_is_formatted(project: Path, terraform_bin: str) -> None:
    problem = _fmt_problems(project / "infra")
    assert problem is None, problem


def test_every_root_validates(project: Path, initialized_infra, tf_env: dict[str, str]) -> None:
    infra = initialized_infra(project)
    roots = terraform_roots(infra)
    answers = recorded_answers(project)
    expected = {f"envs/{env}" for env in answers["environments"]}
    if answers["terraform_backend"] == "s3":
        expected.add("bootstrap")
    found = {str(root.relative_to(infra)) for root in roots}
    assert expected <= found, f"roots {sorted(expected - found)} missing from {infra}"
    failures = [problem for root in roots if (problem := _validate(root, tf_env))]
    assert not failures, "\n\n".join(failures)


# ---------------------------------------------------------------------------
# The checks fail on broken fixtures
# ---------------------------------------------------------------------------
def test_fmt_check_catches_unformatted_file(terraform_bin: str) -> None:
    problem = _fmt_problems(FIXTURES / "bad_fmt")
    assert problem and "main.tf" in problem and "+  retention_in_days = 7" in problem


def test_fixtures_meant_to_be_formatted_are(terraform_bin: str) -> None:
    for name in ("good", "bad_schema", "bad_refs", "bad_validate", "bad_checkov"):
        problem = _fmt_problems(FIXTURES / name)
        assert problem is None, problem


@pytest.mark.parametrize(
    ("fixture", "root", "expected"), [("good", "root", None), ("bad_validate", ".", "seven")]
)
def test_validate_passes_good_and_catches_broken_fixture(
    fixture: str, root: str, expected: str | None, tf_env: dict[str, str], tmp_path: Path
) -> None:
    copy = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, copy)
    run_terraform(["init", "-backend=false", "-input=false"], cwd=copy / root, env=tf_env)
    problem = _validate(copy / root, tf_env)
    if expected is None:
        assert problem is None, problem
    else:
        assert problem and expected in problem and "retention_in_days" in problem, problem
