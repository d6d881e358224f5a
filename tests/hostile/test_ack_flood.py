"""A flood of acknowledgements for alerts nobody issued must not hold up real ones.

Each unknown ack used to wait up to ACK_WAIT_S (5 s) for its alert to be indexed, one after the
other, so N bogus acks delayed a real acknowledgement by ~5·N s (measured: 8 bogus acks, ~40 s).
Now unknown ids of a batch wait together, and only while the alert index is behind on `alerts`.
"""

from __future__ import annotations

import time
import uuid

import pytest

from streams.kafka.broker import EmbeddedBroker, free_port
from tests.streams.workers import Feed, WorkerProc, ban, collect, fix, ts

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BOGUS = 8


@pytest.mark.timeout(120)
def test_a_real_ack_is_applied_promptly_behind_acks_for_unknown_alerts() -> None:
    with EmbeddedBroker(free_port()) as broker:
        prefix = f"a{uuid.uuid4().hex[:6]}."
        feed = Feed(broker.bootstrap, prefix)
        feed.send("contact-bans", "KF-A1", ban("KF-A1", "P-A1", "P-A1V", 18.05, 59.30))
        feed.flush()
        w = WorkerProc(broker.bootstrap, prefix).start(timeout_s=90)
        try:
            feed.send("positions", "P-A1", fix("P-A1", "EM-A1", 59.301, 18.051, ts()))
            feed.flush()
            alerts = collect(broker.bootstrap, prefix + "alerts", bool, timeout_s=20)
            alert_id = alerts[0]["alert_id"]
            for _ in range(BOGUS):
                bogus = uuid.uuid4().hex
                feed.send(
                    "alert-acks",
                    bogus,
                    {"alert_id": bogus, "action": "acknowledge", "by": "op-66", "ts": ts()},
                )
            ack = {"alert_id": alert_id, "action": "acknowledge", "by": "op-17", "ts": ts()}
            feed.send("alert-acks", alert_id, ack)
            feed.flush()
            sent = time.monotonic()
            acked = collect(
                broker.bootstrap,
                prefix + "alerts",
                lambda r: any(a["state"] == "acknowledged" for a in r),
                timeout_s=15,
            )
            took = time.monotonic() - sent
        finally:
            feed.close()
            w.kill()
    assert any(a["state"] == "acknowledged" for a in acked), f"not applied in {took:.0f} s"
    assert took < 10
