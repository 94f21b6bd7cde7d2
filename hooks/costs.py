"""Running cost of the rendered stack, from the list prices in prices.json.

Pure functions only (standard library), shared by the rendered README's cost
table (`cost_estimate`, a Jinja global) and `benchmarks/stack_cost.py`, which
derives the same `StackFacts` from a rendered project's Terraform instead of
from the answers. Formulas:

- a Fargate task-hour = vCPU x vCPU-hour price + GB x GB-hour price
  (vCPU = cpu units / 1024, GB = memory MiB / 1024);
- idle month = every always-on task (the worker of each environment, ARM64)
  x 730 h on its capacity provider (FARGATE, or FARGATE_SPOT with
  worker_on_spot), + its public IPv4 address, + secrets, alarms,
  idle log ingestion and storage, + NAT gateways, load balancers and interface
  VPC endpoints, if any;
- expected Spot share of flow runs = the model's `spot_share` of the
  capacity strategy (hooks/model.py): spot_weight / (spot_weight +
  on_demand_weight), or 0 when on_demand_base >= 1.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PRICES_PATH = Path(__file__).with_name("prices.json")

# The model of the answers (hooks/model.py), from this same checkout: see hooks/aws_limits.py.
model = importlib.import_module(__name__.removesuffix("costs") + "model")

# What the Terraform of one environment creates; tests/infra/test_costs.py checks
# these against the rendered HCL so the README cannot drift from the stack.
WORKERS_PER_ENVIRONMENT = 1
WORKER_ARCHITECTURE = "ARM64"
SECRETS_PER_ENVIRONMENT = 1
# Worker not running, task-event backlog, task events in the dead-letter queue
# (their SNS topic and the queues cost nothing at an idle stack's volume).
ALARMS_PER_ENVIRONMENT = 3


@cache
def load_prices(path: str | None = None) -> dict[str, Any]:
    return json.loads(Path(path or PRICES_PATH).read_text())


@dataclass(frozen=True)
class FargateRates:
    vcpu_hour: float
    gb_hour: float

    def task_hour(self, cpu_units: int, memory_mib: int) -> float:
        return cpu_units / 1024 * self.vcpu_hour + memory_mib / 1024 * self.gb_hour


@dataclass(frozen=True)
class RegionPrices:
    region: str
    name: str
    on_demand: FargateRates
    spot: FargateRates
    on_demand_arm64: FargateRates
    spot_arm64: FargateRates
    services: dict[str, float]
    fargate_verified: bool
    services_verified: bool
    hours_per_month: float


def region_prices(region: str, prices: dict[str, Any] | None = None) -> RegionPrices:
    """Resolve a region's prices, applying the documented ratios to us-east-1."""
    prices = prices or load_prices()
    try:
        entry = prices["regions"][region]
    except KeyError:
        raise ValueError(f"no prices for region {region!r}; add it to {PRICES_PATH.name}") from None
    reference = prices["regions"][prices["reference_region"]]["fargate"]
    fargate = entry["fargate"]
    if "on_demand" in fargate:
        on_demand, spot = FargateRates(**fargate["on_demand"]), FargateRates(**fargate["spot"])
    else:
        ratio = fargate["ratio_to_reference"]
        on_demand = FargateRates(*(reference["on_demand"][k] * ratio for k in ("vcpu_hour", "gb_hour")))
        spot = FargateRates(*(reference["spot"][k] * ratio for k in ("vcpu_hour", "gb_hour")))
    arm = prices["fargate_arm64"]["reference_on_demand"]
    arm_ratio = {key: arm[key] / reference["on_demand"][key] for key in ("vcpu_hour", "gb_hour")}

    def arm64(rates: FargateRates) -> FargateRates:
        return FargateRates(rates.vcpu_hour * arm_ratio["vcpu_hour"], rates.gb_hour * arm_ratio["gb_hour"])

    regional = entry["services"]
    services = {
        key: price if key in prices["uniform_services"] else price * regional["ratio_to_reference"]
        for key, price in prices["services"].items()
    }
    services.update(regional.get("overrides", {}))
    return RegionPrices(
        region=region,
        name=entry["name"],
        on_demand=on_demand,
        spot=spot,
        on_demand_arm64=arm64(on_demand),
        spot_arm64=arm64(spot),
        services=services,
        fargate_verified=fargate["verified"],
        services_verified=regional["verified"],
        hours_per_month=prices["hours_per_month"],
    )


def spot_share(spot_weight: int, on_demand_weight: int, on_demand_base: int = 0) -> float:
    """Expected fraction of flow runs on FARGATE_SPOT (the model's rule for these weights)."""
    return model.spot_share(model.capacity_provider_strategy(spot_weight, on_demand_weight, on_demand_base))


@dataclass(frozen=True)
class StackFacts:
    """What the running cost depends on, whether read from answers or from Terraform."""

    region: str
    environments: int
    # Always-on tasks (the workers), each priced on its own capacity provider.
    worker_tasks: int
    worker_cpu: int
    worker_memory: int
    worker_architecture: str  # ARM64 or X86_64
    worker_spot_share: float
    public_ips: int  # public IPv4 addresses held around the clock (one per worker task)
    flow_cpu: int
    flow_memory: int
    flow_public_ip: bool
    spot_weight: int
    on_demand_weight: int
    on_demand_base: int
    secrets: int
    alarms: int
    log_retention_days: int
    nat_gateways: int = 0
    load_balancers: int = 0
    interface_endpoint_azs: int = 0


def facts_from_answers(answers: dict[str, Any]) -> StackFacts:
    """The facts the template's answers imply (what the Terraform creates per environment)."""
    environments = len(answers["environments"])
    public = model.Model(answers).new_vpc
    workers = environments * WORKERS_PER_ENVIRONMENT
    return StackFacts(
        region=answers["aws_region"],
        environments=environments,
        worker_tasks=workers,
        worker_cpu=int(answers["worker_cpu"]),
        worker_memory=int(answers["worker_memory"]),
        worker_architecture=WORKER_ARCHITECTURE,
        worker_spot_share=1.0 if answers.get("worker_on_spot") else 0.0,
        public_ips=workers if public else 0,
        flow_cpu=int(answers["flow_cpu"]),
        flow_memory=int(answers["flow_memory"]),
        flow_public_ip=public,
        spot_weight=int(answers["spot_weight"]),
        on_demand_weight=int(answers["on_demand_weight"]),
        on_demand_base=int(answers["on_demand_base"]),
        secrets=environments * SECRETS_PER_ENVIRONMENT,
        alarms=environments * ALARMS_PER_ENVIRONMENT,
        log_retention_days=int(answers["log_retention_days"]),
    )


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: str
    monthly: float


def idle_monthly(facts: StackFacts, prices: dict[str, Any] | None = None) -> list[CostLine]:
    """Monthly cost of the stack with no flow runs, one line per billed resource kind."""
    prices = prices or load_prices()
    rates = region_prices(facts.region, prices)
    hours = rates.hours_per_month
    service = rates.services
    arm = facts.worker_architecture == "ARM64"
    on_demand, spot = (rates.on_demand_arm64, rates.spot_arm64) if arm else (rates.on_demand, rates.spot)
    size = (facts.worker_cpu, facts.worker_memory)
    worker_hour = facts.worker_spot_share * spot.task_hour(*size) + (
        1 - facts.worker_spot_share
    ) * on_demand.task_hour(*size)
    capacity = "on-demand" if facts.worker_spot_share == 0 else f"{facts.worker_spot_share:.0%} Spot"
    capacity += " ARM64" if arm else " x86_64"
    log_gb = facts.environments * prices["assumptions"]["idle_log_gb_per_environment_month"]
    stored_gb = log_gb * facts.log_retention_days / (hours / 24)
    lines = [
        CostLine(
            f"Prefect worker task ({facts.worker_cpu / 1024:g} vCPU, {facts.worker_memory / 1024:g} GB, "
            f"{capacity} Fargate, {hours:g} h)",
            f"{facts.worker_tasks}",
            facts.worker_tasks * worker_hour * hours,
        ),
        CostLine(
            "Public IPv4 address of the worker task" + ("s" if facts.public_ips > 1 else ""),
            f"{facts.public_ips}",
            facts.public_ips * service["public_ipv4_hour"] * hours,
        ),
        CostLine("Secrets Manager secret", f"{facts.secrets}", facts.secrets * service["secret_month"]),
        CostLine("CloudWatch alarm", f"{facts.alarms}", facts.alarms * service["alarm_month"]),
        CostLine(
            f"CloudWatch Logs (idle stack's logs, {facts.log_retention_days}-day retention)",
            f"{log_gb:g} GB",
            log_gb * service["logs_ingested_gb"] + stored_gb * service["logs_stored_gb_month"],
        ),
        CostLine(
            "NAT gateway", f"{facts.nat_gateways}", facts.nat_gateways * service["nat_gateway_hour"] * hours
        ),
        CostLine(
            "Load balancer", f"{facts.load_balancers}", facts.load_balancers * service["alb_hour"] * hours
        ),
        CostLine(
            "Interface VPC endpoint (per AZ)",
            f"{facts.interface_endpoint_azs}",
            facts.interface_endpoint_azs * service["interface_endpoint_hour"] * hours,
        ),
    ]
    # Lines for resources the stack does not have carry no information.
    return [line for line in lines if line.monthly > 0 or line.quantity not in ("0", "0 GB")]


@dataclass(frozen=True)
class FlowRunHour:
    cpu: int
    memory: int
    spot: float
    on_demand: float
    spot_share: float
    public_ipv4: float

    @property
    def blended(self) -> float:
        return self.spot_share * self.spot + (1 - self.spot_share) * self.on_demand


def flow_run_hour(facts: StackFacts, prices: dict[str, Any] | None = None) -> FlowRunHour:
    """Price of one hour of a default-size flow run (public IPv4 included when it gets one)."""
    rates = region_prices(facts.region, prices)
    ip = rates.services["public_ipv4_hour"] if facts.flow_public_ip else 0.0
    return FlowRunHour(
        cpu=facts.flow_cpu,
        memory=facts.flow_memory,
        spot=rates.spot.task_hour(facts.flow_cpu, facts.flow_memory) + ip,
        on_demand=rates.on_demand.task_hour(facts.flow_cpu, facts.flow_memory) + ip,
        spot_share=spot_share(facts.spot_weight, facts.on_demand_weight, facts.on_demand_base),
        public_ipv4=ip,
    )


@dataclass(frozen=True)
class CostEstimate:
    facts: StackFacts
    region: RegionPrices
    idle: list[CostLine]
    flow_run: FlowRunHour
    retrieved: str

    @property
    def idle_total(self) -> float:
        return sum(line.monthly for line in self.idle)


def estimate(facts: StackFacts, prices: dict[str, Any] | None = None) -> CostEstimate:
    prices = prices or load_prices()
    return CostEstimate(
        facts=facts,
        region=region_prices(facts.region, prices),
        idle=idle_monthly(facts, prices),
        flow_run=flow_run_hour(facts, prices),
        retrieved=prices["retrieved"],
    )


def cost_estimate(answers: dict[str, Any]) -> CostEstimate:
    """Jinja global: the cost estimate of the project these answers render."""
    return estimate(facts_from_answers(answers))


def usd(amount: float, places: int = 2) -> str:
    """`$1,234.50`; small per-hour prices get more places (`usd(x, 4)`)."""
    return f"${amount:,.{places}f}"


# The Dask flow's client is the flow run itself, on the size its deployment in
# prefect.yaml gives it (on-demand, like the scheduler).
DASK_CLIENT_CPU = 512
DASK_CLIENT_MEMORY = 1024


@dataclass(frozen=True)
class DaskRunHour:
    """One hour of a Dask flow run: client + scheduler on on-demand, workers as answered."""

    workers_on_spot: bool
    min_workers: int
    max_workers: int
    client: float
    scheduler: float
    worker: float  # one worker, on Spot or on-demand as answered
    public_ipv4: float  # per task, included in the three prices above

    def total(self, workers: int) -> float:
        return self.client + self.scheduler + workers * self.worker


def dask_run_hour(answers: dict[str, Any], prices: dict[str, Any] | None = None) -> DaskRunHour | None:
    """Jinja global: the hourly price of a Dask flow run at the answered sizes (None without Dask)."""
    if not answers.get("dask_cluster"):
        return None
    rates = region_prices(answers["aws_region"], prices)
    # Every task gets a public IPv4 address in the new VPC (no NAT gateway).
    ip = rates.services["public_ipv4_hour"] if model.Model(answers).new_vpc else 0.0
    spot = bool(answers["dask_workers_on_spot"])
    worker_rates = rates.spot if spot else rates.on_demand
    scheduler_size = int(answers["dask_scheduler_cpu"]), int(answers["dask_scheduler_memory"])
    worker_size = int(answers["dask_worker_cpu"]), int(answers["dask_worker_memory"])
    return DaskRunHour(
        workers_on_spot=spot,
        min_workers=int(answers["dask_min_workers"]),
        max_workers=int(answers["dask_max_workers"]),
        client=rates.on_demand.task_hour(DASK_CLIENT_CPU, DASK_CLIENT_MEMORY) + ip,
        scheduler=rates.on_demand.task_hour(*scheduler_size) + ip,
        worker=worker_rates.task_hour(*worker_size) + ip,
        public_ipv4=ip,
    )
