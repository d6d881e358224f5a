"""Golden scenario for contract v2 "Protected-person warnings" (`protected-notifications`).

Registered in build.py (`python tests/scenarios/build.py v2_warnings` writes it). Positions
are computed on the WGS84 ellipsoid (pyproj `Geod.fwd`) around Uppsala, so that every
distance named in the README is the geodesic one.
"""

from __future__ import annotations

import math
from datetime import timedelta

from build import Ref, Scenario, Story, ban, circle_zone, t
from build_v2_incidents import fwd, units_near

HOME = (59.8586, 17.6389)  # Uppsala, a block by the cathedral
WORK = fwd(HOME, 0.0, 3000.0)  # her workplace, 3 km north


def warnings() -> Scenario:
    """One ban protecting two persons: a zone approach and breach, a signal loss, an SOS,
    a proximity breach of one of them."""
    b = ban(
        "KF-2026-0901",
        "P-7301",
        ["P-7401", "P-7402"],  # a mother (with an alarm device) and her child
        [circle_zone("home", "Bostad", *HOME, 150)],
        proximity_m=300,
    )
    s = Story()
    t0 = t("2026-11-22T21:00:00Z")
    m = timedelta(minutes=1)
    half = timedelta(seconds=30)
    end = t0 + 60 * m
    s.patrols(units_near("C", [HOME, WORK]), t0, end, every_s=60)
    # her device at work all evening
    for i in range(61):
        s.fix("P-7401", "VD-7401", t0 + i * m, *WORK, 6.0, "victim_device")
    # 1. from 1.5 km south he walks to 100 m from the home zone's centre (inside), stays two
    # minutes, walks back out to 1.5 km and stays there
    at = t0
    path = [1500.0 - 100.0 * i for i in range(15)] + [100.0] * 4
    path += [100.0 + 100.0 * i for i in range(1, 15)] + [1500.0] * 3
    for d in path:
        s.fix("P-7301", "EM-7301", at, *fwd(HOME, 180.0, d), 8.0)
        at += half
    # 2. then silence from 21:17:30 (last fix) until 21:27:30: signal lost, the zone in reach
    at = t0 + 27 * m + half
    for p in _drive(
        [(1500.0, 180.0), (1500.0, 150.0), (1500.0, 120.0), (1500.0, 90.0)],
        [(1500.0, 5000.0), (0.0, 5000.0), (0.0, 4300.0)],
    ):  # around home at 1.5 km, then north on its east side, to 1.3 km north of her work
        s.fix("P-7301", "EM-7301", at, *p, 8.0)
        at += half
    # 3. her child's SOS from home, acknowledged, then resolved
    call = fwd(HOME, 250.0, 60.0)
    s.incident("I-9101", t0 + 29 * m, "sos", person_id="P-7402", lat=call[0], lon=call[1])
    s.action(Ref("sos"), "acknowledge", "op-21", after_s=30)
    s.action(Ref("sos"), "resolve", "op-21", after_s=240)
    # 4. from 1.3 km north of her workplace he walks to 200 m from her and back
    path = [1300.0 - 100.0 * i for i in range(1, 12)] + [200.0] * 2
    path += [200.0 + 100.0 * i for i in range(1, 12)]
    for d in path:
        s.fix("P-7301", "EM-7301", at, *fwd(WORK, 0.0, d), 8.0)
        at += half
    while at < end:
        s.fix("P-7301", "EM-7301", at, *fwd(WORK, 0.0, 1300.0), 8.0)
        at += half
    return Scenario(
        "v2_warnings",
        """\
        Contract v2 "Protected-person warnings", in Uppsala. Ban KF-2026-0901 protects
        P-7401 (a mother, whose alarm device reports from her work 3 km north of home) and
        P-7402 (her child, no device); home is a 150 m circle, proximity 300 m.
        Expect on `protected-notifications` (key: the protected person):
        1. P-7301 walks from 1.5 km south into the home zone and out again: `warning`
           `approach` to both (21:01), `danger` `zone_breach` to both when the breach is
           priority 1 (police dispatched), `all_clear` for each alert to both when its
           episode ends. Nothing carries his position, distance or direction.
        2. His tag is silent for 10 minutes 1.5 km from the zone: `signal_lost` priority 1 at
           once (the zone is within reach), `danger` `signal_lost` to both, `all_clear` when
           the tag reports again (then he drives north, round the zone).
        3. The child's SOS (matched by her person id): `danger` `sos_received` to both,
           acknowledged (nothing new), resolved: `all_clear` to both.
        4. He walks to 200 m from the mother at work: `warning` `approach` and `danger`
           `proximity` to her alone (the episodes follow her), then `all_clear` for each.
        At most one notification per person, alert and level.
        """,
        [b],
        s,
        until="2026-11-22T22:00:00Z",
    )


def _drive(
    around: list[tuple[float, float]], east_north: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Fixes 30 s apart: the points `around` home ((metres, azimuth)), then straight lines
    through `east_north` (metres east and north of home), about 600 m apart (~20 m/s)."""
    out = [fwd(HOME, az, d) for d, az in around]
    x0, y0 = 1500.0, 0.0
    for x1, y1 in east_north:
        n = max(1, round(math.hypot(x1 - x0, y1 - y0) / 600.0))
        for i in range(1, n + 1):
            x, y = x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n
            out.append(fwd(fwd(HOME, 90.0, x), 0.0, y))
        x0, y0 = x1, y1
    return out


SCENARIOS = [warnings]
