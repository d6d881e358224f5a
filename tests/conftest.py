"""Test-wide rules.

Test tiers: every test that starts the embedded broker carries the `broker` and `slow` markers,
so `python3 -m pytest -m "not slow"` (the fast tier) never waits for one. A test that asks for a
broker fixture without those markers fails at collection: the fast tier must not grow slow by
accident.

Every test gets its own record-store directory: `banwatch up` (run as a subprocess by many
tests, with the test's environment) keeps a SQLite record store under `BANWATCH_DATA_DIR`,
default `./banwatch-data`, and restores the bans in force from it at start. Without this, one
test's bans would come back in the next test's `up`. Session-scoped fixtures get the session's
directory; tests that need a store of their own set `BANWATCH_DATA_DIR` themselves.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(autouse=True)
def _own_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("BANWATCH_DATA_DIR", str(tmp_path / "banwatch-data"))
    yield
