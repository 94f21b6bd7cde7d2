"""infra/plan_summary.py, which the template-update workflow runs on each environment's plan.

The plans are real: Terraform plans a root of `terraform_data` resources
(Terraform's built-in provider, no AWS), applied once, then changed so that
one resource is replaced, one destroyed, one updated and one left alone;
`terraform show -json` of that plan is what the script reads in CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.terraform import run_terraform

pytestmark = pytest.mark.terraform

APPLIED = """
variable "generation" {
  type = string
}

resource "terraform_data" "kept" {
  input = "same"
}

resource "terraform_data" "updated" {
  input = var.generation
}

resource "terraform_data" "replaced" {
  triggers_replace = [var.generation]
}

resource "terraform_data" "removed" {
  input = "gone next"
}
"""


@pytest.fixture
def script(render) -> Path:
    return render({}) / "infra" / "plan_summary.py"


@pytest.fixture
def applied_root(tmp_path: Path, tf_env: dict[str, str]) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(APPLIED)
    run_terraform(["init", "-input=false"], cwd=root, env=tf_env)
    run_terraform(["apply", "-auto-approve", "-input=false", "-var=generation=1"], cwd=root, env=tf_env)
    return root


def plan_json(root: Path, tf_env: dict[str, str], generation: str) -> Path:
    plan = ["plan", "-input=false", f"-var=generation={generation}", "-out=plan.tfplan"]
    run_terraform(plan, cwd=root, env=tf_env)
    shown = run_terraform(["show", "-json", "plan.tfplan"], cwd=root, env=tf_env)
    path = root / "plan.json"
    path.write_text(shown.stdout)
    return path


def summarise(script: Path, environment: str, plan: Path) -> subprocess.CompletedProcess[str]:
    # python3 with the standard library only, as the workflow runs it (no project install).
    return subprocess.run(
        [sys.executable, "-I", str(script), environment, str(plan)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_plan_with_replace_and_destroy_lists_them(script: Path, applied_root: Path, tf_env) -> None:
    (applied_root / "main.tf").write_text(APPLIED.split('resource "terraform_data" "removed"')[0])
    result = summarise(script, "prod", plan_json(applied_root, tf_env, generation="2"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "### `prod`: 0 to create, 1 to update, 1 to replace, 1 to destroy"
    listed = [line for line in result.stdout.splitlines() if line.startswith("- ")]
    assert listed == ["- destroy: `terraform_data.removed`", "- replace: `terraform_data.replaced`"]
    assert "No destroy and no replace." not in result.stdout


def test_a_clean_plan_says_so(script: Path, applied_root: Path, tf_env) -> None:
    result = summarise(script, "dev", plan_json(applied_root, tf_env, generation="1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "### `dev`: 0 to create, 0 to update, 0 to replace, 0 to destroy",
        "",
        "No destroy and no replace.",
    ]


def test_a_file_that_is_not_a_plan_is_refused_by_name(script: Path, tmp_path: Path) -> None:
    not_a_plan = tmp_path / "plan.json"
    not_a_plan.write_text('{"format_version": "1.0"}')
    result = summarise(script, "dev", not_a_plan)
    assert result.returncode == 1
    assert str(not_a_plan) in result.stderr and result.stdout == ""
