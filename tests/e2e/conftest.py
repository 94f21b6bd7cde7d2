"""Fixtures of the end-to-end tests: Terraform's environment and the emulated deployments."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import pytest
from answer_stacks import BROKEN_RENDERS, E2E_ANSWER_SETS
from pipeline import StepFailed
from stacks import Stacks
from support.answer_sets import ANSWER_SETS
from support.terraform import terraform_env, terraform_unavailable
from support.tools import require
from task_execution import ExecutingStack, execution_unavailable, prepare

# Destroying the stacks ends their use: it runs after every other test of the session.
LAST = "test_destroy_leaves_nothing"


# tryfirst: xdist's loadgroup reads the xdist_group markers in its own hook.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stack's emulator executes tasks from its first `executing_stack` on, for
    # good: the tests that need moto's own tasks (nothing runs) go before.
    items.sort(
        key=lambda item: (
            getattr(item, "originalname", "") == LAST,
            "executing_stack" in getattr(item, "fixturenames", ()),
        )
    )
    for item in items:
        group = _own_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def _own_group(item: pytest.Item) -> str | None:
    """The e2e tests of one stack (or one module's own emulator) run in order on one worker,
    and beside the other stacks' on other workers: most of their time is spent waiting."""
    marker = item.get_closest_marker("xdist_group")
    if marker is None or marker.args != ("e2e",):
        return None
    callspec = getattr(item, "callspec", None)
    name = callspec.params.get("name") if callspec else None
    if name in BROKEN_RENDERS:
        return "e2e-broken-renders"
    if getattr(item.module, "USES_DASK_PORTS", False) or (
        name is not None and ANSWER_SETS[name].get("dask_cluster")
    ):
        # Its Dask tasks listen on the Dask module's fixed ports, as tests/project/test_dask_commands.py's do.
        return "e2e-dask-ports"
    if name is not None:
        return f"e2e-{name}"
    return f"e2e-{item.module.__name__}"


@pytest.fixture(scope="session")
def tf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    require(terraform_unavailable())
    # The parent of getbasetemp() is shared by every xdist worker of the run.
    return terraform_env(tmp_path_factory.getbasetemp().parent / "terraform")


def _selected_names(session: pytest.Session) -> set[str]:
    """The `name` parameters of the tests of this session that use the stacks."""
    return {
        item.callspec.params["name"]
        for item in session.items
        if "stacks" in getattr(item, "fixturenames", ())
        and hasattr(item, "callspec")
        and "name" in item.callspec.params
    }


@pytest.fixture(scope="session")
def stacks(request, render, tf_env, tmp_path_factory) -> Iterator[Stacks]:
    """Every emulated deployment the selected tests need, each rendered and started on first use."""
    selected = _selected_names(request.session)
    registry = Stacks(tmp_path_factory.mktemp("e2e"), tf_env)
    for name in E2E_ANSWER_SETS:
        if name in selected:
            registry.add(name, functools.partial(render, ANSWER_SETS[name]))
    for name, (answer_set, edit, _) in BROKEN_RENDERS.items():
        if name in selected:
            broken = functools.partial(render, ANSWER_SETS[answer_set])
            registry.add(f"broken-{name}", broken, edit, keep=True)
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture(scope="session")
def executing_stack(stacks: Stacks, tmp_path_factory) -> Callable[[str], ExecutingStack]:
    """name -> that applied stack with executing tasks, its ECS worker and the probe flow deployed."""
    prepared: dict[str, ExecutingStack] = {}

    def get(name: str) -> ExecutingStack:
        require(execution_unavailable())
        if name not in prepared:
            try:
                stacks.applied_stack(name)
            except StepFailed as failure:
                pytest.skip(f"the stack was not applied: {failure}")
            prepared[name] = prepare(stacks, name, tmp_path_factory.mktemp(f"probes-{name}"))
        return prepared[name]

    return get
