"""10,000 hostile records on every input topic of a real worker, between the records of a
breach workload: every bad record becomes exactly one dead letter with a reason from the closed
set, the valid records around them give exactly their alerts, and the worker stays up with
bounded memory."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from geofence.decoding import ACKS, BANS, INCIDENTS, POSITIONS, Reason
from streams.kafka.broker import EmbeddedBroker, free_port
from tests.chaos.harness import (
    Workload,
    all_opened,
    metrics_url,
    scrape,
    tally,
    total,
)
from tests.hostile.corpus import CATEGORIES, Hostile, make, pairs, rfc3339
from tests.streams.workers import Feed, WorkerProc

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(600)]

N = 10_000
FLOOD = 1_500  # of the N: from one key on positions and one on incidents
HUGE_BANS = 3  # bans over the ban limit (1 MiB)
UNKNOWN_ACKS = 4  # valid acks for alerts nobody issued: each waits ACK_WAIT_S for its alert
SEED = 20261122
RSS_GROWTH_MB = 150  # measured ~60 MB on the reference machine (docs/reliability.md)


@dataclass
class Sent:
    hostile: Hostile
    partition: int
    offset: int


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _drain(
    bootstrap: str,
    topic: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float,
    settle_s: float = 2.0,
) -> list[dict[str, Any]]:
    """Everything on `topic` from the beginning, read with one consumer until `done` holds and
    nothing more came for `settle_s`, or the time is out (`collect` re-reads the topic on
    every round: too slow for 10k records)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    out: list[dict[str, Any]] = []
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200, max_records=5000)
            for records in batch.values():
                out.extend(json.loads(r.value) for r in records if r.value is not None)
            if batch:
                last = time.monotonic()
            elif done(out) and time.monotonic() - last >= settle_s:
                break
    finally:
        consumer.close()
    return out


def _corpus(rng: random.Random, now: datetime) -> list[Hostile]:
    # valid acks wait for their alert (UNKNOWN_ACKS); bans over 1 MiB are few, not ~1 in 100
    special = {("extra fields", ACKS), ("larger than the limit", BANS)}
    mix = [p for p in pairs() if p not in special]
    n = N - FLOOD - UNKNOWN_ACKS - HUGE_BANS
    out = [make(rng, *rng.choice(mix), now) for _ in range(n)]
    out += [make(rng, "larger than the limit", BANS, now) for _ in range(HUGE_BANS)]
    for i in range(FLOOD):  # one key, over and over: valid, out of order, and broken
        if i % 3 == 0:
            value = {
                "incident_id": "I-HFLOOD",
                "ts": rfc3339(now),
                "kind": rng.choice(["alien", 7, None]),
            }
            out.append(
                Hostile(
                    "flood",
                    INCIDENTS,
                    "I-HFLOOD",
                    json.dumps(value).encode(),
                    CATEGORIES["wrong type"].expect,
                )
            )
            continue
        broken = i % 3 == 1
        fix = {
            "person_id": "P-HFLOOD",
            "device_id": "EM-HFLOOD",
            "ts": rfc3339(now - timedelta(seconds=rng.uniform(0, 600))),  # out of order
            "lat": float("nan") if broken else 59.0 + rng.random(),
            "lon": 18.0,
            "accuracy_m": 5.0,
            "source": "ankle_tag",
        }
        raw = json.dumps(fix).encode()
        out.append(
            Hostile(
                "flood", POSITIONS, "P-HFLOOD", raw, frozenset({Reason.schema}) if broken else None
            )
        )
    for _ in range(UNKNOWN_ACKS):
        h = make(rng, "extra fields", ACKS, now)
        out.append(Hostile("unknown alert", ACKS, h.key, h.raw, frozenset({Reason.unknown_alert})))
    rng.shuffle(out)
    return out


def test_10000_hostile_records_become_dead_letters_and_change_nothing_else(
    report_rows: list[str],
) -> None:
    with EmbeddedBroker(free_port()) as broker:
        _run(broker, report_rows)


def _run(broker: EmbeddedBroker, report_rows: list[str]) -> None:
    bootstrap = broker.bootstrap
    prefix = f"h{uuid.uuid4().hex[:6]}."
    work = Workload("H", 20)
    feed = Feed(bootstrap, prefix)
    big = KafkaProducer(  # records larger than the ban limit (1 MiB) need a larger request
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=4 * 1024 * 1024
    )
    w = WorkerProc(bootstrap, prefix)
    sent: list[tuple[Hostile, Any]] = []
    rss: list[float] = []
    try:
        work.publish_bans(feed)
        w.start(timeout_s=90)
        assert w.proc is not None
        url = metrics_url(w)
        rss.append(_rss_mb(w.proc.pid))
        corpus = _corpus(random.Random(SEED), datetime.now(UTC))
        chunk = len(corpus) // 5
        started = time.monotonic()
        for k in range(5):  # the workload's step k, then a fifth of the hostile records
            for i in range(work.n):
                work.step(feed, i, k)
            feed.flush()
            for h in corpus[k * chunk : (k + 1) * chunk if k < 4 else len(corpus)]:
                fut = big.send(
                    prefix + h.topic,
                    key=None if h.key is None else h.key.encode("utf-8"),
                    value=h.raw,
                )
                sent.append((h, fut))
            big.flush(60)
            rss.append(_rss_mb(w.proc.pid))
        produced = time.monotonic() - started
        placed = [Sent(h, *_where(fut)) for h, fut in sent]
        bad = [s for s in placed if s.hostile.expect is not None]
        dead = _drain(bootstrap, prefix + "dead-letters", lambda r: len(r) >= len(bad), 300)
        took = time.monotonic() - started
        alerts = _drain(bootstrap, prefix + "alerts", all_opened(work.expected), 60)
        rss.append(_rss_mb(w.proc.pid))
        sample = scrape(url)
        assert w.proc.poll() is None, "the worker died:\n" + "\n".join(w.lines[-40:])
    finally:
        feed.close()
        big.close(5)
        if w.proc is not None and w.proc.poll() is None:
            w.stop()

    by_place: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for d in dead:
        by_place.setdefault((d["source_topic"], d["partition"], d["offset"]), []).append(d)
    wrong: list[str] = []
    for s in placed:
        got = by_place.pop((s.hostile.topic, s.partition, s.offset), [])
        h = s.hostile
        if h.expect is None:
            if got:
                wrong.append(
                    f"{h.category} on {h.topic}: valid but dead-lettered: {got[0]['error']}"
                )
        elif len(got) != 1:
            wrong.append(f"{h.category} on {h.topic}: {len(got)} dead letters")
        elif Reason(got[0]["reason"]) not in h.expect:
            wrong.append(f"{h.category} on {h.topic}: {got[0]['reason']} ({got[0]['error'][:100]})")
    assert not wrong, f"{len(wrong)} wrong verdicts:\n" + "\n".join(wrong[:20])
    assert not by_place, f"dead letters for records not in the corpus: {list(by_place)[:5]}"
    assert {d["reason"] for d in dead} <= {r.value for r in Reason}
    assert total(sample, "banwatch_dead_letters_total") == len(bad)

    t = tally(alerts, work.expected)
    assert not t.lost and not t.split and not t.unexpected, t.summary()
    growth = max(rss) - rss[0]
    reasons = Counter(d["reason"] for d in dead)
    report_rows.append(
        f"{len(placed)} hostile records ({len(bad)} bad, {len(placed) - len(bad)} valid) "
        f"sent in {produced:.0f} s, all dead letters out after {took:.0f} s; "
        f"dead letters by reason {dict(sorted(reasons.items()))}; "
        f"{len(work.expected)} workload alerts, lost {len(t.lost)}; worker RSS "
        f"{rss[0]:.0f} MB at start, peak {max(rss):.0f} MB"
    )
    assert growth < RSS_GROWTH_MB, f"RSS grew by {growth:.0f} MB: {rss}"


def _where(fut: Any) -> tuple[int, int]:
    meta = fut.get(timeout=60)
    return meta.partition, meta.offset
