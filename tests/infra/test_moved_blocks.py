"""The static half of upgrade safety: every rendered `moved` block leads somewhere.

A `moved` block whose `to` names no resource, or whose `from` is still
declared, would leave Terraform planning a destroy of the old address on the
next `copier update` + `terraform apply`. tests/e2e/test_upgrade_safety.py
proves the whole path on the emulator; this check runs on every answer set in
the quick loop.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from support.hcl import Module, load_module, local_source, module_dirs

INDEX = re.compile(r"\[[^\]]*\]$")


def resolve(module: Module, address: str) -> tuple[Module, tuple[str, str]] | str:
    """The module that would declare `address` and the resource's (type, name), or why none does."""
    parts = address.removeprefix("${").removesuffix("}").split(".")
    while parts[0] == "module":
        call = module.module_calls.get(INDEX.sub("", parts[1]))
        source = local_source(module, call) if call is not None else None
        if source is None:
            return f"{module.path} calls no local module {parts[1]!r}"
        module = load_module(source)
        parts = parts[2:]
    resource_type, name = parts[0], ".".join(parts[1:])
    return module, (resource_type, INDEX.sub("", name))


def moved_blocks(project: Path) -> list[tuple[Module, dict]]:
    found = []
    for directory in module_dirs(project / "infra"):
        module = load_module(directory)
        found += [(module, block.body) for block in module.of_kind("moved")]
    return found


def test_every_moved_block_leads_from_a_gone_address_to_a_declared_resource(project: Path) -> None:
    blocks = moved_blocks(project)
    assert blocks, "no moved block rendered: the upgrade path from earlier releases is gone"
    problems = []
    for module, body in blocks:
        source, target = str(body["from"]), str(body["to"])
        resolved = resolve(module, target)
        if isinstance(resolved, str) or resolved[1] not in resolved[0].resources:
            problems.append(f"{module.path}: moved to {target}, which is not declared")
        # A keyed `from` may be another key of a resource that still exists.
        if not source.rstrip("}").endswith("]"):
            resolved = resolve(module, source)
            if not isinstance(resolved, str) and resolved[1] in resolved[0].resources:
                problems.append(f"{module.path}: moved from {source}, which is still declared")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("to   = module.worker.aws_iam_role.task", "to   = module.worker.aws_iam_role.tusk", "not declared"),
        (
            "from = module.iam.aws_iam_role.worker_task",
            "from = module.worker.aws_iam_role.execution",
            "still declared",
        ),
    ],
)
def test_moved_check_catches(render, tmp_path: Path, old: str, new: str, expected: str) -> None:
    project = tmp_path / "project"
    shutil.copytree(render({}), project, ignore=shutil.ignore_patterns(".terraform"))
    moved_tf = project / "infra" / "stack" / "moved.tf"
    text = moved_tf.read_text()
    assert text.count(old) == 1, f"{moved_tf} no longer has {old!r}: update this test"
    moved_tf.write_text(text.replace(old, new))
    with pytest.raises(AssertionError, match=expected):
        test_every_moved_block_leads_from_a_gone_address_to_a_declared_resource(project)
