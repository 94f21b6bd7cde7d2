"""Running cost of a RENDERED project, read from its Terraform and prefect.yaml.

Reads what Terraform will create, not the answers: every environment root under
infra/envs/ with its terraform.tfvars, the stack and module calls it makes, and
their variable defaults, evaluated with a small interpreter of the HCL
expressions these files use (variables, locals, module outputs, conditionals,
comparisons, a few functions). It then counts the billed resources
(aws_ecs_service + its task definition, aws_secretsmanager_secret,
aws_cloudwatch_metric_alarm, aws_cloudwatch_log_group, aws_nat_gateway,
aws_lb/aws_alb, Interface aws_vpc_endpoint) and prices them with
hooks/costs.py and hooks/prices.json, the numbers the rendered README uses.

    .venv/bin/python benchmarks/stack_cost.py path/to/rendered/project

An expression it cannot evaluate is reported and its resource counted once.
"""

from __future__ import annotations

import argparse
import json
import operator
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hooks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import model
from costs import StackFacts, estimate, usd
from support.hcl import parse_file


class Unknown:
    """A value the interpreter cannot know before apply (or does not understand)."""

    def __init__(self, expression: str) -> None:
        self.expression = expression

    def __repr__(self) -> str:
        return f"Unknown({self.expression!r})"


BILLED_TYPES = (
    "aws_ecs_service",
    "aws_secretsmanager_secret",
    "aws_cloudwatch_metric_alarm",
    "aws_cloudwatch_log_group",
    "aws_nat_gateway",
    "aws_lb",
    "aws_alb",
    "aws_vpc_endpoint",
)


# Longest first: split_top takes the first separator that matches at a position.
COMPARISONS = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


def unquote(name: str) -> str:
    return json.loads(name) if name.startswith('"') and name.endswith('"') else name


def split_top(expression: str, separators: tuple[str, ...]) -> tuple[str, str, str] | None:
    """Split at the first separator outside brackets and quotes: (left, separator, right)."""
    depth, quoted, index = 0, False, 0
    while index < len(expression):
        char = expression[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0:
            for separator in separators:
                if expression.startswith(separator, index):
                    return expression[:index], separator, expression[index + len(separator) :]
        index += 1
    return None


@dataclass
class Module:
    """One Terraform module directory; its inputs are expressions of the calling module."""

    directory: Path
    raw_inputs: dict[str, Any]
    address: str
    caller: Module | None = None
    problems: list[str] = field(default_factory=list)

    @cached_property
    def blocks(self) -> dict[str, list[dict[str, Any]]]:
        merged: dict[str, list[dict[str, Any]]] = {}
        for path in sorted(self.directory.glob("*.tf")):
            for kind, entries in parse_file(path).items():
                merged.setdefault(kind, []).extend(entries)
        return merged

    def _named(self, kind: str) -> dict[str, dict[str, Any]]:
        return {unquote(name): body for entry in self.blocks.get(kind, []) for name, body in entry.items()}

    @cached_property
    def _variable_values(self) -> dict[str, Any]:
        return {}

    def variable(self, name: str) -> Any:
        """An input's value (evaluated in the caller, lazily), else the variable's default."""
        values = self._variable_values
        if name not in values:
            if name in self.raw_inputs:
                values[name] = (self.caller or self).evaluate(self.raw_inputs[name])
            else:
                body = self._named("variable").get(name)
                known = body is not None and "default" in body
                values[name] = self.evaluate(body["default"]) if known else Unknown(f"var.{name}")
        return values[name]

    @cached_property
    def local_expressions(self) -> dict[str, Any]:
        return {
            key: value
            for entry in self.blocks.get("locals", [])
            for key, value in entry.items()
            if key != "__is_block__"
        }

    @cached_property
    def children(self) -> dict[str, Module]:
        ignored = ("source", "count", "for_each", "depends_on", "providers", "__is_block__")
        return {
            name: Module(
                (self.directory / unquote(body["source"])).resolve(),
                {key: value for key, value in body.items() if key not in ignored},
                f"{self.address}.module.{name}",
                self,
                self.problems,
            )
            for name, body in self._named("module").items()
        }

    def walk(self) -> list[Module]:
        return [self, *(module for child in self.children.values() for module in child.walk())]

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            unquote(name): body
            for entry in self.blocks.get("resource", [])
            for kind, named in entry.items()
            if unquote(kind) == resource_type
            for name, body in named.items()
        }

    def count(self, body: dict[str, Any], what: str) -> int:
        """Instances of a resource: its count, the size of its for_each, else 1."""
        for key in ("count", "for_each"):
            if key in body:
                value = self.evaluate(body[key])
                if isinstance(value, bool | int) and key == "count":
                    return int(value)
                if isinstance(value, list | dict) and key == "for_each":
                    return len(value)
                self.problems.append(
                    f"{self.address}: {what} {key} = {body[key]!r} not evaluated; counted once"
                )
        return 1

    def output(self, name: str) -> Any:
        body = self._named("output").get(name)
        return Unknown(f"output {name}") if body is None else self.evaluate(body.get("value"))

    # -- expressions ------------------------------------------------------

    def evaluate(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.evaluate(item) for item in value]
        if isinstance(value, dict):
            return {key: self.evaluate(item) for key, item in value.items() if key != "__is_block__"}
        if not isinstance(value, str):
            return value
        if value.startswith("${") and value.endswith("}") and value.count("${") == 1:
            return self.expression(value[2:-1].strip())
        if value.startswith('"') and value.endswith('"') and "${" not in value:
            return json.loads(value)
        return Unknown(value)

    def expression(self, text: str) -> Any:
        text = text.strip()
        if text.startswith("(") and text.endswith(")") and split_top(text[1:-1], (")",)) is None:
            return self.expression(text[1:-1])
        if parts := split_top(text, ("?",)):
            condition, _, branches = parts
            if choice := split_top(branches, (":",)):
                test = self.expression(condition)
                if isinstance(test, Unknown):
                    return Unknown(text)
                return self.expression(choice[0] if test else choice[2])
        if parts := split_top(text, tuple(COMPARISONS)):
            left, right = self.expression(parts[0]), self.expression(parts[2])
            if isinstance(left, Unknown) or isinstance(right, Unknown):
                return Unknown(text)
            return COMPARISONS[parts[1]](left, right)
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if re.fullmatch(r"-?\d+\.\d+", text):
            return float(text)
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if text.startswith('"') and text.endswith('"') and "${" not in text:
            return json.loads(text)
        if match := re.fullmatch(r"var\.(\w+)", text):
            return self.variable(match.group(1))
        if match := re.fullmatch(r"local\.(\w+)", text):
            raw = self.local_expressions.get(match.group(1))
            return Unknown(text) if raw is None else self.evaluate(raw)
        if match := re.fullmatch(r"module\.(\w+)\.(\w+)", text):
            child = self.children.get(match.group(1))
            return Unknown(text) if child is None else child.output(match.group(2))
        if match := re.fullmatch(r"(tostring|tonumber|length|toset|tolist)\((.*)\)", text, re.DOTALL):
            argument = self.expression(match.group(2))
            if isinstance(argument, Unknown):
                return Unknown(text)
            function = match.group(1)
            if function == "length":
                return len(argument)
            if function == "tonumber":
                return float(argument) if "." in str(argument) else int(argument)
            if function == "tostring":
                return str(argument).lower() if isinstance(argument, bool) else str(argument)
            return list(dict.fromkeys(argument))
        if text.startswith("[") and text.endswith("]") and " for " not in text:
            inner = text[1:-1].strip()
            items = []
            while inner:
                parts = split_top(inner, (",",))
                items.append(self.expression(parts[0] if parts else inner))
                inner = parts[2].strip() if parts else ""
            return items
        return Unknown(text)


def as_int(value: Any, default: int = 0) -> int:
    return (
        int(value) if isinstance(value, int | float | str) and str(value).lstrip("-").isdigit() else default
    )


@dataclass
class ProjectReading:
    facts: StackFacts
    environments: list[str]
    deployment_sizes: dict[str, tuple[int, int]]
    resource_counts: dict[str, int]
    problems: list[str]


def environment_root(directory: Path, problems: list[str]) -> Module:
    tfvars: dict[str, Any] = {}
    if (directory / "terraform.tfvars").exists():
        tfvars = parse_file(directory / "terraform.tfvars")
    # tfvars values are literals: the root evaluates them itself.
    return Module(directory, tfvars, directory.name, None, problems)


def first(values: list[Any], default: Any = None) -> Any:
    return next(iter(values), default)


def read_project(project: Path) -> ProjectReading:
    problems: list[str] = []
    env_dirs = sorted(path for path in (project / "infra" / "envs").iterdir() if (path / "main.tf").exists())
    if not env_dirs:
        raise SystemExit(f"{project}: no infra/envs/<env>/main.tf; is this a rendered project?")
    counts = dict.fromkeys(BILLED_TYPES, 0)
    workers: list[tuple[int, int, str, float, bool]] = []  # cpu, memory, arch, spot share, public ip
    endpoint_azs, retention, region, stack = 0, [], None, None
    for env_dir in env_dirs:
        root = environment_root(env_dir, problems)
        region = root.variable("aws_region")
        stack = root.children.get("stack", root)
        for module in root.walk():
            for resource_type in BILLED_TYPES:
                for name, body in module.resources(resource_type).items():
                    instances = module.count(body, f"{resource_type}.{name}")
                    if resource_type == "aws_vpc_endpoint":
                        if module.evaluate(body.get("vpc_endpoint_type")) != "Interface":
                            continue
                        subnets = module.evaluate(body.get("subnet_ids"))
                        endpoint_azs += instances * (len(subnets) if isinstance(subnets, list) else 2)
                    counts[resource_type] += instances
                    if resource_type == "aws_cloudwatch_log_group":
                        retention.append(as_int(module.evaluate(body.get("retention_in_days")), 0))
                    if resource_type == "aws_ecs_service":
                        workers.extend([read_service(module, name, body)] * instances)
    assert stack is not None
    network = stack.children.get("network")
    flow_public = network.output("assign_public_ip") if network else Unknown("network")
    if isinstance(flow_public, Unknown):
        problems.append(
            "assign_public_ip has no value before you set it (existing VPC): priced without public IPv4"
            " addresses; with true, add $0.005/h per running task (worker and flow runs)"
        )
        flow_public = False
    if len({worker[:4] for worker in workers}) > 1:
        problems.append(f"always-on services differ in size or capacity: {workers}; priced as the first")
    worker = first(workers, (0, 0, "X86_64", 0.0, False))
    sizes = deployment_sizes(project)
    facts = StackFacts(
        region=str(region),
        environments=len(env_dirs),
        worker_tasks=len(workers),
        worker_cpu=worker[0],
        worker_memory=worker[1],
        worker_architecture=worker[2],
        worker_spot_share=worker[3],
        public_ips=sum(1 for entry in workers if entry[4]),
        flow_cpu=as_int(stack.variable("flow_cpu")),
        flow_memory=as_int(stack.variable("flow_memory")),
        flow_public_ip=bool(flow_public),
        spot_weight=as_int(stack.variable("spot_weight")),
        on_demand_weight=as_int(stack.variable("on_demand_weight")),
        on_demand_base=as_int(stack.variable("on_demand_base")),
        secrets=counts["aws_secretsmanager_secret"],
        alarms=counts["aws_cloudwatch_metric_alarm"],
        log_retention_days=max(retention, default=0),
        nat_gateways=counts["aws_nat_gateway"],
        load_balancers=counts["aws_lb"] + counts["aws_alb"],
        interface_endpoint_azs=endpoint_azs,
    )
    return ProjectReading(facts, [path.name for path in env_dirs], sizes, counts, problems)


def read_service(module: Module, name: str, body: dict[str, Any]) -> tuple[int, int, str, float, bool]:
    """cpu, memory, architecture, Spot share and public IP of an always-on ECS service's tasks."""
    reference = re.fullmatch(r"\$\{aws_ecs_task_definition\.(\w+)\.arn\}", str(body.get("task_definition")))
    definition = module.resources("aws_ecs_task_definition").get(reference.group(1)) if reference else None
    if definition is None:
        module.problems.append(
            f"{module.address}: aws_ecs_service.{name} task definition not found; not priced"
        )
        return (0, 0, "X86_64", 0.0, False)
    platform = first(definition.get("runtime_platform", []), {})
    architecture = module.evaluate(platform.get("cpu_architecture", '"X86_64"'))
    strategy = [
        {
            "capacityProvider": entry.get("capacity_provider"),
            "weight": as_int(entry.get("weight")),
            "base": as_int(entry.get("base")),
        }
        for entry in map(module.evaluate, body.get("capacity_provider_strategy", []))
    ]
    # The model's rule (hooks/model.py); no strategy or no weight: the launch type's FARGATE.
    share = model.spot_share(strategy) if any(entry["weight"] > 0 for entry in strategy) else 0.0
    network = module.evaluate(first(body.get("network_configuration", []), {}))
    public = network.get("assign_public_ip", False)
    if isinstance(public, Unknown):
        public = False  # read_project reports the unset assign_public_ip once
    return (
        as_int(module.evaluate(definition.get("cpu"))),
        as_int(module.evaluate(definition.get("memory"))),
        architecture if isinstance(architecture, str) else "X86_64",
        share,
        bool(public),
    )


def deployment_sizes(project: Path) -> dict[str, tuple[int, int]]:
    """Deployments of prefect.yaml that override the work pool's cpu/memory."""
    path = project / "prefect.yaml"
    if not path.exists():
        return {}
    sizes = {}
    for deployment in yaml.safe_load(path.read_text()).get("deployments") or []:
        variables = (deployment.get("work_pool") or {}).get("job_variables") or {}
        if "cpu" in variables or "memory" in variables:
            sizes[deployment.get("name", "?")] = (
                as_int(variables.get("cpu")),
                as_int(variables.get("memory")),
            )
    return sizes


def report(reading: ProjectReading) -> str:
    result = estimate(reading.facts)
    facts, run = reading.facts, result.flow_run
    lines = [
        f"Environments: {', '.join(reading.environments)}; region {facts.region} ({result.region.name});"
        f" prices of {result.retrieved}"
        + (
            ""
            if result.region.fargate_verified and result.region.services_verified
            else " (partly estimated)"
        ),
        "Billed resources found: "
        + ", ".join(f"{kind} x{count}" for kind, count in reading.resource_counts.items() if count),
        "",
        f"{'Idle cost per month':<78} {'qty':>6} {'USD':>9}",
    ]
    for line in result.idle:
        lines.append(f"{line.item:<78} {line.quantity:>6} {usd(line.monthly):>9}")
    lines.append(f"{'Total with no flow runs':<78} {'':>6} {usd(result.idle_total):>9}")
    lines += [
        "",
        f"One flow-run hour, work pool default size ({facts.flow_cpu} cpu, {facts.flow_memory} MiB, x86_64):",
        f"  Fargate Spot       {usd(run.spot, 4)}",
        f"  Fargate on-demand  {usd(run.on_demand, 4)}",
        f"  expected           {usd(run.blended, 4)}  at {run.spot_share:.0%} Spot"
        f" (spot_weight {facts.spot_weight} / (spot_weight + on_demand_weight {facts.on_demand_weight}),"
        f" 0 when on_demand_base {facts.on_demand_base} >= 1: one RunTask call per run)",
    ]
    if run.public_ipv4:
        lines.append(f"  (each includes {usd(run.public_ipv4, 3)}/h for the task's public IPv4 address)")
    for name, (cpu, memory) in reading.deployment_sizes.items():
        lines.append(f"  deployment {name} overrides the size: {cpu} cpu, {memory} MiB")
    if facts.nat_gateways == 0:
        lines.append("\nNo NAT gateway in the stack.")
    lines += [f"note: {problem}" for problem in reading.problems]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path, help="a rendered project directory")
    options = parser.parse_args()
    print(report(read_project(options.project)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
