"""A failing detector is logged and isolated: the other detectors still decide."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alerts.detectors import approach
from alerts.engine import Engine, Incoming
from config.policy import load_policy
from tests.unit.test_cli import BAN, FIX

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def test_broken_detector_does_not_silence_breach(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    def boom(*_args: object) -> None:
        raise RuntimeError("detector bug")

    monkeypatch.setattr(approach, "detect", boom)
    eng = Engine(load_policy())
    eng.handle(Incoming("contact-bans", None, json.dumps(BAN).encode()), NOW)
    res = eng.handle(Incoming("positions", "P-7731", json.dumps(FIX).encode(), 0, 7), NOW)
    kinds = [(t, (v or {}).get("kind"), (v or {}).get("reason")) for t, _, v in res.outputs]
    assert (
        "alerts",
        "zone_breach",
        "fix inside zone 'home' (+50 m buffer), accuracy disc fully inside",
    ) in kinds
    dl = [v for t, _, v in res.outputs if t == "dead-letters"]
    assert len(dl) == 1 and dl[0]["reason"] == "internal" and "approach" in dl[0]["error"]
    assert dl[0]["offset"] == 7
    assert "RuntimeError" in caplog.text and "59.19" not in caplog.text
