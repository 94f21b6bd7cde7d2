"""Static checks of the rendered Terraform: parse, provider schema, references.

No terraform binary needed: python-hcl2 parses the files, and
tests/schema/aws_provider_5.100.json (derived from the provider itself by
tests/schema/regenerate.py) is the schema. The fixtures under
tests/fixtures/tf prove every check fails on what it should catch.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hcl2
import pytest
from support.answers import REPO
from support.hcl import (
    REGENERATE,
    SCHEMA_FILE,
    HclParseError,
    check_module_calls,
    check_provider_schema,
    check_references,
    check_tfvars,
    load_module,
    load_schema,
    loads,
    module_dirs,
    parse_file,
    used_aws_types,
)
from support.terraform import TF_FIXTURES

FIXTURES = TF_FIXTURES
SECTIONS = {"resource": "resource_schemas", "data": "data_source_schemas"}


def _infra(project: Path) -> Path:
    infra = project / "infra"
    assert any(infra.rglob("*.tf")), f"{infra} holds no .tf file"
    return infra


def _report(problems: list[str], what: str, base: Path) -> str:
    lines = [problem.replace(f"{base}/", "") for problem in problems]
    return f"{len(lines)} {what}:\n  " + "\n  ".join(lines)


def _run(check, infra: Path, *args) -> list[str]:
    problems = []
    for directory in module_dirs(infra):
        problems += check(load_module(directory), *args)
    return problems


# ---------------------------------------------------------------------------
# The rendered projects
# ---------------------------------------------------------------------------
def test_every_terraform_file_parses(project: Path) -> None:
    infra = _infra(project)
    failures = []
    for path in sorted([*infra.rglob("*.tf"), *infra.rglob("*.tfvars")]):
        try:
            parse_file(path)
        except HclParseError as error:
            failures.append(str(error))
    assert not failures, _report(failures, "file(s) python-hcl2 cannot parse", project)


def test_aws_blocks_match_the_provider_schema(project: Path) -> None:
    problems = _run(check_provider_schema, _infra(project), load_schema())
    assert not problems, _report(problems, "provider-schema problem(s)", project)


def test_references_resolve_within_their_module(project: Path) -> None:
    problems = _run(check_references, _infra(project), load_schema())
    assert not problems, _report(problems, "unresolved reference(s)", project)


def test_module_calls_pass_declared_and_required_variables(project: Path) -> None:
    problems = _run(check_module_calls, _infra(project))
    assert not problems, _report(problems, "module-call problem(s)", project)


def test_tfvars_set_only_declared_variables(project: Path) -> None:
    problems = _run(check_tfvars, _infra(project))
    assert not problems, _report(problems, "tfvars problem(s)", project)


# ---------------------------------------------------------------------------
# The committed schema
# ---------------------------------------------------------------------------
def test_committed_schema_covers_every_aws_type_of_the_template() -> None:
    schema = load_schema()
    used = used_aws_types(REPO / "template" / "infra")
    missing = [
        f'{kind} "{type_name}"'
        for kind, types in used.items()
        for type_name in sorted(types)
        if type_name not in schema[SECTIONS[kind]]
    ]
    assert not missing, (
        f"template/infra uses aws types missing from {SCHEMA_FILE.relative_to(REPO)}: "
        f"{', '.join(missing)}.\n"
        f"Run `{REGENERATE}` (needs terraform and the provider mirror) and commit the JSON."
    )


def test_committed_schema_is_the_5_100_provider() -> None:
    schema = load_schema()
    assert (schema["provider"], schema["version"]) == ("registry.terraform.io/hashicorp/aws", "5.100.0")
    role = schema["resource_schemas"]["aws_iam_role"]
    assert role["attributes"]["assume_role_policy"] == {"required": True}
    assert role["attributes"]["managed_policy_arns"].get("deprecated")


# ---------------------------------------------------------------------------
# The checks fail on broken fixtures
# ---------------------------------------------------------------------------
def test_good_fixture_passes_every_static_check() -> None:
    infra = FIXTURES / "good"
    schema = load_schema()
    problems = (
        _run(check_provider_schema, infra, schema)
        + _run(check_references, infra, schema)
        + _run(check_module_calls, infra)
        + _run(check_tfvars, infra)
    )
    assert problems == []


def test_unparsable_file_is_named() -> None:
    path = FIXTURES / "unparsable" / "main.tf"
    with pytest.raises(HclParseError, match=str(path)):
        parse_file(path)


@pytest.mark.parametrize(
    "expected",
    [
        "aws_ecs_cluster.unknown_argument: unsupported argument 'capacity'",
        "aws_ecs_cluster.unknown_argument: arn is read-only (computed)",
        "aws_ecs_cluster.unknown_argument: setting is a block; write `setting { ... }`",
        "aws_ecs_cluster.unknown_argument: lifecycle.ignore_changes names 'no_such_argument', "
        "not an argument",
        "aws_ecs_task_definition.missing_required: required argument 'family' is missing",
        "aws_ecs_task_definition.missing_required: inference_accelerator is removed in hashicorp/aws 6.x",
        "aws_iam_role.deprecated: managed_policy_arns is deprecated in hashicorp/aws 5.100",
        "aws_iam_role.deprecated: inline_policy is deprecated in hashicorp/aws 5.100",
        "aws_cloudwatch_log_group.bad_block: unsupported block 'retention'",
        'aws_cloudwatch_log_group.bad_block: dynamic "not_a_block" generates a block',
        "aws_not_a_real_type.x: resource type aws_not_a_real_type is not in aws_provider_5.100.json",
    ],
)
def test_schema_check_catches(expected: str) -> None:
    problems = check_provider_schema(load_module(FIXTURES / "bad_schema"), load_schema())
    assert any(expected in problem for problem in problems), "\n".join(problems)


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ("references", "var.undeclared_in_locals is not declared"),
        ("references", "local.unknown_local is not defined"),
        ("references", "module.logs.no_such_output: logs/ declares no output 'no_such_output'"),
        ("references", "module.not_called is not called"),
        ("references", "data.aws_region.other is not declared"),
        ("references", "resource aws_kms_key.undeclared is not declared"),
        ("references", "data.aws_region.current has no attribute 'no_such_attribute'"),
        ("references", "aws_cloudwatch_log_group.this has no attribute 'no_such_attribute'"),
        ("module_calls", "module logs passes 'unexpected', not a variable of logs/"),
        ("module_calls", "module logs does not pass required variable 'retention_days'"),
        ("tfvars", "sets 'undeclared', which bad_refs/ does not declare"),
    ],
)
def test_reference_checks_catch(check: str, expected: str) -> None:
    module = load_module(FIXTURES / "bad_refs")
    problems = {
        "references": lambda: check_references(module, load_schema()),
        "module_calls": lambda: check_module_calls(module),
        "tfvars": lambda: check_tfvars(module),
    }[check]()
    assert any(expected in problem for problem in problems), "\n".join(problems)


def test_parsing_from_threads_never_overlaps_nor_corrupts_later_parses(monkeypatch):
    """python-hcl2 shares one serialization context between calls: two threads
    parsing at once left it stuck, and every later list in the process came
    back as raw text (the emulated stacks parse from threads)."""
    inside, most_inside, count_lock = 0, 0, threading.Lock()
    real_loads = hcl2.loads

    def slow_loads(text: str) -> dict:
        nonlocal inside, most_inside
        with count_lock:
            inside += 1
            most_inside = max(most_inside, inside)
        time.sleep(0.01)
        try:
            return real_loads(text)
        finally:
            with count_lock:
                inside -= 1

    monkeypatch.setattr(hcl2, "loads", slow_loads)
    text = "".join(f'a{i} = ["x", "${{var.y}}-{i}", {{ k = [1, 2] }}]\n' for i in range(10))
    # Distinct texts, so that each call parses (loads caches by text).
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: loads(f"{text}n{n} = 1\n"), range(16)))

    assert most_inside == 1, f"{most_inside} threads were inside python-hcl2 at once"
    later = f"x{time.monotonic_ns()}"
    assert loads(f'{later} = ["a"]\n')[later] == ['"a"']
