"""Every validator of copier.yml rejects a wrong value and names its question."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.answers import asked_questions
from support.rendering import render_template

# One wrong value per validated question (the catalogue in test_bad_input.py
# goes much wider); extra answers make the wrong value reachable.
BAD_VALUES: dict[str, dict] = {
    "project_name": {"project_name": "   "},
    "project_slug": {"project_slug": "My_Pipeline"},
    "package_name": {"package_name": "class"},
    "owner": {"owner": 'data "platform"'},
    "environments": {"environments": []},
    "labels": {"labels": ["etl", "etl"]},
    "spot_weight": {"spot_weight": -1},
    "on_demand_weight": {"on_demand_weight": 0, "spot_weight": 0},
    "on_demand_base": {"on_demand_base": -3},
    "crash_retries": {"crash_retries": 11},
    "spot_fallback_after": {"spot_fallback_after": 11},
    "worker_memory": {"worker_cpu": 256, "worker_memory": 4096},
    "flow_memory": {"flow_cpu": 4096, "flow_memory": 4096},
    "github_repository": {"github_repository": "just-a-name"},
    "aws_account_id_dev": {"aws_account_id_dev": "12345678901"},
    "aws_account_id_staging": {
        "environments": ["dev", "staging"],
        "aws_account_id_staging": "arn:aws:iam::1",
    },
    "aws_account_id_prod": {"environments": ["prod"], "aws_account_id_prod": "1234567890123"},
    "alarm_email": {"alarm_email": "ops at example.com"},
    "dask_scheduler_memory": {"dask_cluster": True, "dask_scheduler_cpu": 1024, "dask_scheduler_memory": 512},
    "dask_worker_memory": {"dask_cluster": True, "dask_worker_cpu": 16384, "dask_worker_memory": 16384},
    "dask_min_workers": {"dask_cluster": True, "dask_min_workers": 101},
    "dask_max_workers": {"dask_cluster": True, "dask_min_workers": 3, "dask_max_workers": 2},
}


def test_every_validator_has_a_bad_value() -> None:
    validated = {name for name, spec in asked_questions().items() if "validator" in spec}
    assert validated == set(BAD_VALUES)


@pytest.mark.parametrize("question", sorted(BAD_VALUES))
def test_validator_rejects_bad_value(question: str, tmp_path: Path) -> None:
    destination = tmp_path / "project"
    with pytest.raises(ValueError, match=rf"question '{question}'") as error:
        render_template(BAD_VALUES[question], destination)
    message = str(error.value).split(":", 1)[1]
    assert message.strip(), "the validator message is empty"
    assert not destination.exists() or not any(destination.iterdir()), "files were written"


def test_aws_names_fit_at_the_longest_slug(tmp_path: Path) -> None:
    from aws_limits import SLUG_MAX

    render_template({"project_slug": "a" * SLUG_MAX}, tmp_path / "ok")
    with pytest.raises(ValueError, match="question 'project_slug'"):
        render_template({"project_slug": "a" * (SLUG_MAX + 1)}, tmp_path / "too-long")
