"""`banwatch up` on the embedded broker: the hot path's longer fetch wait, unless set."""

from __future__ import annotations

import pytest

from config.settings import load_settings
from streams.cli.up import EMBEDDED_HOT_FETCH_WAIT_MS, for_embedded


def test_the_embedded_broker_gets_the_longer_hot_fetch_wait_unless_one_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BANWATCH_HOT_FETCH_WAIT_MS", raising=False)
    plain = load_settings()
    assert plain.hot_fetch_wait_ms == 10  # a real broker keeps the short wait
    assert for_embedded(plain).hot_fetch_wait_ms == EMBEDDED_HOT_FETCH_WAIT_MS == 100
    monkeypatch.setenv("BANWATCH_HOT_FETCH_WAIT_MS", "25")
    assert for_embedded(load_settings()).hot_fetch_wait_ms == 25
