"""Golden scenarios for contract v2's fix-path rules (3 implausible jumps, 4 approach, 5 late
proximity evidence, 6 knock counts approach events), registered in build.py.

Every position is computed geodesically (pyproj `Geod.fwd` on WGS84) from a real place near
Stockholm: "x metres from the zone" below means x metres from zone + buffer along a geodesic.
Run `python tests/scenarios/build.py v2_fast_approach ...` to rewrite them (see README.md).
"""

from __future__ import annotations

from datetime import timedelta

from build import Ref, Scenario, Story, ban, circle_zone, t
from pyproj import Geod

_WGS84 = Geod(ellps="WGS84")

# real places
KUNGSHOLMEN_SCHOOL = (59.3325, 18.0265)  # a school on Kungsholmen (zone centre)
SOLNA_CENTRUM = (59.3597, 17.9989)
SUNDBYBERG = (59.3612, 17.9717)
HAMMARBY_SJOSTAD = (59.3040, 18.1000)
NACKA_FORUM = (59.3105, 18.1636)
TABY_CENTRUM = (59.4439, 18.0687)
DANDERYD = (59.4000, 18.0300)
KU_UNITS = [
    ("KU-1120", 59.3300, 18.0420, "available"),  # Kungsholmen
    ("SO-1410", 59.3590, 18.0050, "available"),  # Solna
    ("SM-3310", 59.3120, 18.0890, "available"),  # Södermalm east
]


def fwd(at: tuple[float, float], azimuth: float, metres: float) -> tuple[float, float]:
    """(lat, lon) `metres` from `at` (lat, lon) along the geodesic leaving at `azimuth`."""
    lon, lat, _ = _WGS84.fwd(at[1], at[0], azimuth, metres)
    return lat, lon


def fast_approach() -> Scenario:
    """Rule 4: 100 km/h, one fix a minute."""
    radius, buffer = 150.0, 50.0  # the school's zone: 200 m from the centre incl. buffer
    school = circle_zone("school", "Skola", *KUNGSHOLMEN_SCHOOL, radius)
    school["properties"]["buffer_m"] = buffer
    a = ban("KF-2026-0701", "P-7010", ["P-7011"], [school])
    b_school = circle_zone("school", "Skola", *SOLNA_CENTRUM, radius)
    b_school["properties"]["buffer_m"] = buffer
    b = ban("KF-2026-0702", "P-7020", ["P-7021"], [b_school], em=False)
    s = Story()
    t0 = t("2026-11-22T15:00:00Z")
    speed = 100 / 3.6  # 27.8 m/s: 1,667 m a minute
    reach = radius + buffer
    # A: drives in from 8.8 km west, a fix a minute, ..., 2,167 m, then 500 m from the zone;
    # parks there for ten minutes (no more closing in: the episode ends), then leaves
    far = [500 + speed * 60 * k for k in range(5, 0, -1)]  # 8834 ... 2167
    for k, d in enumerate([*far, 500.0]):
        s.fix(
            "P-7010",
            "EM-7010",
            t0 + timedelta(minutes=k),
            *fwd(KUNGSHOLMEN_SCHOOL, 270, reach + d),
            8.0,
        )
    parked = t0 + timedelta(minutes=6)
    for k in range(10):
        s.fix(
            "P-7010",
            "EM-7010",
            parked + timedelta(minutes=k),
            *fwd(KUNGSHOLMEN_SCHOOL, 270, reach + 500 + (k % 3)),
            9.0,
        )
    # B: his tag comes on 2,167 m from the zone; the next fix, a minute later, is 500 m away
    for k, d in enumerate([2166.7, 500.0]):
        s.fix(
            "P-7020",
            "EM-7020",
            t0 + timedelta(minutes=k),
            *fwd(SOLNA_CENTRUM, 200, reach + d),
            10.0,
        )
    s.patrols(KU_UNITS, t0 - timedelta(minutes=1), t0 + timedelta(minutes=16), every_s=60)
    return Scenario(
        "v2_fast_approach",
        """\
        Contract v2 rule 4. P-7010 drives at 100 km/h towards a school's zone on Kungsholmen,
        one fix a minute: 8.8, 7.2, 5.5, 3.8, 2.2 km, then 500 m from zone + buffer; he parks
        there for ten minutes. P-7020's tag comes on 2,167 m from a zone in Solna and the next
        fix, a minute later, is 500 m away. Expect: one `approach` alert each (p2) at the
        500 m fix, no breach; P-7010's episode ends (`episode: ended`) 300 s after he last
        closed in, with no revisions in between (nothing material changed).
        """,
        [a, b],
        s,
    )


def late_proximity() -> Scenario:
    """Rule 5: a stored fix of his compared with her fix closest in time to it."""
    b = ban("KF-2026-0711", "P-7110", ["P-7111"], [], proximity_m=500, em=False)
    s = Story()
    t0 = t("2026-11-22T20:00:00Z")
    # she is at home in Hammarby sjöstad, her phone reporting every minute for 14 minutes
    for k in range(15):
        her = fwd(HAMMARBY_SJOSTAD, 45 * k, 3.0)
        s.fix("P-7111", "PH-7111", t0 + timedelta(minutes=k), *her, 12.0, source="victim_device")
    # his tag reports from Nacka Forum (~3.6 km away), loses coverage 20:04-20:12, then
    # uploads what it stored: one fix 5 s after her 20:05 fix, 200 m from her
    for k in range(4):
        s.fix("P-7110", "EM-7110", t0 + timedelta(minutes=k), *fwd(NACKA_FORUM, 90, 5.0 * k), 9.0)
    back = t0 + timedelta(minutes=13)
    s.fix("P-7110", "EM-7110", back, *fwd(NACKA_FORUM, 0, 10.0), 9.0)
    stored = t0 + timedelta(minutes=5, seconds=5)
    her_then = fwd(HAMMARBY_SJOSTAD, 45 * 5, 3.0)
    s.fix(
        "P-7110",
        "EM-7110",
        stored,
        *fwd(her_then, 135, 200.0),
        9.0,
        arrives=back + timedelta(seconds=4),
    )
    s.patrols(KU_UNITS, t0, back + timedelta(minutes=1), every_s=60)
    return Scenario(
        "v2_late_proximity",
        """\
        Contract v2 rule 5. P-7110's tag is in Nacka, loses coverage for eight minutes, and
        after a new live fix uploads a stored one stamped 20:05:05, 200 m from the protected
        person P-7111 (proximity 500 m); her phone's fix closest in time is from 20:05:00,
        her latest from 20:14. Expect: one `late_evidence` alert (p3) for proximity to
        P-7111, no live proximity breach, no task.
        """,
        [b],
        s,
    )


def multipath_jump() -> Scenario:
    """Rule 3: an implausible jump counts as possible; the next plausible fix decides."""
    home_a = circle_zone("home", "Bostad", *SUNDBYBERG, 60)
    home_a["properties"]["buffer_m"] = 30
    a = ban("KF-2026-0721", "P-7210", ["P-7211"], [home_a])
    home_b = circle_zone("home", "Bostad", *DANDERYD, 60)
    home_b["properties"]["buffer_m"] = 30
    b = ban("KF-2026-0722", "P-7220", ["P-7221"], [home_b])
    s = Story()
    t0 = t("2026-11-22T11:00:00Z")
    reach = 90.0
    # A stands 300 m from the zone, a fix every 5 s; at 11:01:00 one multipath fix puts him
    # 20 m inside zone + buffer (320 m in 5 s, accuracy claimed 8 m: (320-8-8)/5 = 61 m/s)
    stand = fwd(SUNDBYBERG, 10, reach + 300)
    for k in range(37):
        ts = t0 + timedelta(seconds=5 * k)
        if k == 12:
            s.fix("P-7210", "EM-7210", ts, *fwd(SUNDBYBERG, 10, reach - 20), 8.0)
        else:
            s.fix("P-7210", "EM-7210", ts, *fwd(stand, 37 * k, 4.0), 8.0)
    # B: his tag showed him at a bus stop 300 m away (a stale position); at 11:01:00 a fix
    # jumps to 40 m inside zone + buffer, and the next fixes stay there: plausible from it
    bus = fwd(DANDERYD, 200, reach + 300)
    inside = fwd(DANDERYD, 200, reach - 40)
    for k in range(25):
        ts = t0 + timedelta(seconds=5 * k)
        where = bus if k < 12 else fwd(inside, 50 * k, 2.0)
        s.fix("P-7220", "EM-7220", ts, *where, 8.0)
    s.patrols(KU_UNITS, t0 - timedelta(minutes=1), t0 + timedelta(minutes=4), every_s=30)
    s.action(Ref("zone_breach", 1), "acknowledge", "op-21", after_s=30)
    return Scenario(
        "v2_multipath_jump",
        """\
        Contract v2 rule 3. P-7210 stands 300 m from his zone in Sundbyberg (a fix every 5 s);
        one multipath fix puts him 20 m inside zone + buffer, 61 m/s from the previous fix
        after both accuracies: a `zone_breach` that stays `possible` (p2, reason names the
        implausible jump), no respond task, no approach; the next fixes are back at his
        place and the episode ends. P-7220's fix jumps into his zone in Danderyd just as
        fast, but the next fix is plausible from it and inside too: the alert rises to
        p1 with a revision (respond, follow-up chain), acknowledged.
        """,
        [a, b],
        s,
    )


def knock_events() -> Scenario:
    """Rule 6: approach alerts opening within 30 minutes of the last counted one are one
    event, whichever ban or zone."""
    school = circle_zone("school", "Skola", *TABY_CENTRUM, 120)
    a = ban("KF-2026-0731", "P-7310", ["P-7311"], [school], kind="basic", em=False)
    home = circle_zone("home", "Bostad", *DANDERYD, 80)
    b = ban("KF-2026-0732", "P-7310", ["P-7312"], [home], kind="basic", em=False)
    s = Story()
    his = fwd(TABY_CENTRUM, 250, 4200)  # Täby, between the two, ~4 km from both
    evenings = [
        # (start, the places he walks towards, one after the other)
        (t("2026-11-16T18:00:00Z"), [(TABY_CENTRUM, 120.0), (DANDERYD, 80.0)]),
        (t("2026-11-18T18:00:00Z"), [(TABY_CENTRUM, 120.0)]),
        (t("2026-11-20T18:00:00Z"), [(DANDERYD, 80.0)]),
    ]
    for start, goals in evenings:
        ts = start
        for centre, radius in goals:
            # a car trip to 1.6 km from the zone, then on foot to 500 m and back
            from_az, _, _ = _WGS84.inv(centre[1], centre[0], his[1], his[0])
            for d in (1600.0, 1450.0, 1300.0, 1150.0, 1000.0, 850.0, 700.0, 550.0, 500.0, 500.0):
                s.fix(
                    "P-7310", "PH-7310", ts, *fwd(centre, from_az, radius + d), 10.0, source="phone"
                )
                ts += timedelta(minutes=1)
            for d in (650.0, 800.0, 950.0, 1100.0, 1250.0, 1400.0):
                s.fix(
                    "P-7310", "PH-7310", ts, *fwd(centre, from_az, radius + d), 10.0, source="phone"
                )
                ts += timedelta(minutes=1)
        s.patrols(KU_UNITS, start, ts, every_s=120)
    return Scenario(
        "v2_knock_events",
        """\
        Contract v2 rule 6. P-7310 is restrained by two basic bans (a school in Täby, a home
        in Danderyd). On 16 Nov he walks towards the school and, 16 minutes later, towards the
        home: two `approach` alerts of two bans, one approach event. On 18 and 20 Nov one
        approach each. Expect: four approach alerts (p2) and one `knock` task (role outreach)
        with the third event (20 Nov), none with the third alert (18 Nov).
        """,
        [a, b],
        s,
    )


SCENARIOS = [fast_approach, late_proximity, multipath_jump, knock_events]
