"""S3 code storage: every deploy is its own folder, and pruning never deletes one in use.

The deploys are the real `prefect --no-prompt deploy --all` of a rendered s3
project (as `make deploy` runs it) against a local Prefect server, with the
code bucket on moto's S3 server. The deployments' stored pull steps are then
run the way a flow run runs them, and the rendered `code_versions` module
prunes the bucket with the deployments as Prefect stores them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from support.answer_sets import ANSWER_SETS
from support.answers import answers_of
from support.prefect_checks import load_prefect_yaml
from support.prefect_local import PrefectServer, run_prefect

pytestmark = pytest.mark.prefect_server

BUCKET = "event-ingest-dev-flow-code-123456789012"
REGION = "us-east-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}
S3_ANSWERS = {"project_name": "Event Ingest", "code_storage": "s3", "labels": ["team:web"]}


def code_versions_module(project: Path) -> types.ModuleType:
    path = next(project.glob("src/*/code_versions.py"))
    spec = importlib.util.spec_from_file_location(f"code_versions_{project.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- which folders go: no server needed ------------------------------------------


def test_only_old_unreferenced_folders_beyond_the_newest_go(render) -> None:
    module = code_versions_module(render(S3_ANSWERS))
    now = datetime(2026, 6, 1, tzinfo=UTC)
    folders = {f"p/v{day:02d}": now - timedelta(days=40 - day) for day in range(1, 11)}
    folders["p/young"] = now - timedelta(days=1)
    doomed = module.folders_to_delete(folders, {"p/v03"}, now=now, keep_days=14, keep_last=3)
    # v03 is in use, v09/v10 are among the newest (with "young"), "young" is recent.
    assert doomed == [f"p/v{day:02d}" for day in (1, 2, 4, 5, 6, 7, 8)]


@pytest.mark.parametrize(
    ("referenced", "kept"),
    [
        ({"p"}, "every folder: the pre-versioning layout pulls the whole project folder"),
        ({""}, "every folder: a deployment pulls the whole bucket"),
        ({"p/v01/"}, "v01 (a trailing slash names the same folder)"),
        ({"p/v01/src"}, "v01 (a deployment pulls part of it)"),
    ],
)
def test_a_folder_that_holds_or_is_held_by_a_referenced_one_stays(render, referenced, kept) -> None:
    module = code_versions_module(render(S3_ANSWERS))
    now = datetime(2026, 6, 1, tzinfo=UTC)
    old = now - timedelta(days=100)
    folders = {"p/v01": old, "p/v02": old}
    refs = module.referenced_folders(
        [[{"x.pull_from_s3": {"bucket": "b", "folder": r}}] for r in referenced], "b"
    )
    doomed = module.folders_to_delete(folders, refs, now=now, keep_days=1, keep_last=0)
    expected = [] if kept.startswith("every") else ["p/v02"]
    assert doomed == expected, kept


def test_nothing_is_deleted_when_no_deployment_uses_the_bucket(render) -> None:
    """The wrong Prefect profile would otherwise look like "nothing is in use"."""
    module = code_versions_module(render(S3_ANSWERS))
    other = [[{"prefect_aws.deployments.steps.pull_from_s3": {"bucket": "other", "folder": "p/v1"}}], None]
    assert module.referenced_folders(other, BUCKET) == set()
    with pytest.raises(ValueError, match="no deployment pulls code from this bucket"):
        module.folders_to_delete(
            {"p/v1": datetime(2000, 1, 1, tzinfo=UTC)}, set(), now=datetime.now(UTC), keep_days=1, keep_last=0
        )
    unresolved = [
        [{"prefect_aws.deployments.steps.pull_from_s3": {"bucket": "{{ push-code.bucket }}", "folder": "x"}}]
    ]
    with pytest.raises(ValueError, match="placeholder"):
        module.referenced_folders(unresolved, BUCKET)


# --- real deploys on a local Prefect server and moto's S3 ------------------------


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    for name, value in {**AWS_ENV, "AWS_ENDPOINT_URL": url}.items():
        monkeypatch.setenv(name, value)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def prefect_api(tmp_path: Path) -> Iterator[PrefectServer]:
    server = PrefectServer(tmp_path / "prefect").start()
    try:
        yield server
    finally:
        server.stop()


def _deploy(project: Path, server: PrefectServer, endpoint: str, version: str, *names: str) -> None:
    """`make deploy`'s `prefect deploy` with CODE_VERSION=version (only `names` if given)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "PYTEST_"))}
    env |= (
        server.client_env()
        | AWS_ENV
        | {
            "AWS_ENDPOINT_URL": endpoint,
            "PYTHONPATH": str(project / "src"),
            "WORK_POOL_NAME": "event-ingest-dev",
            "IMAGE_REPOSITORY": f"123456789012.dkr.ecr.{REGION}.amazonaws.com/event-ingest-dev",
            "IMAGE_TAG": "deps-0123456789ab",
            "CODE_BUCKET": BUCKET,
            "CODE_VERSION": version,
            "DEPLOY_ENV": "dev",
        }
    )
    if not names:
        run_prefect(
            ["work-pool", "create", "event-ingest-dev", "--type", "ecs", "--overwrite"], env=env, cwd=project
        )
    selection = [arg for name in names for arg in ("--name", name)] or ["--all"]
    run_prefect(["--no-prompt", "deploy", *selection], env=env, cwd=project, timeout=300)


def _keys(s3, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _pull_arguments(deployment) -> dict:
    (pull,) = [step for step in deployment.pull_steps if "pull_from_s3" in next(iter(step))]
    return {key: value for key, value in next(iter(pull.values())).items() if key != "requires"}


def test_each_deployment_pulls_its_own_version_and_pruning_spares_every_one_in_use(
    render, moto_s3: str, prefect_api: PrefectServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_aws.deployments.steps import pull_from_s3

    project = tmp_path / "project"
    shutil.copytree(render(S3_ANSWERS), project)
    slug, package = answers_of(project)["project_slug"], answers_of(project)["package_name"]
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_s3)
    s3.create_bucket(Bucket=BUCKET)
    flows = project / "src" / package / "flows"
    helper = flows / "old_helper.py"
    helper.write_text("VALUE = 1\n")
    first_etl = (flows / "etl.py").read_text()

    # v1: every deployment. v2: only etl-daily, after a change and a deleted module.
    _deploy(project, prefect_api, moto_s3, "v1")
    (flows / "etl.py").write_text(first_etl + "# second version\n")
    helper.unlink()
    # `--name` matches prefect.yaml's names before templating: a pattern selects etl-daily-<env>.
    _deploy(project, prefect_api, moto_s3, "v2", "etl-daily-*")
    # A version no deployment uses any more.
    s3.put_object(Bucket=BUCKET, Key=f"{slug}/v0/src/{package}/flows/etl.py", Body=b"# stale\n")

    keys = _keys(s3)
    assert f"{slug}/v1/src/{package}/flows/old_helper.py" in keys
    assert f"{slug}/v2/src/{package}/flows/etl.py" in keys
    assert f"{slug}/v2/src/{package}/flows/old_helper.py" not in keys, "a deleted module came back"
    assert all(key.startswith(tuple(f"{slug}/{v}/" for v in ("v0", "v1", "v2"))) for key in keys), keys

    with temporary_settings(updates={PREFECT_API_URL: prefect_api.api_url}):
        with get_client(sync_client=True) as client:
            pulls = {d.name: _pull_arguments(d) for d in client.read_deployments()}
        assert pulls == {
            "etl-daily-dev": {"bucket": BUCKET, "folder": f"{slug}/v2"},
            "leaderboard-hourly-dev": {"bucket": BUCKET, "folder": f"{slug}/v1"},
            "etl-month-end-dev": {"bucket": BUCKET, "folder": f"{slug}/v1"},
            # The crash-recovery handler's deployment pulls the project's code too.
            f"{slug}-dev": {"bucket": BUCKET, "folder": f"{slug}/v1"},
        }

        # A flow run's pull step downloads exactly the version its deployment was deployed with.
        for name, etl_text, has_helper in (
            ("etl-daily-dev", first_etl + "# second version\n", False),
            ("etl-month-end-dev", first_etl, True),
        ):
            workdir = tmp_path / f"run-{name}"
            workdir.mkdir()
            monkeypatch.chdir(workdir)
            pull_from_s3(**pulls[name])
            assert (workdir / "src" / package / "flows" / "etl.py").read_text() == etl_text, name
            assert (workdir / "src" / package / "flows" / "old_helper.py").exists() == has_helper, name

        module = code_versions_module(project)
        # Young versions stay (a deploy may still be uploading); so do the newest few.
        assert module.prune(BUCKET, keep_days=7, keep_last=0, s3=s3) == []
        later = datetime.now(UTC) + timedelta(days=30)
        assert module.prune(BUCKET, keep_days=7, keep_last=3, now=later, s3=s3) == []
        assert module.prune(BUCKET, keep_days=7, keep_last=0, now=later, dry_run=True, s3=s3) == [
            f"{slug}/v0"
        ]
        assert _keys(s3) == keys
        # v0 is unused and old: it goes. v1 and v2 are each pulled by a deployment: they stay.
        assert module.prune(BUCKET, keep_days=7, keep_last=0, now=later, s3=s3) == [f"{slug}/v0"]
        assert _keys(s3) == [key for key in keys if not key.startswith(f"{slug}/v0/")]

    # As `make code-prune` runs it; against a bucket no deployment uses, it refuses.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "PYTEST_"))}
    env |= prefect_api.client_env() | {"PYTHONPATH": str(project / "src")}
    for bucket, code in ((BUCKET, 0), ("some-other-bucket", 1)):
        result = subprocess.run(
            [sys.executable, "-m", f"{package}.code_versions", "--bucket", bucket],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == code, result.stdout + result.stderr
    assert "refusing to delete anything" in result.stderr
    assert _keys(s3) == [key for key in keys if not key.startswith(f"{slug}/v0/")]


# --- the pulled code imports in the flow run's own interpreter ---------------------

PULL_AND_LOAD = """\
import asyncio, json, sys
from prefect.deployments.steps.core import run_steps
from prefect.flows import load_flow_from_entrypoint

asyncio.run(run_steps(json.loads(sys.argv[1])))
print(load_flow_from_entrypoint(sys.argv[2]).name)
"""


def test_pulled_code_can_import_its_own_package(
    render, moto_s3: str, prefect_api: PrefectServer, tmp_path: Path
) -> None:
    """The image starts Python with PYTHONPATH=/app/src before the pull fills that folder.

    The primes flow imports its package (dask_cluster); it must load after the
    prefect.yaml pull steps, run as the engine runs them, in a fresh interpreter.
    Python caches a PYTHONPATH folder missing at start as missing for good: the
    image must already have /app/src (it has the container's command in it).
    """
    project = render(ANSWER_SETS["s3-server"])
    package = answers_of(project)["package_name"]
    dockerfile = (project / "Dockerfile").read_text()
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_s3)
    s3.create_bucket(Bucket=BUCKET)
    folder = "event-ingest/v1"
    for path in (project / "src").rglob("*.py"):
        s3.upload_file(str(path), BUCKET, f"{folder}/{path.relative_to(project).as_posix()}")
    # What `prefect deploy` stores: the push step's outputs filled in. The image's
    # WORKDIR /app is a folder of this test.
    app = tmp_path / "app"
    # The code the image holds (the Dockerfile's COPY of src/ files into its WORKDIR).
    app.mkdir()
    for source, target in re.findall(r"^COPY (?:--\S+ )*(src/\S+) (src/\S*)$", dockerfile, re.MULTILINE):
        destination = app / target / Path(source).name if target.endswith("/") else app / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project / source, destination)
    assert (app / "src").is_dir(), "the image has no /app/src: the pulled package would not import"
    steps = json.loads(
        json.dumps(load_prefect_yaml(project)["pull"])
        .replace('"/app"', json.dumps(str(app)))
        .replace("{{ push-code.bucket }}", BUCKET)
        .replace("{{ push-code.folder }}", folder)
    )
    env = {**os.environ, **prefect_api.client_env(), "PYTHONPATH": str(app / "src")}
    result = subprocess.run(
        [sys.executable, "-c", PULL_AND_LOAD, json.dumps(steps), f"src/{package}/flows/primes.py:primes"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "primes"
