"""`make up` and `make down` as processes, on the emulator and a local Prefect server.

One project with an S3 state backend (so `make up` bootstraps the state
bucket) and S3 code storage. No Docker engine here: a recording `docker` on
PATH stands in for the CLI, as on a runner without an engine. The rendered
roots reach moto through the override file of the other e2e tests (plus the
S3 backend's endpoints); the worker gets a placeholder https API URL
(TF_CLI_ARGS_plan), because Terraform accepts only https for a server.

In order, as a newcomer would hit them: a first `make up` without a terminal
stops at the secret prompt after applying Terraform; the second resumes
(state bucket and Terraform unchanged), stores the secret and deploys; a
third changes nothing and says so; `make down` without a typed confirmation
deletes nothing, with it everything but the state bucket.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import emulator
import pytest
from pipeline import EMULATED_ACCOUNT, SERVER_API_URL
from prefect.client.orchestration import SyncPrefectClient
from support.make import fake_docker, make_env, run_make, uv_binary
from support.prefect_local import PrefectServer
from support.rendering import render_template

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("e2e")]

REGION = "us-east-1"
SLUG = "my-pipeline"
ANSWERS = {
    "terraform_backend": "s3",
    "code_storage": "s3",
    "prefect_backend": "server",
    "ci_provider": "none",
    "aws_account_id_dev": EMULATED_ACCOUNT,
    # The worker's image is copied into the environment's ECR by `make up` (its worker-image step).
    "worker_image_mirror": True,
}
WORKER_IMAGE_REPOSITORY = f"{SLUG}-dev-worker-image"


@dataclass
class UpProject:
    project: Path
    server: emulator.MotoServer
    prefect: PrefectServer
    env: dict[str, str]
    docker_log: Path

    def make(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return run_make(self.project, self.env, *args, stdin=stdin, timeout=1200)

    def docker_calls(self) -> list[str]:
        """What docker was asked to do, its `docker version` checks (make doctor) aside."""
        return [call for call in self.docker_log.read_text().splitlines() if not call.startswith("version")]

    def mirrored_worker_images(self) -> list[str]:
        ecr = self.server.client("ecr", REGION)
        images = ecr.describe_images(repositoryName=WORKER_IMAGE_REPOSITORY)["imageDetails"]
        return [tag for image in images for tag in image.get("imageTags", [])]

    def deployments(self) -> list[str]:
        with SyncPrefectClient(self.prefect.api_url) as client:
            return sorted(deployment.name for deployment in client.read_deployments())

    def automations(self) -> list[str]:
        with SyncPrefectClient(self.prefect.api_url) as client:
            return sorted(automation.name for automation in client.read_automations())


@pytest.fixture(scope="module")
def up_project(tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str]) -> Iterator[UpProject]:
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    uv = uv_binary()
    if uv is None:
        pytest.skip("no uv binary that runs in the rendered project")
    workdir = tmp_path_factory.mktemp("make-up")
    project = render_template(ANSWERS, workdir / "project")
    # What `make install` leaves (it resolves from PyPI; here uv runs this interpreter's
    # environment): the image tag hashes it, the recording docker never reads it.
    (project / "uv.lock").write_text("version = 1\n")
    server = emulator.MotoServer(workdir / "moto").start()
    prefect = PrefectServer(workdir / "prefect-server")
    try:
        prefect.start()
        docker_log = fake_docker(workdir / "bin")
        env = (
            make_env(tf_env, uv, path_first=[workdir / "bin"])
            | server.client_env(REGION)
            | prefect.client_env()
            | {"AUTO_APPROVE": "yes", "TF_CLI_ARGS_plan": f"-var=prefect_api_url={SERVER_API_URL}"}
        )
        env["TF_CLI_ARGS_destroy"] = env["TF_CLI_ARGS_plan"]
        override = emulator.write_override(
            project / "infra" / "envs" / "dev", server.url, local_backend=False
        )
        emulator.add_s3_backend(override, server.url, key=f"{SLUG}/dev/terraform.tfstate", region=REGION)
        emulator.write_override(project / "infra" / "bootstrap", server.url, local_backend=False)
        yield UpProject(project, server, prefect, env, docker_log)
    finally:
        prefect.stop()
        server.stop()


def output_of(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def test_up_stops_at_a_failed_step_and_resumes(up_project: UpProject) -> None:
    state_bucket = f"{SLUG}-tfstate-{EMULATED_ACCOUNT}"

    first = up_project.make("up", "ENV=dev")  # no terminal: the secret prompt fails
    output = output_of(first)
    assert first.returncode != 0, output[-3000:]
    assert "make up stopped at step 'secret'" in output, output[-3000:]
    assert re.search(r"<== infra done in \d+ s", output), output[-3000:]
    assert "No input: nothing stored" in output
    buckets = {b["Name"] for b in up_project.server.client("s3", REGION).list_buckets()["Buckets"]}
    assert state_bucket in buckets, "the state bucket was not bootstrapped"
    assert up_project.deployments() == [], "deploy ran after a failed step"
    # The worker-image step (before the secret) copied the pinned upstream image into ECR.
    (mirror,) = [call for call in up_project.docker_calls() if call.startswith("buildx")]
    _, _, _, _, target, source = mirror.split()
    assert source.startswith("docker.io/prefecthq/prefect-aws:"), mirror
    assert target.split("/", 1)[1] == f"{WORKER_IMAGE_REPOSITORY}:{source.rsplit(':', 1)[1]}", mirror
    assert up_project.mirrored_worker_images() == [source.rsplit(":", 1)[1]]
    doctor = up_project.make("doctor", "ENV=dev")  # alone, an empty secret is a failure with its fix
    assert doctor.returncode != 0, output_of(doctor)[-3000:]
    empty_secret = r"FAIL  Prefect secret: .* has no value\n      fix: `make secret-set`"
    assert re.search(empty_secret, doctor.stderr), doctor.stderr

    second = up_project.make("up", "ENV=dev", stdin="admin:secret\n")
    output = output_of(second)
    assert second.returncode == 0, output[-5000:]
    assert f"State bucket {state_bucket} exists: skipped." in output
    assert "Terraform: no changes in dev: skipped." in output
    assert "Stored; the worker of dev restarts with it." in output
    assert "dev is up." in output
    deployed = up_project.deployments()
    assert {"etl-daily-dev", "leaderboard-hourly-dev"} <= set(deployed), deployed
    calls = up_project.docker_log.read_text().splitlines()
    assert [call.split()[0] for call in calls if call.split()[0] in {"build", "push"}] == ["build", "push"], (
        calls
    )
    secret = up_project.server.client("secretsmanager", REGION).get_secret_value(
        SecretId=f"{SLUG}-dev/prefect-auth-string"
    )
    assert secret["SecretString"] == "admin:secret"


def test_a_second_up_changes_nothing_and_says_so(up_project: UpProject) -> None:
    docker_calls = up_project.docker_calls()
    deployments = up_project.deployments()
    result = up_project.make("up", "ENV=dev")
    output = output_of(result)
    assert result.returncode == 0, output[-5000:]
    for skipped in (
        "is in ECR already.",
        "exists: skipped.",
        "Terraform: no changes in dev: skipped.",
        "The Prefect secret of dev is set: skipped",
        "This source is deployed to dev already: skipped",
    ):
        assert skipped in output, output[-5000:]
    assert up_project.docker_calls() == docker_calls, "an image was built, pushed or mirrored again"
    assert up_project.deployments() == deployments


def test_down_needs_the_typed_env_name_then_removes_everything(up_project: UpProject) -> None:
    baseline_bucket = f"{SLUG}-tfstate-{EMULATED_ACCOUNT}"
    before = emulator.inventory(up_project.server, REGION)
    for stdin, message in ((None, "No confirmation"), ("prod\n", "Typed 'prod', not 'dev'")):
        refused = up_project.make("down", "ENV=dev", stdin=stdin)
        assert refused.returncode != 0 and message in refused.stderr, output_of(refused)[-2000:]
        assert emulator.inventory(up_project.server, REGION) == before
        assert up_project.deployments()
    assert up_project.automations(), "make up installed no automation"
    # A state Terraform cannot read is not an empty one: down stops, deleting nothing.
    backend = up_project.project / "infra" / "envs" / "dev" / ".terraform" / "terraform.tfstate"
    backend_config = backend.read_text()
    backend.write_text("not a backend configuration")
    try:
        unreadable = up_project.make("down", "ENV=dev", stdin="dev\n")
    finally:
        backend.write_text(backend_config)
    assert unreadable.returncode != 0, output_of(unreadable)[-2000:]
    assert "nothing to delete" not in output_of(unreadable)
    assert emulator.inventory(up_project.server, REGION) == before
    assert up_project.deployments()

    result = up_project.make("down", "ENV=dev", stdin="dev\n")
    output = output_of(result)
    assert result.returncode == 0, output[-5000:]
    assert "dev is down." in output
    assert up_project.deployments() == []
    assert up_project.automations() == []
    left = emulator.inventory(up_project.server, REGION)
    assert left <= {f"s3-bucket:{baseline_bucket}"}, sorted(left)
    again = up_project.make("down", "ENV=dev", stdin="dev\n")
    assert again.returncode == 0 and "has no infrastructure" in output_of(again), output_of(again)[-2000:]
