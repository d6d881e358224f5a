"""Protected-person warnings (contract v2, `protected-notifications`), asserted on replay output.

What CONTRACT.md promises is computed here from the alert revisions, the bans and the incidents
of each golden scenario, independently of alerts/notifications.py, so that a regenerated golden
file cannot bless a regression; a hypothesis property checks, on random logs, that nothing but
the contract's keys ever leaves, never a coordinate, and at most one record per protected person,
alert and level.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from alerts.engine import Engine, Incoming
from alerts.model import stable_id
from alerts.notifications import NOTIFICATION_KEYS
from alerts.replay import replay
from alerts.snapshot import dump_alert, dump_ban_state, load_alert, load_ban_state
from config.policy import Policy
from config.topics import PROTECTED_NOTIFICATIONS
from geofence.decoding import BANS
from tests.unit.catalogue import Json, encode
from tests.unit.test_properties import FAST, POLICY, PROTECTED, REPLAY_NOW, event_logs
from tests.unit.test_scenarios import NAMES, bans, events, output, ts

#: The contract's fields, literally (CONTRACT.md "Protected-person warnings").
CONTRACT_KEYS = {
    "notification_id",
    "person_id",
    "ban_id",
    "alert_id",
    "ts",
    "level",
    "code",
    "police_dispatched",
    "contract_version",
}
CODES = {
    "approach": "approach",
    "proximity_breach": "proximity",
    "zone_breach": "zone_breach",
    "signal_lost": "signal_lost",
    "sos": "sos_received",
}
POSITIONAL = {"lat", "lon", "position", "distance_m", "target", "bearing", "direction", "zone_id"}


def _protected(name: str) -> dict[str, set[str]]:
    """Every protected person each ban of the scenario names, in any version."""
    out: dict[str, set[str]] = {}
    recs = [*bans(name), *(e["value"] for e in events(name) if e["topic"] == "contact-bans")]
    for b in recs:
        if b is not None:
            out.setdefault(b["ban_id"], set()).update(b["protected_persons"])
    return out


def _callers(name: str) -> dict[str, str | None]:
    return {
        e["value"]["incident_id"]: e["value"].get("person_id")
        for e in events(name)
        if e["topic"] == "incidents"
        and isinstance(e["value"], dict)
        and "incident_id" in e["value"]
    }


def _ended(r: dict[str, Any]) -> bool:
    return bool(r["episode"] == "ended" or r["state"] == "resolved")


def _clears(r: dict[str, Any]) -> bool:
    """An all-clear: the alert resolved, or its episode ended other than by her own device
    going silent (then the restrained person may still be there)."""
    lost = "protected person's position lost" in (r.get("reason") or "")
    return bool(r["state"] == "resolved" or (r["episode"] == "ended" and not lost))


def expected(name: str) -> set[tuple[str, str, str, str, str]]:
    """(person, alert, level, code, ts) the contract calls for, from the alert revisions."""
    protected, callers = _protected(name), _callers(name)
    want = set()
    for revs in output(name).alerts.values():
        first = revs[0]
        code = CODES.get(first["kind"])
        if code is None:
            continue
        if first["protected_person"] is not None:
            persons = {first["protected_person"]}
        elif first["ban_id"] is not None:
            persons = protected[first["ban_id"]]
        else:
            caller = callers.get(first.get("incident_id", ""))
            persons = {caller} if caller is not None and first["kind"] == "sos" else set()
        level = "warning" if first["kind"] == "approach" else "danger"
        live = [r for r in revs if not _ended(r)]
        if first["kind"] in ("zone_breach", "proximity_breach", "signal_lost"):
            live = [r for r in live if r["priority"] == 1]
        if not live:
            continue
        warned = live[0]
        clear = [r for r in revs if r["seq"] > warned["seq"] and _clears(r)]
        for p in persons:
            want.add((p, first["alert_id"], level, code, warned["updated_at"]))
            if clear:
                want.add((p, first["alert_id"], "all_clear", code, clear[0]["updated_at"]))
    return want


def test_every_scenario_warns_as_the_contract_says() -> None:
    total = Counter[str]()
    codes: set[str] = set()
    for name in NAMES:
        out = output(name)
        got = [
            (n["person_id"], n["alert_id"], n["level"], n["code"], n["ts"])
            for n in out.notifications
        ]
        assert len(got) == len(set(got)), name
        assert set(got) == expected(name), name
        total.update(n["level"] for n in out.notifications)
        codes |= {n["code"] for n in out.notifications}
    assert total["warning"] and total["danger"] and total["all_clear"]  # not vacuous
    assert codes == set(CODES.values())


def test_notifications_carry_only_the_contract_fields() -> None:
    for name in NAMES:
        out = output(name)
        restrained = {r[0]["restrained_person"] for r in out.alerts.values()}
        for n in out.notifications:
            assert set(n) == CONTRACT_KEYS
            assert n["person_id"] not in restrained
            assert n["contract_version"] == 2
            assert n["notification_id"] == stable_id(
                "notification", n["person_id"], n["alert_id"], n["level"]
            )
            alert = out.alerts[n["alert_id"]]
            assert n["ban_id"] == alert[0]["ban_id"]


def test_police_dispatched_means_a_respond_task() -> None:
    seen = Counter[bool]()
    for name in NAMES:
        out = output(name)
        for n in out.notifications:
            alert = out.alerts[n["alert_id"]][0]
            mine = [
                t
                for t in out.tasks_for(n["alert_id"], "respond")
                if ts(t["created_at"]) <= ts(n["ts"])
            ]
            # rule 9: an incident's other bans leave the response to one alert of it
            same_incident = alert.get("incident_id") is not None and any(
                t["kind"] == "respond"
                and out.alerts[t["alert_id"]][0].get("incident_id") == alert["incident_id"]
                for t in out.tasks
            )
            assert n["police_dispatched"] == bool(mine or same_incident), (name, n)
            seen[n["police_dispatched"]] += 1
    assert seen[True] and seen[False]


def test_v2_warnings_story() -> None:
    """tests/scenarios/v2_warnings/README.md, step by step."""
    out = output("v2_warnings")
    by: dict[tuple[str, str], list[str]] = {}
    for n in out.notifications:
        by.setdefault((n["code"], n["level"]), []).append(n["person_id"])
    both = ["P-7401", "P-7402"]
    approach = [r for r in out.of_kind("approach")]
    assert len(approach) == 2
    assert by[("zone_breach", "danger")] == both
    assert by[("zone_breach", "all_clear")] == both
    assert by[("signal_lost", "danger")] == both
    assert by[("signal_lost", "all_clear")] == both
    assert by[("sos_received", "danger")] == both  # the child's SOS warns her mother too
    assert by[("sos_received", "all_clear")] == both
    assert by[("proximity", "danger")] == ["P-7401"]  # follows the mother alone
    assert by[("proximity", "all_clear")] == ["P-7401"]
    assert by[("approach", "warning")] == [*both, "P-7401"]  # to the zone, then to her
    assert by[("approach", "all_clear")] == [*both, "P-7401"]
    # the acknowledgement of the SOS sends nothing; its resolution the all-clear
    [sos] = out.of_kind("sos")
    resolved = next(r for r in sos if r["state"] == "resolved")
    clears = [n for n in out.notifications if n["alert_id"] == sos[0]["alert_id"]]
    assert [n["ts"] for n in clears] == [sos[0]["updated_at"]] * 2 + [resolved["updated_at"]] * 2


# ------------------------------------------------------------------------ hypothesis property
def _outputs(the_ban: Json, events_: list[Incoming]) -> list[tuple[str, Any, Any]]:
    return list(replay([encode(the_ban)], events_, POLICY, REPLAY_NOW))


@FAST
@given(event_logs(), st.booleans())
def test_no_notification_carries_more_than_the_contract(
    log: tuple[Json, list[Incoming]], two: bool
) -> None:
    the_ban, events_ = log
    if two:
        the_ban = {**the_ban, "protected_persons": [PROTECTED, "P-1103"]}
    seen: set[tuple[str, str, str]] = set()
    warned: set[tuple[str, str]] = set()
    for topic, key, v in _outputs(the_ban, events_):
        if topic != PROTECTED_NOTIFICATIONS:
            continue
        assert set(v) == NOTIFICATION_KEYS == CONTRACT_KEYS
        assert not POSITIONAL & set(v)
        for k, x in v.items():  # ids, a time, closed-set words, one flag, the version:
            # no number but the version, so no coordinate, distance or bearing can hide here
            assert x is None or type(x) in (str, bool) or (k == "contract_version" and x == 2)
        assert v["level"] in ("warning", "danger", "all_clear")
        assert v["code"] in set(CODES.values())
        assert key == v["person_id"]
        if v["ban_id"] is not None:  # (an unmatched SOS answers whoever raised it)
            assert v["person_id"] != the_ban["restrained_person"]
        triple = (v["person_id"], v["alert_id"], v["level"])
        assert triple not in seen
        seen.add(triple)
        if v["level"] == "all_clear":
            assert (v["person_id"], v["alert_id"]) in warned
        else:
            warned.add((v["person_id"], v["alert_id"]))


# ------------------------------------------------------------------------------------ state
def test_what_was_sent_survives_the_snapshot() -> None:
    """A restored state sends nothing twice: the levels sent are part of the ban's snapshot."""
    the_ban = bans("v2_warnings")[0]
    log = events("v2_warnings")
    evs = [Incoming(e["topic"], e["key"], json.dumps(e["value"]).encode()) for e in log]
    cut = next(i for i, e in enumerate(log) if e["topic"] == "incidents")
    policy = Policy()
    now = REPLAY_NOW

    def fresh() -> Engine:
        e = Engine(policy, event_clock=True)
        e.handle(Incoming(BANS, None, encode(the_ban)), now)
        return e

    whole = fresh()
    straight = [o for m in evs for r in whole.handle_batch([m], now) for o in r.outputs]
    first = fresh()
    before = [o for m in evs[:cut] for r in first.handle_batch([m], now) for o in r.outputs]
    restored = fresh()
    restored.clock = first.clock
    restored.fleet = first.fleet  # global in the stream: every worker reads every unit
    for st_ in first.states.values():
        restored.adopt(load_ban_state(json.loads(json.dumps(dump_ban_state(st_)))))
    assert any(a.notified for st_ in restored.states.values() for a in st_.alerts.values())
    after = [o for m in evs[cut:] for r in restored.handle_batch([m], now) for o in r.outputs]
    notes = [o for o in before + after if o[0] == PROTECTED_NOTIFICATIONS]
    assert notes == [o for o in straight if o[0] == PROTECTED_NOTIFICATIONS]
    assert ts(notes[-1][2]["ts"]) - ts(notes[0][2]["ts"]) > timedelta(minutes=30)


def test_an_unmatched_sos_keeps_what_was_sent_in_its_snapshot() -> None:
    """The unmatched scope stores its alerts alone (alerts/snapshot.py `dump_alert`): the
    levels sent travel with the alert, so its all-clear still reaches the caller."""
    engine = Engine(Policy(), event_clock=True)
    inc = {"incident_id": "I-1", "ts": "2026-11-22T10:00:00Z", "kind": "sos", "person_id": "P-9"}
    out = engine.handle(Incoming("incidents", "I-1", json.dumps(inc).encode()), REPLAY_NOW).outputs
    [sent] = [v for t, _, v in out if t == PROTECTED_NOTIFICATIONS]
    assert (sent["person_id"], sent["level"], sent["ban_id"]) == ("P-9", "danger", None)
    [a] = engine.unmatched.values()
    restored = Engine(Policy(), event_clock=True)
    restored.clock = engine.clock
    restored.adopt_unmatched(load_alert(json.loads(json.dumps(dump_alert(a)))))
    act = {"alert_id": a.alert_id, "action": "resolve", "by": "op-1", "ts": "2026-11-22T10:05:00Z"}
    raw = json.dumps(act).encode()
    out = restored.handle(Incoming("alert-acks", a.alert_id, raw), REPLAY_NOW).outputs
    notes = [v for t, _, v in out if t == PROTECTED_NOTIFICATIONS]
    assert [(n["person_id"], n["level"]) for n in notes] == [("P-9", "all_clear")]
    assert a.alert_id in restored.touched_unmatched
