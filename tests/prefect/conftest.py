"""One xdist worker per module for the tests that share a module's Prefect server."""

from __future__ import annotations

import pytest


# tryfirst: xdist's loadgroup reads the xdist_group markers in its own hook.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A module-scoped server starts once per worker that runs one of its tests
    # (seconds of CPU, and its services poll while it idles): keep them together.
    for item in items:
        if item.get_closest_marker("prefect_server") and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(f"prefect-{item.path.stem}"))
