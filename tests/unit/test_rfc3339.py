"""`model.rfc3339` formats by hand for speed; it must write what strftime writes, for every
time (any offset, with and without microseconds, years below 1000 too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.model import rfc3339


def by_strftime(t: datetime) -> str:  # the definition, as it was written first
    u = t.astimezone(UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if u.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return u.strftime(fmt)


offsets = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


@settings(max_examples=500)
@given(times, offsets, st.booleans())
def test_rfc3339_is_strftime(t: datetime, tz: timezone, whole: bool) -> None:
    if whole:
        t = t.replace(microsecond=0)
    assert rfc3339(t) == by_strftime(t)
    assert rfc3339(t.astimezone(tz)) == by_strftime(t.astimezone(tz))


def test_rfc3339_examples() -> None:
    t = datetime(2026, 11, 22, 7, 5, 48, 150970, tzinfo=UTC)
    assert rfc3339(t) == "2026-11-22T07:05:48.150970Z"
    assert rfc3339(t.replace(microsecond=0)) == "2026-11-22T07:05:48Z"
    assert rfc3339(datetime(999, 1, 1, tzinfo=UTC)) == by_strftime(datetime(999, 1, 1, tzinfo=UTC))
