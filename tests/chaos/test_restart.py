"""A worker stopped cleanly and started again resumes from its committed offsets: it publishes
nothing twice and decides no record twice."""

from __future__ import annotations

import uuid

import pytest

from streams.kafka.broker import EmbeddedBroker
from tests.chaos.harness import (
    Row,
    Workload,
    all_opened,
    metrics_url,
    play,
    scrape,
    tally,
    total,
    wait_for,
)
from tests.streams.workers import Feed, WorkerProc, collect

pytestmark = [pytest.mark.chaos, pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(240)]

BANS = 30
FILLER = 10


def test_a_clean_restart_resumes_from_committed_offsets_without_redoing_work(
    chaos_broker: EmbeddedBroker, report: list[Row]
) -> None:
    bootstrap = chaos_broker.bootstrap
    prefix = f"r{uuid.uuid4().hex[:6]}."
    work = Workload("R", BANS)
    feed = Feed(bootstrap, prefix)
    w = WorkerProc(bootstrap, prefix)
    try:
        work.publish_bans(feed)
        w.start(timeout_s=90)
        play(work, feed, 3.0, filler_per_step=FILLER, steps=[0])
        before = work.sent
        collect(bootstrap, prefix + "alerts", all_opened(set(work.expected)), timeout_s=60)
        url = metrics_url(w)
        decided = BANS * (1 + FILLER)
        wait_for(
            lambda: total(scrape(url), "banwatch_events_total", topic="positions") == decided,
            30,
            "the first run to count every fix",
        )
        assert w.stop() == 0, w.lines[-30:]  # SIGTERM: commits and leaves the group

        w.start(timeout_s=90)
        url = metrics_url(w)
        play(work, feed, 4.0, filler_per_step=FILLER, steps=[1, 2, 3, 4])
        after = work.sent - before
        alerts = collect(
            bootstrap, prefix + "alerts", all_opened(work.expected), timeout_s=60, settle_s=2.0
        )
        wait_for(
            lambda: total(scrape(url), "banwatch_events_total", topic="positions") >= after,
            30,
            "the restarted worker to count the new fixes",
        )
        sample = scrape(url)
        dead = collect(bootstrap, prefix + "dead-letters", lambda r: True, timeout_s=3)
    finally:
        feed.close()
        if w.proc is not None and w.proc.poll() is None:
            w.stop()
    t = tally(alerts, work.expected)
    redone = total(sample, "banwatch_events_total", topic="positions") - after
    rechecked = total(sample, "banwatch_events_total", topic="contact-bans")
    report.append(
        Row(
            "clean stop (SIGTERM) and restart of the only worker",
            work.sent,
            t.expected,
            len(t.lost),
            t.duplicated,
            f"records decided again after the restart: {redone:.0f} fixes, {rechecked:.0f} bans",
        )
    )
    assert not t.lost and not t.split and not t.unexpected, t.summary()
    assert t.duplicated == 0, t.summary()  # no revision published twice
    assert redone == 0, "fixes from before the stop were decided again"
    assert rechecked == 0, "bans from before the stop were validated again"
    assert dead == []
