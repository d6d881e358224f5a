"""The record store during `banwatch bench`'s stream step: the sink's records/s and its lag while
the worker drains the backlog.

The sink (`streams.store.sink.Sink`, SQLite in a temporary directory, batches as configured)
runs in a thread of the bench process, on the step's topics, as `banwatch up` runs it next to
its worker. It starts before the worker and first stores the bans (not timed); the clock runs
from the first fix published to the moment the sink has committed everything the worker wrote
(alerts, tasks, task revisions, audit: lag 0 on every partition and nothing committed for a
second). Sampled every 0.25 s: the records committed and the sum of the sink's lag gauge
(`banwatch_store_lag`, records not yet stored).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass

from config.settings import Settings
from streams.store.db import engine_for
from streams.store.metrics import StoreMetrics
from streams.store.sink import Sink

SAMPLE_S = 0.25


@dataclass(slots=True)
class StoreFigures:
    records: int  # committed from the first fix published until caught up
    seconds: float  # first fix published -> caught up
    max_lag: int  # the most records waiting at any sample
    lag_at_worker_done: int  # records waiting when the worker's last sentinel alert was read
    catch_up_s: float  # worker done -> caught up (0: the sink kept up)

    @property
    def per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class StoreWatch:
    """The sink on `prefix`'s topics, in its own thread and event loop, with its samples."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="banwatch-bench-store-")
        self.settings = Settings.model_validate({"topic_prefix": prefix, "data_dir": self.dir})
        self.engine = engine_for(None, self.dir)
        self.metrics = StoreMetrics()
        self.sink = Sink(self.settings, bootstrap, self.engine, self.metrics)
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, committed, lag)
        self.t0: float | None = None
        self.t_done: float | None = None
        self._sampling = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-store", daemon=True)
        self.sampler = threading.Thread(target=self._sample, name="bench-store-s", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def go() -> None:
            self.stop_event = asyncio.Event()
            await self.sink.run(self.stop_event, self.ready.set)

        try:
            self.loop.run_until_complete(go())
        except BaseException as exc:  # reported by wait_caught_up
            self.error = exc
            self.ready.set()

    def lag(self) -> int:
        total = 0
        for metric in self.metrics.lag.collect():
            for s in metric.samples:
                total += int(s.value)
        return total

    def _sample(self) -> None:
        while not self._sampling.is_set():
            self.samples.append((time.monotonic(), self.sink.committed, self.lag()))
            time.sleep(SAMPLE_S)

    def start(self, timeout_s: float = 60.0) -> None:
        self.thread.start()
        if not self.ready.wait(timeout_s) or self.error is not None:
            raise RuntimeError(f"bench store: the sink did not start ({self.error!r})")
        self.sampler.start()

    def caught_up(self, since: float, timeout_s: float) -> float:
        """Wait until the sink's lag is 0 and nothing was committed for a second; returns the
        monotonic time of its last commit."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.error is not None:
                raise RuntimeError(f"bench store: the sink stopped ({self.error!r})")
            recent = [s for s in self.samples if s[0] >= time.monotonic() - 1.0]
            if (
                len(recent) >= 3
                and recent[0][0] >= since
                and all(lag == 0 for _, _, lag in recent)
                and recent[0][1] == recent[-1][1]
            ):
                moved = [b[0] for a, b in itertools.pairwise(self.samples) if b[1] != a[1]]
                return max([since, *moved])
            time.sleep(SAMPLE_S)
        raise RuntimeError(f"bench store: not caught up in {timeout_s:.0f} s (lag {self.lag()})")

    def settle(self, timeout_s: float = 600.0) -> None:
        """The bans published before the worker starts: stored before the clock runs."""
        self.caught_up(time.monotonic(), timeout_s)

    def mark_start(self) -> None:
        self.t0 = time.monotonic()

    def mark_worker_done(self) -> None:
        self.t_done = time.monotonic()

    def figures(self, timeout_s: float) -> StoreFigures:
        assert self.t0 is not None and self.t_done is not None
        end = self.caught_up(self.t_done, timeout_s)
        window = [s for s in self.samples if self.t0 <= s[0] <= end + SAMPLE_S]
        first = max((s for s in self.samples if s[0] <= self.t0), default=window[0])
        at_done = min(self.samples, key=lambda s: abs(s[0] - self.t_done))  # type: ignore[operator]
        return StoreFigures(
            records=window[-1][1] - first[1],
            seconds=end - self.t0,
            max_lag=max(lag for _, _, lag in window),
            lag_at_worker_done=at_done[2],
            catch_up_s=max(0.0, end - self.t_done),
        )

    def close(self) -> None:
        self._sampling.set()
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)
        self.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)
