"""Hostile input against the pure core: every category of attack on every input topic gets
its verdict (a dead letter with a reason from the closed set, or acceptance for what the
contract allows), and interleaving hostile records into a log changes none of its decisions.
"""

from __future__ import annotations

import json
import random
import re
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.engine import Incoming
from alerts.model import DEAD_LETTERS
from alerts.replay import replay
from geofence.decoding import Reason, Rejected, decode
from streams.cli.replay_files import read_bans, read_events
from tests.hostile.corpus import CATEGORIES, POLICY, Hostile, make, pairs
from tests.unit.catalogue import NOW

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
NAMES = sorted(p.parent.name for p in SCENARIOS.glob("*/events.jsonl"))
NUMBER = re.compile(r"-?\d+\.\d{3,}")  # a coordinate-like number (3+ decimals)


def _check(h: Hostile, now: datetime = NOW) -> object:
    got = decode(h.topic, h.key, h.raw, now, POLICY)
    where = f"{h.category} on {h.topic}"
    if h.expect is None:
        assert not isinstance(got, Rejected), f"{where}: {got}"
        return got
    assert isinstance(got, Rejected), f"{where}: accepted"
    assert got.reason in h.expect, f"{where}: {got.reason} ({got.error[:200]})"
    assert got.reason in set(Reason)
    assert "\n" not in got.error and got.error, where
    # the error explains the record without repeating its content: no coordinates, no text
    if got.reason is not Reason.key_mismatch:
        assert not NUMBER.search(got.error), f"{where}: {got.error[:200]}"
        assert len(got.error) < 400, f"{where}: {got.error[:200]}"
    return got


@pytest.mark.parametrize(("category", "topic"), pairs())
def test_every_category_on_every_topic(category: str, topic: str) -> None:
    for seed in range(25):
        _check(make(random.Random(seed), category, topic, NOW))


def test_the_catalogue_covers_the_issue() -> None:
    asked = {
        "random bytes",
        "wrong type",
        "missing field",
        "extra fields",
        "NaN or infinity",
        "huge string",
        "deep nesting",
        "larger than the limit",
        "naive timestamp",
        "far-future timestamp",
        "unknown enum value (ban kind, source, ...)",
        "invalid geometry",
    }
    assert asked <= set(CATEGORIES)
    assert {t for _, t in pairs()} == {
        "contact-bans",
        "positions",
        "patrol-positions",
        "incidents",
        "alert-acks",
    }


@settings(max_examples=400, deadline=None)
@given(pair=st.sampled_from(pairs()), rng=st.randoms(use_true_random=False))
def test_hostile_records_get_their_verdict(pair: tuple[str, str], rng: random.Random) -> None:
    _check(make(rng, *pair, NOW))


# ------------------------------------------------------------- decisions unchanged
def _scenario(name: str) -> tuple[list[bytes], list[Incoming], datetime]:
    d = SCENARIOS / name
    args = json.loads((d / "args.json").read_text())
    now = datetime.fromisoformat(args["now"].replace("Z", "+00:00"))
    bans = read_bans(str(d / "bans.jsonl"), POLICY, now)
    return bans, read_events(str(d / "events.jsonl")), now


def _decisions(bans: list[bytes], events: list[Incoming], now: datetime) -> list[str]:
    return [
        json.dumps(out, sort_keys=True)
        for out in replay(bans, events, POLICY, now)
        if out[0] != DEAD_LETTERS
    ]


BAD = [p for p in pairs() if CATEGORIES[p[0]].expect is not None]


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    rng=st.randoms(use_true_random=False),
    n=st.integers(1, 40),
)
def test_hostile_records_interleaved_into_a_log_change_none_of_its_decisions(
    name: str, rng: random.Random, n: int
) -> None:
    """Alerts and tasks of every golden scenario are the same with bad records mixed in, and
    each bad record adds exactly one dead letter (a far-future record must not move the event
    clock, a bad ack must not touch an alert, a bad ban must not replace a good one...)."""
    bans, events, now = _scenario(name)
    clean = _decisions(bans, events, now)
    mixed = list(events)
    for _ in range(n):
        h = make(rng, *rng.choice(BAD), now)
        mixed.insert(rng.randrange(len(mixed) + 1), Incoming(h.topic, h.key, h.raw, 0, 10**6))
    assert _decisions(bans, mixed, now) == clean
    dead_before = sum(1 for o in replay(bans, events, POLICY, now) if o[0] == DEAD_LETTERS)
    dead_after = sum(1 for o in replay(bans, mixed, POLICY, now) if o[0] == DEAD_LETTERS)
    assert dead_after == dead_before + n
