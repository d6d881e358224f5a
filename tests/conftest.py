"""Test tiers: every test that starts the embedded broker carries the `broker` and `slow`
markers, so `python3 -m pytest -m "not slow"` (the fast tier) never waits for one.

A test that asks for a broker fixture without those markers fails at collection: the fast tier
must not grow slow by accident."""

from __future__ import annotations

import pytest

_BROKER_FIXTURES = frozenset({"broker", "chaos_broker"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if _BROKER_FIXTURES & set(getattr(item, "fixturenames", ()))
        and not (item.get_closest_marker("broker") and item.get_closest_marker("slow"))
    ]
    if unmarked:
        raise pytest.UsageError(
            "tests using the embedded broker must be marked broker and slow: "
            + ", ".join(unmarked[:5])
        )
