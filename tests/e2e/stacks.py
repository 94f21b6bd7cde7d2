"""The emulated deployments of a test session, each started on first use.

Terraform against moto mostly waits (the AWS provider polls for eventual
consistency: 25 s for an SQS queue policy, 10 s for an ECS cluster ...). Each
answer set's tests are an xdist group of their own (tests/e2e/conftest.py), so
the stacks' applies, scenarios and destroys overlap on different workers; a
stack's environments apply and destroy in parallel threads.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import emulator
from pipeline import CUSTOM_EGRESS, EmulatedProject, create_existing_network, create_github_oidc_provider
from support.prefect_local import PrefectServer
from worker_run import PrefectProject, stop_process


@dataclass
class EmulatedStack:
    """One project on its own emulator, and what the pipeline learnt about it so far."""

    name: str
    project: EmulatedProject
    server: emulator.MotoServer
    baseline: set[str] = field(default_factory=set)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    prefect: PrefectProject | None = None
    worker: subprocess.Popen | None = None
    flow_run_id: uuid.UUID | None = None
    run_task_request: dict[str, Any] | None = None
    github_oidc_provider_arn: str | None = None
    custom_egress_env: str | None = None

    @property
    def environments(self) -> list[str]:
        return self.project.environments

    def apply(self) -> dict[str, dict[str, Any]]:
        """Bootstrap (S3 state), the user's VPC (existing_vpc), then init + apply + plan every env."""
        project = self.project
        if project.uses_s3_backend:
            project.bootstrap()
        if project.answers.get("network_mode") == "existing_vpc":
            network = create_existing_network(self.server, project.region)
            for env in self.environments:
                project.fill_tfvars(env, **network)
            self.custom_egress_env = self.environments[-1]
            project.fill_tfvars(self.custom_egress_env, **CUSTOM_EGRESS)
        if project.answers.get("ci_provider", "github") == "github" and len(self.environments) > 1:
            # An account that has GitHub's OIDC provider already: the last
            # environment names it, the others look it up by URL.
            self.github_oidc_provider_arn = create_github_oidc_provider(self.server, project.region)
            for env in self.environments:
                arn = self.github_oidc_provider_arn if env == self.environments[-1] else None
                project.reuse_github_oidc_provider(env, arn)
        # The state bucket (prevent_destroy), the user's VPC and OIDC provider outlive the stack by design.
        self.baseline = emulator.inventory(self.server, project.region)

        def apply_env(env: str) -> dict[str, Any]:
            project.init(env)
            return project.apply(env)

        self.outputs = parallel(apply_env, self.environments)
        parallel(project.plan_is_clean, self.environments)
        return self.outputs

    def destroy(self) -> set[str]:
        """Destroy every env; return what is left in the account that was not there before apply."""
        if self.worker is not None:
            stop_process(self.worker)
        for env in self.environments:
            self.delete_data_terraform_keeps(env)
        parallel(self.project.destroy, self.environments)
        return emulator.inventory(self.server, self.project.region) - self.baseline

    def delete_data_terraform_keeps(self, env: str) -> None:
        """docs/runbook.md "Destroy everything", step 2: images and flow code go first, by hand."""
        outputs, region = self.outputs[env], self.project.region
        repository = outputs["ecr_repository_url"].split("/", 1)[1]
        self.server.client("ecr", region).delete_repository(repositoryName=repository, force=True)
        if outputs.get("code_bucket"):
            s3 = self.server.client("s3", region)
            listing = s3.list_object_versions(Bucket=outputs["code_bucket"])
            versions = listing.get("Versions", []) + listing.get("DeleteMarkers", [])
            if versions:
                s3.delete_objects(
                    Bucket=outputs["code_bucket"],
                    Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]},
                )

    def close(self) -> None:
        if self.worker is not None:
            stop_process(self.worker)
        self.server.stop()


def parallel(action: Callable[[str], Any], names: list[str]) -> dict[str, Any]:
    with ThreadPoolExecutor(max_workers=max(len(names), 1)) as pool:
        return dict(zip(names, pool.map(action, names), strict=True))


class Stacks:
    """The emulated deployments of a test session (of one xdist worker), each started on first use."""

    def __init__(self, workdir: Path, tf_env: dict[str, str]):
        self.workdir = workdir
        self.tf_env = tf_env
        self.rendered: dict[str, tuple[Callable[[], Path], Callable[[Path], None] | None]] = {}
        self.stacks: dict[str, EmulatedStack] = {}
        self.applied: dict[str, Future] = {}
        self.destroyed: dict[str, Future] = {}
        self.kept: set[str] = set()
        self.pool = ThreadPoolExecutor(max_workers=16)
        # One Prefect server (workspace) per project: the example deployments
        # of two projects have the same flow and deployment names, and Prefect
        # identifies a deployment by those, so one workspace would let the last
        # deploy take over the others' deployments.
        self._prefect_servers: dict[str, Future] = {}

    def add(
        self,
        name: str,
        render: Callable[[], Path],
        edit: Callable[[Path], None] | None = None,
        *,
        keep: bool = False,
    ) -> None:
        """Register a project, rendered on first use; `edit` may change the copy first (broken renders)."""
        self.rendered[name] = (render, edit)
        if keep:
            self.kept.add(name)

    def _start(self, name: str) -> None:
        if name in self.stacks:
            return
        render, edit = self.rendered[name]
        workdir = self.workdir / name
        moto = emulator.MotoServer(workdir / "moto").start()
        project = EmulatedProject(render(), workdir, moto, self.tf_env)
        if edit is not None:
            edit(project.project)
        stack = self.stacks[name] = EmulatedStack(name=name, project=project, server=moto)
        self.applied[name] = self.pool.submit(stack.apply)
        if name not in self.kept:
            self._start_prefect_server(name)

    def _start_prefect_server(self, name: str) -> Future:
        if name not in self._prefect_servers:
            server = PrefectServer(self.workdir / name / "prefect-server")
            self._prefect_servers[name] = self.pool.submit(server.start)
        return self._prefect_servers[name]

    def applied_stack(self, name: str) -> EmulatedStack:
        """The stack `name` once apply and plan succeeded (raises their StepFailed otherwise)."""
        self._start(name)
        self.applied[name].result()
        return self.stacks[name]

    def stack(self, name: str) -> EmulatedStack:
        self._start(name)
        return self.stacks[name]

    def prefect_server(self, name: str) -> PrefectServer:
        """The Prefect server (workspace) of project `name`."""
        self._start(name)
        return self._start_prefect_server(name).result()

    def destroy(self, name: str) -> set[str]:
        """Destroy the applied stack `name`; return its leftovers.

        Stacks registered with `keep=True` (broken renders) are not destroyed: their
        emulator just stops at the end of the session.
        """
        if name not in self.destroyed:
            self.destroyed[name] = self.pool.submit(self.stacks[name].destroy)
        left = self.destroyed[name].result()
        self.release(name)
        return left

    def release(self, name: str) -> None:
        """Stop what stack `name` runs (worker, emulator, Prefect server) after its last test.

        The xdist worker goes on with other tests, and idle servers still poll.
        """
        if name in self.stacks:
            self.stacks[name].close()
        server = self._prefect_servers.get(name)
        if server is not None and server.done() and not server.exception():
            server.result().stop()

    def close(self) -> None:
        for future in list(self.applied.values()) + list(self.destroyed.values()):
            future.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)
        for stack in self.stacks.values():
            stack.close()
        for server in self._prefect_servers.values():
            if server.done() and not server.exception():
                server.result().stop()
