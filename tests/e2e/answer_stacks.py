"""The answer sets the end-to-end tests apply on the emulator, and the renders broken on purpose."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

E2E_ANSWER_SETS = ["default", "s3-server", "existing-vpc-multi-env"]
# The stacks whose flow runs test_task_lifecycle.py executes (code in the ECR image,
# and code pulled from the bucket); on the others the tests play the container.
EXECUTING_SETS = ["default", "s3-server"]


def _edit(relative: str, pattern: str, replacement: str = "") -> Callable[[Path], None]:
    """Break a rendered file by a regex substitution (that must match)."""

    def edit(project: Path) -> None:
        path = project / relative
        text, count = re.subn(pattern, replacement, path.read_text(), flags=re.MULTILINE | re.DOTALL)
        assert count, f"the deliberate break found nothing to change in {relative}: {pattern!r}"
        path.write_text(text)

    return edit


# name -> (answer set, how the render is broken, the step that must fail)
BROKEN_RENDERS = {
    "strategy-without-base": (
        "default",
        _edit("infra/stack/work_pool.tf", r"^\s*base\s*=\s*provider\.base\n"),
        "worker-run",
    ),
    "no-job-variables-output": (
        "default",
        _edit("infra/envs/dev/outputs.tf", r'output "work_pool_job_variables" \{.*?\n\}\n'),
        "work-pool",
    ),
}
