"""Routing in the core (alerts/routing.py): deciding each record per partition key, as the
stream does, gives what plain replay gives.

The stream decides a record under every key the core routes it to: a fix under each
restrained person concerned, with the bans of that person (`fix_routes`), an incident under
each restrained person concerned with the whole match list, or under its own scope
(`incident_targets`), an acknowledgement under its alert's owner (`alert_route_key`). Here
the same engine (event clock, as `replay`) gets each record once per key, in an order chosen
by Hypothesis, on the golden scenarios; its outputs must be those of plain replay: every
alert's revisions in the same order, and the same multiset of outputs overall.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.engine import Engine, Incoming
from alerts.model import ALERTS, Output
from alerts.replay import _after, replay
from alerts.routing import (
    alert_route_key,
    fix_bans,
    fix_routes,
    incident_scope,
    incident_targets,
    match_incident,
)
from config.policy import Policy, load_policy
from geofence.decoding import BANS, decode
from geofence.records import AlertAction, Incident, LocationFix
from streams.cli.replay_files import read_bans, read_events

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
NAMES = sorted(p.parent.name for p in SCENARIOS.glob("*/events.jsonl"))
POLICY: Policy = load_policy()


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@cache
def scenario(name: str) -> tuple[list[bytes], list[Incoming], datetime, datetime | None]:
    d = SCENARIOS / name
    args = json.loads((d / "args.json").read_text("utf-8"))
    now = _ts(args["now"])
    until = _ts(args["until"]) if args.get("until") else None
    bans = read_bans(str(d / "bans.jsonl"), POLICY, now)
    return bans, read_events(str(d / "events.jsonl")), now, until


def routed_replay(
    bans: list[bytes],
    events: list[Incoming],
    policy: Policy,
    now: datetime,
    until: datetime | None,
    rng: random.Random,
) -> Iterator[Output]:
    """`replay`, with every record delivered once per partition key it is routed to (in an
    order `rng` picks), as the stream delivers it."""
    engine = Engine(policy, event_clock=True)
    for raw in bans:
        engine.handle(Incoming(BANS, None, raw), now)
    owner: dict[str, str | None] = {}  # the stream's alert index
    for msg in events:
        if until is not None and _after(msg, until, now, policy):
            continue
        for delivered in _deliveries(engine, msg, now, owner, rng):
            for result in engine.handle_batch([delivered], now):
                for out in result.outputs:
                    topic, key, value = out
                    if topic == ALERTS and key is not None and key not in owner:
                        owner[key] = alert_route_key(value)
                    yield out
    end = until if until is not None else engine.clock
    if end is not None:
        yield from engine.tick(end)


def _deliveries(
    engine: Engine, msg: Incoming, now: datetime, owner: dict[str, str | None], rng: random.Random
) -> list[Incoming]:
    d = decode(msg.topic, msg.key, msg.value, now, engine.policy)
    base = (msg.topic, msg.key, msg.value, msg.partition, msg.offset)
    if isinstance(d, LocationFix):
        routes = list(fix_routes(engine.registry, d).items())
        if not routes:  # concerns no ban: the stream decides it nowhere; replay's clock moves
            return [Incoming(*base, decoded=d, bans=[])]
        rng.shuffle(routes)
        return [Incoming(*base, scope=k, decoded=d, bans=bans) for k, bans in routes]
    if isinstance(d, Incident):
        matches = match_incident(engine.registry, d)
        targets = incident_targets(engine.registry, matches, d.incident_id)
        rng.shuffle(targets)
        return [Incoming(*base, scope=k, matched=tuple(m)) for k, m in targets]
    if isinstance(d, AlertAction):
        return [Incoming(*base, scope=owner.get(d.alert_id))]
    return [msg]


def _key(out: Output) -> str:
    return json.dumps(out, sort_keys=True, default=str)


def _by_alert(outs: list[Output]) -> dict[str, list[str]]:
    revs: dict[str, list[str]] = {}
    for out in outs:
        if out[0] == ALERTS and out[1] is not None:
            revs.setdefault(out[1], []).append(_key(out))
    return revs


@cache
def plain(name: str) -> list[Output]:
    bans, events, now, until = scenario(name)
    return list(replay(bans, events, POLICY, now, until))


@pytest.mark.parametrize("name", NAMES)
def test_routed_in_key_order_is_replay(name: str) -> None:
    """Each record under its keys in sorted order: the very same output sequence."""
    bans, events, now, until = scenario(name)

    class Sorted(random.Random):
        def shuffle(self, x: Any) -> None:  # type: ignore[override]
            x.sort(key=lambda item: str(item[0]))

    got = list(routed_replay(bans, events, POLICY, now, until, Sorted()))
    assert [_key(o) for o in got] == [_key(o) for o in plain(name)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**32 - 1))
def test_routed_in_any_key_order_is_replay(name: str, seed: int) -> None:
    bans, events, now, until = scenario(name)
    got = list(routed_replay(bans, events, POLICY, now, until, random.Random(seed)))
    want = plain(name)
    assert Counter(map(_key, got)) == Counter(map(_key, want))
    assert _by_alert(got) == _by_alert(want)


def test_routes_partition_the_bans_a_fix_concerns() -> None:
    """`fix_routes` slices `fix_bans` by restrained person and keeps its order; it reaches
    every restrained person of a held ban of the fix's person, in force or not."""
    bans, events, now, _ = scenario("sodermalm_proximity")
    engine = Engine(POLICY, event_clock=True)
    for raw in bans:
        engine.handle(Incoming(BANS, None, raw), now)
    seen = 0
    for msg in events:
        d = decode(msg.topic, msg.key, msg.value, now, POLICY)
        if not isinstance(d, LocationFix):
            continue
        routes = fix_routes(engine.registry, d)
        flat = fix_bans(engine.registry, d)
        assert sorted(c for cs in routes.values() for c in cs) == sorted(flat)
        for person, cs in routes.items():
            assert [c for c in flat if c[1].record.restrained_person == person] == cs
        reg = engine.registry
        held = [reg.get(b) for b in (*reg.restraining(d.person_id), *reg.protecting(d.person_id))]
        assert set(routes) == {h.record.restrained_person for h in held if h is not None}
        seen += bool(routes)
    assert seen > 0


def test_incident_scope_and_unmatched_target() -> None:
    assert incident_scope("I-1") == "incident:I-1"
    bans, _, now, _ = scenario("incidents")
    engine = Engine(POLICY, event_clock=True)
    for raw in bans:
        engine.handle(Incoming(BANS, None, raw), now)
    assert incident_targets(engine.registry, [], "I-9") == [("incident:I-9", [])]
    assert alert_route_key({"restrained_person": "P-1", "incident_id": "I-1"}) == "P-1"
    assert alert_route_key({"restrained_person": None, "incident_id": "I-1"}) == "incident:I-1"
    assert alert_route_key({"restrained_person": None, "incident_id": None}) is None
