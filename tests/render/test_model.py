"""The model of the answers (hooks/model.py): its rules, and every copy rendered from it.

The HCL tables of the stack's variables and copier.yml's choices are rendered
from the model; these tests parse what was rendered and compare it with the
Python tables, so a hand edit of either side fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from extensions import hcl
from model import (
    CHOICES,
    EMAIL_PATTERN,
    ENVIRONMENTS,
    FARGATE_CPUS,
    FARGATE_MEMORY_BY_CPU,
    GITHUB_REPOSITORY_PATTERN,
    LOG_RETENTION_DAYS,
    SLUG_MAX,
    SLUG_PATTERN,
    TAG_VALUE_MAX,
    WORKER_CPUS,
    Model,
    capacity_provider_strategy,
    spot_share,
)
from support.answers import choice_values, model_of, questions
from support.hcl import loads, parse_file, unquote

RANGE = re.compile(r"\$\{range\((\d+), (\d+), (\d+)\)\}")
CONTAINS = re.compile(r"^\$\{contains\((\[[^\]]*\]), var\.(\w+)\)\}$")


def terraform_value(value: object) -> list[int]:
    """A list as Terraform evaluates it: a literal, or range(start, stop, step) with stop excluded."""
    if isinstance(value, list):
        return value
    match = RANGE.fullmatch(str(value))
    assert match, f"neither a list nor a range(): {value!r}"
    return list(range(*(int(group) for group in match.groups())))


def variable_lists(path: Path) -> dict[str, list]:
    """Variable name -> the literal list its `contains([...], var.<name>)` validation allows."""
    found = {}
    for block in parse_file(path)["variable"]:
        for name, body in block.items():
            for validation in body.get("validation", []):
                if match := CONTAINS.match(validation["condition"]):
                    assert match.group(2) == unquote(name)
                    found[unquote(name)] = loads(f"value = {match.group(1)}\n")["value"]
    return found


def variable_files(project: Path) -> list[Path]:
    return [
        project / "infra" / "stack" / "variables.tf",
        *(project / "infra" / "envs").glob("*/variables.tf"),
    ]


# --------------------------------------------------------------------------- rendered tables


def test_rendered_fargate_table_is_the_models(render) -> None:
    for path in variable_files(render({})):
        (local,) = [block for block in parse_file(path)["locals"] if "fargate_memory_by_cpu" in block]
        rendered = {
            int(unquote(cpu)): terraform_value(sizes) for cpu, sizes in local["fargate_memory_by_cpu"].items()
        }
        assert rendered == {cpu: list(sizes) for cpu, sizes in FARGATE_MEMORY_BY_CPU.items()}, path


def test_rendered_validation_lists_are_the_models(render) -> None:
    expected = {
        "log_retention_days": list(LOG_RETENTION_DAYS),
        "worker_cpu": list(WORKER_CPUS),
        "flow_cpu": list(FARGATE_CPUS),
    }
    stack, *roots = variable_files(render({}))
    assert roots
    # Only the stack takes the environment as a variable; each root fixes its own.
    assert variable_lists(stack) == {**expected, "environment": [f'"{name}"' for name in ENVIRONMENTS]}
    for path in roots:
        assert variable_lists(path) == expected, path


def test_rendered_worker_memory_message_follows_the_table(render) -> None:
    text = (render({}) / "infra" / "stack" / "variables.tf").read_text()
    ranges = "; ".join(
        f"{cpu}: {FARGATE_MEMORY_BY_CPU[cpu][0]}-{FARGATE_MEMORY_BY_CPU[cpu][-1]}" for cpu in WORKER_CPUS
    )
    assert f"for worker_cpu ({ranges})." in text
    assert f"flow_cpu must be one of {', '.join(map(str, FARGATE_CPUS))}." in text


def validations(path: Path) -> dict[str, str]:
    """Variable name -> its validation conditions, joined."""
    return {
        unquote(name): " ".join(validation["condition"] for validation in body.get("validation", []))
        for block in parse_file(path)["variable"]
        for name, body in block.items()
    }


def test_rendered_name_rules_are_the_models(render) -> None:
    project = render({})
    stack = validations(project / "infra" / "stack" / "variables.tf")
    assert f"regex({json.dumps(SLUG_PATTERN)}, var.project)" in stack["project"]
    assert f"length(var.project) <= {SLUG_MAX}" in stack["project"]
    assert f"length(var.owner) <= {TAG_VALUE_MAX}" in stack["owner"]
    for path in variable_files(project):
        condition = validations(path)["github_repository"]
        assert f"regex({json.dumps(GITHUB_REPOSITORY_PATTERN)}, var.github_repository)" in condition, path
        condition = validations(path)["alarm_email"]
        assert f"regex({json.dumps(EMAIL_PATTERN)}, var.alarm_email)" in condition, path


def test_copier_choices_are_the_models_tables() -> None:
    assert set(CHOICES) <= set(questions())
    for name, table in CHOICES.items():
        assert choice_values(name) == list(table), name
        assert questions()[name]["choices"] == list(table), name


def test_hcl_ranges_only_where_terraform_gives_the_same_list() -> None:
    assert hcl((1024, 2048, 3072, 4096), ranges=True) == "range(1024, 4097, 1024)"
    assert hcl((512, 1024, 2048), ranges=True) == "[512, 1024, 2048]"  # too short
    assert hcl((256, 512, 1024, 2048), ranges=True) == "[256, 512, 1024, 2048]"  # uneven steps
    assert hcl((1024, 2048, 3072, 4096)) == "[1024, 2048, 3072, 4096]"
    assert (
        hcl({256: [512], 16384: ["a${b}"]}, indent=2)
        == '{\n    "256"   = [512]\n    "16384" = ["a$${b}"]\n  }'
    )
    assert hcl(True) == "true"


# --------------------------------------------------------------------------- the AWS table itself


def test_fargate_table_is_aws_table() -> None:
    """AWS's published table (Linux), written out as AWS states it."""
    gib = 1024
    assert {
        256: (512, 1 * gib, 2 * gib),
        512: tuple(n * gib for n in range(1, 5)),
        1024: tuple(n * gib for n in range(2, 9)),
        2048: tuple(n * gib for n in range(4, 17)),
        4096: tuple(n * gib for n in range(8, 31)),
        8192: tuple(n * gib for n in range(16, 61, 4)),
        16384: tuple(n * gib for n in range(32, 121, 8)),
    } == FARGATE_MEMORY_BY_CPU
    assert WORKER_CPUS == (256, 512, 1024, 2048, 4096)


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("crash_retries", "spot_weight", "expected"),
    [(2, 3, True), (0, 3, False), (2, 0, False), (0, 0, False), (10, 1, True)],
)
def test_crash_recovery_needs_retries_and_spot(crash_retries: int, spot_weight: int, expected: bool) -> None:
    # Only the two answers it is made of: copier.yml's `when:` sees no later answer.
    model = Model({"crash_retries": crash_retries, "spot_weight": spot_weight})
    assert model.crash_recovery is expected
    assert model.spot is (spot_weight > 0)


def test_a_fact_names_the_answer_it_lacks() -> None:
    with pytest.raises(KeyError, match="crash_retries"):
        _ = Model({"spot_weight": 3}).crash_recovery


@pytest.mark.parametrize(
    ("spot", "on_demand", "base", "strategy", "share"),
    [
        (3, 1, 0, [("FARGATE_SPOT", 3, 0), ("FARGATE", 1, 0)], 0.75),
        (0, 1, 1, [("FARGATE", 1, 1)], 0.0),
        (1, 0, 0, [("FARGATE_SPOT", 1, 0)], 1.0),
        (1, 0, 2, [("FARGATE_SPOT", 1, 0), ("FARGATE", 0, 2)], 0.0),
        (3, 1, 2, [("FARGATE_SPOT", 3, 0), ("FARGATE", 1, 2)], 0.0),
    ],
)
def test_capacity_strategy_and_spot_share(spot, on_demand, base, strategy, share) -> None:
    answers = {"spot_weight": spot, "on_demand_weight": on_demand, "on_demand_base": base}
    model = Model(answers)
    entries = model.capacity_provider_strategy
    assert [(e["capacityProvider"], e["weight"], e["base"]) for e in entries] == strategy
    assert entries == capacity_provider_strategy(spot, on_demand, base)
    assert model.spot_share == pytest.approx(share) == spot_share(entries)


def test_two_zero_weights_have_no_strategy() -> None:
    with pytest.raises(ValueError):
        _ = Model({"spot_weight": 0, "on_demand_weight": 0, "on_demand_base": 0}).spot_share


def test_flags_follow_the_answers() -> None:
    default = model_of({})
    assert (default.s3_code, default.s3_state, default.prefect_cloud, default.new_vpc, default.github) == (
        False,
        False,
        True,
        True,
        True,
    )
    assert not default.dask
    other = model_of(
        {
            "code_storage": "s3",
            "terraform_backend": "s3",
            "prefect_backend": "server",
            "network_mode": "existing_vpc",
            "ci_provider": "none",
            "dask_cluster": True,
        }
    )
    assert (other.s3_code, other.s3_state, other.prefect_cloud, other.new_vpc, other.github, other.dask) == (
        True,
        True,
        False,
        False,
        False,
        True,
    )


# --------------------------------------------------------------------------- rendered rule


@pytest.mark.parametrize("answers", [{}, {"crash_retries": 0}, {"spot_weight": 0, "on_demand_base": 1}])
def test_file_names_and_when_use_the_models_rule(render, answers: dict) -> None:
    """The crash-recovery module and the spot_fallback_after answer exist exactly where the model says."""
    project = render(answers)
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    expected = model_of(answers).crash_recovery
    assert (project / "src" / recorded["package_name"] / "crash_recovery.py").is_file() == expected
    assert ("spot_fallback_after" in recorded) == expected
    assert "model" not in recorded


def test_aws_account_ids_keep_the_digits_of_each_chosen_environment() -> None:
    """The console's 1234-5678-9012 is accepted as typed; an environment not chosen has no id."""
    answers = {
        "environments": ["prod", "dev"],
        "aws_account_id_dev": "1234-5678-9012",
        "aws_account_id_prod": "",
    }
    assert Model(answers).aws_account_ids == {"dev": "123456789012", "prod": ""}


@pytest.mark.parametrize(
    ("environments", "ids", "creates"),
    [
        # Ids not given yet: one account, as the first environment's.
        (["dev", "prod"], {}, {"dev": True, "prod": False}),
        (["prod", "dev"], {}, {"prod": True, "dev": False}),
        # Each account creates its own provider once.
        (["dev", "prod"], {"dev": "111111111111", "prod": "222222222222"}, {"dev": True, "prod": True}),
        (
            ["dev", "staging", "prod"],
            {"dev": "111111111111", "staging": "111111111111", "prod": "222222222222"},
            {"dev": True, "staging": False, "prod": True},
        ),
        (["dev", "prod"], {"prod": "222222222222"}, {"dev": True, "prod": True}),
        (["dev", "staging"], {"dev": "111111111111"}, {"dev": True, "staging": False}),
    ],
)
def test_the_first_environment_of_each_account_creates_its_github_oidc_provider(
    environments: list[str], ids: dict[str, str], creates: dict[str, bool]
) -> None:
    answers = {"environments": environments} | {f"aws_account_id_{env}": id_ for env, id_ in ids.items()}
    assert Model(answers).creates_github_oidc_provider == creates


def test_rendered_oidc_provider_flags_are_the_models(render) -> None:
    answers = {
        "environments": ["dev", "staging", "prod"],
        "aws_account_id_dev": "111111111111",
        "aws_account_id_staging": "111111111111",
        "aws_account_id_prod": "222222222222",
    }
    project = render(answers)
    for env, creates in {"dev": True, "staging": False, "prod": True}.items():
        tfvars = (project / "infra" / "envs" / env / "terraform.tfvars").read_text()
        flag = re.search(r"(?m)^create_github_oidc_provider\s*=\s*(\w+)$", tfvars)
        assert flag and flag.group(1) == ("true" if creates else "false"), (env, flag)
