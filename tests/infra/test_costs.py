"""The running-cost model: hand-computed numbers, and README and Terraform agreeing.

Expected values are computed here from hooks/prices.json with the formulas of
hooks/costs.py written out again (vCPU = cpu/1024, GB = MiB/1024, 730 h a
month), never copied from an output. The Terraform side comes from
benchmarks/stack_cost.py reading the rendered HCL, the README side from the
answers: for every answer set both must give the same facts, so the README's
cost table cannot drift from what Terraform creates.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from costs import (
    PRICES_PATH,
    cost_estimate,
    estimate,
    facts_from_answers,
    region_prices,
    spot_share,
)
from jinja2 import Environment, FileSystemLoader
from support.answers import REPO, answers_of, choice_values, presets
from support.prefect_checks import load_prefect_yaml

PRICES = json.loads(PRICES_PATH.read_text())
HOURS = 730
US = PRICES["regions"]["us-east-1"]["fargate"]
ARM_US = PRICES["fargate_arm64"]["reference_on_demand"]
SERVICES = PRICES["services"]
IDLE_LOG_GB = PRICES["assumptions"]["idle_log_gb_per_environment_month"]
ON_DEMAND_PRESET = "regulated-prod"
SPOT_WORKER_PRESET = "minimal-dev"


def _load_stack_cost():
    spec = importlib.util.spec_from_file_location("stack_cost", REPO / "benchmarks" / "stack_cost.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["stack_cost"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


stack_cost = _load_stack_cost()


def logs_month(environments: int, retention_days: int) -> float:
    ingested = environments * IDLE_LOG_GB
    stored = ingested * retention_days / (HOURS / 24)
    return ingested * SERVICES["logs_ingested_gb"] + stored * SERVICES["logs_stored_gb_month"]


def test_prices_cover_every_region_a_user_can_choose():
    for region in choice_values("aws_region"):
        rates = region_prices(region)
        assert rates.on_demand.vcpu_hour > rates.spot.vcpu_hour > 0, region
        assert rates.on_demand.gb_hour > rates.spot.gb_hour > 0, region
        entry = PRICES["regions"][region]
        if not entry["fargate"]["verified"]:
            assert "basis" in entry["fargate"], f"{region}: an estimated price must say how it was made"


def test_unverified_region_uses_its_documented_ratio_to_us_east_1():
    osaka = PRICES["regions"]["ap-northeast-3"]
    ratio = osaka["fargate"]["ratio_to_reference"]
    rates = region_prices("ap-northeast-3")
    assert rates.on_demand.vcpu_hour == pytest.approx(US["on_demand"]["vcpu_hour"] * ratio)
    assert rates.spot.gb_hour == pytest.approx(US["spot"]["gb_hour"] * ratio)
    assert rates.services["nat_gateway_hour"] == pytest.approx(
        SERVICES["nat_gateway_hour"] * osaka["services"]["ratio_to_reference"]
    )
    # AWS publishes one price everywhere for these.
    assert rates.services["secret_month"] == SERVICES["secret_month"]
    assert rates.services["public_ipv4_hour"] == SERVICES["public_ipv4_hour"]


@pytest.mark.parametrize(
    ("spot_weight", "on_demand_weight", "expected"), [(3, 1, 0.75), (0, 1, 0.0), (1, 0, 1.0), (9, 1, 0.9)]
)
def test_spot_share_is_the_spot_weight_fraction(spot_weight, on_demand_weight, expected):
    assert spot_share(spot_weight, on_demand_weight) == pytest.approx(expected)


def test_an_on_demand_base_puts_every_run_on_demand():
    # Each flow run is its own RunTask call of one task; ECS fills the base first.
    assert spot_share(3, 1, on_demand_base=1) == 0
    assert spot_share(3, 1, on_demand_base=0) == pytest.approx(3 / 4)


def test_spot_share_rejects_two_zero_weights():
    with pytest.raises(ValueError):
        spot_share(0, 0)


def test_default_render_costs_what_the_prices_say(render):
    reading = stack_cost.read_project(render({}))
    result = estimate(reading.facts)

    # One dev environment in us-east-1: worker 256 cpu / 512 MiB on ARM64 on-demand,
    # with a public IPv4 address (new VPC, no NAT), one secret, three alarms (worker,
    # task-event backlog, dead letters), 30-day logs.
    worker = (0.25 * ARM_US["vcpu_hour"] + 0.5 * ARM_US["gb_hour"]) * HOURS
    public_ip = SERVICES["public_ipv4_hour"] * HOURS
    expected_idle = (
        worker + public_ip + SERVICES["secret_month"] + 3 * SERVICES["alarm_month"] + logs_month(1, 30)
    )
    assert result.idle_total == pytest.approx(expected_idle, rel=1e-9)
    assert [line.monthly for line in result.idle] == pytest.approx(
        [worker, public_ip, SERVICES["secret_month"], 3 * SERVICES["alarm_month"], logs_month(1, 30)]
    )

    # A default flow run: 1024 cpu / 2048 MiB on x86_64, plus its public IPv4 address.
    spot = 1 * US["spot"]["vcpu_hour"] + 2 * US["spot"]["gb_hour"] + SERVICES["public_ipv4_hour"]
    on_demand = (
        1 * US["on_demand"]["vcpu_hour"] + 2 * US["on_demand"]["gb_hour"] + SERVICES["public_ipv4_hour"]
    )
    assert result.flow_run.spot == pytest.approx(spot)
    assert result.flow_run.on_demand == pytest.approx(on_demand)
    assert result.flow_run.spot_share == pytest.approx(3 / 4)
    assert result.flow_run.blended == pytest.approx(0.75 * spot + 0.25 * on_demand)
    assert (
        reading.facts.nat_gateways
        == reading.facts.load_balancers
        == reading.facts.interface_endpoint_azs
        == 0
    )


def test_on_demand_only_preset_costs_what_the_prices_say(render):
    preset = presets()[ON_DEMAND_PRESET]
    assert preset["spot_weight"] == 0, "this test needs the on-demand-only preset"
    reading = stack_cost.read_project(render(preset))
    result = estimate(reading.facts)

    # Three environments in us-east-1, existing VPC (no public IP priced until set),
    # workers 512 cpu / 1024 MiB on ARM64, 2557-day log retention.
    environments = len(preset["environments"])
    worker = (0.5 * ARM_US["vcpu_hour"] + 1 * ARM_US["gb_hour"]) * HOURS
    expected_idle = environments * (
        worker + SERVICES["secret_month"] + 3 * SERVICES["alarm_month"]
    ) + logs_month(environments, preset["log_retention_days"])
    assert result.idle_total == pytest.approx(expected_idle, rel=1e-9)

    # 1024 cpu / 4096 MiB on x86_64, no public IP: every run on on-demand.
    on_demand = 1 * US["on_demand"]["vcpu_hour"] + 4 * US["on_demand"]["gb_hour"]
    assert result.flow_run.spot_share == 0
    assert result.flow_run.on_demand == pytest.approx(on_demand)
    assert result.flow_run.blended == pytest.approx(on_demand)
    assert any("assign_public_ip" in problem for problem in reading.problems)


def test_spot_worker_preset_costs_what_the_prices_say(render):
    preset = presets()[SPOT_WORKER_PRESET]
    assert preset["worker_on_spot"] is True, "this test needs the preset whose worker runs on Spot"
    reading = stack_cost.read_project(render(preset))
    result = estimate(reading.facts)

    # One dev environment in us-east-1 (the preset leaves the region), worker 256 cpu / 512 MiB on
    # ARM64 Fargate Spot: us-east-1's x86 Spot price x the ARM64/x86 on-demand ratio, per dimension.
    assert reading.facts.worker_spot_share == 1
    arm_spot = {key: US["spot"][key] * ARM_US[key] / US["on_demand"][key] for key in ("vcpu_hour", "gb_hour")}
    worker = (0.25 * arm_spot["vcpu_hour"] + 0.5 * arm_spot["gb_hour"]) * HOURS
    public_ip = SERVICES["public_ipv4_hour"] * HOURS
    expected_idle = (
        worker
        + public_ip
        + SERVICES["secret_month"]
        + 3 * SERVICES["alarm_month"]
        + logs_month(1, preset["log_retention_days"])
    )
    assert result.idle_total == pytest.approx(expected_idle, rel=1e-9)
    assert "100% Spot ARM64" in result.idle[0].item
    assert result.idle_total <= 7.0, "issue 15: minimal-dev idles at $7 a month or less"


def test_answers_and_terraform_give_the_same_cost_facts(project):
    """The README (from answers) and stack_cost (from HCL) describe the same stack."""
    reading = stack_cost.read_project(project)
    assert facts_from_answers(answers_of(project)) == reading.facts
    unexplained = [problem for problem in reading.problems if "assign_public_ip" not in problem]
    assert not unexplained, "stack_cost could not evaluate some Terraform expressions"


def _table_amounts(markdown: str) -> dict[str, str]:
    """Row label -> last cell, for every table row of the cost section."""
    rows = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and cells[-1].startswith(("$", "**$")):
            rows[re.sub(r"\*\*", "", cells[0])] = cells[-1].strip("*")
    return rows


def _expected_rows(project: Path) -> dict[str, str]:
    result = estimate(stack_cost.read_project(project).facts)
    rows = {line.item: f"${line.monthly:,.2f}" for line in result.idle}
    rows["Total with no flow runs"] = f"${result.idle_total:,.2f}"
    rows["Fargate Spot"] = f"${result.flow_run.spot:,.4f}"
    rows["Fargate on-demand"] = f"${result.flow_run.on_demand:,.4f}"
    return rows


def test_cost_table_include_agrees_with_stack_cost(render):
    project = render({})
    answers = answers_of(project)
    environment = Environment(loader=FileSystemLoader(REPO), extensions=["extensions.TemplateExtension"])
    table = environment.get_template("includes/cost_table.md.jinja").render(
        _copier_answers=answers, **answers
    )
    rows = _table_amounts(table)
    expected = _expected_rows(project)
    assert {label: rows.get(label) for label in expected} == expected
    assert "There is no NAT gateway" in table
    assert cost_estimate(answers).idle_total == pytest.approx(
        estimate(stack_cost.read_project(project).facts).idle_total
    )


def test_rendered_readme_cost_table_agrees_with_stack_cost(render):
    project = render({})
    readme = (project / "README.md").read_text()
    assert "Total with no flow runs" in readme, "the README has no cost table"
    rows = _table_amounts(readme)
    expected = _expected_rows(project)
    assert {label: rows.get(label) for label in expected} == expected


def test_dask_run_hour_is_what_the_prices_say(render):
    """Client and scheduler on-demand, workers on Spot, a public IPv4 per task (new VPC)."""
    from support.answer_sets import ANSWER_SETS

    answers = ANSWER_SETS["s3-server"]
    assert answers["dask_cluster"] and answers["dask_workers_on_spot"]
    project = render(answers)
    ip = SERVICES["public_ipv4_hour"]

    def hour(rates: dict, cpu: int, memory: int) -> float:
        return cpu / 1024 * rates["vcpu_hour"] + memory / 1024 * rates["gb_hour"] + ip

    client = hour(US["on_demand"], 512, 1024)
    scheduler = hour(US["on_demand"], answers["dask_scheduler_cpu"], answers["dask_scheduler_memory"])
    worker = hour(US["spot"], answers["dask_worker_cpu"], answers["dask_worker_memory"])
    readme_rows = _table_amounts((project / "README.md").read_text())
    expected = {
        "Flow run, the Dask client (0.5 vCPU, 1 GB, on-demand)": f"${client:,.4f}",
        "Dask scheduler (0.5 vCPU, 2 GB, on-demand)": f"${scheduler:,.4f}",
        "One Dask worker (4 vCPU, 16 GB, Spot)": f"${worker:,.4f}",
        "Dask run at the minimum of 0 workers": f"${client + scheduler:,.4f}",
        "Dask run at the maximum of 20 workers": f"${client + scheduler + 20 * worker:,.4f}",
    }
    assert {label: readme_rows.get(label) for label in expected} == expected
    # The client size the cost assumes is the one its deployment asks for.
    deployment = next(
        d for d in load_prefect_yaml(project)["deployments"] if d["name"].startswith("primes-weekly-")
    )
    assert (
        deployment["work_pool"]["job_variables"]["cpu"],
        deployment["work_pool"]["job_variables"]["memory"],
    ) == (
        512,
        1024,
    )


def test_no_dask_rows_without_dask(render):
    readme = (render({}) / "README.md").read_text()
    assert "Dask" not in readme
