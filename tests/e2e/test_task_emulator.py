"""The executing emulator itself (task_runner), on a bare emulated account: no Terraform, no Prefect.

A one-file "project" whose Dockerfile has tini as ENTRYPOINT and a Python
script as CMD; each test runs tasks of it and checks what ECS would show:
exit codes, stop codes, the events on an EventBridge rule's queue, signals.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator import MotoServer
from task_execution import execution_unavailable
from worker_run import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

REGION = "eu-west-1"
REPOSITORY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/probe"
SCRIPT = """\
import os, signal, sys, time
print("env", os.environ.get("GREETING"), os.environ.get("API_KEY"), os.getcwd(), flush=True)
print("pid", os.getpid(), "parent", os.getppid(), flush=True)
if os.environ.get("IGNORE_SIGTERM"):
    signal.signal(signal.SIGTERM, lambda *_: print("ignored SIGTERM", flush=True))
if os.environ.get("READ_METADATA"):
    import json, urllib.request
    base = os.environ["ECS_CONTAINER_METADATA_URI_V4"]
    container = json.load(urllib.request.urlopen(base))
    task = json.load(urllib.request.urlopen(base + "/task"))
    print("metadata", container["Image"], container["Name"], task["TaskARN"], task["Family"], flush=True)
time.sleep(float(os.environ.get("SLEEP", "0")))
sys.exit(int(os.environ.get("EXIT", "0")))
"""
DOCKERFILE = """\
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \\
    GREETING=from-image
WORKDIR /app
COPY probe.py ./
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "probe.py"]
"""


class Account:
    """An emulator with a cluster, a task definition of the probe image, and the ECS event rule's queue."""

    def __init__(self, server: MotoServer, project: Path):
        self.server = server
        self.ecs = server.client("ecs", REGION)
        self.cluster = self.ecs.create_cluster(clusterName="probe")["cluster"]["clusterArn"]
        ec2 = server.client("ec2", REGION)
        self.subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        self.group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]
        secret = server.client("secretsmanager", REGION).create_secret(
            Name="probe/api", SecretString=json.dumps({"key": "s3cr3t"})
        )
        self.secret_arn = secret["ARN"]
        sqs = server.client("sqs", REGION)
        self.queue_url = sqs.create_queue(QueueName="ecs-events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events = server.client("events", REGION)
        events.put_rule(
            Name="ecs-task-state",
            EventPattern=json.dumps({"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"]}),
        )
        events.put_targets(Rule="ecs-task-state", Targets=[{"Id": "queue", "Arn": queue_arn}])
        server.execute_tasks(
            images={REPOSITORY: image_config_of(project)}, prefect_api_url="http://127.0.0.1:9/api"
        )

    def register(self, *, stop_timeout: int = 2, **environment: str) -> str:
        definition = self.ecs.register_task_definition(
            family="probe",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[
                {
                    "name": "probe",
                    "image": f"{REPOSITORY}:v1",
                    "essential": True,
                    "stopTimeout": stop_timeout,
                    "environment": [{"name": k, "value": v} for k, v in environment.items()],
                    "secrets": [{"name": "API_KEY", "valueFrom": f"{self.secret_arn}:key::"}],
                }
            ],
        )
        return definition["taskDefinition"]["taskDefinitionArn"]

    def run(self, definition: str, provider: str = "FARGATE", **overrides: str) -> dict:
        response = self.ecs.run_task(
            cluster=self.cluster,
            taskDefinition=definition,
            capacityProviderStrategy=[{"capacityProvider": provider, "weight": 1, "base": 0}],
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": [self.subnet],
                    "securityGroups": [self.group],
                    "assignPublicIp": "ENABLED",
                }
            },
            overrides={
                "containerOverrides": [
                    {"name": "probe", "environment": [{"name": k, "value": v} for k, v in overrides.items()]}
                ]
            },
        )
        return response

    def describe(self, task_arn: str) -> dict:
        return self.ecs.describe_tasks(cluster=self.cluster, tasks=[task_arn])["tasks"][0]

    def stopped(self, task_arn: str, timeout: float = 30) -> dict:
        return wait_for(
            f"task {task_arn} to be STOPPED",
            lambda: (task := self.describe(task_arn))["lastStatus"] == "STOPPED" and task,
            timeout=timeout,
            interval=0.2,
        )

    def events(self, task_arn: str) -> list[dict]:
        sqs = self.server.client("sqs", REGION)
        found = []
        while messages := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [event for event in found if event["detail"]["taskArn"] == task_arn]

    def output(self, task_arn: str) -> str:
        container = self.server.task_process(task_arn)["containers"].get("probe")
        return Path(container["log"]).read_text() if container else ""


def image_config_of(project: Path) -> dict:
    from container_image import image_config

    return image_config(project)


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    reason = execution_unavailable()
    if reason:
        pytest.skip(reason)
    project = tmp_path_factory.mktemp("probe-project")
    (project / "Dockerfile").write_text(DOCKERFILE)
    (project / "probe.py").write_text(SCRIPT)
    server = MotoServer(tmp_path_factory.mktemp("probe-moto")).start()
    try:
        yield Account(server, project)
    finally:
        server.stop()


def test_a_task_runs_the_images_command_and_stops_with_its_exit_code(account: Account) -> None:
    definition = account.register(GREETING="from-definition")
    (task,) = account.run(definition, EXIT="3")["tasks"]
    stopped = account.stopped(task["taskArn"])
    assert stopped["stopCode"] == "EssentialContainerExited"
    assert stopped["stoppedReason"] == "Essential container in task exited"
    assert [c["exitCode"] for c in stopped["containers"]] == [3]
    output = account.output(task["taskArn"])
    # The definition's environment over the image's ENV, the secret's JSON key, the image's WORKDIR.
    assert "env from-definition s3cr3t /app" in output, output
    events = wait_for("the task's events on the queue", lambda: account.events(task["taskArn"]), timeout=10)
    assert [e["detail"]["lastStatus"] for e in events] == ["RUNNING", "STOPPED"]
    detail = events[-1]["detail"]
    assert detail["stopCode"] == "EssentialContainerExited"
    assert detail["containers"][0]["exitCode"] == 3
    assert detail["capacityProviderName"] == "FARGATE"


def test_tasks_get_their_own_loopback_address(account: Account) -> None:
    definition = account.register()
    arns = [account.run(definition)["tasks"][0]["taskArn"] for _ in range(2)]
    ec2 = account.server.client("ec2", REGION)
    addresses = []
    for arn in arns:
        details = {d["name"]: d["value"] for d in account.describe(arn)["attachments"][0]["details"]}
        (interface,) = ec2.describe_network_interfaces(NetworkInterfaceIds=[details["networkInterfaceId"]])[
            "NetworkInterfaces"
        ]
        assert interface["Association"]["PublicIp"] == interface["PrivateIpAddress"]
        assert details["privateIPv4Address"] == interface["PrivateIpAddress"]
        addresses.append(interface["PrivateIpAddress"])
        account.stopped(arn)
    assert all(address.startswith("127.") for address in addresses), addresses
    assert len(set(addresses)) == 2, addresses


def test_a_container_reads_its_task_metadata_endpoint(account: Account) -> None:
    definition = account.register()
    (task,) = account.run(definition, READ_METADATA="1")["tasks"]
    stopped = account.stopped(task["taskArn"])
    output = account.output(task["taskArn"])
    # ECS_CONTAINER_METADATA_URI_V4 (the container) and its /task, as the ECS agent serves them.
    assert f"metadata {REPOSITORY}:v1 probe {task['taskArn']} probe" in output, output
    assert [c["exitCode"] for c in stopped["containers"]] == [0], output


def test_stop_task_sends_sigterm_through_tini_and_is_user_initiated(account: Account) -> None:
    definition = account.register()
    (task,) = account.run(definition, SLEEP="60")["tasks"]
    arn = task["taskArn"]
    wait_for("the task to run", lambda: account.describe(arn)["lastStatus"] == "RUNNING", timeout=20)
    wait_for("the probe to start", lambda: "pid" in account.output(arn), timeout=20)
    account.ecs.stop_task(cluster=account.cluster, task=arn, reason="operator")
    stopped = account.stopped(arn)
    assert stopped["stopCode"] == "UserInitiated"
    assert stopped["stoppedReason"] == "operator"
    # The probe ran as tini's child and died of the SIGTERM tini forwarded: 128 + 15.
    assert stopped["containers"][0]["exitCode"] == 143
    assert "parent" in account.output(arn)
    assert account.events(arn)[-1]["detail"]["stopCode"] == "UserInitiated"


def test_spot_interruption_kills_after_the_stop_timeout(account: Account) -> None:
    definition = account.register(stop_timeout=2, IGNORE_SIGTERM="1")
    (task,) = account.run(definition, provider="FARGATE_SPOT", SLEEP="60")["tasks"]
    arn = task["taskArn"]
    wait_for("the probe to start", lambda: "pid" in account.output(arn), timeout=20)
    account.server.interrupt_as_spot(arn)
    stopped = account.stopped(arn, timeout=20)
    assert stopped["stopCode"] == "SpotInterruption"
    assert stopped["stoppedReason"] == "Your Spot Task was interrupted."
    assert stopped["containers"][0]["exitCode"] == 137, "SIGKILL after the stop timeout"
    assert "ignored SIGTERM" in account.output(arn)
    assert account.events(arn)[-1]["detail"]["capacityProviderName"] == "FARGATE_SPOT"


def test_run_task_on_spot_can_find_no_capacity(account: Account) -> None:
    definition = account.register()
    account.server.set_capacity("FARGATE_SPOT", available=False)
    try:
        response = account.run(definition, provider="FARGATE_SPOT")
        assert response["tasks"] == []
        assert response["failures"][0]["reason"].startswith("Capacity is unavailable at this time.")
        (task,) = account.run(definition, provider="FARGATE")["tasks"]
        account.stopped(task["taskArn"])
    finally:
        account.server.set_capacity("FARGATE_SPOT", available=True)
    (task,) = account.run(definition, provider="FARGATE_SPOT")["tasks"]
    account.stopped(task["taskArn"])


def test_an_image_outside_the_registry_fails_to_start(account: Account) -> None:
    definition = account.ecs.register_task_definition(
        family="elsewhere",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "probe", "image": "docker.io/library/busybox:1", "essential": True}],
    )["taskDefinition"]["taskDefinitionArn"]
    (task,) = account.run(definition)["tasks"]
    stopped = account.stopped(task["taskArn"])
    assert stopped["stopCode"] == "TaskFailedToStart"
    assert "CannotPullContainerError" in stopped["stoppedReason"]
