"""Policy checks on the rendered Terraform, read with python-hcl2 (no terraform needed).

For every named answer set:
- no IAM Allow statement grants Resource "*" except for the actions AWS cannot
  scope to a resource (the allow-list below, each with its reason);
- a new VPC never gets a NAT gateway;
- the worker service runs on on-demand FARGATE only, and the cluster's default
  capacity provider strategy carries the answered weights, traced from each
  env root's terraform.tfvars through the stack into the cluster module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from model import Model
from support.answers import recorded_answers as answers
from support.hcl import blocks, loads, parse_file, unquote, unquote_tree
from support.terraform import env_roots

# Actions that may use Resource "*": AWS offers no resource-level permission
# for them, so there is nothing narrower to write.
WILDCARD_RESOURCE_ACTIONS: dict[str, str] = {
    "ecr:GetAuthorizationToken": "registry login token is account-wide; no resource type",
    "ecs:RegisterTaskDefinition": "the task definition does not exist before the call; no resource type",
    "ecs:DescribeTaskDefinition": "ECS supports no resource-level permissions for it",
    "ecs:DeregisterTaskDefinition": "ECS supports no resource-level permissions for it",
    "ec2:DescribeVpcs": "EC2 Describe* actions cannot be scoped to resources",
    "ec2:DescribeSubnets": "EC2 Describe* actions cannot be scoped to resources",
    # The Dask flow's FargateCluster (infra/modules/dask): it reads the ENI of
    # each scheduler/worker task for its IP, and checks the account's
    # taskLongArnFormat setting before RunTask.
    "ec2:DescribeNetworkInterfaces": "EC2 Describe* actions cannot be scoped to resources",
    "ecs:ListAccountSettings": "account settings have no resource type",
}


def as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def parse_tf(project: Path) -> dict[Path, dict]:
    files = sorted((project / "infra").rglob("*.tf"))
    assert files, f"no Terraform rendered under {project / 'infra'}"
    parsed = {}
    for path in files:
        parsed[path] = parse_file(path)
    return parsed


# --- IAM: Resource "*" -------------------------------------------------------


def policy_document_statements(parsed: dict[Path, dict]) -> Iterator[tuple[str, dict]]:
    """Statements of every aws_iam_policy_document, as IAM JSON would spell them."""
    for path, document in parsed.items():
        for block_type, name, body in blocks(document, "data"):
            if block_type != "aws_iam_policy_document":
                continue
            for statement in body.get("statement", []):
                yield (
                    f"{path.name}: data.{block_type}.{name}",
                    {
                        "Effect": unquote(statement.get("effect", '"Allow"')),
                        "Action": [unquote(a) for a in statement.get("actions", [])],
                        "NotAction": [unquote(a) for a in statement.get("not_actions", [])],
                        "Resource": [unquote(r) for r in statement.get("resources", [])],
                        "NotResource": [unquote(r) for r in statement.get("not_resources", [])],
                    },
                )


def jsonencode_arguments(value: object) -> Iterator[str]:
    """HCL text of every jsonencode(...) argument found in a parsed value."""
    if isinstance(value, dict):
        for item in value.values():
            yield from jsonencode_arguments(item)
    elif isinstance(value, list):
        for item in value:
            yield from jsonencode_arguments(item)
    elif isinstance(value, str) and value.startswith("${jsonencode(") and value.endswith(")}"):
        yield value[len("${jsonencode(") : -len(")}")]


def jsonencoded_statements(parsed: dict[Path, dict]) -> Iterator[tuple[str, dict]]:
    """Statements of every policy written inline with jsonencode({...})."""
    for path, document in parsed.items():
        for kind in ("resource", "data", "locals", "module", "output"):
            for argument in jsonencode_arguments(document.get(kind, [])):
                value = unquote_tree(loads(f"value = {argument}\n")["value"])
                if isinstance(value, dict) and "Statement" in value:
                    for statement in as_list(value["Statement"]):
                        yield (
                            f"{path.name}: jsonencode policy",
                            {
                                "Effect": statement.get("Effect"),
                                "Action": as_list(statement.get("Action", [])),
                                "NotAction": as_list(statement.get("NotAction", [])),
                                "Resource": as_list(statement.get("Resource", [])),
                                "NotResource": as_list(statement.get("NotResource", [])),
                            },
                        )


def wildcard_violations(statements: list[tuple[str, dict]]) -> list[str]:
    problems = []
    for where, statement in statements:
        if statement["Effect"] != "Allow":
            continue
        if statement["NotAction"] or statement["NotResource"]:
            problems.append(f"{where}: Allow with NotAction/NotResource grants almost everything")
        if "*" not in statement["Resource"]:
            continue
        for action in statement["Action"]:
            if action not in WILDCARD_RESOURCE_ACTIONS:
                problems.append(f'{where}: {action} on Resource "*"')
    return problems


def test_iam_wildcard_resources_only_for_unscopable_actions(project: Path) -> None:
    parsed = parse_tf(project)
    statements = list(policy_document_statements(parsed)) + list(jsonencoded_statements(parsed))
    allowed = [s for _, s in statements if s["Effect"] == "Allow"]
    # The worker role's policy must be among them, or this test checks nothing.
    assert any("iam:PassRole" in s["Action"] for s in allowed), "worker task policy not found"
    assert wildcard_violations(statements) == []


def test_pass_role_is_limited_to_ecs_tasks(project: Path) -> None:
    parsed = parse_tf(project)
    pass_role = [
        statement
        for document in parsed.values()
        for block_type, _, body in blocks(document, "data")
        if block_type == "aws_iam_policy_document"
        for statement in body.get("statement", [])
        if '"iam:PassRole"' in statement.get("actions", [])
    ]
    assert pass_role, "no iam:PassRole statement found"
    for statement in pass_role:
        assert '"*"' not in statement["resources"]
        conditions = {
            (unquote(c["test"]), unquote(c["variable"])): [unquote(v) for v in c["values"]]
            for c in statement.get("condition", [])
        }
        assert conditions.get(("StringEquals", "iam:PassedToService")) == ["ecs-tasks.amazonaws.com"]


def test_flow_run_tags_need_tag_resource_on_run_task_only(project: Path) -> None:
    """RunTask with tags is authorized also as ecs:TagResource on the new task (AWS: "tag on create").

    The worker tags every flow-run task (project, environment, owner, prefect.io/...),
    so the worker role needs TagResource; conditioned on ecs:CreateAction = RunTask
    it cannot re-tag a running task, and it covers only tasks of its own cluster.
    """
    parsed = parse_tf(project)
    worker_task = next(
        body
        for path, document in parsed.items()
        if path.parent.name == "worker"
        for block_type, name, body in blocks(document, "data")
        if (block_type, name) == ("aws_iam_policy_document", "task")
    )
    statements = {unquote(s["sid"]): s for s in worker_task["statement"]}
    tagging = [s for s in statements.values() if '"ecs:TagResource"' in s["actions"]]
    assert len(tagging) == 1 and tagging[0]["actions"] == ['"ecs:TagResource"'], tagging
    (statement,) = tagging
    assert statement["resources"] == statements["WatchAndStopTasksInThisCluster"]["resources"]
    assert [unquote(r) for r in statement["resources"]] == ["${local.cluster_task_arns}"]
    conditions = {
        (unquote(c["test"]), unquote(c["variable"])): [unquote(v) for v in c["values"]]
        for c in statement.get("condition", [])
    }
    assert conditions == {("StringEquals", "ecs:CreateAction"): ["RunTask"]}
    assert any('"ecs:RunTask"' in s["actions"] for s in statements.values())


def test_recovery_handler_describes_only_its_clusters_tasks(project: Path) -> None:
    """The crash-recovery handler (flow-run task role) reads stop codes: DescribeTasks, this cluster only."""
    parsed = parse_tf(project)
    documents = {
        name: body
        for path, document in parsed.items()
        if path.parent.name == "flow_runs"
        for block_type, name, body in blocks(document, "data")
        if block_type == "aws_iam_policy_document"
    }
    assert ("describe_tasks" in documents) == Model(answers(project)).crash_recovery
    if "describe_tasks" not in documents:
        return
    (statement,) = documents["describe_tasks"]["statement"]
    assert statement["actions"] == ['"ecs:DescribeTasks"']
    (resource,) = [unquote(r) for r in statement["resources"]]
    assert resource.endswith(":task/${var.cluster_name}/*"), resource
    conditions = {
        (unquote(c["test"]), unquote(c["variable"])): [unquote(v) for v in c["values"]]
        for c in statement.get("condition", [])
    }
    assert conditions == {("ArnEquals", "ecs:cluster"): ["${var.cluster_arn}"]}


def test_wildcard_check_catches_an_unscoped_action() -> None:
    """The allow-list check itself must reject what it is meant to reject."""
    statement = {
        "Effect": "Allow",
        "Action": ["ecs:RunTask"],
        "NotAction": [],
        "Resource": ["*"],
        "NotResource": [],
    }
    assert wildcard_violations([("example", statement)]) == ['example: ecs:RunTask on Resource "*"']


# --- Network: no NAT gateway -------------------------------------------------


def resource_types(parsed: dict[Path, dict]) -> set[str]:
    return {block_type for document in parsed.values() for block_type, _, _ in blocks(document, "resource")}


def test_new_vpc_has_no_nat_gateway(project: Path) -> None:
    types = resource_types(parse_tf(project))
    if answers(project)["network_mode"] == "new_vpc":
        assert {"aws_vpc", "aws_internet_gateway", "aws_subnet"} <= types
        assert "aws_nat_gateway" not in types
        assert "aws_eip" not in types
    else:
        assert not {"aws_vpc", "aws_subnet", "aws_nat_gateway", "aws_internet_gateway"} & types


# --- Capacity: worker on FARGATE, flow runs per the answers ------------------


def test_worker_service_runs_on_its_chosen_capacity(project: Path) -> None:
    services = [
        body
        for document in parse_tf(project).values()
        for block_type, _, body in blocks(document, "resource")
        if block_type == "aws_ecs_service"
    ]
    assert len(services) == 1, "expected exactly one ECS service, the worker"
    (service,) = services
    strategy = service.get("capacity_provider_strategy", [])
    assert strategy, "the worker service must name its capacity provider"
    # On-demand unless the worker_on_spot answer (issue 15) puts it on Spot.
    chosen = "FARGATE_SPOT" if answers(project).get("worker_on_spot") else "FARGATE"
    assert [unquote(item["capacity_provider"]) for item in strategy] == [chosen]
    assert [(item["weight"], item["base"]) for item in strategy] == [(1, 1)]
    # Without it, AWS provider 5.x replaces the service when the answer changes and 6.x refuses the plan.
    assert service.get("force_new_deployment") is True
    assert "launch_type" not in service
    assert service["desired_count"] == 1
    assert service["deployment_circuit_breaker"] == [{"enable": True, "rollback": True, "__is_block__": True}]


def module_arguments(root: Path, module_name: str) -> dict:
    document = parse_file(root / "main.tf")
    for entry in document.get("module", []):
        for name, body in entry.items():
            if unquote(name) == module_name:
                return body
    raise AssertionError(f'module "{module_name}" not found in {root / "main.tf"}')


def resolve(value: object, scope: dict) -> object:
    """Value of an argument that is a literal or a bare `var.<name>` reference.

    References the scope cannot answer (values set outside tfvars, such as
    prefect_api_url) stay as they are; comparing one with a number fails.
    """
    if isinstance(value, str) and (match := re.fullmatch(r"\$\{var\.(\w+)\}", value)):
        return scope.get(match.group(1), value)
    return unquote(value)


def cluster_strategy(cluster_module: Path, scope: dict) -> list[dict]:
    """Evaluate the cluster module's strategy local: candidates with a weight or a base."""
    document = parse_file(cluster_module / "main.tf")
    expression = next(
        entry["capacity_provider_strategy"]
        for entry in document.get("locals", [])
        if "capacity_provider_strategy" in entry
    )
    match = re.fullmatch(
        r"\$\{\[for (\w+) in (\[.*\]) : \1 if \1\.weight > 0 \|\| \1\.base > 0\]\}", expression
    )
    assert match, f"unexpected shape of local.capacity_provider_strategy: {expression}"
    candidates = loads(f"value = {match.group(2)}\n")["value"]
    evaluated = [{key: resolve(item, scope) for key, item in candidate.items()} for candidate in candidates]
    return [candidate for candidate in evaluated if candidate["weight"] > 0 or candidate["base"] > 0]


def test_cluster_strategy_matches_answers(project: Path) -> None:
    given = answers(project)
    expected = [
        {"capacity_provider": "FARGATE_SPOT", "weight": given["spot_weight"], "base": 0},
        {
            "capacity_provider": "FARGATE",
            "weight": given["on_demand_weight"],
            "base": given["on_demand_base"],
        },
    ]
    expected = [provider for provider in expected if provider["weight"] > 0 or provider["base"] > 0]
    assert expected, "the answers allow no capacity provider"

    infra = project / "infra"
    cluster_module = infra / "modules" / "cluster"
    cluster_document = parse_file(cluster_module / "main.tf")
    (capacity_providers,) = [
        body
        for block_type, _, body in blocks(cluster_document, "resource")
        if block_type == "aws_ecs_cluster_capacity_providers"
    ]
    assert [unquote(p) for p in capacity_providers["capacity_providers"]] == ["FARGATE", "FARGATE_SPOT"]
    (dynamic,) = capacity_providers["dynamic"]
    assert (
        dynamic['"default_capacity_provider_strategy"']["for_each"] == "${local.capacity_provider_strategy}"
    )

    for root in env_roots(project):
        tfvars = {key: unquote(value) for key, value in parse_file(root / "terraform.tfvars").items()}
        stack_scope = {key: resolve(value, tfvars) for key, value in module_arguments(root, "stack").items()}
        cluster_scope = {
            key: resolve(value, stack_scope)
            for key, value in module_arguments(infra / "stack", "cluster").items()
        }
        assert cluster_strategy(cluster_module, cluster_scope) == expected, root.name


@pytest.mark.parametrize(
    ("spot", "on_demand", "base", "expected"),
    [
        (3, 1, 2, [("FARGATE_SPOT", 3, 0), ("FARGATE", 1, 2)]),
        (0, 1, 1, [("FARGATE", 1, 1)]),
        (1, 0, 0, [("FARGATE_SPOT", 1, 0)]),
        (1, 0, 2, [("FARGATE_SPOT", 1, 0), ("FARGATE", 0, 2)]),
    ],
)
def test_strategy_evaluation_follows_weights(
    render, spot: int, on_demand: int, base: int, expected: list[tuple]
) -> None:
    """The evaluator above really reads the weights: other inputs give other strategies."""
    scope = {"spot_weight": spot, "on_demand_weight": on_demand, "on_demand_base": base}
    strategy = cluster_strategy(render({}) / "infra" / "modules" / "cluster", scope)
    assert [(p["capacity_provider"], p["weight"], p["base"]) for p in strategy] == expected
