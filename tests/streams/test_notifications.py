"""Protected-person warnings in the stream: a real `banwatch worker` on the embedded broker
publishes them to `protected-notifications`, keyed by the protected person, beside the alert
revisions they follow; an unmatched SOS (decided in its incident's scope) answers its caller.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from streams.kafka.blocking import follow
from streams.kafka.broker import EmbeddedBroker
from tests.streams.workers import Feed, WorkerProc, ban, collect, fix, patrol, ts
from tests.unit.test_notifications import CONTRACT_KEYS as KEYS

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(180)]

LAT, LON = 59.8586, 17.6389  # Uppsala


@pytest.fixture(scope="module")
def worker(broker: EmbeddedBroker) -> Iterator[tuple[str, Feed]]:
    prefix = f"pn{uuid.uuid4().hex[:6]}."
    w = WorkerProc(broker.bootstrap, prefix).start()
    feed = Feed(broker.bootstrap, prefix)
    try:
        yield prefix, feed
    finally:
        feed.close()
        assert w.stop() == 0, "\n".join(w.lines[-30:])


def _keyed(bootstrap: str, topic: str) -> list[tuple[str | None, bytes | None]]:
    return [
        (None if r.key is None else r.key.decode(), r.value)
        for r in follow(bootstrap, topic, True, idle_timeout_s=0.5)
    ]


def test_a_breach_warns_both_protected_persons_then_clears(
    broker: EmbeddedBroker, worker: tuple[str, Feed]
) -> None:
    prefix, feed = worker
    b = ban("KF-N1", "P-N1", "P-N1A", LON, LAT, protected_persons=["P-N1A", "P-N1B"])
    feed.send("contact-bans", b["ban_id"], b)
    feed.send("patrol-positions", "U-N1", patrol("U-N1", LAT + 0.004, LON, ts()))
    feed.flush()
    time.sleep(1.0)
    inside = (LAT + 0.001, LON + 0.001)
    feed.send("positions", "P-N1", fix("P-N1", "EM-N1", *inside, ts()))
    feed.flush()

    def danger(r: list[dict[str, Any]]) -> bool:
        return {n["person_id"] for n in r if n["level"] == "danger"} == {"P-N1A", "P-N1B"}

    topic = prefix + "protected-notifications"
    got = collect(broker.bootstrap, topic, danger, timeout_s=40)
    assert danger(got), got
    # he leaves: three fixes well outside zone + buffer + exit margin end the episode
    for i in range(3):
        feed.send("positions", "P-N1", fix("P-N1", "EM-N1", LAT - 0.02, LON, ts(1 + i)))
    feed.flush()

    def cleared(r: list[dict[str, Any]]) -> bool:
        return {n["person_id"] for n in r if n["level"] == "all_clear"} == {"P-N1A", "P-N1B"}

    got = collect(broker.bootstrap, topic, cleared, timeout_s=40, settle_s=2.0)
    assert cleared(got), got
    mine = [n for n in got if n["ban_id"] == "KF-N1"]
    assert all(set(n) == KEYS for n in mine)
    assert {(n["level"], n["code"]) for n in mine} == {
        ("danger", "zone_breach"),
        ("all_clear", "zone_breach"),
    }
    assert len(mine) == 4  # one per person and level, however often revised
    assert all(n["police_dispatched"] for n in mine)  # U-N1 got the respond task
    [alert_id] = {n["alert_id"] for n in mine}
    alerts = collect(
        broker.bootstrap,
        prefix + "alerts",
        lambda r: any(a["alert_id"] == alert_id for a in r),
        timeout_s=10,
    )
    assert {a["kind"] for a in alerts if a["alert_id"] == alert_id} == {"zone_breach"}
    keyed = _keyed(broker.bootstrap, topic)
    assert {k for k, _ in keyed if k in ("P-N1A", "P-N1B")} == {"P-N1A", "P-N1B"}
    assert all(k is not None and k.encode() in (v or b"") for k, v in keyed)


def test_an_unmatched_sos_answers_its_caller(
    broker: EmbeddedBroker, worker: tuple[str, Feed]
) -> None:
    prefix, feed = worker
    feed.send("patrol-positions", "U-N2", patrol("U-N2", LAT + 0.05, LON, ts()))
    feed.flush()
    time.sleep(0.5)
    call = {"lat": LAT + 0.051, "lon": LON}
    inc = {"incident_id": "I-N2", "ts": ts(), "kind": "sos", "person_id": "P-N2X", **call}
    feed.send("incidents", "I-N2", inc)
    feed.flush()

    def answered(r: list[dict[str, Any]]) -> bool:
        return any(n["person_id"] == "P-N2X" for n in r)

    got = collect(
        broker.bootstrap, prefix + "protected-notifications", answered, timeout_s=40, settle_s=1
    )
    [n] = [n for n in got if n["person_id"] == "P-N2X"]
    assert (n["level"], n["code"], n["ban_id"]) == ("danger", "sos_received", None)
    assert n["police_dispatched"] is True
