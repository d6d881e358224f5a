"""Property: what a restore would publish is what the worker's registry holds after reading the
same `contact-bans` records in order (lower versions ignored, a tombstone lifts), whatever the
sequence, and however often the sink stored each record (at-least-once)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.store.db import engine_for, migrate
from streams.store.restore import bans_in_force
from tests.store.helpers import ban_value, store

pytestmark = pytest.mark.slow

T0 = datetime(2026, 11, 1, tzinfo=UTC)

events = st.lists(
    st.tuples(
        st.sampled_from(["K1", "K2"]),
        st.one_of(st.none(), st.integers(1, 3)),  # None: a tombstone
        st.booleans(),  # stored twice
    ),
    max_size=12,
)


def registry_after(records: list[tuple[str, int | None, bool]]) -> dict[str, int]:
    held: dict[str, int] = {}
    for ban_id, version, _ in records:
        if version is None:
            held.pop(ban_id, None)
        elif version >= held.get(ban_id, 0):
            held[ban_id] = version
    return held


@settings(max_examples=100, deadline=None)
@given(events)
@example([("K1", 2, False), (("K1", None, False)), ("K1", 1, False)])  # lower after a lift
@example([("K1", 2, False), ("K1", 1, True), ("K1", None, False), ("K1", 2, False)])
def test_a_restore_publishes_what_the_registry_holds(
    records: list[tuple[str, int | None, bool]],
) -> None:
    with tempfile.TemporaryDirectory() as data:
        engine = engine_for(None, data)
        migrate(engine)
        for i, (ban_id, version, twice) in enumerate(records):
            at = T0 + timedelta(seconds=i)
            value = None if version is None else ban_value(ban_id, version)
            for _ in range(2 if twice else 1):
                store(engine, "contact-bans", ban_id, value, at)
        now = T0 + timedelta(days=1)
        restored = {b["ban_id"]: b["version"] for b in bans_in_force(engine, now)}
        engine.dispose()
    assert restored == registry_after(records)
