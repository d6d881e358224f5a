"""A priority-1 alert raised while no unit is available still gets its respond task later."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from alerts.engine import Engine, Incoming
from config.policy import load_policy
from tests.unit.test_cli import BAN, FIX

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def _at(base: str, seconds: int) -> str:
    t = datetime.fromisoformat(base.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return t.isoformat().replace("+00:00", "Z")


def test_respond_task_follows_when_a_unit_becomes_available() -> None:
    eng = Engine(load_policy(), event_clock=True)
    eng.handle(Incoming("contact-bans", None, json.dumps(BAN).encode()), NOW)
    first = eng.handle(Incoming("positions", "P-7731", json.dumps(FIX).encode()), NOW).outputs
    assert [v["priority"] for t, _, v in first if t == "alerts"] == [1]
    assert not [v for t, _, v in first if t == "patrol-tasks" and v["kind"] == "respond"]

    unit = {
        "unit_id": "SÖ-2140",
        "ts": _at(FIX["ts"], 5),
        "lat": FIX["lat"] + 0.005,
        "lon": FIX["lon"],
        "status": "available",
        "capabilities": ["patrol"],
    }
    eng.handle(Incoming("patrol-positions", "SÖ-2140", json.dumps(unit).encode()), NOW)
    later = {**FIX, "ts": _at(FIX["ts"], 15)}  # past update_interval_s: a new revision
    out = eng.handle(Incoming("positions", "P-7731", json.dumps(later).encode()), NOW).outputs
    respond = [v for t, _, v in out if t == "patrol-tasks" and v["kind"] == "respond"]
    assert [r["unit_id"] for r in respond] == ["SÖ-2140"]

    again = {**FIX, "ts": _at(FIX["ts"], 30)}
    out = eng.handle(Incoming("positions", "P-7731", json.dumps(again).encode()), NOW).outputs
    assert not [v for t, _, v in out if t == "patrol-tasks" and v["kind"] == "respond"]


def test_resolved_alerts_leave_the_state_after_their_retention() -> None:
    eng = Engine(load_policy(), event_clock=True)
    eng.handle(Incoming("contact-bans", None, json.dumps(BAN).encode()), NOW)
    out = eng.handle(Incoming("positions", "P-7731", json.dumps(FIX).encode()), NOW).outputs
    aid = next(k for t, k, v in out if t == "alerts")
    resolve = {"alert_id": aid, "action": "resolve", "by": "op-1", "ts": _at(FIX["ts"], 20)}
    res = eng.handle(Incoming("alert-acks", aid, json.dumps(resolve).encode()), NOW)
    assert [v["state"] for t, _, v in res.outputs if t == "alerts"] == ["resolved"]
    st = eng.states[BAN["ban_id"]]
    away = {**FIX, "lat": FIX["lat"] + 0.2, "ts": _at(FIX["ts"], 3600)}
    eng.handle(Incoming("positions", "P-7731", json.dumps(away).encode()), NOW)
    assert aid in st.alerts  # an hour later: kept
    later = {**away, "ts": _at(FIX["ts"], 86400 + 60)}
    days_later = NOW + timedelta(days=3)  # the reference for "from the future"
    eng.handle(Incoming("positions", "P-7731", json.dumps(later).encode()), days_later)
    assert aid not in st.alerts  # a day after resolution: dropped
    again = {**resolve, "ts": _at(FIX["ts"], 86400 + 90)}
    res = eng.handle(Incoming("alert-acks", aid, json.dumps(again).encode()), days_later)
    assert res.reason is not None and res.reason.value == "unknown_alert"
