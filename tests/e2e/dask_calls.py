"""Run the Dask flow's FargateCluster against an emulated stack and record its AWS calls.

moto keeps no audit log, so the calls are recorded in this process through
botocore's event system on the cluster's own aiobotocore session
(`before-parameter-build` for the request, `after-call` for the response).
moto starts no Dask scheduler: the cluster gets as far as the scheduler's task
and address, then fails to connect; one worker is then started with the
cluster's own worker spec, and both are stopped and their task definitions
deregistered with dask_cloudprovider's own code, so every call a flow run
makes (start, scale up, close) is recorded.

`required_permissions` turns each call into the IAM action, resources and
condition keys AWS authorizes it with; `is_allowed` evaluates an identity
policy for one of them (Allow statements with Action/Resource wildcards and
the String/Arn condition operators the template uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import importlib.util
import json
import sys
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

START_TIMEOUT = 30


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any]
    response: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Permission:
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    call: str = ""


def load_dask_cluster(project: Path) -> ModuleType:
    """The rendered project's dask_cluster module, loaded from its file."""
    [path] = project.glob("src/*/dask_cluster.py")
    spec = importlib.util.spec_from_file_location(f"rendered_dask_cluster_{abs(hash(path))}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def prepare_emulator(server: Any, region: str) -> None:
    """What moto lacks to let dask_cloudprovider get past the scheduler's start.

    AWS reports taskLongArnFormat "enabled" (the default since 2021) and keeps a
    started task RUNNING; moto returns no setting and moves a task on to
    STOPPED on every describe unless its state machine is manual.
    """
    server.client("ecs", region).put_account_setting(name="taskLongArnFormat", value="enabled")
    set_task_progression(server, "manual")


def set_task_progression(server: Any, progression: str) -> None:
    body = {"model_name": "ecs::task", "transition": {"progression": progression, "times": 1_000_000}}
    request = urllib.request.Request(
        f"{server.url}/moto-api/state-manager/set-transition", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def record_cluster_calls(dask_cluster: ModuleType, env: dict[str, str], image: str) -> list[Call]:
    """Start, scale up and close the flow's FargateCluster; return every AWS call it made."""
    import dask

    stack = dask_cluster.Stack.from_env(env)
    assert stack is not None, "the work pool's env does not name a Dask stack"
    kwargs = dask_cluster.fargate_cluster_kwargs(stack, image, "e2e00001")
    calls: list[Call] = []

    def before(model, params, context, **_):
        call = Call(model.service_model.service_name, model.name, json.loads(json.dumps(params, default=str)))
        calls.append(call)
        context["recorded_call"] = call

    def after(parsed, context, **_):
        if "recorded_call" in context:
            context["recorded_call"].response = parsed

    async def run() -> None:
        with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
            cluster = dask_cluster.StackFargateCluster(asynchronous=True, **kwargs)
            cluster.session.register("before-parameter-build", before)
            cluster.session.register("after-call", after)
            # moto runs no scheduler: the client's connection to it fails.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(cluster._start(), START_TIMEOUT)
            scheduler = cluster.scheduler
            assert scheduler is not None and scheduler.task_arn, "the scheduler task was never started"
            spec = cluster.new_spec
            worker = spec["cls"](scheduler=scheduler.address, name="0", **spec["options"])
            await asyncio.wait_for(worker.start(), START_TIMEOUT)
            await asyncio.wait_for(worker.close(), START_TIMEOUT)
            if scheduler.status.name != "closed":
                await asyncio.wait_for(scheduler.close(), START_TIMEOUT)
            await cluster._delete_scheduler_task_definition_arn()
            await cluster._delete_worker_task_definition_arn()
            # Already deregistered: the finalizers dask_cloudprovider set would try
            # again at exit, on a closed event loop.
            for finalizer in list(weakref.finalize._registry):
                info = finalizer.peek()  # (object, function, args, kwargs) or None
                if info and info[1] == cluster.sync:
                    finalizer.detach()

    asyncio.run(run())
    return calls


def _arn_prefix(cluster_arn: str, service: str = "ecs") -> str:
    partition, _, region, account = cluster_arn.split(":")[1:5]
    return f"arn:{partition}:{service}:{region}:{account}"


def required_permissions(call: Call, partition_prefix: str) -> list[Permission]:
    """The IAM authorizations AWS makes for one recorded call.

    Raises on a call this mapping does not know: a new call dask_cloudprovider
    starts making must be looked at (and granted, or not) on purpose.
    """
    p, name = call.params, f"{call.service}:{call.operation}"
    action = name
    if name == "ecs:DescribeClusters":
        return [Permission(action, arn, call=name) for arn in p["clusters"]]
    if name in ("ecs:ListAccountSettings", "ec2:DescribeNetworkInterfaces", "ecs:DeregisterTaskDefinition"):
        return [Permission(action, "*", call=name)]
    if name == "ecs:RegisterTaskDefinition":
        needed = [Permission(action, "*", call=name)]
        needed += [
            Permission("iam:PassRole", p[key], (("iam:PassedToService", "ecs-tasks.amazonaws.com"),), name)
            for key in ("taskRoleArn", "executionRoleArn")
            if p.get(key)
        ]
        if p.get("tags"):
            arn = call.response["taskDefinition"]["taskDefinitionArn"]
            needed.append(
                Permission("ecs:TagResource", arn, (("ecs:CreateAction", "RegisterTaskDefinition"),), name)
            )
        return needed
    if name == "ecs:RunTask":
        cluster = (("ecs:cluster", p["cluster"]),)
        task_definition = p["taskDefinition"]
        if not task_definition.startswith("arn:"):
            task_definition = f"{partition_prefix}:task-definition/{task_definition}"
        needed = [Permission(action, task_definition, cluster, name)]
        if p.get("tags"):
            needed += [
                Permission("ecs:TagResource", task["taskArn"], (("ecs:CreateAction", "RunTask"),), name)
                for task in call.response["tasks"]
            ]
        return needed
    if name == "ecs:DescribeTasks":
        return [Permission(action, arn, (("ecs:cluster", p["cluster"]),), name) for arn in p["tasks"]]
    if name == "ecs:StopTask":
        return [Permission(action, p["task"], (("ecs:cluster", p["cluster"]),), name)]
    raise AssertionError(f"unmapped AWS call {name}({p}): decide what it needs and map it here")


def _matches(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def _condition_holds(conditions: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    for operator, keys in conditions.items():
        for key, values in keys.items():
            values = as_list(values)
            actual = context.get(key)
            if actual is None:
                return False
            if operator in ("StringEquals", "ArnEquals"):
                ok = actual in values
            elif operator in ("StringLike", "ArnLike"):
                ok = any(_matches(value, actual) for value in values)
            else:
                raise AssertionError(f"condition operator {operator} is not evaluated here")
            if not ok:
                return False
    return True


def as_list(value: Any) -> list:
    """IAM JSON writes a single action, resource or condition value without a list."""
    return value if isinstance(value, list) else [value]


def allowing_statements(statements: list[dict], permission: Permission) -> list[dict]:
    """The Allow statements that grant `permission` (no Deny statements are expected)."""
    context = dict(permission.context)
    allowed = []
    for statement in statements:
        assert statement["Effect"] == "Allow", statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if not any(_matches(action, permission.action, case_sensitive=False) for action in actions):
            continue
        if not any(_matches(resource, permission.resource) for resource in resources):
            continue
        if _condition_holds(statement.get("Condition", {}), context):
            allowed.append(statement)
    return allowed


def role_statements(iam: Any, role_name: str) -> dict[str, list[dict]]:
    """Every inline and attached policy of a role, as policy name -> statements."""
    policies: dict[str, list[dict]] = {}
    for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
        if isinstance(document, str):
            document = json.loads(document)
        policies[policy_name] = document["Statement"]
    for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(
            PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
        )
        document = version["PolicyVersion"]["Document"]
        if isinstance(document, str):
            document = json.loads(document)
        policies[attached["PolicyName"]] = document["Statement"]
    return policies
