"""Deployments' job_variables against the ECS work pool that work_pool.py builds.

The pool's base job template comes from the rendered project's work_pool.py fed
a Terraform output shaped like the rendered stack's `work_pool_job_variables`.
Each deployment's job_variables, merged over the pool's defaults, must satisfy
prefect-aws's variables schema with required keys enforced (Prefect ignores
`required` when a deployment is created, so a capacity provider entry without
`base` would only fail when ECS rejects the RunTask call), and must build the
task definition and RunTask request the ECS worker would send.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import uuid
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.settings import (
    PREFECT_API_AUTH_STRING,
    PREFECT_API_KEY,
    PREFECT_API_URL,
    temporary_settings,
)
from prefect.utilities.schema_tools import ValidationError, validate
from prefect_aws.credentials import _get_client_cached
from prefect_aws.workers.ecs_worker import ECSJobConfiguration, ECSWorker
from support.answers import answers_of, model_of
from support.prefect_checks import (
    load_prefect_yaml,
    load_project_module,
    resolve_placeholders,
    sample_job_variables,
    sample_shape,
    terraform_output_shape,
    terraform_strategy_entry_keys,
)


def base_job_template(project: Path, job_variables: dict | None = None) -> dict:
    package = answers_of(project)["package_name"]
    work_pool = load_project_module(project, f"src/{package}/work_pool.py", "work_pool")
    job_variables = job_variables or sample_job_variables(answers_of(project))
    return work_pool.build_base_job_template(json.loads(json.dumps(job_variables)))


def pool_defaults(template: dict) -> dict:
    return {
        name: spec["default"]
        for name, spec in template["variables"]["properties"].items()
        if "default" in spec
    }


def deployment_job_variables(project: Path) -> dict[str, dict]:
    return {
        deployment["name"]: deployment["work_pool"].get("job_variables", {})
        for deployment in resolve_placeholders(load_prefect_yaml(project))["deployments"]
    }


def validate_strictly(values: dict, template: dict) -> None:
    validate(values, template["variables"], raise_on_error=True, ignore_required=False)


def test_sample_output_has_the_shape_of_the_rendered_terraform(project: Path):
    sample = sample_job_variables(answers_of(project))
    assert terraform_output_shape(project) == sample_shape(sample)
    assert terraform_strategy_entry_keys(project) == {"capacityProvider", "weight", "base"}


def test_every_terraform_value_is_an_ecs_variable(project: Path):
    template = base_job_template(project)
    sample = sample_job_variables(answers_of(project))
    assert set(sample) <= set(template["variables"]["properties"])
    assert {k: v for k, v in pool_defaults(template).items() if k in sample} == sample


def test_pool_defaults_validate(project: Path):
    template = base_job_template(project)
    validate_strictly(pool_defaults(template), template)


def test_every_deployment_validates_over_the_pool_defaults(project: Path):
    template = base_job_template(project)
    for name, job_variables in deployment_job_variables(project).items():
        merged = pool_defaults(template) | job_variables
        try:
            validate_strictly(merged, template)
        except ValidationError as error:
            pytest.fail(f"{name}: {error}")


def test_each_deployment_names_its_image_and_the_pool_has_none(project: Path):
    """ECR tags are immutable: a pool-wide tag such as :latest could be pushed only once."""
    assert "image" not in terraform_output_shape(project)
    template = base_job_template(project)
    assert pool_defaults(template).get("image") is None
    for name, job_variables in deployment_job_variables(project).items():
        assert job_variables.get("image", "").endswith(":abc123"), name


@pytest.mark.parametrize(
    "broken",
    [
        [{"capacityProvider": "FARGATE", "weight": 1}],
        [{"capacityProvider": "FARGATE", "base": 0}],
        [{"weight": 1, "base": 0}],
        [{"capacityProvider": "FARGATE", "weight": "heavy", "base": 0}],
    ],
)
def test_strategy_entry_without_base_or_weight_is_caught(render, broken: list):
    project = render({})
    template = base_job_template(project)
    with pytest.raises(ValidationError):
        validate_strictly(pool_defaults(template) | {"capacity_provider_strategy": broken}, template)
    # What Prefect does on `prefect deploy` (ignore_required=True) lets the missing key through.
    if "weight" in broken[0] and broken[0]["weight"] == 1:
        validate(
            pool_defaults(template) | {"capacity_provider_strategy": broken},
            template["variables"],
            raise_on_error=True,
            ignore_required=True,
        )


def _worker_settings(answers: dict) -> dict:
    """The worker's Prefect settings, as the worker service gets them from Terraform."""
    if answers["prefect_backend"] == "cloud":
        account, workspace = uuid.UUID(int=1), uuid.UUID(int=2)
        return {
            PREFECT_API_URL: f"https://api.prefect.cloud/api/accounts/{account}/workspaces/{workspace}",
            PREFECT_API_KEY: "pnu_not_a_real_key",
        }
    return {PREFECT_API_URL: "https://prefect.example.com/api", PREFECT_API_AUTH_STRING: "admin:secret"}


def _task_definition_and_request(
    template: dict, job_variables: dict, answers: dict, deployment: DeploymentResponse | None = None
) -> tuple[dict, dict]:
    # client=object(): resolving the template must not need the Prefect API.
    configuration = asyncio.run(
        ECSJobConfiguration.from_template_and_values(template, job_variables, client=object())
    )
    flow_run = FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), deployment_id=uuid.uuid4(), name="run")
    with temporary_settings(updates=_worker_settings(answers)):
        configuration.prepare_for_flow_run(flow_run, deployment=deployment)
    region = answers["aws_region"]
    worker = ECSWorker(work_pool_name="demo-dev")
    task_definition = worker._prepare_task_definition(configuration, region, flow_run)
    request = worker._prepare_task_run_request(
        configuration, task_definition, "arn:aws:ecs:task-definition/demo:1", True
    )
    return task_definition, request


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    """Moto's EC2: the worker checks that the pool's subnets belong to its VPC."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # prefect-aws caches boto clients per credentials, across moto's fresh backends.
    _get_client_cached.cache_clear()
    with mock_aws():
        yield
    _get_client_cached.cache_clear()


def sample_in_moto_vpc(answers: dict) -> dict:
    """The sample Terraform output, with a VPC, subnets and security group that exist."""
    ec2 = boto3.client("ec2", region_name=answers["aws_region"])
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)
    ]
    group = ec2.create_security_group(GroupName="flow-runs", Description="flow runs", VpcId=vpc_id)
    sample = sample_job_variables(answers)
    sample["vpc_id"] = vpc_id
    sample["network_configuration"] |= {"subnets": subnets, "securityGroups": [group["GroupId"]]}
    return sample


def test_worker_builds_the_ecs_task_for_every_deployment(project: Path, aws, monkeypatch):
    answers = answers_of(project)
    monkeypatch.setenv("AWS_DEFAULT_REGION", answers["aws_region"])
    sample = sample_in_moto_vpc(answers)
    template = base_job_template(project, sample)
    for name, job_variables in deployment_job_variables(project).items():
        task_definition, request = _task_definition_and_request(
            template, copy.deepcopy(job_variables), answers
        )
        (container,) = task_definition["containerDefinitions"]
        assert container["stopTimeout"] == 120, name
        assert container["image"] == job_variables["image"], name
        assert (
            container["logConfiguration"]["options"]["awslogs-group"]
            == (sample["cloudwatch_logs_options"]["awslogs-group"])
        )
        assert task_definition["executionRoleArn"] == sample["execution_role_arn"]
        assert task_definition["cpu"] == str(job_variables.get("cpu", sample["cpu"])), name
        assert task_definition["memory"] == str(job_variables.get("memory", sample["memory"])), name

        (overrides,) = request["overrides"]["containerOverrides"]
        assert overrides["command"] == model_of(answers).flow_run_command, name

        strategy = job_variables.get("capacity_provider_strategy", sample["capacity_provider_strategy"])
        assert request["capacityProviderStrategy"] == strategy, name
        assert "launchType" not in request, name
        assert request["cluster"] == sample["cluster"]
        assert request["overrides"]["taskRoleArn"] == sample["task_role_arn"]
        awsvpc = request["networkConfiguration"]["awsvpcConfiguration"]
        assert awsvpc == sample["network_configuration"], name


def test_credentials_come_from_the_backend_secret(project: Path, aws, monkeypatch):
    """Cloud: API key; server: auth string. Either reaches the flow run only as an ECS secret."""
    answers = answers_of(project)
    monkeypatch.setenv("AWS_DEFAULT_REGION", answers["aws_region"])
    template = base_job_template(project, sample_in_moto_vpc(answers))
    job_variables = next(iter(deployment_job_variables(project).values()))
    task_definition, request = _task_definition_and_request(template, job_variables, answers)
    (container,) = task_definition["containerDefinitions"]
    secret = "PREFECT_API_KEY" if answers["prefect_backend"] == "cloud" else "PREFECT_API_AUTH_STRING"
    arn_key = f"{'prefect_api_key' if secret == 'PREFECT_API_KEY' else 'prefect_api_auth_string'}_secret_arn"
    assert container["secrets"] == [{"name": secret, "valueFrom": sample_job_variables(answers)[arn_key]}]
    (overrides,) = request["overrides"]["containerOverrides"]
    environment = {item["name"]: item["value"] for item in overrides["environment"]}
    assert secret not in environment
    assert environment["PREFECT_API_URL"] == _worker_settings(answers)[PREFECT_API_URL]


def test_flow_run_tasks_carry_cost_allocation_tags(project: Path, aws, monkeypatch):
    """project, environment and owner from Terraform's labels; the deployment from the worker itself."""
    answers = answers_of(project)
    monkeypatch.setenv("AWS_DEFAULT_REGION", answers["aws_region"])
    sample = sample_in_moto_vpc(answers)
    assert sample["labels"] == {
        "project": answers["project_slug"],
        "environment": answers["environments"][0],
        "owner": answers["owner"],
    }
    template = base_job_template(project, sample)
    for name, job_variables in deployment_job_variables(project).items():
        # A deployment that set `labels` would replace the pool's whole dict (job variables merge shallowly).
        assert "labels" not in job_variables, name
        deployment = DeploymentResponse(id=uuid.uuid4(), name=name, flow_id=uuid.uuid4())
        _, request = _task_definition_and_request(template, copy.deepcopy(job_variables), answers, deployment)
        tags = {tag["key"]: tag["value"] for tag in request["tags"]}
        assert tags["project"] == answers["project_slug"], name
        assert tags["environment"] == answers["environments"][0], name
        # The worker slugifies tag values: characters ECS tags cannot hold become "-".
        assert tags["owner"] == re.sub(r"[^A-Za-z0-9_./=+:@-]+", "-", answers["owner"]).strip("-"), name
        assert tags["prefect.io/deployment-name"] == name
