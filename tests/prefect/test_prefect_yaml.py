"""prefect.yaml of every answer set, checked with Prefect's own models, steps and loaders."""

from __future__ import annotations

import copy
import importlib.metadata
from pathlib import Path

import pytest
from model import Model
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools import ValidationError, validate
from support.answers import answers_of
from support.prefect_checks import (
    SPOT_TAG,
    all_steps,
    build_schedule,
    is_crash_recovery_handler,
    load_entrypoint_flow,
    load_prefect_yaml,
    resolve_placeholders,
    step_problems,
    unknown_keys,
)


def test_prefect_models_accept_it(project: Path):
    config = load_prefect_yaml(project)
    model = PrefectYamlModel.model_validate(config)
    assert [d.name for d in model.deployments] == [d["name"] for d in config["deployments"]]
    assert model.prefect_version == answers_of(project)["prefect_version"]


def test_no_key_is_silently_ignored(project: Path):
    assert unknown_keys(load_prefect_yaml(project)) == []


@pytest.mark.parametrize(
    ("where", "typo"),
    [
        ((), "deployment"),
        (("deployments", 0), "job_variables"),
        (("deployments", 0, "work_pool"), "job_variable"),
        (("deployments", 0, "schedules", 0), "timezon"),
    ],
)
def test_unknown_key_check_finds_typos(render, where: tuple, typo: str):
    config = load_prefect_yaml(render({}))
    target = config
    for step in where:
        target = target[step]
    target[typo] = "oops"
    # Prefect itself says nothing (except for schedules, whose model forbids extras).
    assert unknown_keys(config) == [".".join([*map(str, where), typo])]


def test_every_step_imports_and_its_arguments_bind(project: Path):
    config = load_prefect_yaml(project)
    steps = all_steps(config)
    assert {where.split("[")[0] for where, _ in steps} >= {"push", "pull"}
    problems = [f"{where}: {problem}" for where, step in steps for problem in step_problems(step)]
    assert problems == []


def test_step_check_finds_a_wrong_argument():
    step = {"prefect_aws.deployments.steps.push_to_s3": {"bucket": "b", "folders": "f"}}
    assert step_problems(step)
    assert step_problems({"prefect_aws.deployments.steps.push_to_s4": {}})


def test_steps_require_the_pinned_collections(project: Path):
    """`requires:` pins the same collection versions the project depends on."""
    answers = answers_of(project)
    pinned = {
        "prefect-aws": answers["prefect_aws_version"],
        "prefect-docker": answers["prefect_docker_version"],
    }
    pyproject = (project / "pyproject.toml").read_text()
    for _, step in all_steps(load_prefect_yaml(project)):
        ((_, arguments),) = step.items()
        if "requires" in arguments:
            name, version = arguments["requires"].split("==")
            assert pinned[name] == version == importlib.metadata.version(name)
            assert f'"{name}=={version}"' in pyproject


def test_storage_steps_match_code_storage(project: Path):
    config = load_prefect_yaml(project)
    step_names = [next(iter(step)) for _, step in all_steps(config)]
    if answers_of(project)["code_storage"] == "ecr":
        assert "prefect_docker.deployments.steps.build_docker_image" in step_names
        assert "prefect_docker.deployments.steps.push_docker_image" in step_names
        assert not any("s3" in name for name in step_names)
    else:
        assert "prefect_aws.deployments.steps.push_to_s3" in step_names
        assert "prefect_aws.deployments.steps.pull_from_s3" in step_names
        assert not any("docker" in name for name in step_names)
    assert config["pull"][0] == {"prefect.deployments.steps.set_working_directory": {"directory": "/app"}}


def test_terraform_values_come_from_environment_variables(project: Path):
    config = load_prefect_yaml(project)
    resolved = resolve_placeholders(config)
    text = repr(resolved)
    assert "{{" not in text, "a placeholder has no value in `make deploy`'s environment"
    for deployment in resolved["deployments"]:
        assert deployment["work_pool"]["name"] == "demo-dev"
        assert deployment["work_pool"]["job_variables"]["image"].endswith("/demo-dev:abc123")


def test_every_schedule_builds(project: Path):
    for deployment in load_prefect_yaml(project)["deployments"]:
        if is_crash_recovery_handler(deployment):
            assert "schedules" not in deployment, "the automation starts the handler"
            continue
        assert deployment["schedules"], f"{deployment['name']} has no schedule"
        for item in deployment["schedules"]:
            schedule = build_schedule(item).schedule
            assert schedule.timezone == "UTC"


def test_entrypoints_load_and_parameters_validate(project: Path):
    for deployment in load_prefect_yaml(project)["deployments"]:
        flow = load_entrypoint_flow(project, deployment["entrypoint"])
        schema = parameter_schema(flow).model_dump_for_openapi()
        # The handler's parameters come from the automation (tests/prefect/test_crash_recovery.py).
        parameters = (
            deployment.get("parameters")
            if not is_crash_recovery_handler(deployment)
            else {
                "crashed_flow_run": "prefect.flow-run.00000000-0000-0000-0000-000000000000",
                "environment": "dev",
            }
        )
        validate(parameters, schema, raise_on_error=True, ignore_required=False)
        flow.validate_parameters(parameters)


def test_parameter_check_rejects_a_wrong_parameter(render):
    project = render({})
    deployment = copy.deepcopy(load_prefect_yaml(project)["deployments"][0])
    flow = load_entrypoint_flow(project, deployment["entrypoint"])
    schema = parameter_schema(flow).model_dump_for_openapi()
    deployment["parameters"]["config"]["orders"] = "many"
    with pytest.raises(ValidationError):
        validate(deployment["parameters"], schema, raise_on_error=True, ignore_required=False)


def test_tags_mark_spot_deployments_and_carry_the_labels(project: Path):
    answers = answers_of(project)
    deployments = load_prefect_yaml(project)["deployments"]
    for deployment in deployments:
        assert set(answers["labels"]) <= set(deployment["tags"])
        strategy = deployment["work_pool"]["job_variables"].get("capacity_provider_strategy")
        opted_out = strategy is not None and all(e["capacityProvider"] == "FARGATE" for e in strategy)
        assert (SPOT_TAG in deployment["tags"]) == (Model(answers).spot and not opted_out)
    on_demand = [d for d in deployments if SPOT_TAG not in d["tags"]]
    assert on_demand, "one deployment shows how to opt out of Spot"
