"""Golden scenarios for contract version 2, rules 7-9: end of life, SOS, one response.

Registered in build.py (`python tests/scenarios/build.py v2_end_of_life ...` writes them).
Positions are computed on the WGS84 ellipsoid (pyproj `Geod.fwd`) around real places near
Stockholm, so that every distance named in a README is the geodesic one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from build import Json, Ref, Scenario, Story, ban, circle_zone, t
from pyproj import Geod

_GEOD = Geod(ellps="WGS84")

# places (lat, lon)
SOLNA_C = (59.3600, 18.0000)
NACKA_FORUM = (59.3105, 18.1637)
HUDDINGE_C = (59.2370, 17.9819)
SUNDBYBERG_C = (59.3610, 17.9710)
SOLLENTUNA_C = (59.4280, 17.9510)
TABY_C = (59.4439, 18.0687)
LIDINGO_C = (59.3667, 18.1333)
KISTA = (59.4036, 17.9441)
VALLINGBY = (59.3632, 17.8720)


def fwd(at: tuple[float, float], azimuth: float, metres: float) -> tuple[float, float]:
    """The point `metres` from `at` along the geodesic leaving at `azimuth` (degrees from
    north, clockwise): (lat, lon)."""
    lon, lat, _ = _GEOD.fwd(at[1], at[0], azimuth, metres)
    return lat, lon


def units_near(
    prefix: str, places: list[tuple[float, float]]
) -> list[tuple[str, float, float, str]]:
    """One available patrol unit 600 m north-east of each place."""
    return [
        (f"{prefix}-{10 * (i + 1)}", *fwd(p, 45.0, 600.0), "available")
        for i, p in enumerate(places)
    ]


def _fixes(
    s: Story,
    person: str,
    device: str,
    at: tuple[float, float],
    times: list[datetime],
    acc: float = 8.0,
    source: str = "ankle_tag",
) -> None:
    for ts in times:
        s.fix(person, device, ts, *at, acc, source)


def end_of_life() -> Scenario:
    """Rule 7: three bans with open priority-1 alerts end three ways."""
    zones = {
        b: circle_zone("home", "Bostad", *c, 150)
        for b, c in (("A", SOLNA_C), ("B", NACKA_FORUM), ("C", HUDDINGE_C))
    }
    a = ban("KF-2026-0701", "P-7101", ["P-7201"], [zones["A"]], em=False)
    b = ban("KF-2026-0702", "P-7102", ["P-7202"], [zones["B"]], em=False)
    c = ban(
        "KF-2026-0703",
        "P-7103",
        ["P-7203"],
        [zones["C"]],
        em=False,
        valid_until="2026-11-22T09:10:00Z",
    )
    s = Story()
    t0 = t("2026-11-22T09:00:00Z")
    m = timedelta(minutes=1)
    s.patrols(units_near("N", [SOLNA_C, NACKA_FORUM, HUDDINGE_C]), t0, t0 + 20 * m, every_s=60)
    # 40 m inside each zone (accuracy 8 m): confirmed, priority 1
    solna, nacka, huddinge = (fwd(p, 180.0, 110.0) for p in (SOLNA_C, NACKA_FORUM, HUDDINGE_C))
    # A: opens at 09:00:30, escalates at 09:01:30, then the ban is lifted (tombstone) at 09:05
    _fixes(s, "P-7101", "PH-7101", solna, [t0 + timedelta(seconds=30)], source="phone")
    s.ban_record(t0 + 5 * m, None, a["ban_id"])
    _fixes(s, "P-7101", "PH-7101", solna, [t0 + 6 * m], source="phone")
    # B: opens at 09:06:30, revoked (version 2) at 09:07 before its escalation (09:07:30) is due
    _fixes(s, "P-7102", "PH-7102", nacka, [t0 + 6 * m + timedelta(seconds=30)], source="phone")
    s.ban_record(t0 + 7 * m, {**b, "version": 2, "status": "revoked"}, b["ban_id"])
    _fixes(s, "P-7102", "PH-7102", nacka, [t0 + 8 * m], source="phone")
    # C: opens at 09:00:50, acknowledged at 09:01:20, valid until 09:10: ends by the timer
    _fixes(s, "P-7103", "PH-7103", huddinge, [t0 + timedelta(seconds=50)], source="phone")
    s.action(Ref("zone_breach", 1), "acknowledge", "op-12", after_s=30)
    _fixes(s, "P-7103", "PH-7103", huddinge, [t0 + 9 * m + timedelta(seconds=50)], source="phone")
    _fixes(s, "P-7103", "PH-7103", huddinge, [t0 + 11 * m], source="phone")
    return Scenario(
        "v2_end_of_life",
        """\
        Contract v2 rule 7. Three bans around Solna C, Nacka Forum and Huddinge C, each with a
        priority-1 zone breach (a fix 40 m inside a 150 m home circle).
        Expect: A's alert escalates (09:01:30), then a tombstone lifts A at 09:05: a final
        revision `resolved`, `resolved_by: "system"`, reason "ban lifted"; B's alert opens at
        09:06:30 and B is revoked at 09:07, before its escalation was due: resolved by the
        system, reason "ban revoked", and no escalation ever; C's alert is acknowledged and C's
        validity ends at 09:10: resolved by the system at exactly 09:10, reason "ban expired".
        Fixes inside the zones after each end give nothing; no task after an end.
        """,
        [a, b, c],
        s,
        until="2026-11-22T09:20:00Z",
    )


def position_lost() -> Scenario:
    """Rule 7, second part: her device goes silent; his proximity and approach episodes end."""
    her = SUNDBYBERG_C
    far_zone = circle_zone("work", "Arbete", *SOLLENTUNA_C, 150)
    d = ban("KF-2026-0704", "P-7104", ["P-7204"], [far_zone], em=False, proximity_m=300)
    s = Story()
    t0 = t("2026-11-22T18:00:00Z")
    m = timedelta(minutes=1)
    s.patrols(units_near("S", [her, SOLLENTUNA_C]), t0, t0 + 15 * m, every_s=60)
    every = [t0 + timedelta(seconds=30 * i) for i in range(7)]  # 18:00:00 .. 18:03:00
    _fixes(s, "P-7204", "VD-7204", her, every, acc=6.0, source="victim_device")
    # he walks towards her from 900 m south, 100 m a step, to 200 m from her, then stays
    for i, ts in enumerate(every):
        s.fix("P-7104", "EM-7104", ts, *fwd(her, 180.0, max(200.0, 900.0 - 150.0 * i)), 8.0)
    for i in range(1, 19):  # until 18:12, at 200 m from where she last was
        s.fix(
            "P-7104", "EM-7104", every[-1] + timedelta(seconds=30 * i), *fwd(her, 180.0, 200.0), 8.0
        )
    s.action(Ref("proximity_breach"), "acknowledge", "op-12", after_s=40)
    return Scenario(
        "v2_position_lost",
        """\
        Contract v2 rule 7 (second part). P-7104 walks up to 200 m from P-7204 at Sundbyberg C
        (proximity 300 m): an `approach` towards her, then a `proximity_breach` (acknowledged).
        Her device's last fix is at 18:03:00; he stays where he is.
        Expect: at 18:08:00 (her fix 300 s old) both episodes end with a revision `episode:
        ended`, reason "protected person's position lost"; neither alert is resolved (the
        proximity alert stays acknowledged for the operator).
        """,
        [d],
        s,
        until="2026-11-22T18:15:00Z",
    )


def sos() -> Scenario:
    """Rules 8 and 9."""

    def home(c: tuple[float, float]) -> Json:
        return circle_zone("home", "Bostad", *c, 150)

    expired = ban(
        "KF-2026-0801",
        "P-7105",
        ["P-7205"],
        [home(TABY_C)],
        em=False,
        valid_from="2026-05-01T00:00:00Z",
        valid_until="2026-11-21T12:00:00Z",
    )
    f = ban("KF-2026-0802", "P-7106", ["P-7206"], [home(LIDINGO_C)], em=False)
    g = ban("KF-2026-0803", "P-7107", ["P-7206"], [home(fwd(LIDINGO_C, 90.0, 2000.0))], em=False)
    lifted = ban("KF-2026-0804", "P-7108", ["P-7208"], [home(KISTA)], em=False)
    revoked = ban(
        "KF-2026-0805", "P-7109", ["P-7209"], [home(VALLINGBY)], em=False, status="revoked"
    )
    s = Story()
    t0 = t("2026-11-22T20:00:00Z")
    m = timedelta(minutes=1)
    places = [TABY_C, LIDINGO_C, SOLLENTUNA_C, KISTA, VALLINGBY]
    s.patrols(units_near("U", places), t0, t0 + 20 * m, every_s=60)
    # ended yesterday: her SOS near her home still finds the ban (priority 1, not in force)
    call = fwd(TABY_C, 300.0, 80.0)
    s.incident("I-9001", t0 + m, "sos", person_id="P-7205", lat=call[0], lon=call[1])
    # protected by two bans: one alert each, one respond and one protect in all. P-7106's
    # tag reports nearby (a fresh fix); the respond still goes to where she called from
    s.fix("P-7106", "EM-7106", t0 + 4 * m + timedelta(seconds=30), *fwd(LIDINGO_C, 0.0, 700.0), 9)
    call = fwd(LIDINGO_C, 200.0, 60.0)
    s.incident("I-9002", t0 + 5 * m, "sos", person_id="P-7206", lat=call[0], lon=call[1])
    # nobody's ban: an sos alert without ban_id, priority 1, respond to where she is;
    # it escalates after 60 s and is acknowledged after that
    call = fwd(SOLLENTUNA_C, 10.0, 120.0)
    s.incident("I-9003", t0 + 9 * m, "sos", person_id="P-7299", lat=call[0], lon=call[1])
    s.action(Ref("sos", 3), "acknowledge", "op-12", after_s=90)
    # a lifted ban matches nothing: unmatched
    s.ban_record(t0 + 10 * m, None, lifted["ban_id"])
    call = fwd(KISTA, 45.0, 50.0)
    s.incident("I-9004", t0 + 11 * m, "sos", person_id="P-7208", lat=call[0], lon=call[1])
    # a revoked ban: matched, not in force
    call = fwd(VALLINGBY, 135.0, 90.0)
    s.incident("I-9005", t0 + 12 * m, "sos", person_id="P-7209", lat=call[0], lon=call[1])
    # an SOS without a position from nobody known: priority 1, nothing to send a unit to
    s.incident("I-9006", t0 + 13 * m, "sos", person_id="P-7298")
    # a tip from nobody known stays a priority-3 unmatched incident
    s.incident("I-9007", t0 + 14 * m, "tip", lat=call[0] + 0.05, lon=call[1])
    return Scenario(
        "v2_sos",
        """\
        Contract v2 rules 8 and 9, in Täby, Lidingö, Sollentuna, Kista and Vällingby.
        Expect: I-9001 (ban KF-2026-0801 expired yesterday): an `sos` alert for that ban,
        priority 1, reason "... ban not in force", respond to the call's position;
        I-9002 (P-7206, protected by KF-2026-0802 and KF-2026-0803): two `sos` alerts, one
        `respond` (to the call's position) and one `protect` in all, from KF-2026-0802's alert;
        I-9003 (nobody's ban): an `sos` alert without `ban_id`, priority 1, respond to the call,
        escalated after 60 s, then acknowledged; I-9004 (the ban was lifted): unmatched, the
        same; I-9005 (revoked ban): matched, not in force; I-9006 (no position, nobody's):
        `sos` priority 1 without a task; I-9007 (a tip): `unmatched_incident` priority 3.
        """,
        [expired, f, g, lifted, revoked],
        s,
        until="2026-11-22T20:20:00Z",
    )


SCENARIOS = [end_of_life, position_lost, sos]
