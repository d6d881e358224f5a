"""The `v2_geometry` golden scenario: contract v2 rules 1, 2 and 10 (zone geometry).

Registered in build.py's SCENARIOS; imports build lazily (build.py imports this module).
Positions are placed geodesically (pyproj, WGS84) from real places.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING

from pyproj import Geod

if TYPE_CHECKING:
    from build import Scenario

GEOD = Geod(ellps="WGS84")

# rule 1: the 150 km zone, its northern edge the parallel 60.3° N (north of Uppsala)
WIDE = [[15.5, 59.2], [18.2, 59.2], [18.2, 60.3], [15.5, 60.3], [15.5, 59.2]]
EDGE_LON = 17.6  # on the northern edge, near Tierp
# rule 2: a U-shaped block at Mariatorget, Södermalm, open to the south: 80 m x 80 m, a
# courtyard 40 m wide and 60 m deep; buffer 50 m (metres east, north of the anchor)
MARIATORGET = (59.3172, 18.0634)
U_XY = [(-40, -40), (-20, -40), (-20, 20), (20, 20), (20, -40), (40, -40), (40, 40), (-40, 40)]
# rule 10: a 1.2 km x 1.1 km block of Kungsholmen; its centre is 556 m from the nearest edge
KUNGSHOLMEN = [[18.020, 59.327], [18.041, 59.327], [18.041, 59.337], [18.020, 59.337]]
KUNGSHOLMEN_C = (59.332, 18.0305)

_MIN = timedelta(minutes=1)

STOCKHOLM_UNITS = [
    ("S-1110", 59.3190, 18.0600, "available"),  # Södermalm
    ("S-1210", 59.3310, 18.0300, "available"),  # Kungsholmen
    ("U-3110", 60.1900, 17.6200, "available"),  # Tierp
]


def fwd(lat: float, lon: float, azimuth: float, s_m: float) -> tuple[float, float]:
    lo, la, _ = GEOD.fwd(lon, lat, azimuth, s_m)
    return float(la), float(lo)


def place(x: float, y: float) -> tuple[float, float]:
    """(lat, lon) x metres east and y metres north of the Mariatorget anchor, geodesically."""
    if x == 0 and y == 0:
        return MARIATORGET
    return fwd(*MARIATORGET, math.degrees(math.atan2(x, y)), math.hypot(x, y))


def v2_geometry() -> Scenario:
    from build import Scenario, Story, ban, polygon_zone, t

    courtyard = [[lon, lat] for lat, lon in (place(x, y) for x, y in U_XY)]
    bans = [
        ban(
            "KF-2026-0121",
            "P-8101",
            ["P-8201"],
            [polygon_zone("region", "Förbudsområde norra Uppland", WIDE, 0)],
            em=False,
        ),
        ban(
            "KF-2026-0122",
            "P-8102",
            ["P-8202"],
            [polygon_zone("home", "Bostad", [*courtyard, courtyard[0]], 50)],
            em=False,
        ),
        ban(
            "KF-2026-0123",
            "P-8103",
            ["P-8203"],
            [polygon_zone("block", "Kvarteret", [*KUNGSHOLMEN, KUNGSHOLMEN[0]], 0)],
            em=False,
        ),
    ]
    s = Story()
    t0 = t("2026-11-22T08:00:00Z")
    # rule 1: 600 m, then 300 m north of the drawn northern edge (outside), then 20 m south
    for i, north_m in enumerate((600.0, 300.0, -20.0)):
        lat, lon = fwd(60.3, EDGE_LON, 0.0 if north_m > 0 else 180.0, abs(north_m))
        s.fix("P-8101", "EM-8101", t0 + i * _MIN, lat, lon, 8.0)
    # rule 2: 300 m south of the block, then in the courtyard's middle with a 40 m accuracy:
    # 20 m from either wing, 86 m from the edge of zone + buffer
    t1 = t0 + 10 * _MIN
    s.fix("P-8102", "EM-8102", t1, *place(0.0, -300.0), 10.0)
    s.fix("P-8102", "EM-8102", t1 + _MIN, *place(0.0, 0.0), 40.0)
    # rule 10: coarse fixes at the block's centre: 150 m (twice: 300 m, inside), then 290 m
    t2 = t0 + 20 * _MIN
    s.fix("P-8103", "EM-8103", t2, *KUNGSHOLMEN_C, 150.0, source="phone")
    s.fix("P-8103", "EM-8103", t2 + _MIN, *KUNGSHOLMEN_C, 290.0, source="phone")
    s.patrols(STOCKHOLM_UNITS, t0, t2 + 2 * _MIN)
    return Scenario(
        "v2_geometry",
        """\
        Contract v2 rules 1, 2 and 10 (zone geometry), three restrained persons.
        P-8101: a 150 km zone whose northern edge is the parallel 60.3° N; fixes 600 m and
        300 m north of it raise no zone breach (edges are straight in lon/lat), a fix 20 m
        south of it a confirmed one.
        P-8102: a U-shaped block at Mariatorget with a 50 m buffer that fills its courtyard; a
        fix in the courtyard with accuracy 40 m, 20 m from the walls but 86 m from the edge of
        zone + buffer: `confirmed` at once (v1 said probable).
        P-8103: a fix with accuracy 150 m (over max_accuracy_m 100) 556 m inside a Kungsholmen
        block: inside even at twice that, so `probable` (priority 1); a later 290 m fix
        would not be, and the episode keeps its level.
        """,
        bans,
        s,
    )

