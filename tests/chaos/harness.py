"""What the chaos tests share: a breach workload with known episodes, a paced feeder, the
tally of alerts against the episodes, metrics scraping, and the fault table's rows.

The workload: `n` bans, each with a small home zone; each restrained person walks inside
(episode 1), far outside three times (the episode ends: `exit_fixes` = 3), and inside again
(episode 2). Every inside step that opens an episode must give exactly one `zone_breach`
alert; its `opened_at` is the event time of that fix, which is how alerts are matched to the
episodes they belong to. Filler fixes of persons under no ban keep the stream busy between
the breach fixes, so that a fault lands in the middle of processing, not in an idle worker.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.streams.workers import Feed, WorkerProc, ban, fix, ts

Json = dict[str, Any]
LAT, LON = 59.30, 18.05
INSIDE = (0.001, 0.001)  # offset of the middle of a ban's home zone from its corner
FAR = (-0.03, 0.0)  # ~3.3 km south: outside zone + buffer + exit margin, beyond approach_m
STEPS = (INSIDE, FAR, FAR, FAR, INSIDE)
OPENS = (0, 4)  # the steps that open an episode


@dataclass
class Row:
    """One line of the fault table."""

    fault: str
    records_sent: int
    alerts_expected: int
    lost: int
    duplicated: int
    note: str = ""

    @staticmethod
    def header() -> str:
        return (
            "| fault injected | records sent | alerts expected | lost | duplicated | note |\n"
            "|---|---:|---:|---:|---:|---|"
        )

    def markdown(self) -> str:
        return (
            f"| {self.fault} | {self.records_sent} | {self.alerts_expected} | {self.lost} "
            f"| {self.duplicated} | {self.note} |"
        )


ROWS: list[Row] = []


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Workload:
    """`n` bans and, per ban, the five steps of two episodes; `expected` fills as it is sent."""

    tag: str
    n: int
    bans: list[Json] = field(default_factory=list)
    expected: set[tuple[str, datetime]] = field(default_factory=set)
    sent: int = 0

    def __post_init__(self) -> None:
        self.bans = [
            ban(f"KF-{self.tag}{i}", f"P-{self.tag}{i}", f"P-{self.tag}{i}V", self._lon(i), LAT)
            for i in range(self.n)
        ]

    @staticmethod
    def _lon(i: int) -> float:
        return LON + 0.01 * i

    def publish_bans(self, feed: Feed) -> None:
        for b in self.bans:
            feed.send("contact-bans", b["ban_id"], b)
            self.sent += 1
        feed.flush()

    def step(self, feed: Feed, i: int, k: int) -> None:
        """Send ban `i`'s restrained person's `k`-th fix, timestamped now."""
        b = self.bans[i]
        p = b["restrained_person"]
        dlat, dlon = STEPS[k]
        at = ts()
        feed.send("positions", p, fix(p, "EM-" + p, LAT + dlat, self._lon(i) + dlon, at))
        self.sent += 1
        if k in OPENS:
            self.expected.add((b["ban_id"], when(at)))

    def filler(self, feed: Feed, j: int) -> None:
        """A fix of a person under no ban: decoded, counted, and nothing else."""
        p = f"P-{self.tag}F{j % 500}"
        feed.send("positions", p, fix(p, "EM-" + p, LAT - 0.1, LON, ts()))
        self.sent += 1


def play(
    workload: Workload,
    feed: Feed,
    seconds: float,
    filler_per_step: int = 4,
    steps: Iterable[int] = range(len(STEPS)),
    flush: bool = True,
    paced: bool = False,
) -> None:
    """Send the workload's steps round by round (every ban's step k, then k + 1), evenly over
    `seconds`, with `filler_per_step` filler fixes after each breach-related fix. `flush=False`
    leaves the records in the producer's buffer (a paused broker would make a flush time out).
    `paced` spreads each step's filler over the time until the next step (in chunks of 50), so
    that fixes arrive at a steady rate rather than in one burst per step."""
    order = [(k, i) for k in steps for i in range(workload.n)]
    pause = seconds / max(1, len(order))
    start = time.monotonic()
    j = 0
    for n, (k, i) in enumerate(order):
        workload.step(feed, i, k)
        for f in range(filler_per_step):
            workload.filler(feed, j)
            j += 1
            if paced and f % 50 == 49:
                ahead = start + (n + (f + 1) / filler_per_step) * pause - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        if flush and n % 20 == 19:
            feed.flush()
        delay = start + (n + 1) * pause - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    if flush:
        feed.flush()


def soak_plan(soak_s: float, window_s: float) -> list[tuple[float, str]]:
    """The soak's faults, in seconds from the feeder's start, derived from its length and
    window. Windows of a minute or more (the long soak): in every window a third worker `c`
    joins at 1/3 and leaves at 2/3, and worker `a` is SIGKILLed (and restarted) at 5/6 of the
    middle window. Shorter windows (CI's 25 s: too short for a join and a leave each):
    `c` joins at 1/4 of the soak and leaves at 1/2, `a` is SIGKILLed at 3/4."""
    if window_s < 60:
        return [(0.25 * soak_s, "add c"), (0.5 * soak_s, "remove c"), (0.75 * soak_s, "SIGKILL a")]
    windows = int(soak_s // window_s)
    plan: list[tuple[float, str]] = []
    for w in range(windows):
        start = w * window_s
        plan += [(start + window_s / 3, "add c"), (start + 2 * window_s / 3, "remove c")]
        if w == windows // 2:
            plan.append((start + 5 * window_s / 6, "SIGKILL a"))
    return plan


class Background(threading.Thread):
    """Runs `fn` in a thread and re-raises its exception in `join_checked`."""

    def __init__(self, fn: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.fn()
        except BaseException as exc:  # handed to the test thread
            self.error = exc

    def join_checked(self, timeout: float) -> None:
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("background feeder did not finish in time")
        if self.error is not None:
            raise self.error


@dataclass
class Tally:
    """Alerts on the `alerts` topic against the episodes that were sent."""

    expected: int
    lost: list[tuple[str, datetime]]
    unexpected: list[tuple[str, datetime]]
    split: dict[tuple[str, datetime], set[str]]  # an episode under more than one alert id
    duplicated: int  # revisions published more than once (same alert id and seq)

    def summary(self) -> str:
        return (
            f"expected {self.expected}, lost {len(self.lost)} {self.lost[:5]}, "
            f"unexpected {len(self.unexpected)} {self.unexpected[:5]}, "
            f"split {len(self.split)} {list(self.split.items())[:3]}, "
            f"duplicated {self.duplicated}"
        )


def tally(alerts: list[Json], expected: set[tuple[str, datetime]]) -> Tally:
    ids: dict[tuple[str, datetime], set[str]] = {}
    for a in alerts:
        if a.get("kind") == "zone_breach":
            ids.setdefault((a["ban_id"], when(a["opened_at"])), set()).add(a["alert_id"])
    published = Counter((a["alert_id"], a["seq"]) for a in alerts)
    return Tally(
        expected=len(expected),
        lost=sorted(expected - ids.keys()),
        unexpected=sorted(ids.keys() - expected),
        split={ep: s for ep, s in ids.items() if len(s) > 1},
        duplicated=sum(n - 1 for n in published.values()),
    )


def all_opened(expected: set[tuple[str, datetime]]) -> Callable[[list[Json]], bool]:
    def done(alerts: list[Json]) -> bool:
        seen = {
            (a["ban_id"], when(a["opened_at"])) for a in alerts if a.get("kind") == "zone_breach"
        }
        return expected <= seen

    return done


# ----------------------------------------------------------------------------- metrics
Sample = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics_url(w: WorkerProc) -> str:
    """The metrics URL from the worker's latest `worker: ready ...; metrics: URL` line."""
    for line in reversed(w.lines):
        if line.startswith("worker: ready") and "metrics: " in line:
            return line.rsplit("metrics: ", 1)[1].strip()
    raise AssertionError("worker printed no metrics URL:\n" + "\n".join(w.lines[-20:]))


def scrape(url: str, timeout_s: float = 5.0) -> Sample:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        text = resp.read().decode("utf-8")
    out: Sample = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(sample: Sample, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in sample.items() if n == name and want <= set(ls))


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | None) -> float:
    """The process's resident memory in MB (NaN once it is gone)."""
    if pid is None:
        return float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) the process has used so far; None once it is gone."""
    if pid is None:
        return None
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(f[11]) + int(f[12])) / CLK_TCK
