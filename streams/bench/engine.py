"""The geofence engine alone, against the straightforward loop, in one run.

`engine`: the real `Engine.handle_batch` (decode, batched geometry, episodes, alerts, tasks),
in batches of 1,000 fixes, as the stream worker calls it. Loading the bans is not timed.
`loop baseline`: decode each fix and test it against every zone of every ban with shapely
predicates in lon/lat (a buffered zone per ban, prepared): what one would write first. It does
less than the engine (no episodes, no alerts), so the ratio understates the difference.

    python -m streams.bench.engine   # the per-size table alone (`banwatch bench` has it too)
"""

from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass
from datetime import timedelta

import shapely

from alerts.engine import Engine, Incoming
from config.policy import Policy
from geofence.decoding import BANS, POSITIONS
from geofence.records import LocationFix
from streams.bench import workload


@dataclass(frozen=True, slots=True)
class EngineFigures:
    bans: int
    fixes: int
    seconds: float
    alerts: int  # engine: alert revisions published; loop: zone hits

    @property
    def per_s(self) -> float:
        return self.fixes / self.seconds

    @property
    def us_per_fix(self) -> float:
        return 1e6 * self.seconds / self.fixes


def engine_run(
    n_bans: int, n_fixes: int, policy: Policy, batch: int = 1000, device_share: float = 0.5
) -> EngineFigures:
    sites = workload.sites(n_bans, device_share=device_share)
    eng = Engine(policy)
    now = workload.T0 + timedelta(days=1)
    for raw in workload.bans(sites):
        eng.handle(Incoming(BANS, None, raw), now)
    # every device reports about every 25 s on average, whatever the number of bans
    fixes = workload.fixes(sites, n_fixes, rate_per_s=max(n_bans / 25.0, 0.4))
    msgs = [Incoming(POSITIONS, k, v) for k, v in fixes]
    alerts = 0
    # as the worker does once it has adopted its partitions: the loaded registry is moved out
    # of the collector's sight, or a full collection of it lands inside the timed loop
    gc.collect()
    gc.freeze()
    try:
        t0 = time.perf_counter()
        for i in range(0, len(msgs), batch):
            for r in eng.handle_batch(msgs[i : i + batch], now):
                alerts += sum(1 for o in r.outputs if o[0] == "alerts")
        dt = time.perf_counter() - t0
    finally:
        gc.unfreeze()
    return EngineFigures(n_bans, n_fixes, dt, alerts)


def loop_baseline_run(n_bans: int, n_fixes: int, device_share: float = 0.5) -> EngineFigures:
    """Every fix against every zone: shapely `intersects` with the fix's point on zones
    pre-buffered in degrees (the naive approach, wrong by design in the units too)."""
    sites = workload.sites(n_bans, device_share=device_share)
    zones = []
    for s in sites:
        b = workload.ban(s, False)
        for f in b["zones"]["features"]:  # type: ignore[index]
            g = shapely.geometry.shape(f["geometry"])
            radius = f["properties"].get("radius_m", 0) + f["properties"].get("buffer_m", 0)
            g = g.buffer(radius / 111_000.0)
            shapely.prepare(g)
            zones.append((b["restrained_person"], g))
    fixes = workload.fixes(sites, n_fixes)
    hits = 0
    t0 = time.perf_counter()
    for _, raw in fixes:
        fix = LocationFix.model_validate_json(raw)
        p = shapely.Point(fix.lon, fix.lat)
        for person, g in zones:
            if person == fix.person_id and g.intersects(p):
                hits += 1
    dt = time.perf_counter() - t0
    return EngineFigures(n_bans, n_fixes, dt, hits)


def main() -> None:
    from config.policy import load_policy

    policy = load_policy()
    rows = []
    for n in (10, 100, 1000, 10_000):
        e = engine_run(n, 20_000, policy)
        rows.append(e)
        print(
            f"engine  bans={n:>6} fixes={e.fixes} {e.per_s:>9.0f} fixes/s "
            f"{e.us_per_fix:6.1f} µs/fix alerts={e.alerts}"
        )
    for n in (10, 1000, 10_000):
        b = loop_baseline_run(n, 2000 if n > 1000 else 20_000)
        print(
            f"loop    bans={n:>6} fixes={b.fixes} {b.per_s:>9.0f} fixes/s "
            f"{b.us_per_fix:6.1f} µs/fix"
        )
    print(json.dumps({"engine_us_per_fix": {r.bans: round(r.us_per_fix, 1) for r in rows}}))


if __name__ == "__main__":
    main()
