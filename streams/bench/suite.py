"""`banwatch bench`: the speed of banwatch, each figure against a baseline measured in the same run.

    banwatch bench [--quick] [--json FILE]

Figures (the keys of `results` in the JSON file):

- `engine_fixes_per_s`: the decision core alone (`Engine.handle_batch`, batches of 1,000) with
  10,000 bans; baseline `engine_loop_fixes_per_s`: decode each fix and test it against every
  zone with shapely predicates. `engine_us_per_fix_by_bans` shows the cost per fix from 10 to
  10,000 bans (it should not grow).
- `stream_fixes_per_s`: one `banwatch worker` process draining fixes through the embedded
  broker, alerts out (see `streams.bench.stream` for how it is timed); baseline
  `naive_stream_fixes_per_s`: a plain faust agent that decodes each fix, tests it against every
  zone and sends alerts one by one (`streams.bench.naive`). For context, not targets:
  `naive_indexed_stream_fixes_per_s` (the same agent looking up only the person's zones) and
  `faust_floor_fixes_per_s` (an agent that only counts: faust's own per-event cost).
- `latency_p50_ms`, `latency_p99_ms` at `latency_rate_per_s`: produce of a violating fix to
  its alert read back, with the worker under that steady load.
- `memory_peak_rss_mb`: peak RSS of a worker process holding `memory_bans` bans.

Nothing here is a timed test: CI runs the smallest size (`python -m streams.bench.suite --smoke`)
only to check that the JSON comes out complete. The machine is described in the JSON; compare
ratios within one run, not absolute figures across machines.

One module over ~400 lines on purpose: the suite's steps and the table and JSON they fill are
one sequence, read in order (the parts it runs live in engine.py, stream.py, naive.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from streams.bench import engine as bench_engine
from streams.bench import stream as bench_stream
from streams.bench import workload
from streams.kafka.broker import EmbeddedBroker, free_port

#: Keys every run must fill with a number (the CI smoke test checks them).
REQUIRED = (
    "engine_fixes_per_s",
    "engine_loop_fixes_per_s",
    "stream_fixes_per_s",
    "naive_stream_fixes_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_rate_per_s",
    "memory_peak_rss_mb",
)

LATENCY_RATE = 1000.0  # fixes per second while latency is measured
LATENCY_EVERY = 20  # one fix in this many is a timed violation (50 per second)
DEVICE_SHARE = 0.5  # protected persons carrying a device
PROTECTED_SHARE = 0.2  # of the fixes, from protected persons' devices
INSIDE_SHARE = 0.01  # of the background fixes, inside a zone


@dataclass(frozen=True, slots=True)
class Sizes:
    name: str
    engine_bans: tuple[int, ...]  # the last one is the headline `engine_fixes_per_s`
    engine_fixes: int
    loop_fixes: int  # the loop baseline is slow: fewer fixes, same per-fix figure
    bans: int  # stream, naive and latency runs
    reserve: int  # bans kept out of the background fixes (sentinels, timed violations)
    patrol_cars: int
    stream_fixes: int
    naive_fixes: int
    indexed_fixes: int  # 0: skip (the context figures are not needed for a smoke run)
    floor_fixes: int
    latency_s: float
    latency_warmup_s: float
    memory_bans: int


FULL = Sizes(
    "full", (10, 100, 1_000, 10_000), 20_000, 1_000, 10_000, 2_000, 400,
    100_000, 3_000, 30_000, 100_000, 30.0, 5.0, 100_000,
)  # fmt: skip
QUICK = Sizes(
    "quick", (10, 1_000, 10_000), 5_000, 300, 10_000, 1_000, 400,
    20_000, 1_000, 10_000, 30_000, 10.0, 3.0, 20_000,
)  # fmt: skip
SMOKE = Sizes(
    "smoke", (10, 1_000), 1_000, 100, 1_000, 300, 50,
    2_000, 200, 0, 0, 3.0, 1.0, 2_000,
)  # fmt: skip


# ----------------------------------------------------------------------- steps
class Run:
    """One bench run: the steps fill `results`; a failing step is recorded, the others run."""

    def __init__(self, sizes: Sizes, console: Console) -> None:
        self.sizes = sizes
        self.console = console
        self.results: dict[str, Any] = {}
        self.details: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self._stack = contextlib.ExitStack()
        self._broker: EmbeddedBroker | None = None
        self._registry: bench_stream.Registry | None = None

    # shared fixtures
    @property
    def bootstrap(self) -> str:
        if self._broker is None:
            self._broker = self._stack.enter_context(EmbeddedBroker(free_port()))
        return self._broker.bootstrap

    @property
    def registry(self) -> bench_stream.Registry:
        if self._registry is None:
            s = self.sizes
            self._registry = bench_stream.Registry.of(s.bans, s.reserve, DEVICE_SHARE)
        return self._registry

    def close(self) -> None:
        self._stack.close()

    def fresh_broker(self) -> None:
        """Every broker step starts on an empty broker: Tansu keeps every record in memory
        and deletes nothing, and a broker holding the earlier steps' topics answered more
        slowly (docs/bench.md)."""
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self._broker = None

    def log(self, text: str) -> None:
        self.console.log(text)

    # the steps
    def engine(self) -> None:
        from config.policy import load_policy

        policy = load_policy()
        s = self.sizes
        by_bans: dict[str, float] = {}
        last = None
        for n in s.engine_bans:
            last = bench_engine.engine_run(n, s.engine_fixes, policy, device_share=DEVICE_SHARE)
            by_bans[str(n)] = round(last.us_per_fix, 1)
            self.log(
                f"engine, {n:,} bans: {last.per_s:,.0f} fixes/s ({last.us_per_fix:.1f} µs/fix)"
            )
        assert last is not None
        self.results["engine_fixes_per_s"] = round(last.per_s)
        self.results["engine_bans"] = last.bans
        self.results["engine_us_per_fix_by_bans"] = by_bans
        costs = list(by_bans.values())
        self.results["engine_flatness"] = round(max(costs) / min(costs), 2)
        self.details["engine"] = {"fixes_per_size": s.engine_fixes, "alerts_last": last.alerts}

    def engine_loop(self) -> None:
        s = self.sizes
        n = s.engine_bans[-1]
        b = bench_engine.loop_baseline_run(n, s.loop_fixes, device_share=DEVICE_SHARE)
        self.log(f"loop baseline, {n:,} bans: {b.per_s:,.0f} fixes/s ({b.us_per_fix:.0f} µs/fix)")
        self.results["engine_loop_fixes_per_s"] = round(b.per_s, 1)
        self.details["engine_loop"] = {"bans": n, "fixes": b.fixes}

    def _drain(self, start: Callable[[str], bench_stream.Proc], fixes: int, kind: str,
               settle: Callable[[bench_stream.Proc, str], float] | None = None,
               store: bool = False,
               ) -> bench_stream.Drain:  # fmt: skip
        d = bench_stream.drain(
            self.bootstrap,
            self.registry,
            fixes,
            start,
            kind,
            self.sizes.patrol_cars,
            timeout_s=max(120.0, fixes / 100.0),
            settle=settle,
            store=store,
        )
        self.log(
            f"{kind}: {d.per_s:,.0f} fixes/s ({d.fixes:,} fixes in {d.seconds:.1f} s, "
            f"worker CPU {d.cpu_us_per_fix:.0f} µs/fix, {d.alerts:,} alert records)"
        )
        self.details[kind] = asdict(d) | {"fixes_per_s": round(d.per_s, 1)}
        return d

    def stream(self) -> None:
        bs = self.bootstrap
        d = self._drain(
            lambda prefix: bench_stream.banwatch_worker(bs, prefix),
            self.sizes.stream_fixes,
            "stream",
            settle=bench_stream.worker_settled(bs),
            store=True,
        )
        self.results["stream_fixes_per_s"] = round(d.per_s)
        if d.store is not None:  # the record-store sink, in this process, meanwhile
            st = d.store
            self.results["store_records_per_s"] = round(st.per_s)
            self.results["store_max_lag"] = st.max_lag
            self.results["store_catch_up_s"] = round(st.catch_up_s, 1)
            self.details["stream"]["store_fixes_per_s_equivalent"] = round(d.fixes / st.seconds)
            self.log(
                f"store: {st.per_s:,.0f} records/s ({st.records:,} records in {st.seconds:.1f} s, "
                f"max lag {st.max_lag:,}, {st.lag_at_worker_done:,} waiting when the worker was "
                f"done, caught up {st.catch_up_s:.1f} s later)"
            )
        self.results["stream_worker_cpu_us_per_fix"] = round(d.cpu_us_per_fix)
        self.results["stream_worker_start_s"] = round(d.startup_s, 1)

    def _naive(self, mode: str, fixes: int, key: str) -> None:
        bs = self.bootstrap
        d = self._drain(
            lambda prefix: bench_stream.naive_worker(bs, prefix, mode), fixes, f"naive-{mode}"
        )
        self.results[key] = round(d.per_s, 1)

    def naive(self) -> None:
        self._naive("scan", self.sizes.naive_fixes, "naive_stream_fixes_per_s")

    def naive_indexed(self) -> None:
        self._naive("indexed", self.sizes.indexed_fixes, "naive_indexed_stream_fixes_per_s")

    def faust_floor(self) -> None:
        self._naive("count", self.sizes.floor_fixes, "faust_floor_fixes_per_s")

    def _measure_latency(self, relay: bool) -> bench_stream.Latency:
        s = self.sizes
        bootstrap = self.bootstrap  # starts the broker if this step is the first to need it
        return bench_stream.latency(
            bootstrap,
            self.registry,
            LATENCY_RATE,
            s.latency_s,
            s.latency_warmup_s,
            LATENCY_EVERY,
            s.patrol_cars,
            relay=relay,
            broker_pid=self._broker.pid if self._broker is not None else None,
        )

    def latency(self) -> None:
        lat = self._measure_latency(relay=False)
        r = self.results
        r["latency_rate_per_s"] = LATENCY_RATE
        r["latency_p50_ms"] = round(lat.quantile(0.50), 1)
        r["latency_p99_ms"] = round(lat.quantile(0.99), 1)
        r["latency_max_ms"] = round(lat.quantile(1.0), 1)
        r["latency_samples"] = len(lat.ms)
        r["latency_missing"] = lat.missing
        r["latency_achieved_rate_per_s"] = round(lat.achieved_per_s, 1)
        r["latency_worker_cpu_share"] = lat.worker_cpu_share
        r["latency_broker_cpu_share"] = lat.broker_cpu_share
        self.log(
            f"latency at {LATENCY_RATE:,.0f}/s (achieved {lat.achieved_per_s:,.0f}/s): "
            f"p50 {r['latency_p50_ms']} ms, p99 {r['latency_p99_ms']} ms, "
            f"max {r['latency_max_ms']} ms; {len(lat.ms)} timed, {lat.missing} missing"
        )
        if lat.missing:
            raise RuntimeError(f"{lat.missing} of {lat.timed} timed violations raised no alert")

    def latency_relay(self) -> None:
        lat = self._measure_latency(relay=True)
        r = self.results
        r["latency_relay_p50_ms"] = round(lat.quantile(0.50), 1)
        r["latency_relay_p99_ms"] = round(lat.quantile(0.99), 1)
        r["latency_relay_worker_cpu_share"] = lat.worker_cpu_share
        r["latency_relay_broker_cpu_share"] = lat.broker_cpu_share
        self.log(
            f"relay latency at {LATENCY_RATE:,.0f}/s (nothing decided): "
            f"p50 {r['latency_relay_p50_ms']} ms, p99 {r['latency_relay_p99_ms']} ms"
        )

    def memory(self) -> None:
        s = self.sizes
        m = bench_stream.memory(self.bootstrap, s.memory_bans, s.patrol_cars, timeout_s=1800.0)
        self.results["memory_peak_rss_mb"] = round(m.peak_rss_mb, 1)
        self.results["memory_bans"] = m.bans
        self.results["memory_worker_start_s"] = round(m.startup_s, 1)
        self.details["memory"] = asdict(m)
        self.log(
            f"memory: {m.bans:,} bans, peak RSS {m.peak_rss_mb:,.0f} MiB "
            f"(start to ready {m.startup_s:.1f} s)"
        )

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        s = self.sizes
        steps = [
            (f"engine ({s.engine_bans[0]:,} to {s.engine_bans[-1]:,} bans)", self.engine),
            ("engine loop baseline", self.engine_loop),
            ("stream: banwatch worker", self.stream),
            ("stream: naive faust agent", self.naive),
            ("stream: naive agent, indexed", self.naive_indexed),
            ("stream: faust floor", self.faust_floor),
            (f"latency at {LATENCY_RATE:,.0f} fixes/s", self.latency),
            ("latency: relay baseline (broker and clients only)", self.latency_relay),
            (f"memory, {s.memory_bans:,} bans", self.memory),
        ]
        skip = {self.naive_indexed: s.indexed_fixes == 0, self.faust_floor: s.floor_fixes == 0}
        no_broker = {self.engine, self.engine_loop}
        return [
            (name, step if step in no_broker else self._on_fresh_broker(step))
            for name, step in steps
            if not skip.get(step, False)
        ]

    def _on_fresh_broker(self, step: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            self.fresh_broker()
            step()

        return run


# ------------------------------------------------------------------ reporting
def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    libs = {}
    for name in ("faust-streaming", "aiokafka", "kafka-python", "shapely", "numpy", "pydantic"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            libs[name] = metadata.version(name)
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "libraries": libs,
    }


def workload_info(s: Sizes) -> dict[str, Any]:
    return {
        "size": s.name,
        "bans": s.bans,
        "monitored_persons": s.bans,
        "protected_persons": s.bans,
        "protected_with_device_share": DEVICE_SHARE,
        "proximity_share": workload.PROXIMITY_SHARE,
        "zones_per_ban": {"polygon": 1, "circle": 1},
        "patrol_cars": s.patrol_cars,
        "fix_protected_share": PROTECTED_SHARE,
        "fix_inside_share": INSIDE_SHARE,
        "engine_bans": list(s.engine_bans),
        "engine_fixes": s.engine_fixes,
        "engine_loop_fixes": s.loop_fixes,
        "stream_fixes": s.stream_fixes,
        "naive_fixes": s.naive_fixes,
        "naive_indexed_fixes": s.indexed_fixes,
        "faust_floor_fixes": s.floor_fixes,
        "latency_seconds": s.latency_s,
        "latency_warmup_seconds": s.latency_warmup_s,
        "latency_violation_every": LATENCY_EVERY,
        "memory_bans": s.memory_bans,
    }


def _num(r: dict[str, Any], key: str) -> float:
    v = r.get(key)
    return float(v) if isinstance(v, int | float) else math.nan


def targets(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it was met."""
    engine_x = _num(r, "engine_fixes_per_s") / _num(r, "engine_loop_fixes_per_s")
    stream_x = _num(r, "stream_fixes_per_s") / _num(r, "naive_stream_fixes_per_s")
    rows = {
        "engine_speedup": (engine_x, ">= 10", engine_x >= 10),
        "engine_flatness": (_num(r, "engine_flatness"), "<= 1.5 (max/min µs per fix)",
                            _num(r, "engine_flatness") <= 1.5),
        "stream_fixes_per_s": (_num(r, "stream_fixes_per_s"), ">= 10000",
                               _num(r, "stream_fixes_per_s") >= 10_000),
        "stream_speedup": (stream_x, ">= 3", stream_x >= 3),
        "latency_p99_ms": (_num(r, "latency_p99_ms"), "<= 100 at 1000 fixes/s",
                           _num(r, "latency_p99_ms") <= 100),
    }  # fmt: skip
    return {
        k: {"value": None if math.isnan(v) else round(v, 2), "target": t, "met": bool(ok)}
        for k, (v, t, ok) in rows.items()
    }


def _fmt(v: float, unit: str = "") -> str:
    if math.isnan(v):
        return "—"
    return f"{v:,.0f}{unit}" if abs(v) >= 100 else f"{v:,.1f}{unit}"


def _share(r: dict[str, Any], key: str) -> str:
    v = r.get(key)
    return "—" if not isinstance(v, (int, float)) else f"{v:.2f}"


def table(r: dict[str, Any], t: dict[str, dict[str, Any]], s: Sizes) -> Table:
    def met(key: str) -> str:
        return "[green]yes[/]" if t[key]["met"] else "[red]no[/]"

    def ratio(key: str) -> str:
        v = t[key]["value"]
        return "—" if v is None else f"{v:,.1f}×"

    tab = Table(title=f"banwatch bench ({s.name})")
    for col in ("figure", "value", "baseline", "ratio", "target", "met"):
        tab.add_column(col, justify="left" if col in ("figure", "target") else "right")
    n = r.get("engine_bans", s.engine_bans[-1])
    tab.add_row(
        f"engine fixes/s, {n:,} bans",
        _fmt(_num(r, "engine_fixes_per_s")),
        _fmt(_num(r, "engine_loop_fixes_per_s")),
        ratio("engine_speedup"),
        "≥ 10×",
        met("engine_speedup"),
    )
    by = r.get("engine_us_per_fix_by_bans") or {}
    tab.add_row(
        "engine µs/fix by bans",
        ", ".join(f"{int(k):,}: {v:.0f}" for k, v in by.items()) or "—",
        "",
        f"{_num(r, 'engine_flatness'):.2f} max/min",
        "flat (≤ 1.5)",
        met("engine_flatness"),
    )
    tab.add_row(
        f"stream fixes/s, {s.bans:,} bans",
        _fmt(_num(r, "stream_fixes_per_s")),
        _fmt(_num(r, "naive_stream_fixes_per_s")),
        ratio("stream_speedup"),
        "≥ 10,000/s and ≥ 3×",
        f"{met('stream_fixes_per_s')} / {met('stream_speedup')}",
    )
    tab.add_row(
        "  worker CPU µs/fix", _fmt(_num(r, "stream_worker_cpu_us_per_fix")), "", "", "", ""
    )
    tab.add_row(
        "  naive agent, indexed (context)",
        _fmt(_num(r, "naive_indexed_stream_fixes_per_s")),
        "",
        "",
        "",
        "",
    )
    tab.add_row(
        "  faust agent that only counts (context)",
        _fmt(_num(r, "faust_floor_fixes_per_s")),
        "",
        "",
        "",
        "",
    )
    rate = _num(r, "latency_rate_per_s")
    tab.add_row(
        f"latency p50 / p99 ms at {_fmt(rate)}/s",
        f"{_fmt(_num(r, 'latency_p50_ms'))} / {_fmt(_num(r, 'latency_p99_ms'))}",
        "",
        "",
        "p99 ≤ 100 ms",
        met("latency_p99_ms"),
    )
    tab.add_row(
        "  relay that decides nothing (context)",
        f"{_fmt(_num(r, 'latency_relay_p50_ms'))} / {_fmt(_num(r, 'latency_relay_p99_ms'))}",
        "",
        "",
        "",
        "",
    )
    tab.add_row(
        "  CPU cores, worker / broker (context)",
        f"{_share(r, 'latency_worker_cpu_share')} / {_share(r, 'latency_broker_cpu_share')}",
        f"{_share(r, 'latency_relay_worker_cpu_share')} / "
        f"{_share(r, 'latency_relay_broker_cpu_share')}",
        "",
        "",
        "",
    )
    tab.add_row(
        f"worker peak RSS MiB, {int(_num(r, 'memory_bans') or 0):,} bans"
        if not math.isnan(_num(r, "memory_bans"))
        else "worker peak RSS MiB",
        _fmt(_num(r, "memory_peak_rss_mb")),
        "",
        "",
        "",
        "",
    )
    return tab


def main(quick: bool = False, json_path: str | None = None, smoke: bool = False) -> int:
    """Run the bench, print the table, write `json_path`; 0 if every figure was measured."""
    sizes = SMOKE if smoke else QUICK if quick else FULL
    console = Console(stderr=True)  # progress and log lines
    out = Console()  # the results table
    if not out.is_terminal:
        out = Console(width=120)
    run = Run(sizes, console)
    started = datetime.now(UTC)
    load_start = os.getloadavg()
    t0 = time.monotonic()
    steps = run.steps()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"banwatch bench ({sizes.name})", total=len(steps))
            for name, step in steps:
                progress.update(task, description=name)
                try:
                    step()
                except Exception as exc:
                    run.errors[name] = f"{type(exc).__name__}: {exc}"
                    console.log(f"[red]{name} failed[/]: {type(exc).__name__}: {exc}")
                    console.log(traceback.format_exc(limit=4))
                progress.advance(task)
    finally:
        run.close()
    results = run.results
    t = targets(results)
    out.print(table(results, t, sizes))
    missing = [k for k in REQUIRED if not isinstance(results.get(k), int | float)]
    flags = " --smoke" if smoke else " --quick" if quick else ""
    doc = {
        "bench": "banwatch bench",
        "command": f"banwatch bench{flags}" + (f" --json {json_path}" if json_path else ""),
        "date": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "seconds": round(time.monotonic() - t0, 1),
        "machine": machine()
        | {"load_average_start": load_start, "load_average_end": os.getloadavg()},
        "workload": workload_info(sizes),
        "results": results,
        "targets": t,
        "details": run.details,
        "errors": run.errors,
        "missing": missing,
    }
    if json_path:
        Path(json_path).write_text(json.dumps(doc, indent=2, default=str) + "\n")
        console.print(f"results written to {json_path}")
    if missing:
        console.print(f"[red]not measured:[/] {', '.join(missing)}")
    return 0 if not missing and not run.errors else 1


def _cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m streams.bench.suite", description=__doc__.split("\n")[0]
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, under 5 minutes")
    size.add_argument("--smoke", action="store_true", help="tiny sizes: only checks it all runs")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    return main(quick=args.quick, json_path=args.json, smoke=args.smoke)


if __name__ == "__main__":
    sys.exit(_cli())
