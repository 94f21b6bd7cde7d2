"""Every change the end-to-end tests make to moto, in one place.

Each patch fills a gap where moto 5.2 answers differently from AWS for an API
the rendered stack or the Prefect ECS worker uses. None changes what the
production Terraform asks AWS for; they only make the emulator answer the way
AWS does, or record what a client sent so a test can assert it.

Applied by `moto_launcher.py` inside the emulator's own process.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from moto.ecs.models import EC2ContainerServiceBackend
from moto.ecs.responses import EC2ContainerServiceResponse
from task_runner import TaskRunner

_capture_lock = threading.Lock()
_request = threading.local()


def _record_run_task(capture_file: Path) -> None:
    """Append every RunTask request body, and the task ARNs it started, to `capture_file`.

    DescribeTasks only reports the capacity provider AWS picked, not the
    strategy or network configuration the caller sent, so the tests read
    the worker's request from here (one JSON object a line).
    """
    original = EC2ContainerServiceResponse.run_task

    def run_task(self: EC2ContainerServiceResponse):
        response = original(self)
        request = json.loads(self.body)
        request["startedTaskArns"] = [task.task_arn for task in response.result["tasks"]]
        with _capture_lock, capture_file.open("a") as capture:
            capture.write(json.dumps(request) + "\n")
        return response

    EC2ContainerServiceResponse.run_task = run_task


# CreateService fields moto accepts but neither stores nor returns.
_SERVICE_FIELDS_MOTO_DROPS = (
    "capacityProviderStrategy",
    "enableECSManagedTags",
    "availabilityZoneRebalancing",
    "enableExecuteCommand",
    "healthCheckGracePeriodSeconds",
)


def _keep_dropped_service_fields() -> None:
    """Store the CreateService fields moto drops, and don't invent launchType "EC2".

    Without this, Terraform reads back a service that differs from what it
    created (no strategy, launchType EC2, managed tags off) and plans to change
    or replace it right after every apply. AWS stores them all, and leaves
    launchType empty when a capacity provider strategy is given.
    """
    original_response = EC2ContainerServiceResponse.create_service
    original_backend = EC2ContainerServiceBackend.create_service

    def create_service(self: EC2ContainerServiceResponse):
        _request.service_fields = {
            name: value for name in _SERVICE_FIELDS_MOTO_DROPS if (value := self._get_param(name)) is not None
        }
        try:
            return original_response(self)
        finally:
            _request.service_fields = {}

    def backend_create_service(self: EC2ContainerServiceBackend, *args, **kwargs):
        service = original_backend(self, *args, **kwargs)
        fields = getattr(_request, "service_fields", {})
        for name, value in fields.items():
            setattr(service, name, value)  # moto's serializer reads AWS member names as attributes
        if fields.get("capacityProviderStrategy") and kwargs.get("launch_type") is None:
            service.launch_type = None
            for deployment in service.deployments:
                deployment["launchType"] = None
                deployment["capacityProviderStrategy"] = fields["capacityProviderStrategy"]
        return service

    EC2ContainerServiceResponse.create_service = create_service
    EC2ContainerServiceBackend.create_service = backend_create_service


def _requests_count_as_tls() -> None:
    """Let bucket policies see the emulator's plain-HTTP requests as HTTPS ones.

    The state bucket denies `aws:SecureTransport = false`, as it should on AWS,
    where every endpoint is HTTPS. moto ignores that condition and applies the
    Deny to every request, so the S3 backend could not read its own state. The
    test's plain HTTP to 127.0.0.1 stands in for TLS: statements that only deny
    insecure transport are skipped, every other statement is evaluated as moto does.
    """
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def denies_only_insecure_transport(statement: dict) -> bool:
        condition = statement.get("Condition", {})
        values = condition.get("Bool", {}).get("aws:SecureTransport")
        return (
            statement.get("Effect") == "Deny"
            and list(condition) == ["Bool"]
            and values in ("false", ["false"])
        )

    def get_permission(self: FakeBucket, action: str, resource: str):
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = json.loads(self.policy)
        statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
        kept = [statement for statement in statements if not denies_only_insecure_transport(statement)]
        if not kept:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**policy, "Statement": kept})).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


def _fargate_tasks_without_container_memory() -> None:
    """Run tasks whose containers set no memory of their own.

    On Fargate the task-level memory is enough (prefect-aws registers such
    definitions); moto's RunTask adds up container memory and fails on None.
    """
    original = EC2ContainerServiceBackend._calculate_task_resource_requirements

    def calculate(task_definition):
        containers = [
            container
            if {"memory", "memoryReservation", "Memory", "MemoryReservation"} & set(container)
            else {**container, "memory": 0}
            for container in task_definition.container_definitions
        ]
        return original(SimpleNamespace(container_definitions=containers))

    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(calculate)


def _fargate_tasks_get_their_public_ip() -> None:
    """A task RunTask starts with assignPublicIp ENABLED has a public IP on its ENI, as in AWS.

    moto creates the task's ENI without one; dask_cloudprovider reads it
    (DescribeNetworkInterfaces ... Association.PublicIp) for every task it starts.
    """
    from moto.ec2.models import ec2_backends
    from moto.ec2.utils import random_public_ip
    from moto.ecs.models import Task

    original = Task.__init__

    def init(self: Task, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        awsvpc = (getattr(self, "network_configuration", None) or {}).get("awsvpcConfiguration", {})
        if awsvpc.get("assignPublicIp") != "ENABLED":
            return
        backend = ec2_backends[self._account_id][self.region_name]
        for attachment in self.attachments:
            for detail in attachment["details"]:
                if detail["name"] == "networkInterfaceId":
                    backend.get_network_interface(detail["value"]).public_ip = random_public_ip()

    Task.__init__ = init


def _referenced_group_rules_keep_their_description() -> None:
    """A rule that references a security group reports its description, as in AWS.

    moto stores it with the referenced group but reads it only from CIDR rules,
    so Terraform would plan to add it again after every apply.
    """
    from moto.ec2.models.security_groups import SecurityGroupRule

    def description(self: SecurityGroupRule) -> str | None:
        return self.ip_range.get("Description") or (self.source_group or {}).get("Description")

    SecurityGroupRule.description = property(description)


def _execute_tasks(runner: TaskRunner) -> None:
    """RunTask starts the task's containers as processes, StopTask stops them (see task_runner).

    Only once the tests configured the runner: until then tasks behave as
    moto's (RUNNING at once, STOPPED by StopTask, nothing runs).
    """
    from moto.core.responses import ActionResult
    from moto.ec2.models import ec2_backends
    from moto.ecs.models import Task

    status = Task.last_status

    def last_status(self: Task) -> str:
        return getattr(self, "emulated_status", None) or status.fget(self)

    Task.last_status = property(last_status, status.fset)

    original_response = EC2ContainerServiceResponse.run_task

    def run_task(self: EC2ContainerServiceResponse):
        strategy = self._get_param("capacityProviderStrategy") or []
        provider = strategy[0]["capacityProvider"] if strategy else self._get_param("launchType")
        reason = runner.capacity_failure(provider)
        if runner.held_run_task():
            reason = "the caller was gone before this RunTask reached ECS"
        if reason is not None:
            return ActionResult({"tasks": [], "failures": [{"reason": reason}]})
        return original_response(self)

    EC2ContainerServiceResponse.run_task = run_task

    original_run = EC2ContainerServiceBackend.run_task

    def backend_run_task(self: EC2ContainerServiceBackend, *args, **kwargs):
        tasks = original_run(self, *args, **kwargs)
        for task in tasks:
            # AWS dates every task (DescribeTasks, the task's events); moto leaves createdAt out.
            task.created_at = datetime.now(UTC)
        if not runner.executing:
            return tasks
        for task in tasks:
            address = runner.next_address()
            for attachment in task.attachments:
                for detail in attachment["details"]:
                    if detail["name"] == "networkInterfaceId":
                        eni = ec2_backends[self.account_id][task.region_name].get_network_interface(
                            detail["value"]
                        )
                        eni.private_ip_address = address
                        eni.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": address}]
                        eni.public_ip = address
                    if detail["name"] == "privateIPv4Address":
                        detail["value"] = address
            runner.start(self, task, address)
        return tasks

    EC2ContainerServiceBackend.run_task = backend_run_task

    original_stop = EC2ContainerServiceBackend.stop_task

    def stop_task(self: EC2ContainerServiceBackend, cluster_str: str, task_str: str, reason: str):
        try:
            running = runner.find(task_str)
        except KeyError:
            return original_stop(self, cluster_str, task_str, reason)
        runner.stop(running, stop_code="UserInitiated", reason=reason or "Task stopped by user")
        return running.task

    EC2ContainerServiceBackend.stop_task = stop_task


def _redrive_policy_is_compact_json() -> None:
    """A queue's RedrivePolicy reads back as compact JSON, as AWS returns it.

    moto returns `json.dumps` with spaces, which the AWS provider reads as a
    change of the queue's `redrive_policy` on every plan after apply.
    """
    from moto.sqs.models import Queue

    original = Queue.attributes

    def attributes(self: Queue) -> dict:
        result = original.fget(self)
        if self.redrive_policy:
            result["RedrivePolicy"] = json.dumps(self.redrive_policy, separators=(",", ":"))
        return result

    Queue.attributes = property(attributes)


def apply(capture_file: Path, runner: TaskRunner) -> None:
    _execute_tasks(runner)
    _record_run_task(capture_file)
    _keep_dropped_service_fields()
    _requests_count_as_tls()
    _fargate_tasks_without_container_memory()
    _fargate_tasks_get_their_public_ip()
    _referenced_group_rules_keep_their_description()
    _redrive_policy_is_compact_json()
