"""Stopped ECS tasks in moto, as DescribeTasks shows them on AWS: stop code, reason, exit code.

moto 5.2's StopTask sets only the reason; AWS also sets `stopCode` (and, for a
task that ran, each container's exit code). The backend lives in the test's
process (`mock_aws`, or moto's threaded server), so the helper sets them there.
Tasks use bridge networking: moto cannot give awsvpc tasks an interface
without the e2e patches, and the stop code does not depend on it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ecs.models import ecs_backends
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
FAMILY = "flow-run"


@contextlib.contextmanager
def moto_in_process() -> Iterator[dict[str, str]]:
    """moto's server on a free port of this process; yields the environment an AWS client needs for it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield {
            "AWS_ENDPOINT_URL": "http://{}:{}".format(*server.get_host_and_port()),
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
        }
    finally:
        server.stop()


def aws_client(service: str, aws: dict[str, str]):
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
    )


@dataclass
class EcsTasks:
    """One cluster in moto; makes stopped tasks the way ECS leaves them."""

    ecs: object  # a boto3 ECS client pointed at moto
    cluster: str = ""

    def __post_init__(self) -> None:
        self.cluster = self.cluster or f"flows-{uuid.uuid4().hex[:8]}"
        self.arn = self.ecs.create_cluster(clusterName=self.cluster)["cluster"]["clusterArn"]
        self.ecs.register_task_definition(
            family=FAMILY,
            containerDefinitions=[
                {"name": "prefect", "image": "flows:latest", "essential": True, "memory": 512}
            ],
        )

    def stopped(
        self,
        stop_code: str,
        reason: str,
        *,
        capacity_provider: str = "FARGATE_SPOT",
        exit_code: int | None = None,
        flow_run_id: str | None = None,
    ) -> str:
        """A STOPPED task; returns the worker's infrastructure_pid for it, "<cluster>::<task arn>"."""
        arn = self.running(capacity_provider=capacity_provider, flow_run_id=flow_run_id)
        self.ecs.stop_task(cluster=self.cluster, task=arn, reason=reason)
        task = self._task(arn)
        task.stop_code = stop_code
        if exit_code is not None:
            task.containers[0].exitCode = exit_code
        return f"{self.cluster}::{arn}"

    def running(self, *, capacity_provider: str = "FARGATE_SPOT", flow_run_id: str | None = None) -> str:
        # As the worker tags a flow run's task (the observer reads both).
        tags = (
            [
                {"key": "prefect.io/flow-run-id", "value": flow_run_id},
                {"key": "prefect.io/flow-run-name", "value": f"run-{flow_run_id[:8]}"},
            ]
            if flow_run_id
            else []
        )
        strategy = [{"capacityProvider": capacity_provider, "weight": 1}]
        (task,) = self.ecs.run_task(
            cluster=self.cluster, taskDefinition=FAMILY, capacityProviderStrategy=strategy, tags=tags
        )["tasks"]
        # AWS dates every task; moto 5.2 leaves createdAt out.
        self._task(task["taskArn"]).created_at = datetime.now(UTC)
        return task["taskArn"]

    def _task(self, arn: str):
        return ecs_backends[DEFAULT_ACCOUNT_ID][REGION].tasks[self.cluster][arn]
