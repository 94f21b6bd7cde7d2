"""Wrong and hostile answers are rejected before anything is written.

Each case is `(question the error must name, answers)`. The answers go in as
`--data` with `--defaults`, as a CI job or a preset file would pass them.
Copier validates every answer (given or defaulted) while it asks, before it
renders; the type check at the top of copier.yml covers what Copier would
otherwise reject with a message that names no question.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aws_limits import LABEL_MAX, SLUG_MAX
from support.rendering import isolate_copier_settings, render_template
from support.snapshot import copy_template

BAD_ANSWERS: dict[str, tuple[str, dict]] = {
    # project_name / project_slug
    "empty project name": ("project_name", {"project_name": ""}),
    "blank project name": ("project_name", {"project_name": "  \t "}),
    "project name that is not text": ("project_name", {"project_name": ["My", "Pipeline"]}),
    "name that yields an empty slug": ("project_slug", {"project_name": "!!! ???"}),
    "name that yields a slug starting with a digit": ("project_slug", {"project_name": "42 Pipelines"}),
    "emoji-only name": ("project_slug", {"project_name": "\U0001f680\U0001f680"}),
    "upper-case slug": ("project_slug", {"project_slug": "My-Pipeline"}),
    "slug with underscore": ("project_slug", {"project_slug": "my_pipeline"}),
    "slug with double hyphen": ("project_slug", {"project_slug": "my--pipeline"}),
    "slug ending in hyphen": ("project_slug", {"project_slug": "pipeline-"}),
    "slug starting with digit": ("project_slug", {"project_slug": "1pipeline"}),
    "slug of one letter": ("project_slug", {"project_slug": "p"}),
    "slug with a space": ("project_slug", {"project_slug": "my pipeline"}),
    "slug too long for IAM and S3 names": ("project_slug", {"project_slug": "a" * (SLUG_MAX + 1)}),
    "slug with shell metacharacters": ("project_slug", {"project_slug": "x;rm -rf ~"}),
    # package_name
    "package name with hyphen": ("package_name", {"package_name": "my-flows"}),
    "package name starting with digit": ("package_name", {"package_name": "1flows"}),
    "package name upper case": ("package_name", {"package_name": "MyFlows"}),
    "package name is a keyword": ("package_name", {"package_name": "class"}),
    "package name shadows prefect": ("package_name", {"package_name": "prefect"}),
    "package name shadows tests": ("package_name", {"package_name": "tests"}),
    "package name with path": ("package_name", {"package_name": "../evil"}),
    # description / owner
    "description that is a list": ("description", {"description": ["one", "two"]}),
    "empty owner": ("owner", {"owner": ""}),
    "owner with comma": ("owner", {"owner": "data,platform"}),
    "owner with double quote": ("owner", {"owner": 'data "platform"'}),
    "owner with newline": ("owner", {"owner": "data\nplatform"}),
    "owner with template marker": ("owner", {"owner": "team-${var.x}"}),
    "owner longer than a tag value": ("owner", {"owner": "a" * 257}),
    # aws_account_id_<env>
    "account id too short": ("aws_account_id_dev", {"aws_account_id_dev": "12345678901"}),
    "account id with letters": ("aws_account_id_dev", {"aws_account_id_dev": "12345678901a"}),
    "account id given as an ARN": (
        "aws_account_id_dev",
        {"aws_account_id_dev": "arn:aws:iam::123456789012:root"},
    ),
    "prod account id too long": (
        "aws_account_id_prod",
        {"environments": ["dev", "prod"], "aws_account_id_prod": "1234567890123"},
    ),
    # alarm_email
    "alarm_email without a domain": ("alarm_email", {"alarm_email": "ops@localhost"}),
    "alarm_email with two addresses": ("alarm_email", {"alarm_email": "a@example.com, b@example.com"}),
    "alarm_email with a newline": ("alarm_email", {"alarm_email": "ops@example.com\nx"}),
    # enums
    "unknown python": ("python_version", {"python_version": "3.10"}),
    "unknown region": ("aws_region", {"aws_region": "mars-north-1"}),
    "region in upper case": ("aws_region", {"aws_region": "US-EAST-1"}),
    "region that is null": ("aws_region", {"aws_region": None}),
    "unknown network mode": ("network_mode", {"network_mode": "default_vpc"}),
    "retention CloudWatch doesn't offer": ("log_retention_days", {"log_retention_days": 2}),
    "retention that is not a number": ("log_retention_days", {"log_retention_days": "forever"}),
    "unknown state backend": ("terraform_backend", {"terraform_backend": "gcs"}),
    "unknown prefect backend": ("prefect_backend", {"prefect_backend": "oss"}),
    "unknown code storage": ("code_storage", {"code_storage": "git"}),
    "unknown CI": ("ci_provider", {"ci_provider": "gitlab"}),
    "worker on Spot as a word": ("worker_on_spot", {"worker_on_spot": "maybe"}),
    "worker on Spot as a number": ("worker_on_spot", {"worker_on_spot": 2}),
    # environments
    "no environment": ("environments", {"environments": []}),
    "unknown environment": ("environments", {"environments": ["dev", "qa"]}),
    "environments as a bare word": ("environments", {"environments": "dev"}),
    "environments as a mapping": ("environments", {"environments": {"dev": True}}),
    # labels
    "labels as a comma string": ("labels", {"labels": "etl,nightly"}),
    # Commas, quotes and spaces are valid Prefect tags (issue 12): see test_escaping.py.
    "empty label": ("labels", {"labels": [""]}),
    "blank label": ("labels", {"labels": ["etl", "  "]}),
    "label with a newline": ("labels", {"labels": ["etl\nnightly"]}),
    "label with a tab": ("labels", {"labels": ["team:\tweb"]}),
    "label with a NUL": ("labels", {"labels": ["etl\x00"]}),
    "duplicate labels": ("labels", {"labels": ["etl", "etl"]}),
    "label that is a number": ("labels", {"labels": [1]}),
    "labels as a mapping": ("labels", {"labels": {"team": "data"}}),
    "labels that are null": ("labels", {"labels": None}),
    "labels that are not YAML": ("labels", {"labels": "[etl, nightly"}),
    "label too long": ("labels", {"labels": ["x" * (LABEL_MAX + 1)]}),
    "duplicate labels among others": ("labels", {"labels": ["team:web", "env:prod", "team:web"]}),
    # capacity
    "negative spot weight": ("spot_weight", {"spot_weight": -1}),
    "spot weight above 1000": ("spot_weight", {"spot_weight": 1001}),
    "spot weight that is a word": ("spot_weight", {"spot_weight": "lots"}),
    "spot weight that is a fraction": ("spot_weight", {"spot_weight": 1.5}),
    "spot weight that is a boolean": ("spot_weight", {"spot_weight": True}),
    "negative on-demand weight": ("on_demand_weight", {"on_demand_weight": -2}),
    "both weights zero": ("on_demand_weight", {"spot_weight": 0, "on_demand_weight": 0}),
    "negative on-demand base": ("on_demand_base", {"on_demand_base": -1}),
    "negative crash retries": ("crash_retries", {"crash_retries": -1}),
    "too many crash retries": ("crash_retries", {"crash_retries": 11}),
    "negative spot fallback": ("spot_fallback_after", {"spot_fallback_after": -1}),
    "spot fallback above 10": ("spot_fallback_after", {"spot_fallback_after": 11}),
    "spot fallback that is a word": ("spot_fallback_after", {"spot_fallback_after": "never"}),
    # Fargate sizes
    "worker cpu Fargate doesn't offer": ("worker_cpu", {"worker_cpu": 300}),
    "worker cpu given alone": ("worker_memory", {"worker_cpu": 1024}),
    "worker memory too small for cpu": ("worker_memory", {"worker_cpu": 2048, "worker_memory": 2048}),
    "worker memory off the step": ("worker_memory", {"worker_cpu": 512, "worker_memory": 1500}),
    "flow cpu that is a word": ("flow_cpu", {"flow_cpu": "big"}),
    "flow memory too large for cpu": ("flow_memory", {"flow_cpu": 256, "flow_memory": 4096}),
    "flow memory off the 8192 grid": ("flow_memory", {"flow_cpu": 16384, "flow_memory": 36864}),
    "flow memory negative": ("flow_memory", {"flow_memory": -2048}),
    "dask scheduler memory too small": (
        "dask_scheduler_memory",
        {"dask_cluster": True, "dask_scheduler_cpu": 4096, "dask_scheduler_memory": 4096},
    ),
    "dask worker memory off the step": (
        "dask_worker_memory",
        {"dask_cluster": True, "dask_worker_cpu": 8192, "dask_worker_memory": 17000},
    ),
    "dask worker cpu not a fargate size": (
        "dask_worker_cpu",
        {"dask_cluster": True, "dask_worker_cpu": 3000},
    ),
    "dask min workers negative": ("dask_min_workers", {"dask_cluster": True, "dask_min_workers": -1}),
    "dask max workers below min": (
        "dask_max_workers",
        {"dask_cluster": True, "dask_min_workers": 5, "dask_max_workers": 2},
    ),
    "dask max workers zero": (
        "dask_max_workers",
        {"dask_cluster": True, "dask_min_workers": 0, "dask_max_workers": 0},
    ),
    "dask max workers unbounded": ("dask_max_workers", {"dask_cluster": True, "dask_max_workers": 5000}),
    "dask max workers a word": ("dask_max_workers", {"dask_cluster": True, "dask_max_workers": "many"}),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain copy of the template: no git clone per case."""
    root = tmp_path_factory.mktemp("bad-input")
    isolate_copier_settings(root)
    return copy_template(root / "template")


def _copy(template: Path, destination: Path, answers: dict) -> None:
    render_template(answers, destination, src=template, vcs_ref=None)


def test_catalogue_is_wide() -> None:
    assert len(BAD_ANSWERS) >= 30
    assert len({question for question, _ in BAD_ANSWERS.values()}) >= 15


@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "existing-empty-folder"])
@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_bad_answer_is_rejected_and_nothing_is_written(
    case: str, existing: bool, template: Path, tmp_path: Path
) -> None:
    question, answers = BAD_ANSWERS[case]
    destination = tmp_path / "project"
    if existing:
        destination.mkdir()
    with pytest.raises(ValueError) as error:
        _copy(template, destination, answers)
    message = str(error.value)
    assert re.search(rf"\b{question}\b", message), f"error does not name {question}: {message}"
    if existing:
        assert list(destination.iterdir()) == [], "files were written into the existing folder"
    else:
        assert not destination.exists(), "the destination was created"


def test_the_same_answers_fixed_render(template: Path, tmp_path: Path) -> None:
    """Guard against a catalogue that fails for a reason other than the answer."""
    _copy(template, tmp_path / "project", {"project_name": "Fine Name", "owner": "data-platform"})
    assert (tmp_path / "project" / ".copier-answers.yml").is_file()
