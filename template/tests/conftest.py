import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(autouse=True, scope="session")
def prefect_api():
    """One temporary Prefect server (SQLite) for the whole test session."""
    # A busy CI runner can take longer than the default 30 s to start it.
    with prefect_test_harness(server_startup_timeout=120):
        yield
