"""Contract version 2, rules 7-9 (end of life, SOS, one response per incident) and replay
determinism, asserted on replay output (tests/scenarios/v2_*) and on the engine directly.

The golden files of these scenarios are checked by tests/unit/test_scenarios.py; here is what
CONTRACT.md promises, computed from the inputs, so that a regenerated golden file cannot bless
a regression.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.engine import Engine, Incoming
from alerts.routing import SOS_AFTER_END
from config.policy import load_policy
from geofence.decoding import BANS, INCIDENTS, POSITIONS
from streams.cli import main
from tests.unit.test_scenarios import NAMES, SCENARIOS, events, output, states, ts

POLICY = load_policy()
SLA = timedelta(seconds=POLICY.ack_sla_s)
ROOT = Path(__file__).resolve().parents[2]


def by_ban(name: str) -> dict[str | None, list[list[dict[str, Any]]]]:
    out: dict[str | None, list[list[dict[str, Any]]]] = {}
    for revs in output(name).alerts.values():
        out.setdefault(revs[0]["ban_id"], []).append(revs)
    return out


def ban_records(name: str) -> list[tuple[datetime, str, dict[str, Any] | None]]:
    """(arrival, ban id, record or None) of the ban records in the events, in order; the
    arrival is the newest event time before it (the replay's clock)."""
    out = []
    clock: datetime | None = None
    for e in events(name):
        v = e["value"]
        if e["topic"] == "contact-bans":
            assert clock is not None
            out.append((clock, e["key"], v))
        elif isinstance(v, dict) and "ts" in v:
            at = ts(v["ts"])
            clock = at if clock is None or at > clock else clock
    return out


# ------------------------------------------------------------------------- rule 7: end of life
def test_end_of_life_resolves_every_open_alert_once_by_the_system() -> None:
    name = "v2_end_of_life"
    out = output(name)
    bans = {b["ban_id"]: b for b in map(json.loads, (SCENARIOS / name / "bans.jsonl").open())}
    ends: dict[str, tuple[datetime, str]] = {}
    for at, ban_id, rec in ban_records(name):
        if rec is None:
            ends[ban_id] = (at, "lifted")
        elif rec["status"] == "revoked":
            ends[ban_id] = (at, "revoked")
    for ban_id, b in bans.items():
        if ban_id not in ends and b["valid_until"] is not None:
            ends[ban_id] = (ts(b["valid_until"]), "expired")
    assert set(ends) == set(bans)  # each ban ends one way
    seen = by_ban(name)
    assert set(seen) == set(bans)
    for ban_id, (end, why) in ends.items():
        [revs] = seen[ban_id]  # one alert per ban: nothing opens after the end
        last = revs[-1]
        assert last["state"] == "resolved" and last["resolved_by"] == "system"
        assert why in last["reason"] and last["episode"] == "ended"
        assert ts(last["updated_at"]) == end
        assert [r for r in revs if ts(r["updated_at"]) > end] == []
        assert sum(r["state"] == "resolved" for r in revs) == 1
        tasks = [t for t in out.tasks if t["ban_id"] == ban_id]
        # (a reassignment due at the very moment the ban ends comes first, and is cancelled
        # with it: `<=`)
        assert tasks and all(ts(t["created_at"]) <= end for t in tasks)
        assert all(t["state"] == "cancelled" for t in _latest(tasks) if ts(t["created_at"]) == end)
        # escalation only while the ban lived, and only when not acknowledged in time
        p1 = ts(revs[0]["updated_at"])
        escalated = [r for r in revs if r["state"] == "escalated"]
        acked = [ts(r["updated_at"]) for r in revs if r["state"] == "acknowledged"]
        if p1 + SLA < end and not (acked and acked[0] < p1 + SLA):
            assert escalated and ts(escalated[0]["updated_at"]) == p1 + SLA
        else:
            assert escalated == []
    # the three endings cover: escalated, never escalated, acknowledged
    assert {states(seen[b][0])[-2] for b in bans} == {"escalated", "open", "acknowledged"}


def test_protected_persons_position_lost_ends_her_episodes_not_the_alerts() -> None:
    name = "v2_position_lost"
    out = output(name)
    her = [e["value"] for e in events(name) if e["value"].get("source") == "victim_device"]
    lost_at = ts(her[-1]["ts"]) + timedelta(seconds=POLICY.signal_timeout_s)
    followed = [
        revs for revs in out.alerts.values() if revs[0]["kind"] in ("proximity_breach", "approach")
    ]
    assert {r[0]["kind"] for r in followed} == {"proximity_breach", "approach"}
    for revs in followed:
        ended = [r for r in revs if r["episode"] == "ended"]
        assert len(ended) == 1 and ended[0] is revs[-1]
        assert ended[0]["reason"] == "protected person's position lost"
        assert ts(ended[0]["updated_at"]) == lost_at
        assert ended[0]["state"] != "resolved"  # the alert stays for the operator
    prox = next(r for r in followed if r[0]["kind"] == "proximity_breach")
    assert prox[-1]["state"] == "acknowledged"


def test_a_ban_in_force_again_starts_a_new_life() -> None:
    """A revoked ban re-activated by a newer version alerts again, and ends again."""
    name = "v2_end_of_life"
    [b] = [
        json.loads(line)
        for line in (SCENARIOS / name / "bans.jsonl").open()
        if json.loads(line)["ban_id"] == "KF-2026-0702"
    ]
    centre = b["zones"]["features"][0]["geometry"]["coordinates"]
    engine = Engine(POLICY, event_clock=True)
    now = datetime(2026, 12, 1, tzinfo=UTC)

    def send(topic: str, key: str, value: dict[str, Any] | None) -> list[Any]:
        raw = None if value is None else json.dumps(value).encode()
        return engine.handle(Incoming(topic, key, raw), now).outputs

    def fix(at: str) -> dict[str, Any]:
        return {
            "person_id": "P-7102",
            "device_id": "PH-7102",
            "ts": at,
            "lat": centre[1],
            "lon": centre[0],
            "accuracy_m": 5.0,
            "source": "phone",
        }

    send(BANS, b["ban_id"], b)
    first = send(POSITIONS, "P-7102", fix("2026-11-22T10:00:00Z"))
    assert [v["state"] for t, _, v in first if t == "alerts"] == ["open"]
    ended = send(BANS, b["ban_id"], {**b, "version": 2, "status": "revoked"})
    assert [(v["state"], v["resolved_by"]) for t, _, v in ended if t == "alerts"] == [
        ("resolved", "system")
    ]
    assert send(POSITIONS, "P-7102", fix("2026-11-22T10:01:00Z")) == []
    assert send(BANS, b["ban_id"], {**b, "version": 3}) == []  # active again: nothing to end
    again = send(POSITIONS, "P-7102", fix("2026-11-22T10:02:00Z"))
    opened = [v for t, _, v in again if t == "alerts"]
    assert [v["state"] for v in opened] == ["open"] and opened[0]["ban_version"] == 3
    lifted = send(BANS, b["ban_id"], None)
    assert [(v["alert_id"], v["state"]) for t, _, v in lifted if t == "alerts"] == [
        (opened[0]["alert_id"], "resolved")
    ]


# ------------------------------------------------------------------------------- rule 8: SOS
def incident_alerts(name: str) -> dict[str, list[list[dict[str, Any]]]]:
    out: dict[str, list[list[dict[str, Any]]]] = {}
    for revs in output(name).alerts.values():
        if "incident_id" in revs[0]:
            out.setdefault(revs[0]["incident_id"], []).append(revs)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_sos_is_priority_1_never_an_unmatched_incident(name: str) -> None:
    sos_ids = {
        e["key"]
        for e in events(name)
        if e["topic"] == "incidents"
        and isinstance(e.get("value"), dict)
        and e["value"].get("kind") == "sos"
    }
    for iid, alerts in incident_alerts(name).items():
        if iid in sos_ids:
            for revs in alerts:
                assert revs[0]["kind"] == "sos"
                assert {r["priority"] for r in revs} == {1}


def test_sos_matching_in_v2_sos() -> None:
    name = "v2_sos"
    out = output(name)
    bans = {b["ban_id"]: b for b in map(json.loads, (SCENARIOS / name / "bans.jsonl").open())}
    lifted = {ban_id for _, ban_id, rec in ban_records(name) if rec is None}
    calls = {e["key"]: e["value"] for e in events(name) if e["topic"] == "incidents"}
    found = incident_alerts(name)
    for iid, call in calls.items():
        if call["kind"] != "sos":
            [[revs]] = [found[iid]]
            assert (revs[0]["kind"], revs[0]["priority"]) == ("unmatched_incident", 3)
            continue
        at = ts(call["ts"])
        # the bans the SOS must match: by person, in force or ended within 30 days, not lifted
        expected = set()
        for ban_id, b in bans.items():
            if ban_id in lifted or call["person_id"] not in (
                b["protected_persons"] + [b["restrained_person"]]
            ):
                continue
            end = ts(b["valid_until"]) if b["valid_until"] else None
            if ts(b["valid_from"]) <= at and (end is None or at < end + SOS_AFTER_END):
                expected.add(ban_id)
        got = found[iid]
        if expected:
            assert {revs[0]["ban_id"] for revs in got} == expected
            for revs in got:
                b = bans[revs[0]["ban_id"]]
                in_force = b["status"] == "active" and at < ts(b["valid_until"])
                assert ("ban not in force" in revs[0]["reason"]) is (not in_force)
        else:
            [revs] = got
            assert (revs[0]["kind"], revs[0]["ban_id"], revs[0]["priority"]) == ("sos", None, 1)
        # every SOS alert escalates after the ack SLA unless acknowledged before
        for revs in got:
            esc = [r for r in revs if r["state"] == "escalated"]
            assert esc and ts(esc[0]["updated_at"]) == at + SLA
        tasks = [t for t in out.tasks if t["alert_id"] in {r[0]["alert_id"] for r in got}]
        responds = [t for t in _first_offers(tasks) if t["kind"] == "respond"]
        if call.get("lat") is None:
            assert tasks == []  # nowhere to send a unit (and no fix of anyone known)
        else:
            [respond] = responds
            assert respond["target"] == {"lat": call["lat"], "lon": call["lon"]}
            assert respond["priority"] == 1 and respond["created_at"] == call["ts"]
    assert {"I-9001", "I-9005"} <= {i for i, g in found.items() if g[0][0]["ban_id"]}
    assert {"I-9003", "I-9004", "I-9006"} == {
        i for i, g in found.items() if not g[0][0]["ban_id"] and g[0][0]["kind"] == "sos"
    }


def test_an_sos_for_a_ban_ended_over_30_days_ago_is_unmatched() -> None:
    [b] = [
        json.loads(line)
        for line in (SCENARIOS / "v2_sos" / "bans.jsonl").open()
        if json.loads(line)["ban_id"] == "KF-2026-0801"
    ]
    end = ts(b["valid_until"])
    engine = Engine(POLICY, event_clock=True)
    now = datetime(2027, 6, 1, tzinfo=UTC)
    engine.handle(Incoming(BANS, None, json.dumps(b).encode()), now)
    kinds = {}
    for iid, at in (
        ("I-1", end + SOS_AFTER_END - timedelta(seconds=1)),
        ("I-2", end + SOS_AFTER_END),
    ):
        value = {"incident_id": iid, "ts": at.isoformat(), "kind": "sos", "person_id": "P-7205"}
        res = engine.handle(Incoming(INCIDENTS, iid, json.dumps(value).encode()), now)
        [(_, _, alert)] = [o for o in res.outputs if o[0] == "alerts"]
        kinds[iid] = (alert["kind"], alert["ban_id"], alert["priority"])
    assert kinds == {"I-1": ("sos", "KF-2026-0801", 1), "I-2": ("sos", None, 1)}


def _first_offers(tasks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each respond/protect task's first revision, first unit asked only (contract v2: later
    units are asked when one declines or lets the acceptance deadline pass)."""
    return [t for t in tasks if t["seq"] == 1 and t.get("attempt") in (None, 1)]


def _latest(tasks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for t in tasks:
        last[t["task_id"]] = t
    return list(last.values())


# ------------------------------------------------------------------- rule 9: one response
@pytest.mark.parametrize("name", NAMES)
def test_one_respond_and_at_most_one_protect_per_incident(name: str) -> None:
    out = output(name)
    for iid, alerts in incident_alerts(name).items():
        ids = {revs[0]["alert_id"] for revs in alerts}
        # one response: one first offer of each kind (later units are asked in its stead)
        tasks = _first_offers(t for t in out.tasks if t["alert_id"] in ids)
        assert sum(t["kind"] == "respond" for t in tasks) <= 1, iid
        assert sum(t["kind"] == "protect" for t in tasks) <= 1, iid


def test_an_sos_from_a_doubly_protected_person_sends_one_pair() -> None:
    out = output("v2_sos")
    alerts = incident_alerts("v2_sos")["I-9002"]
    assert sorted(r[0]["ban_id"] for r in alerts) == ["KF-2026-0802", "KF-2026-0803"]
    ids = {r[0]["alert_id"] for r in alerts}
    kinds = sorted(t["kind"] for t in _first_offers(out.tasks) if t["alert_id"] in ids)
    assert kinds == ["protect", "respond"]
    # from the first ban of the match list (sorted by ban id), to two different units
    first = next(r for r in alerts if r[0]["ban_id"] == "KF-2026-0802")[0]["alert_id"]
    pair = [t for t in _first_offers(out.tasks) if t["alert_id"] == first]
    assert len(pair) == 2 and pair[0]["unit_id"] != pair[1]["unit_id"]


def test_respond_without_incident_position_goes_to_the_fresh_fix_only() -> None:
    """No incident position: respond goes to the restrained person's latest fix when it is
    fresh (`max_fix_age_s`), else nowhere (a stale fix is no target)."""
    bans = [json.loads(line) for line in (SCENARIOS / "v2_sos" / "bans.jsonl").open()]
    b = next(x for x in bans if x["ban_id"] == "KF-2026-0802")
    units = [
        json.loads(line)
        for line in (SCENARIOS / "v2_sos" / "events.jsonl").open()
        if '"patrol-positions"' in line
    ]
    for age_s, expect in ((POLICY.max_fix_age_s, True), (POLICY.max_fix_age_s + 1, False)):
        engine = Engine(POLICY, event_clock=True)
        now = datetime(2026, 12, 1, tzinfo=UTC)
        engine.handle(Incoming(BANS, None, json.dumps(b).encode()), now)
        t0 = ts(units[0]["value"]["ts"]) + timedelta(minutes=3)
        for u in units:
            if ts(u["value"]["ts"]) <= t0:
                engine.handle(
                    Incoming("patrol-positions", u["key"], json.dumps(u["value"]).encode()), now
                )
        fix = {
            "person_id": "P-7106",
            "device_id": "EM-7106",
            "ts": (t0 - timedelta(seconds=age_s)).isoformat(),
            "lat": 59.37,
            "lon": 18.13,
            "accuracy_m": 9.0,
            "source": "ankle_tag",
        }
        engine.handle(Incoming(POSITIONS, "P-7106", json.dumps(fix).encode()), now)
        call = {
            "incident_id": "I-1",
            "ts": t0.isoformat(),
            "kind": "reported_contact",
            "ban_id": b["ban_id"],
        }
        res = engine.handle(Incoming(INCIDENTS, "I-1", json.dumps(call).encode()), now)
        responds = [v for t, _, v in res.outputs if t == "patrol-tasks" and v["kind"] == "respond"]
        if expect:
            assert [r["target"] for r in responds] == [{"lat": 59.37, "lon": 18.13}]
        else:
            assert responds == []


# ------------------------------------------------------------------ replay determinism
def replay_bytes(name: str, now: str | None) -> str:
    d = SCENARIOS / name
    args = json.loads((d / "args.json").read_text("utf-8"))
    argv = ["replay", "--bans", str(d / "bans.jsonl"), "--events", str(d / "events.jsonl")]
    if now is not None:
        argv += ["--now", now]
    if args.get("until"):
        argv += ["--until", args["until"]]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return buf.getvalue()


def newest_record_time(name: str) -> datetime:
    times = [
        ts(e["value"]["ts"])
        for e in events(name)
        if isinstance(e.get("value"), dict) and isinstance(e["value"].get("ts"), str)
    ]
    return max(t for t in (_parse(x) for x in times) if t is not None)


def _parse(t: Any) -> datetime | None:
    return t if isinstance(t, datetime) and t.tzinfo is not None else None


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES), where=st.floats(0.0, 1.0))
def test_replay_is_the_same_with_and_without_now(name: str, where: float) -> None:
    """For a log without records from the future (any `--now` later than every record plus
    the allowed skew, up to the wall clock), `--now` changes nothing in the output."""
    earliest = newest_record_time(name) + timedelta(seconds=POLICY.max_future_skew_s + 1)
    latest = datetime.now(UTC) - timedelta(minutes=1)
    assert earliest < latest  # the wall clock (the default `--now`) sees no future record
    now = earliest + (latest - earliest) * where
    assert replay_bytes(name, now.isoformat()) == replay_bytes(name, None)


_SCRIPT = """
import sys
from tests.unit.test_rules_v2_incidents import replay_bytes
for name in sys.argv[1:]:
    sys.stdout.write(replay_bytes(name, None))
"""


@pytest.mark.slow
def test_replay_is_byte_identical_across_processes() -> None:
    runs = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", _SCRIPT, *NAMES],
            cwd=ROOT,
            env=env,
            capture_output=True,
            check=True,
        )
        runs.append(run.stdout)
    assert runs[0] == runs[1] and len(runs[0]) > 10_000


@settings(max_examples=10, deadline=None)
@given(shift_s=st.integers(1, 86_400))
def test_a_future_records_dead_letter_names_no_distance_from_now(shift_s: int) -> None:
    """`poison` holds a record from the future (for its `--now`): a later `--now` that still
    finds it in the future gives the same bytes (its dead letter's text does not count the
    seconds from `--now`, which defaults to the wall clock)."""
    now = ts(json.loads((SCENARIOS / "poison" / "args.json").read_text("utf-8"))["now"])
    future = [d for d in output("poison").dead if d["reason"] == "future"]
    assert future  # the property is not vacuous
    later = now + timedelta(seconds=shift_s)
    assert newest_record_time("poison") > later + timedelta(seconds=POLICY.max_future_skew_s)
    assert replay_bytes("poison", later.isoformat()) == replay_bytes("poison", now.isoformat())


# ------------------------------------------------------- the stream's hand-over of states
def _breach_state(b: dict[str, Any]) -> tuple[dict[str, Any], datetime]:
    """A ban's state with an open priority-1 zone breach, as the stream's table holds it."""
    from alerts.snapshot import dump_ban_state

    centre = b["zones"]["features"][0]["geometry"]["coordinates"]
    engine = Engine(POLICY, partial=True)
    now = datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)
    engine.handle(Incoming(BANS, b["ban_id"], json.dumps(b).encode()), now)
    value = {
        "person_id": b["restrained_person"],
        "device_id": "PH-1",
        "ts": "2026-11-22T10:00:00Z",
        "lat": centre[1],
        "lon": centre[0],
        "accuracy_m": 5.0,
        "source": "phone",
    }
    raw = json.dumps(value).encode()
    res = engine.handle(
        Incoming(POSITIONS, b["restrained_person"], raw, scope=value["person_id"]), now
    )
    assert [v["state"] for t, _, v in res.outputs if t == "alerts"] == ["open"]
    return dump_ban_state(engine.states[b["ban_id"]]), now


def test_a_state_adopted_after_its_ban_was_lifted_resolves_at_the_next_tick() -> None:
    from alerts.snapshot import load_ban_state

    b = json.loads((SCENARIOS / "v2_end_of_life" / "bans.jsonl").open().readline())
    data, now = _breach_state(b)
    later = now + timedelta(seconds=5)  # before the escalation is due
    engine = Engine(POLICY, partial=True)
    engine.handle(Incoming(BANS, b["ban_id"], json.dumps(b).encode()), later)
    engine.handle(Incoming(BANS, b["ban_id"], None), later)  # the feed reads the tombstone first
    engine.adopt(load_ban_state(data))
    out = engine.tick(later)
    revisions = [v for t, _, v in out if t == "alerts"]
    assert [(v["state"], v["resolved_by"], v["updated_at"]) for v in revisions] == [
        ("resolved", "system", "2026-11-22T10:00:10Z")
    ]
    assert engine.tick(later + timedelta(hours=1)) == []  # nothing escalates after that
    # a ban in force again when its state is adopted alerts again
    st = load_ban_state(data)
    st.ended = now
    engine2 = Engine(POLICY, partial=True)
    engine2.handle(Incoming(BANS, b["ban_id"], json.dumps({**b, "version": 5}).encode()), later)
    engine2.adopt(st)
    assert engine2.states[b["ban_id"]].ended is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES), data=st.data())
def test_any_sub_log_replays_the_same_with_any_now_after_it(name: str, data: st.DataObject) -> None:
    """Any sub-sequence of a scenario's log (records dropped at random: acks for unknown
    alerts, lone fixes, bans changing under way), replayed with `now` anywhere after its newest
    record plus the skew, or with the wall clock, gives the same outputs."""
    from alerts.replay import replay
    from streams.cli.replay_files import read_bans, read_events

    d = SCENARIOS / name
    args = json.loads((d / "args.json").read_text("utf-8"))
    until = ts(args["until"]) if args.get("until") else None
    msgs = read_events(str(d / "events.jsonl"))
    keep = data.draw(st.lists(st.booleans(), min_size=len(msgs), max_size=len(msgs)))
    sub = [m for m, k in zip(msgs, keep, strict=True) if k]
    earliest = newest_record_time(name) + timedelta(seconds=POLICY.max_future_skew_s + 1)
    wall = datetime.now(UTC)
    now = earliest + (wall - earliest) * data.draw(st.floats(0.0, 1.0))
    bans = read_bans(str(d / "bans.jsonl"), POLICY, wall)
    a = list(replay(bans, sub, POLICY, now, until))
    b = list(replay(bans, sub, POLICY, datetime.now(UTC), until))
    assert a == b


@pytest.mark.parametrize("partial", [False, True])
def test_an_sos_for_an_ended_ban_stays_open_and_escalates(partial: bool) -> None:
    """Also where no state of the ban existed before the SOS (the stream's partial engine):
    the ban's end is applied first, so the SOS alert is not resolved by it afterwards."""
    [b] = [
        json.loads(line)
        for line in (SCENARIOS / "v2_sos" / "bans.jsonl").open()
        if json.loads(line)["ban_id"] == "KF-2026-0801"
    ]
    engine = Engine(POLICY, partial=partial)
    now = ts(b["valid_until"]) + timedelta(days=1)
    engine.handle(Incoming(BANS, b["ban_id"], json.dumps(b).encode()), now)
    call = {"incident_id": "I-1", "ts": now.isoformat(), "kind": "sos", "person_id": "P-7205"}
    raw = json.dumps(call).encode()
    matched = tuple(engine.match_incident(engine_incident(raw)))
    assert matched == (("KF-2026-0801", "person"),)
    msg = Incoming(INCIDENTS, "I-1", raw, scope="P-7105", matched=matched if partial else None)
    first = engine.handle(msg, now).outputs
    assert [(v["kind"], v["state"], v["priority"]) for t, _, v in first if t == "alerts"] == [
        ("sos", "open", 1)
    ]
    later = engine.tick(now + SLA + timedelta(hours=1))
    assert [v["state"] for t, _, v in later if t == "alerts"] == ["escalated"]


def engine_incident(raw: bytes) -> Any:
    from geofence.decoding import decode

    return decode(INCIDENTS, None, raw, datetime(2030, 1, 1, tzinfo=UTC), POLICY)
