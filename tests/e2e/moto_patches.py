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
from pathlib import Path

from moto.ecs.models import EC2ContainerServiceBackend
from moto.ecs.responses import EC2ContainerServiceResponse

_capture_lock = threading.Lock()
_request = threading.local()


def _record_run_task(capture_file: Path) -> None:
    """Append every RunTask request body to `capture_file` (one JSON object a line).

    DescribeTasks only reports the capacity provider AWS picked, not the
    strategy or network configuration the caller sent, so the tests read
    the worker's request from here.
    """
    original = EC2ContainerServiceResponse.run_task

    def run_task(self: EC2ContainerServiceResponse):
        with _capture_lock, capture_file.open("a") as capture:
            capture.write(json.dumps(json.loads(self.body)) + "\n")
        return original(self)

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


def apply(capture_file: Path) -> None:
    _record_run_task(capture_file)
    _keep_dropped_service_fields()
