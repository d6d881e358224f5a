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
