"""The broker frozen (SIGSTOP) for 20 s and thawed: the workers come back on their own, catch
up with what producers buffered meanwhile, lose nothing, and their lag metric shows the backlog
and then returns to zero."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from streams.kafka.broker import EmbeddedBroker
from tests.chaos.harness import (
    Background,
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

pytestmark = [pytest.mark.chaos, pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(300)]

BANS = 40
PAUSE_S = 20.0
FILLER = 250  # per breach-related fix sent during the pause: ~30k records buffered


class LagWatch(threading.Thread):
    """Scrapes every worker's `banwatch_consumer_lag` on `positions` twice a second."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.samples: list[tuple[float, float]] = []  # (monotonic time, summed lag)
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            lag = 0.0
            for url in self.urls:
                try:
                    lag += total(
                        scrape(url, timeout_s=2), "banwatch_consumer_lag", topic="positions"
                    )
                except OSError:
                    self.failures += 1
            self.samples.append((time.monotonic(), lag))
            self.stop.wait(0.5)

    def lag_now(self) -> float:
        return sum(
            total(scrape(url), "banwatch_consumer_lag", topic="positions") for url in self.urls
        )


def test_a_20_s_broker_pause_loses_nothing_and_the_lag_shows_and_recovers(
    chaos_broker: EmbeddedBroker, report: list[Row]
) -> None:
    bootstrap = chaos_broker.bootstrap
    prefix = f"z{uuid.uuid4().hex[:6]}."
    work = Workload("Z", BANS)
    feed = Feed(bootstrap, prefix)
    workers = [WorkerProc(bootstrap, prefix), WorkerProc(bootstrap, prefix)]
    watch: LagWatch | None = None
    try:
        work.publish_bans(feed)
        for w in workers:
            w.start(timeout_s=90)
        watch = LagWatch([metrics_url(w) for w in workers])
        watch.start()
        play(work, feed, 4.0, steps=[0])  # episode 1 of every ban
        first = set(work.expected)
        collect(bootstrap, prefix + "alerts", all_opened(first), timeout_s=60)

        chaos_broker.pause()
        paused_at = time.monotonic()
        try:  # the producer buffers what is sent meanwhile, as a device gateway's would
            during = Background(
                lambda: play(
                    work, feed, PAUSE_S - 5, filler_per_step=FILLER, steps=[1, 2, 3], flush=False
                )
            )
            during.start()
            during.join_checked(PAUSE_S + 30)
            time.sleep(max(0.0, paused_at + PAUSE_S - time.monotonic()))
        finally:
            chaos_broker.resume()
        resumed_at = time.monotonic()
        feed.producer.flush(60)
        play(work, feed, 3.0, steps=[4])  # episode 2: needs the three far fixes applied first

        alerts = collect(
            bootstrap, prefix + "alerts", all_opened(work.expected), timeout_s=120, settle_s=2.0
        )
        wait_for(lambda: watch is not None and watch.lag_now() == 0, 60, "lag back to zero")
        caught_up_s = time.monotonic() - resumed_at
        for w in workers:  # recovered on their own: nobody restarted them
            assert w.proc is not None and w.proc.poll() is None, w.lines[-30:]
    finally:
        if watch is not None:
            watch.stop.set()
        feed.close()
        for w in workers:
            if w.proc is not None and w.proc.poll() is None:
                w.stop()
    after = [lag for t, lag in watch.samples if t >= resumed_at]
    t = tally(alerts, work.expected)
    report.append(
        Row(
            f"broker SIGSTOP for {PAUSE_S:.0f} s, then SIGCONT; two workers, ~30k records "
            "buffered by the producer meanwhile",
            work.sent,
            t.expected,
            len(t.lost),
            t.duplicated,
            f"lag metric after resume peaked at {max(after, default=0):.0f} records, "
            f"back to 0 and every alert out {caught_up_s:.0f} s after resume",
        )
    )
    logs = "\n".join(line for w in workers for line in w.lines[-40:])
    assert not t.lost, t.summary() + "\n" + logs
    assert not t.split and not t.unexpected, t.summary()
    assert max(after, default=0) > 0, f"the lag metric never showed the backlog: {after}"
    assert after[-1] == 0 or watch.lag_now() == 0
