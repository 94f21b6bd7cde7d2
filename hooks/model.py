"""One model of the answers: every fact derived from them, computed here once.

Templates read it as `model` (hooks/extensions.py adds it to every Copier
render context: files, file and folder names, copier.yml `when:`, defaults and
choices), and so do the validators (hooks/aws_limits.py), the cost estimate
(hooks/costs.py), docs generation (scripts/gen_question_docs.py), the
benchmarks and the tests (`Model(answers)`). A rule written anywhere else is a
copy that can drift; docs/design.md maps each question to its attributes here
and to the files that use them.

Standard library only. The AWS tables are rendered into HCL with the
`hcl` filter of hooks/extensions.py, so Terraform validates against the very
same values (tests/render/test_model.py parses the rendered HCL and compares).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------- AWS tables

# Valid Fargate task sizes (Linux): cpu units -> allowed memory (MiB).
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html
# (8192 and 16384 cpu need Linux platform version 1.4.0, Fargate's default.)
FARGATE_MEMORY_BY_CPU: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
FARGATE_CPUS: tuple[int, ...] = tuple(FARGATE_MEMORY_BY_CPU)

# The worker only polls the Prefect API and launches runs: sizes beyond 4 vCPU
# are not offered for it.
WORKER_CPU_MAX = 4096
WORKER_CPUS: tuple[int, ...] = tuple(cpu for cpu in FARGATE_CPUS if cpu <= WORKER_CPU_MAX)

# Every retention CloudWatch Logs accepts (PutRetentionPolicy), "never expire" aside.
# https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

# The environments a project can have, in promotion order.
ENVIRONMENTS: tuple[str, ...] = ("dev", "staging", "prod")

# The choices of copier.yml that are tables of this module (copier.yml: `choices: "{{ choices('name') }}"`).
CHOICES: dict[str, tuple[int | str, ...]] = {
    "environments": ENVIRONMENTS,
    "log_retention_days": LOG_RETENTION_DAYS,
    "worker_cpu": WORKER_CPUS,
    "flow_cpu": FARGATE_CPUS,
    "dask_scheduler_cpu": FARGATE_CPUS,
    "dask_worker_cpu": FARGATE_CPUS,
}

# --------------------------------------------------------------------------- names and their limits

# Every AWS name is "<slug>-<env>-<suffix>". The longest environment name and
# the longest suffix the Terraform appends decide how long the slug may be.
# IAM role names are the tightest limit (64); S3 bucket names add
# "-<account id>" (12 digits) and stop at 63.
LONGEST_ENVIRONMENT = max(ENVIRONMENTS, key=len)
LONGEST_ROLE_SUFFIX = "flow-run-execution"
LONGEST_BUCKET_SUFFIX = "flow-code-123456789012"
IAM_ROLE_NAME_MAX = 64
S3_BUCKET_NAME_MAX = 63
SLUG_MAX = min(
    IAM_ROLE_NAME_MAX - len(f"--{LONGEST_ENVIRONMENT}-{LONGEST_ROLE_SUFFIX}"),
    S3_BUCKET_NAME_MAX - len(f"--{LONGEST_ENVIRONMENT}-{LONGEST_BUCKET_SUFFIX}"),
)

# The slug as AWS names take it (the copier.yml validator also refuses "--").
SLUG_PATTERN = r"^[a-z][a-z0-9-]*[a-z0-9]$"

# AWS tag values (the owner answer becomes the "owner" tag): at most this long.
TAG_VALUE_MAX = 256

# "owner/name" of a GitHub repository, as the deploy role's OIDC trust names it.
GITHUB_REPOSITORY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$"

# An AWS account id; the console shows it as 1234-5678-9012, so dashes and
# spaces are accepted in the answer and dropped (aws_account_id()).
AWS_ACCOUNT_ID_PATTERN = r"^[0-9]{12}$"
# An e-mail address SNS can subscribe (alarm_email): one "@", a dotted domain,
# no spaces or quotes (Terraform validates with the same pattern).
EMAIL_PATTERN = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"

# Prefect deployment tags (labels): at most this long (hooks/aws_limits.py says why).
LABEL_MAX = 100

# Adaptive Dask clusters: each worker is its own Fargate task, and a new
# account's default Fargate quota is a few hundred vCPU; beyond this bound a
# team should raise the quota and this limit together, deliberately.
DASK_MAX_WORKERS = 100


def aws_account_id(answer: object) -> str:
    """An aws_account_id_<env> answer as AWS spells the id: digits only ("" when not given yet)."""
    return re.sub(r"[\s-]", "", str(answer or ""))


# How long a Crashed run may wait to be scheduled again before the run alert
# counts it as left Crashed (src/<package>/alerts.py). The recovery handler is a
# run on ECS itself: the worker's poll, a Fargate task start with its image pull
# (1-5 minutes) and its few API calls fit three times over; a later re-run
# costs a needless alert, never a lost one.
CRASH_ALERT_AFTER_MINUTES = 15

# --------------------------------------------------------------------------- capacity


def capacity_provider_strategy(spot_weight: int, on_demand_weight: int, on_demand_base: int) -> list[dict]:
    """The flow runs' ECS strategy: entries that can never get a task (weight 0, base 0) left out.

    Keys as prefect-aws's job variable spells them (capacityProvider, weight, base).
    """
    entries = [
        {"capacityProvider": "FARGATE_SPOT", "weight": spot_weight, "base": 0},
        {"capacityProvider": "FARGATE", "weight": on_demand_weight, "base": on_demand_base},
    ]
    return [entry for entry in entries if entry["weight"] > 0 or entry["base"] > 0]


def spot_share(strategy: list[Mapping[str, Any]]) -> float:
    """Expected fraction of flow runs a strategy puts on FARGATE_SPOT.

    The worker starts every flow run with its own RunTask call of one task and
    ECS fills the base within each call, so an on-demand base of 1 or more puts
    every run on on-demand; otherwise the weights decide.
    """
    weights = {entry["capacityProvider"]: int(entry["weight"]) for entry in strategy}
    if sum(weights.values()) <= 0:
        raise ValueError("spot_weight and on_demand_weight cannot both be 0")
    if any(entry["capacityProvider"] == "FARGATE" and int(entry["base"]) >= 1 for entry in strategy):
        return 0.0
    return weights.get("FARGATE_SPOT", 0) / sum(weights.values())


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Model:
    """The facts the answers imply, each computed on first read from `answers`.

    Lazy on purpose: copier.yml's `when:` of a question sees only the answers
    before it, so each fact needs only the answers it is made of.
    """

    answers: Mapping[str, Any]

    # The tables, reachable from templates as model.<NAME>.
    ENVIRONMENTS = ENVIRONMENTS
    FARGATE_MEMORY_BY_CPU = FARGATE_MEMORY_BY_CPU
    FARGATE_CPUS = FARGATE_CPUS
    WORKER_CPUS = WORKER_CPUS
    LOG_RETENTION_DAYS = LOG_RETENTION_DAYS
    SLUG_MAX = SLUG_MAX
    SLUG_PATTERN = SLUG_PATTERN
    TAG_VALUE_MAX = TAG_VALUE_MAX
    GITHUB_REPOSITORY_PATTERN = GITHUB_REPOSITORY_PATTERN
    AWS_ACCOUNT_ID_PATTERN = AWS_ACCOUNT_ID_PATTERN
    EMAIL_PATTERN = EMAIL_PATTERN
    CRASH_ALERT_AFTER_MINUTES = CRASH_ALERT_AFTER_MINUTES

    def _answer(self, name: str) -> Any:
        try:
            return self.answers[name]
        except KeyError:
            raise KeyError(f"the model needs the answer {name!r}, which is not given (yet)") from None

    # ------------------------------------------------------------------ environments
    @property
    def environments_in_order(self) -> list[str]:
        """The chosen environments in promotion order (dev, staging, prod), whatever order given in."""
        chosen = self._answer("environments")
        return [environment for environment in ENVIRONMENTS if environment in chosen]

    @property
    def aws_account_ids(self) -> dict[str, str]:
        """Each chosen environment's AWS account id (aws_account_id_<env>); "" where not given yet."""
        return {
            env: aws_account_id(self.answers.get(f"aws_account_id_{env}"))
            for env in self.environments_in_order
        }

    @property
    def creates_github_oidc_provider(self) -> dict[str, bool]:
        """Per environment: whether it creates its AWS account's one GitHub OIDC provider.

        The first environment of each account does, in the order the answer
        lists them (as before account ids were asked: a changed order would move
        the provider between states). An environment whose id is not given yet
        counts as in the first environment's account.
        """
        ids = self.aws_account_ids
        listed = [env for env in self._answer("environments") if env in ids]
        seen: set[str] = set()
        creates = {}
        for env in listed:
            account = ids[env] or ids[listed[0]]
            creates[env] = account not in seen
            seen.add(account)
        return creates

    # ------------------------------------------------------------------ capacity
    @property
    def spot(self) -> bool:
        """spot_weight > 0: flow runs may run on Fargate Spot."""
        return int(self._answer("spot_weight")) > 0

    @property
    def crash_recovery(self) -> bool:
        """crash_retries > 0 and spot_weight > 0: crashed flow runs (Spot crashes them) are re-run."""
        return int(self._answer("crash_retries")) > 0 and self.spot

    @property
    def capacity_provider_strategy(self) -> list[dict]:
        return capacity_provider_strategy(
            int(self._answer("spot_weight")),
            int(self._answer("on_demand_weight")),
            int(self._answer("on_demand_base")),
        )

    @property
    def spot_share(self) -> float:
        """Expected fraction of flow runs on FARGATE_SPOT."""
        return spot_share(self.capacity_provider_strategy)

    # ------------------------------------------------------------------ storage and backends
    @property
    def s3_code(self) -> bool:
        """Flow code is pulled from S3 at run time (else it is baked into the ECR image)."""
        return self._answer("code_storage") == "s3"

    @property
    def s3_state(self) -> bool:
        """Terraform state lives in S3 (a bootstrap root creates the bucket)."""
        return self._answer("terraform_backend") == "s3"

    @property
    def prefect_cloud(self) -> bool:
        """Prefect Cloud (API key); else a self-hosted server (basic auth string)."""
        return self._answer("prefect_backend") == "cloud"

    @property
    def new_vpc(self) -> bool:
        """The stack creates its VPC (public subnets, no NAT); else it uses an existing one."""
        return self._answer("network_mode") == "new_vpc"

    @property
    def github(self) -> bool:
        """GitHub Actions deploys with OIDC (workflows, deploy role)."""
        return self._answer("ci_provider") == "github"

    @property
    def dask(self) -> bool:
        return bool(self._answer("dask_cluster"))

    # ------------------------------------------------------------------ flow runs
    @property
    def flow_run_command(self) -> list[str]:
        """The flow-run container's command: the work pool's and the image's CMD (flow_run.py)."""
        return ["python", "-m", f"{self._answer('package_name')}.flow_run"]
