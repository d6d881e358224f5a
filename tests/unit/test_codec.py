"""The snapshot codec is derived from type hints (alerts/codec.py): a dataclass with a field of
each kind it knows round-trips exactly, and a kind it does not know fails when the codec is
built, not when a state is written."""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from alerts.codec import SnapshotError, Writer, dataclass_decoder, write_time
from geofence.evaluation import Confidence


@dataclass(frozen=True)
class Inner:
    at: datetime
    x: float


@dataclass
class Every:
    name: str
    n: int
    flag: bool
    x: float
    at: datetime
    maybe: datetime | None
    level: Confidence
    free: dict[str, Any] | None
    pairs: dict[str, Inner] = field(default_factory=dict)
    keyed: dict[str, Inner] = field(default_factory=dict, metadata={"keyed_by": "at"})
    items: list[int] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    window: deque[tuple[datetime, float]] = field(default_factory=deque)


def test_every_kind_round_trips() -> None:
    t = datetime(2026, 11, 22, 10, 0, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    v = Every(
        name="a",
        n=3,
        flag=True,
        x=-math.inf,
        at=t,
        maybe=None,
        level=Confidence.probable,
        free={"lat": math.nan, "nested": [1, {"y": 2.5}]},
        pairs={"b": Inner(t, 2), "a": Inner(t, 1.5)},
        items=[3, 1],
        seen={"z", "y"},
        window=deque([(t, math.inf)], maxlen=4),
    )
    v.keyed[str(t)] = Inner(t, 0.0)
    enc = Writer().compile(Every, "every", version=7)
    text = json.dumps(enc(v, write_time), allow_nan=False)
    doc = json.loads(text)
    assert doc["v"] == 7 and doc["seen"] == ["y", "z"] and doc["x"] == "-inf"
    assert [k for k, _ in doc["pairs"]] == ["b", "a"]  # insertion order kept
    del doc["v"]
    back = dataclass_decoder(Every)(doc, "every")
    again = json.dumps(enc(back, write_time), allow_nan=False)
    assert again == text
    assert back.window.maxlen == 4 and back.at.utcoffset() == timedelta(hours=1)
    assert type(back.pairs["b"].x) is int and back.level is Confidence.probable
    doc["items"] = [1.5]
    with pytest.raises(SnapshotError, match=r"every.items\[0\]: expected an integer"):
        dataclass_decoder(Every)(doc, "every")


def test_an_unknown_kind_fails_when_built() -> None:
    @dataclass
    class Odd:
        when: frozenset[str]

    with pytest.raises(TypeError, match="no codec"):
        Writer().compile(Odd, "odd")
    with pytest.raises(TypeError, match="no codec"):
        dataclass_decoder(Odd)
