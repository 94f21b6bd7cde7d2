"""Checks of a rendered project's Prefect side, with Prefect's and prefect-aws's own code.

* `unknown_keys(data, model)`        keys Prefect's prefect.yaml models would silently ignore
* `step_problems(step)`              a step that does not import or whose arguments do not bind
* `build_schedule(item)`             a schedule item as Prefect's CLI turns it into a schedule
* `load_entrypoint_flow(project, e)` the flow behind a deployment's entrypoint
* `sample_job_variables(answers)`    a Terraform `work_pool_job_variables` output, per the contract
* `resolve_placeholders(value, ...)` prefect.yaml's {{ $ENV }} / {{ step.output }} as `prefect deploy` does
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from model import Model
from prefect.cli.deploy._models import PrefectYamlModel, RawScheduleConfig
from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.utilities.importtools import import_object
from prefect.utilities.templating import apply_values
from pydantic import BaseModel

from support.hcl import parse_file

# Keys every step may carry besides the function's arguments (prefect/deployments/steps/core.py).
STEP_KEYWORDS = {"requires", "id"}
SPOT_TAG = "fargate-spot"
ACCOUNT = "123456789012"

# Environment `make deploy` exports from `terraform output`, and step outputs.
DEPLOY_ENV = {
    "WORK_POOL_NAME": "demo-dev",
    "IMAGE_REPOSITORY": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/demo-dev",
    "IMAGE_TAG": "abc123",
    "CODE_BUCKET": f"demo-dev-flow-code-{ACCOUNT}",
    "DEPLOY_ENV": "dev",
    "CODE_VERSION": "0123456789ab-20260101T000000Z",
}
STEP_OUTPUTS = {
    "build-image": {
        "image_name": DEPLOY_ENV["IMAGE_REPOSITORY"],
        "tag": DEPLOY_ENV["IMAGE_TAG"],
        "image": f"{DEPLOY_ENV['IMAGE_REPOSITORY']}:{DEPLOY_ENV['IMAGE_TAG']}",
    },
    "push-code": {"bucket": DEPLOY_ENV["CODE_BUCKET"], "folder": f"demo/{DEPLOY_ENV['CODE_VERSION']}"},
}


def is_crash_recovery_handler(deployment: dict) -> bool:
    """The deployment the crash-recovery automation starts (no schedule; parameters from the automation)."""
    return deployment["entrypoint"].endswith("/crash_recovery.py:crash_recovery")


def load_prefect_yaml(project: Path) -> dict:
    return yaml.safe_load((project / "prefect.yaml").read_text())


# --------------------------------------------------------------------------- unknown keys


def _field_names(model: type[BaseModel]) -> dict[str, Any]:
    # Prefect's models keep some annotations as strings ("ScheduleItem"): resolve them.
    hints = typing.get_type_hints(model, vars(sys.modules[model.__module__]))
    names = {}
    for name, field in model.model_fields.items():
        names[name] = hints.get(name, field.annotation)
        if field.alias:
            names[field.alias] = names[name]
    return names


def unknown_keys(value: Any, annotation: Any = PrefectYamlModel, path: str = "") -> list[str]:
    """Dotted paths of keys no field of `annotation` (walked recursively) accepts.

    Prefect's prefect.yaml models use extra="ignore", so a misspelt key (say
    `job_variable:`) passes `model_validate` and is dropped without a word.
    Free-form fields (dicts of Any: parameters, job_variables, steps) are not walked.
    """
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not isinstance(value, dict):
            return []
        fields = _field_names(annotation)
        problems = []
        for key, item in value.items():
            if key not in fields:
                problems.append(f"{path}{key}")
            else:
                problems += unknown_keys(item, fields[key], f"{path}{key}.")
        return problems
    if origin in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if models and isinstance(value, dict):
            members = models
        # Walk the shape prefect.yaml documents first (e.g. RawScheduleConfig for schedules).
        members.sort(key=lambda m: m is not RawScheduleConfig)
        attempts = [unknown_keys(value, member, path) for member in members]
        return min(attempts, key=len)
    if origin in (list, typing.List) and isinstance(value, list):  # noqa: UP006
        (item_type,) = typing.get_args(annotation) or (Any,)
        return [p for i, item in enumerate(value) for p in unknown_keys(item, item_type, f"{path}{i}.")]
    return []


# --------------------------------------------------------------------------- steps


def all_steps(config: dict) -> list[tuple[str, dict]]:
    """(where, step) for the global and per-deployment build/push/pull steps."""
    steps = []
    for section in ("build", "push", "pull"):
        steps += [(f"{section}[{i}]", step) for i, step in enumerate(config.get(section) or [])]
        for deployment in config.get("deployments", []):
            for i, step in enumerate(deployment.get(section) or []):
                steps.append((f"{deployment['name']}.{section}[{i}]", step))
    return steps


def step_problems(step: dict) -> list[str]:
    if not isinstance(step, dict) or len(step) != 1:
        return [f"a step is a mapping with exactly one key (the function), got {step!r}"]
    ((function_name, arguments),) = step.items()
    try:
        function = import_object(function_name)
    except (ImportError, AttributeError) as error:
        return [f"{function_name} does not import: {error}"]
    kwargs = {k: v for k, v in (arguments or {}).items() if k not in STEP_KEYWORDS}
    try:
        inspect.signature(function).bind(**kwargs)
    except TypeError as error:
        return [f"{function_name}({', '.join(kwargs)}): {error}"]
    return []


# --------------------------------------------------------------------------- schedules & flows


def build_schedule(item: dict) -> DeploymentScheduleCreate:
    """What `prefect deploy` sends to the API for one `schedules:` item."""
    return DeploymentScheduleCreate(**_schedule_config_to_deployment_schedule(item))


def load_entrypoint_flow(project: Path, entrypoint: str) -> Flow:
    src = str(project / "src")
    sys.path.insert(0, src)
    try:
        path, name = entrypoint.split(":")
        return load_flow_from_entrypoint(f"{project / path}:{name}")
    finally:
        sys.path.remove(src)


def load_project_module(project: Path, relative: str, name: str) -> types.ModuleType:
    """Import one module of the rendered project under a name unique to the project."""
    spec = importlib.util.spec_from_file_location(f"{name}_{abs(hash(str(project)))}", project / relative)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolve_placeholders(value: Any) -> Any:
    """Fill {{ $ENV }} and {{ step-id.output }} the way `prefect deploy` does."""
    # Prefect reads {{ $NAME }} from os.environ, whatever mapping it is given.
    with mock.patch.dict(os.environ, DEPLOY_ENV):
        return apply_values(apply_values(value, os.environ, remove_notset=False), STEP_OUTPUTS)


# --------------------------------------------------------------------------- Terraform output


def sample_job_variables(answers: dict, env: str | None = None) -> dict:
    """A `terraform output -json work_pool_job_variables` of the env root, per the contract."""
    env = env or answers["environments"][0]
    region, name = answers["aws_region"], f"{answers['project_slug']}-{env}"
    secret_key = (
        "prefect_api_key_secret_arn"
        if answers["prefect_backend"] == "cloud"
        else "prefect_api_auth_string_secret_arn"
    )
    sample = {
        "cluster": f"arn:aws:ecs:{region}:{ACCOUNT}:cluster/{name}",
        "vpc_id": "vpc-0123456789abcdef0",
        "network_configuration": {
            "subnets": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
            "securityGroups": ["sg-0123456789abcdef0"],
            "assignPublicIp": "ENABLED" if answers["network_mode"] == "new_vpc" else "DISABLED",
        },
        "execution_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{name}-flow-run-execution",
        "task_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{name}-flow-run-task",
        "capacity_provider_strategy": Model(answers).capacity_provider_strategy,
        "cpu": answers["flow_cpu"],
        "memory": answers["flow_memory"],
        "family": f"{name}-flow-run",
        "configure_cloudwatch_logs": True,
        "cloudwatch_logs_options": {
            "awslogs-group": f"/ecs/{name}/flow-runs",
            "awslogs-region": region,
            "awslogs-stream-prefix": "flow-run",
        },
        secret_key: f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{name}-prefect-AbCdEf",
        "labels": {"project": answers["project_slug"], "environment": env, "owner": answers["owner"]},
    }
    if answers.get("dask_cluster"):
        # Where the Dask flow starts its cluster (infra/modules/dask via the stack's output).
        sample["env"] = {
            "DASK_ECS_CLUSTER_ARN": sample["cluster"],
            "DASK_ECS_REGION": region,
            "DASK_ECS_VPC_ID": sample["vpc_id"],
            "DASK_ECS_SUBNETS": ",".join(sample["network_configuration"]["subnets"]),
            "DASK_ECS_SECURITY_GROUPS": "sg-0fedcba9876543210",
            "DASK_ECS_ASSIGN_PUBLIC_IP": str(answers["network_mode"] == "new_vpc").lower(),
            "DASK_ECS_EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/{name}-dask-execution",
            "DASK_ECS_TASK_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/{name}-dask-task",
            "DASK_ECS_LOG_GROUP": f"/ecs/{name}/dask",
            "DASK_ECS_NAME_PREFIX": f"{name}-dask",
            "DASK_ECS_WORKER_PORT": "8788",
            "DASK_ECS_NANNY_PORT": "8789",
        }
    return sample


def _key_shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _key_shape(item) for key, item in value.items() if not key.startswith("__")}
    return None


@cache
def _terraform_output_value(outputs_tf: Path) -> dict:
    """The output's value, followed into the stack's `locals` when it names one (`local.<name>`)."""
    parsed = parse_file(outputs_tf)
    for block in parsed.get("output", []):
        for label, body in block.items():
            if label.strip('"') == "work_pool_job_variables":
                value = body["value"]
                if isinstance(value, str) and value.startswith("${local."):
                    return _stack_local(outputs_tf.parent, value.removeprefix("${local.").removesuffix("}"))
                return value
    raise AssertionError(f"{outputs_tf} has no work_pool_job_variables output")


def _stack_local(folder: Path, name: str) -> dict:
    for tf_file in sorted(folder.glob("*.tf")):
        for block in parse_file(tf_file).get("locals", []):
            if name in block:
                return block[name]
    raise AssertionError(f"no .tf file in {folder} defines local.{name}")


def terraform_output_shape(project: Path) -> dict:
    """Keys (nested) of the stack's work_pool_job_variables object, values dropped."""
    value = _terraform_output_value(project / "infra" / "stack" / "outputs.tf")
    return _key_shape(value)


def sample_shape(sample: dict) -> dict:
    shape = _key_shape(sample)
    # The strategy is a `for` expression in HCL; its entries' keys are checked separately.
    shape["capacity_provider_strategy"] = None
    return shape


def terraform_strategy_entry_keys(project: Path) -> set[str]:
    expression = _terraform_output_value(project / "infra" / "stack" / "outputs.tf")[
        "capacity_provider_strategy"
    ]
    # "${[for p in ... : {capacityProvider = p.x, weight = p.y, base = p.z}]}"
    body = expression[expression.index(": {") + 3 : expression.rindex("}")]
    return {part.split("=")[0].strip() for part in body.split(",")}
