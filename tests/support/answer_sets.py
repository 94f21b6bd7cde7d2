"""Named answer sets rendered by the suite.

`ANSWER_SETS` are whole projects: every check runs on each. Together they use
every choice of the questions that change the project's shape, pairwise for
the ones that interact (storage x backend x network x state backend).
`VALUE_SWEEPS` cover the choices that only change a value (region, retention,
sizes, Python version); they get the cheap checks.
"""

from __future__ import annotations

from model import FARGATE_MEMORY_BY_CPU

from support.answers import choice_values, presets, questions

ANSWER_SETS: dict[str, dict] = {
    "default": {},
    "s3-server": {
        "project_name": "Event Ingest",
        "prefect_backend": "server",
        "code_storage": "s3",
        "terraform_backend": "s3",
        "ci_provider": "none",
        "environments": ["dev", "staging"],
        "python_version": "3.11",
        "labels": ["ingest", "hourly"],
        # Dask on an e2e set: the emulated stack applies the dask module and the
        # IAM proof runs FargateCluster against it (no extra apply); s3 storage
        # also covers workers that run the dependency image without the code.
        "dask_cluster": True,
        "dask_scheduler_cpu": 512,
        "dask_scheduler_memory": 2048,
        "dask_worker_cpu": 4096,
        "dask_worker_memory": 16384,
        "dask_min_workers": 0,
        "dask_max_workers": 20,
        "dask_workers_on_spot": True,
    },
    "existing-vpc-multi-env": {
        "project_name": "Finance Reporting",
        "network_mode": "existing_vpc",
        "code_storage": "s3",
        "terraform_backend": "s3",
        "environments": ["dev", "staging", "prod"],
        "python_version": "3.13",
        "aws_region": "eu-central-1",
        "owner": "finance-data",
        # Private subnets without NAT: the worker image comes from the project's ECR.
        "worker_image_mirror": True,
        "alarm_email": "finance-data+alarms@example.com",
    },
    "server-existing-vpc-on-demand": {
        "project_name": "Regulated Ledger",
        "prefect_backend": "server",
        "network_mode": "existing_vpc",
        "environments": ["prod"],
        "spot_weight": 0,
        "on_demand_weight": 1,
        "on_demand_base": 1,
        "worker_cpu": 512,
        "worker_memory": 1024,
        "log_retention_days": 365,
    },
    "spot-only-batch": {
        "project_name": "Batch Scoring",
        "terraform_backend": "s3",
        "ci_provider": "none",
        "environments": ["staging"],
        "spot_weight": 1,
        "on_demand_weight": 0,
        "flow_cpu": 4096,
        "flow_memory": 16384,
        "crash_retries": 5,
        "labels": [],
    },
    "server-s3-no-crash-retries": {
        "project_name": "Leaderboard",
        "prefect_backend": "server",
        "code_storage": "s3",
        "network_mode": "new_vpc",
        "environments": ["prod", "dev"],
        "crash_retries": 0,
        "aws_region": "ap-southeast-2",
    },
}


# Every team preset gets every check too (docs/presets.md).
ANSWER_SETS.update({f"preset-{name}": answers for name, answers in presets().items()})


def _sweeps() -> dict[str, dict]:
    """One render per index, cycling every value-only question's choices."""
    swept = {
        name: choice_values(name)
        for name in (
            "aws_region",
            "log_retention_days",
            "python_version",
            "worker_cpu",
            "flow_cpu",
            "dask_scheduler_cpu",
            "dask_worker_cpu",
        )
    }
    # The smallest Fargate memory of each cpu (the model's table).
    memory_for = {cpu: sizes[0] for cpu, sizes in FARGATE_MEMORY_BY_CPU.items()}
    sweeps = {}
    for index in range(max(len(values) for values in swept.values())):
        answers = {name: values[index % len(values)] for name, values in swept.items()}
        answers["worker_memory"] = memory_for[answers["worker_cpu"]]
        answers["flow_memory"] = memory_for[answers["flow_cpu"]]
        # The Dask sizes are asked only with a Dask cluster.
        answers["dask_cluster"] = True
        answers["dask_scheduler_memory"] = memory_for[answers["dask_scheduler_cpu"]]
        answers["dask_worker_memory"] = memory_for[answers["dask_worker_cpu"]]
        sweeps[f"sweep-{index:02d}"] = answers
    return sweeps


VALUE_SWEEPS: dict[str, dict] = _sweeps()


def sets_where(question: str, value: object) -> list[str]:
    """Names of the answer sets whose `question` (answered or defaulted) is `value`.

    For tests that only apply to some sets: parametrize them on these instead
    of collecting them everywhere and skipping (see test_workflows.py).
    """
    default = questions()[question].get("default")
    return sorted(name for name, answers in ANSWER_SETS.items() if answers.get(question, default) == value)
