"""Test-wide rules.

Test tiers: every test that starts the embedded broker carries the `broker` and `slow` markers,
so `python3 -m pytest -m "not slow"` (the fast tier) never waits for one. A test that asks for a
broker fixture without those markers fails at collection: the fast tier must not grow slow by
accident.

A test module that asks for `pg` (a PostgreSQL server of its own, tests/store/postgres.py) must
be marked postgres and slow, likewise.

Every test gets its own record-store directory: `banwatch up` (run as a subprocess by many
tests, with the test's environment) keeps a SQLite record store under `BANWATCH_DATA_DIR`,
default `./banwatch-data`, and restores the bans in force from it at start. Without this, one
test's bans would come back in the next test's `up`. Session-scoped fixtures get the session's
directory; tests that need a store of their own set `BANWATCH_DATA_DIR` themselves.

The suite runs in an order of its own, with the quick bench beside its first part: tests/order.py.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import order

if TYPE_CHECKING:
    from tests.store.postgres import PostgresServer

os.environ.setdefault("BANWATCH_DATA_DIR", tempfile.mkdtemp(prefix="banwatch-test-data-"))

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
    unmarked = [
        item.nodeid
        for item in items
        if "pg" in getattr(item, "fixturenames", ())
        and not (item.get_closest_marker("postgres") and item.get_closest_marker("slow"))
    ]
    if unmarked:
        raise pytest.UsageError(
            "tests using PostgreSQL must be marked postgres and slow: " + ", ".join(unmarked[:5])
        )
    order.reorder(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[object]:
    """The quick bench's smoke run starts beside the first tests (tests/order.py)."""
    order.start_beside(session)
    try:
        return (yield)
    finally:
        order.stop_beside(session.config)


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test module's own, started once for the module (skipped,
    with the reason, where none can run here)."""
    from tests.store import postgres  # not imported by the tests that need no server

    with postgres.running() as server:
        yield server


@pytest.fixture(autouse=True)
def _own_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("BANWATCH_DATA_DIR", str(tmp_path / "banwatch-data"))
    yield
