"""Every detector on the fix path is isolated (apply_fix writes its `try`s inline): when one
raises, the fix still counts, the others still decide, and one dead letter names it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alerts.detectors import approach, proximity, signal, zone
from alerts.engine import Engine, Incoming
from config.policy import load_policy
from tests.unit.test_cli import BAN, FIX

NOW = datetime(2026, 11, 23, tzinfo=UTC)
VICTIM_FIX = dict(FIX, person_id="P-1102", device_id="VD-1", lat=59.1951, source="victim_device")

# (detector module, its fix entry point, the detector's name in the dead letter)
DETECTORS = [
    (signal, "seen", "signal_lost"),
    (zone, "detect", "zone_breach"),
    (proximity, "detect", "proximity_breach"),
    (approach, "detect", "approach"),
]


@pytest.mark.parametrize(("module", "method", "name"), DETECTORS)
def test_each_fix_detector_is_isolated(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    module: object,
    method: str,
    name: str,
) -> None:
    def boom(*_args: object) -> None:
        raise RuntimeError("detector bug")

    monkeypatch.setattr(module, method, boom)
    eng = Engine(load_policy())
    eng.handle(Incoming("contact-bans", None, json.dumps(BAN).encode()), NOW)
    eng.handle(Incoming("positions", "P-1102", json.dumps(VICTIM_FIX).encode()), NOW)
    res = eng.handle(Incoming("positions", "P-7731", json.dumps(FIX).encode(), 0, 7), NOW)
    assert res.outcome.value == "accepted"
    kinds = {(v or {}).get("kind") for t, _, v in res.outputs if t == "alerts"}
    # the fix is inside the home zone and 11 m from the protected person
    assert kinds == {"zone_breach", "proximity_breach"} - {name}
    dl = [v for t, _, v in res.outputs if t == "dead-letters"]
    assert len(dl) == 1 and dl[0]["reason"] == "internal" and name in dl[0]["error"]
    assert "RuntimeError" in caplog.text
    st = eng.states[BAN["ban_id"]]
    assert st.newest["EM-0091"] == datetime(2026, 11, 22, 10, 15, 3, tzinfo=UTC)
    assert ("EM-0091" in st.watch) == (name != "signal_lost")
