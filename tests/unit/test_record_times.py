"""Record times at offset zero are given `datetime.UTC` as tzinfo (records.Timestamp), for
speed; that must change nothing anyone can see: the instant, the offset, the text a snapshot
writes, the order against other times. Other offsets are kept as given."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, TypeAdapter

from geofence.records import LocationFix

PLAIN = TypeAdapter(AwareDatetime)  # pydantic's own parse, as before

suffixes = st.one_of(
    st.sampled_from(["Z", "+00:00", "-00:00", "z"]),
    st.integers(-1439, 1439).map(
        lambda m: f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
    ),
)
times = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))


def fix_json(ts: str) -> str:
    return json.dumps(
        {
            "person_id": "P-1",
            "device_id": "EM-1",
            "ts": ts,
            "lat": 59.0,
            "lon": 17.0,
            "accuracy_m": 5.0,
            "source": "ankle_tag",
        }
    )


@settings(max_examples=300)
@given(times, suffixes, times)
def test_times_read_as_before(t: datetime, suffix: str, other: datetime) -> None:
    text = t.isoformat(timespec="microseconds") + suffix
    try:
        before = PLAIN.validate_json(json.dumps(text))
    except ValueError:
        return  # not a time pydantic reads: nothing to compare
    now = LocationFix.model_validate_json(fix_json(text)).ts
    assert now == before
    assert now.utcoffset() == before.utcoffset()
    assert now.isoformat(timespec="microseconds") == before.isoformat(timespec="microseconds")
    assert now.isoformat() == before.isoformat()
    assert now.tzname() == before.tzname()
    if before.utcoffset() == timedelta(0):
        assert now.tzinfo is UTC
    else:
        assert now.tzinfo is before.tzinfo or now.tzinfo == before.tzinfo
    for o in (other.replace(tzinfo=UTC), other.replace(tzinfo=timezone(timedelta(hours=2)))):
        assert (now < o) == (before < o)
        assert (now == o) == (before == o)
