"""The order xdist hands out the suite's work in (`--dist loadgroup --no-loadscope-reorder`).

First the groups that mostly wait (an emulator, a Prefect server, Terraform's
polling), then the other groups, each largest first, then the single tests.
A waiting group is one long chain on one worker, and the one handed out last
ends the run: xdist's own order, by group size only, started `make up`'s three
tests (9 minutes) halfway through the run.
"""

from __future__ import annotations

from collections import Counter

import pytest


def xdist_group(item: pytest.Item) -> str | None:
    """The group xdist's loadgroup puts `item` in (its rule: every name, sorted), None if none."""
    names = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }
    return "_".join(sorted(names)) or None


def waiting_groups_first(items: list[pytest.Item], waiting_markers: tuple[str, ...]) -> None:
    """Sort `items` in place; a group waits when one of its tests has one of `waiting_markers`."""
    groups = {item: xdist_group(item) for item in items}
    sizes = Counter(groups.values())
    waiting = {
        groups[item] for item in items if any(item.get_closest_marker(marker) for marker in waiting_markers)
    }

    def key(item: pytest.Item) -> tuple[int, int, str]:
        group = groups[item]
        if group is None:
            return (2, 0, "")
        return (0 if group in waiting else 1, -sizes[group], group)

    items.sort(key=key)  # stable: a group's tests keep their order
