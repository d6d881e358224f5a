"""Scaling and crashes: the same alerts from one worker or two, none lost to a SIGKILL."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from streams.kafka.broker import EmbeddedBroker
from tests.streams.workers import Feed, WorkerProc, ban, collect, fix, ts

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(240)]

LAT, LON = 59.30, 18.05  # Södermalm-ish


def _bans(n: int, tag: str) -> list[dict[str, Any]]:
    return [
        ban(f"KF-{tag}{i}", f"P-{tag}{i}", f"P-{tag}{i}V", LON + 0.01 * i, LAT) for i in range(n)
    ]


def _script(bans: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """Per ban: an approach from 800 m, three fixes inside (an episode with updates), three far
    outside (the episode ends), one inside again (a second episode); and the protected person's
    phone near the restrained person (proximity, at home) for every other ban."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for i, b in enumerate(bans):
        p, lon = b["restrained_person"], LON + 0.01 * i
        dev = "EM-" + p
        steps = [(LAT - 0.007, lon), (LAT - 0.004, lon), (LAT - 0.002, lon)]
        steps += [(LAT + 0.001, lon + 0.001)] * 3 + [(LAT - 0.03, lon)] * 3
        steps += [(LAT + 0.001, lon + 0.001)]
        for k, (la, lo) in enumerate(steps):
            out.append(("positions", p, fix(p, dev, la, lo, ts(-120 + 11 * k))))
        if i % 2 == 0:
            v = b["protected_persons"][0]
            out.append(
                (
                    "positions",
                    v,
                    fix(
                        v,
                        "PH-" + v,
                        LAT + 0.0015,
                        lon + 0.001,
                        ts(-120 + 11 * 9 + 1),
                        source="victim_device",
                    ),
                )
            )
    return out


def _adopted(w: WorkerProc) -> list[int]:
    """The partitions a worker adopted at its last recovery (from its log)."""
    lines = [x for x in w.lines if "adopted:" in x]
    if not lines:
        return []
    inside = lines[-1].split("partitions [", 1)[1].split("]", 1)[0]
    return [int(p) for p in inside.split(",") if p.strip()]


def _run(
    bootstrap: str, n_workers: int, bans: list[dict[str, Any]], script: list[tuple[str, str, Any]]
) -> set[tuple[Any, ...]]:
    prefix = f"s{uuid.uuid4().hex[:6]}."
    workers = [WorkerProc(bootstrap, prefix, BANWATCH_LOG_LEVEL="info") for _ in range(n_workers)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the group settled: the partitions are shared
        owned = [_adopted(w) for w in workers]
        if sorted(p for ps in owned for p in ps) == [0, 1, 2, 3] and all(owned):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"partitions not shared: {owned}")
    feed = Feed(bootstrap, prefix)
    try:
        for b in bans:
            feed.send("contact-bans", b["ban_id"], b)
        feed.flush()
        time.sleep(1.0)
        for topic, key, value in script:
            feed.send(topic, key, value)
        feed.flush()
        alerts = collect(
            bootstrap,
            prefix + "alerts",
            lambda r: len({a["ban_id"] for a in r if a["kind"] == "zone_breach"}) == len(bans),
            timeout_s=40,
            settle_s=3.0,
        )
    finally:
        feed.close()
        for w in workers:
            w.stop()
    return {
        (
            a["alert_id"],
            a["seq"],
            a["kind"],
            a["state"],
            a["priority"],
            a["confidence"],
            a["ban_id"],
        )
        for a in alerts
        if a["state"] != "escalated"  # wall-clock timer: when it fires depends on the run
    }


def test_one_worker_and_two_workers_give_the_same_alerts(broker: EmbeddedBroker) -> None:
    bans = _bans(8, "S")
    script = _script(bans)  # one input log, event times fixed, for both runs
    one = _run(broker.bootstrap, 1, bans, script)
    two = _run(broker.bootstrap, 2, bans, script)
    kinds = {k for _, _, k, *_ in one}
    assert {"zone_breach", "approach", "proximity_breach"} <= kinds, kinds
    assert len({a[0] for a in one if a[2] == "zone_breach"}) == 16  # two episodes per ban
    assert one == two


def test_a_worker_killed_mid_stream_loses_no_breach_alert(broker: EmbeddedBroker) -> None:
    prefix = f"k{uuid.uuid4().hex[:6]}."
    w = WorkerProc(broker.bootstrap, prefix).start()
    feed = Feed(broker.bootstrap, prefix)
    n = 30
    bans = _bans(n, "K")
    try:
        for b in bans:
            feed.send("contact-bans", b["ban_id"], b)
        feed.flush()
        time.sleep(1.0)
        for i, b in enumerate(bans):
            p, lon = b["restrained_person"], LON + 0.01 * i
            feed.send("positions", p, fix(p, "EM-" + p, LAT + 0.001, lon + 0.001, ts()))
            feed.flush()
            time.sleep(0.05)
            if i == n // 2:
                w.kill()  # SIGKILL: no clean stop, no final commit
        w.start()
        alerts = collect(
            broker.bootstrap,
            prefix + "alerts",
            lambda r: len({a["ban_id"] for a in r if a["kind"] == "zone_breach"}) == n,
            timeout_s=60,
            settle_s=2.0,
        )
    finally:
        feed.close()
        w.stop()
    breached = {a["ban_id"] for a in alerts if a["kind"] == "zone_breach"}
    assert breached == {b["ban_id"] for b in bans}
    first_revisions = [(a["alert_id"], a["seq"]) for a in alerts if a["kind"] == "zone_breach"]
    ids_per_ban: dict[str, set[str]] = {}
    for a in alerts:
        if a["kind"] == "zone_breach":
            ids_per_ban.setdefault(a["ban_id"], set()).add(a["alert_id"])
    # a re-delivered fix may publish its revision again, but never under a new alert id
    assert all(len(ids) == 1 for ids in ids_per_ban.values()), ids_per_ban
    assert len(first_revisions) >= n
