"""Contract v2, the fix path: rules 3 (implausible jumps), 4 (approach), 5 (late proximity
evidence) and 6 (knock counts approach events), on the engine as replay drives it.

Positions are geodesic (pyproj `Geod.fwd` on WGS84) around real places near Stockholm.
Besides one test per clause of each rule: the golden scenarios' stories (tests/scenarios/v2_*)
asserted semantically, a hypothesis property (a person standing still never opens a
priority-1 alert, nor an approach) and a simulated 8-hour day of 50 persons standing still
near zones (see the docstrings of those two for the noise arithmetic).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod

from alerts.banstate import LastFix
from alerts.detectors.plausibility import _surely_plausible, implied_speed
from alerts.engine import Engine, Incoming
from alerts.model import Alert, Kind
from alerts.tasks import KnockTracker
from config.policy import Policy
from geofence.decoding import BANS, POSITIONS
from geofence.records import FixSource, LocationFix
from tests.unit.catalogue import ban, circle, encode, fix
from tests.unit.test_scenarios import output, ts

POLICY = Policy()
G = Geod(ellps="WGS84")
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=3)  # decode's reference for "from the future"
SUNDBYBERG = (59.3612, 17.9717)
SOLNA = (59.3597, 17.9989)
KUNGSHOLMEN = (59.3325, 18.0265)
HAMMARBY = (59.3040, 18.1000)
NACKA = (59.3105, 18.1636)
#: per-axis sigma of 2-D Gaussian noise whose 68 % radius is `accuracy_m` (Rayleigh:
#: r68 = sigma * sqrt(-2 ln 0.32) = 1.5096 sigma)
SIGMA_PER_ACCURACY = 1 / 1.5096
Json = dict[str, Any]


def fwd(at: tuple[float, float], azimuth: float, metres: float) -> tuple[float, float]:
    """(lat, lon) `metres` from `at` along the geodesic leaving at `azimuth` (degrees)."""
    lon, lat, _ = G.fwd(at[1], at[0], azimuth, metres)
    return lat, lon


def inv(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(G.inv(a[1], a[0], b[1], b[0])[2])


@dataclass
class Run:
    """One engine on an event clock, as `banwatch replay` runs it; outputs kept in order."""

    policy: Policy = POLICY
    engine: Engine = field(init=False)
    alerts: dict[str, list[Json]] = field(default_factory=dict)
    tasks: list[Json] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = Engine(self.policy, event_clock=True)

    def ban(self, value: Json) -> None:
        self.engine.handle(Incoming(BANS, value["ban_id"], encode(value)), NOW)

    def fix(
        self,
        at: datetime,
        where: tuple[float, float],
        acc: float,
        person: str = "P-7731",
        device: str = "EM-0091",
        **extra: Any,
    ) -> None:
        value = fix(where[0], where[1], at, acc, person_id=person, device_id=device, **extra)
        for r in self.engine.handle_batch([Incoming(POSITIONS, person, encode(value))], NOW):
            for topic, _key, v in r.outputs:
                if topic == "alerts":
                    assert v is not None
                    self.alerts.setdefault(v["alert_id"], []).append(v)
                elif topic == "patrol-tasks":
                    assert v is not None
                    self.tasks.append(v)

    def of_kind(self, kind: str) -> list[list[Json]]:
        return [revs for revs in self.alerts.values() if revs[0]["kind"] == kind]


def zone_ban(centre: tuple[float, float], radius: float, buffer: float = 0.0, **kw: Any) -> Json:
    feature = circle("home", centre[0], centre[1], radius, buffer_m=buffer)
    return ban("KF-2026-0900", [feature], proximity_m=kw.pop("proximity_m", None), **kw)


# ============================================================ rule 3: implausible jumps
def test_a_multipath_jump_into_the_zone_counts_as_possible_and_says_why() -> None:
    """300 m outside, a fix every 5 s; one fix 20 m inside zone + buffer: 320 m in 5 s,
    (320 - 8 - 8) / 5 = 61 m/s > 40 m/s. Possible (p2), never p1; the fixes after it are back
    at the true place (implausible from the outlier, plausible from the fix before it)."""
    r = Run()
    r.ban(zone_ban(SUNDBYBERG, 60, 30))
    here = fwd(SUNDBYBERG, 10, 90 + 300)
    for k in range(20):
        where = fwd(SUNDBYBERG, 10, 90 - 20) if k == 8 else fwd(here, 40 * k, 3)
        r.fix(T0 + timedelta(seconds=5 * k), where, 8.0)
    [breach] = r.of_kind("zone_breach")
    assert breach[0]["confidence"] == "possible" and breach[0]["priority"] == 2
    assert "implausible jump (61 m/s" in breach[0]["reason"]
    assert all(v["priority"] == 2 for v in breach)
    assert breach[-1]["episode"] == "ended"
    assert not r.tasks and not r.of_kind("approach")


def test_the_next_fix_plausible_from_the_jump_decides_the_level_with_a_revision() -> None:
    r = Run()
    r.ban(zone_ban(SOLNA, 60, 30))
    bus = fwd(SOLNA, 200, 90 + 300)
    inside = fwd(SOLNA, 200, 90 - 45)
    for k in range(14):
        r.fix(T0 + timedelta(seconds=5 * k), bus if k < 10 else fwd(inside, 90 * k, 1), 8.0)
    [breach] = r.of_kind("zone_breach")
    assert (breach[0]["confidence"], breach[0]["priority"]) == ("possible", 2)
    assert "implausible jump" in breach[0]["reason"]
    rise = breach[1]
    assert (rise["confidence"], rise["priority"]) == ("confirmed", 1)
    assert rise["updated_at"] == "2026-11-22T10:00:55Z"  # the fix after the jump
    assert {t["kind"] for t in r.tasks} == {"interview"}  # the chain goes on by outcomes


@pytest.mark.parametrize(
    ("jump", "acc", "implausible"),
    [(250.0, 50.0, False), (270.0, 30.0, True), (250.0, 30.0, False)],
)
def test_the_speed_is_measured_after_subtracting_both_accuracies(
    jump: float, acc: float, implausible: bool
) -> None:
    """Jumps in 5 s into the zone: (250 - 50 - 50) / 5 = 30 m/s and (250 - 30 - 30) / 5 =
    38 m/s are plausible (40 m/s), (270 - 30 - 30) / 5 = 42 m/s is not."""
    r = Run()
    r.ban(zone_ban(KUNGSHOLMEN, 100))
    start = fwd(KUNGSHOLMEN, 0, 100 + 150)
    r.fix(T0, start, acc)
    r.fix(T0 + timedelta(seconds=5), fwd(start, 180, jump), acc)
    [breach] = r.of_kind("zone_breach")
    assert ("implausible" in breach[0]["reason"]) is implausible
    assert breach[0]["priority"] == (2 if implausible else 1)


def test_a_jump_of_either_person_makes_proximity_possible_only() -> None:
    r = Run()
    r.ban(zone_ban(NACKA, 50, proximity_m=200.0))
    her = fwd(HAMMARBY, 0, 0)
    him = fwd(her, 90, 900)
    for k in range(4):
        r.fix(T0 + timedelta(seconds=5 * k), her, 10, "P-1102", "PH-1102", source="victim_device")
        r.fix(T0 + timedelta(seconds=5 * k + 1), him, 10)
    r.fix(T0 + timedelta(seconds=21), fwd(her, 90, 50), 10)  # 850 m in 5 s
    [prox] = r.of_kind("proximity_breach")
    assert (prox[0]["confidence"], prox[0]["priority"]) == ("possible", 2)
    assert "implausible jump" in prox[0]["reason"]
    assert not r.tasks


# ============================================================ rule 4: approach
def test_a_fast_car_with_one_fix_a_minute_is_warned_at_500_m() -> None:
    """100 km/h, a fix a minute, 8.8 km ... 2,167 m then 500 m from zone + buffer."""
    r = Run()
    r.ban(zone_ban(KUNGSHOLMEN, 150, 50))
    for k, d in enumerate([8834.0, 7167.0, 5500.0, 3833.0, 2167.0, 500.0]):
        r.fix(T0 + timedelta(minutes=k), fwd(KUNGSHOLMEN, 270, 200 + d), 8.0)
    [approach] = r.of_kind("approach")
    assert approach[0]["opened_at"] == "2026-11-22T10:05:00Z"
    assert approach[0]["priority"] == 2 and approach[0]["distance_m"] == pytest.approx(500, abs=1)


def test_a_fast_car_whose_tag_comes_on_2167_m_away_is_warned_on_the_next_fix() -> None:
    r = Run()
    r.ban(zone_ban(SOLNA, 150, 50))
    r.fix(T0, fwd(SOLNA, 200, 200 + 2166.7), 10.0)
    r.fix(T0 + timedelta(minutes=1), fwd(SOLNA, 200, 200 + 500), 10.0)
    [approach] = r.of_kind("approach")
    assert "1667 m closer" in approach[0]["reason"]


def test_an_approach_ends_when_the_person_has_not_closed_in_for_the_window() -> None:
    r = Run()
    r.ban(zone_ban(KUNGSHOLMEN, 150, 50))
    for k, d in enumerate([1400.0, 1200.0, 1000.0, 800.0, 600.0]):
        r.fix(T0 + timedelta(minutes=k), fwd(KUNGSHOLMEN, 90, 200 + d), 8.0)
    last_closing = T0 + timedelta(minutes=4)
    for k in range(1, 15):  # parked 600 m away, a fix a minute
        r.fix(last_closing + timedelta(minutes=k), fwd(KUNGSHOLMEN, 90, 200 + 600 + k % 2), 8.0)
    [approach] = r.of_kind("approach")
    ended = [v for v in approach if v["episode"] == "ended"]
    assert len(ended) == 1 and ended[0] is approach[-1]
    assert "not closing in" in ended[0]["reason"]
    # runs of 3 fixes up to 300 s old: still closing at 10:07 (10:01-10:03 against 10:05-10:07)
    assert ended[0]["updated_at"] == "2026-11-22T10:12:00Z"
    # parked: nothing material changed, so no revision between the opening ones and the end
    assert [v["seq"] for v in approach] == list(range(1, len(approach) + 1))
    assert all(v["distance_m"] < 700 for v in approach[-2:])
    assert len(approach) <= 4


def test_an_approach_ends_beyond_approach_m_plus_the_margin() -> None:
    r = Run()
    r.ban(zone_ban(KUNGSHOLMEN, 150, 50))
    distances = [1500.0, 1300.0, 1100.0, 900.0, 700.0, 900.0, 1040.0, 1060.0]
    for k, d in enumerate(distances):
        r.fix(T0 + timedelta(minutes=k), fwd(KUNGSHOLMEN, 0, 200 + d), 8.0)
    [approach] = r.of_kind("approach")
    assert approach[-1]["episode"] == "ended" and approach[-1]["updated_at"].endswith("10:07:00Z")
    assert "beyond 1000 m + 50 m margin" in approach[-1]["reason"]
    assert all(v["episode"] == "active" for v in approach[:-1])


def test_approach_revisions_only_when_the_distance_moved_50_m() -> None:
    """Walking in at 1.3 m/s with a fix every 10 s: 13 m a fix, a revision every ~4 fixes."""
    r = Run()
    r.ban(zone_ban(HAMMARBY, 100, 0))
    for k in range(60):
        r.fix(T0 + timedelta(seconds=10 * k), fwd(HAMMARBY, 135, 100 + 1100 - 13 * k), 5.0)
    [approach] = r.of_kind("approach")
    dist = [v["distance_m"] for v in approach]
    assert all(a - b >= 50 for a, b in itertools.pairwise(dist))
    assert 8 <= len(approach) <= 14


def test_closing_in_must_exceed_twice_every_accuracy_involved() -> None:
    """He closes in 150 m on her proximity circle with 10 m fixes; her phone says 40 m. The
    old distances used her fixes then, the new ones her latest: 2 x (10 + 40 + 10 + 40) =
    200 m > 150 m, no approach. With her at 10 m: 2 x 40 = 80 m < 150 m, an approach."""

    def run(her_acc: float) -> Run:
        r = Run()
        r.ban(zone_ban(NACKA, 50, proximity_m=500.0))
        her = HAMMARBY
        for k, d in enumerate([900.0, 900.0, 900.0, 750.0, 750.0, 750.0]):
            at = T0 + timedelta(seconds=30 * k)
            r.fix(at, her, her_acc, "P-1102", "PH-1102", source="victim_device")
            r.fix(at + timedelta(seconds=1), fwd(her, 225, 500 + d), 10.0)
        return r

    assert not run(40.0).of_kind("approach")
    assert len(run(10.0).of_kind("approach")) == 1


def test_multipath_in_two_fixes_makes_no_approach_but_three_closer_fixes_do() -> None:
    """Standing 600 m from the zone, fixes every 30 s at 10 m: outliers 150 m closer (8 m
    claimed) in two fixes in a row, then 150 m farther in two more; a run of three needs a
    third."""
    r = Run()
    r.ban(zone_ban(SOLNA, 100))
    home = fwd(SOLNA, 300, 100 + 600)
    for k in range(16):
        where = fwd(home, 60 * k, 2)
        if k in (8, 9):
            where = fwd(SOLNA, 300, 100 + 450)
        if k in (12, 13):
            where = fwd(SOLNA, 300, 100 + 750)
        r.fix(T0 + timedelta(seconds=30 * k), where, 8.0 if 8 <= k <= 13 else 10.0)
    assert not r.of_kind("approach")
    for k in range(16, 19):  # he really walks 150 m closer
        r.fix(T0 + timedelta(seconds=30 * k), fwd(SOLNA, 300, 100 + 450), 10.0)
    assert len(r.of_kind("approach")) == 1


def test_an_implausible_jump_never_closes_in() -> None:
    """His tag comes on 6 km from the zone; a minute later a fix 500 m from it (5.5 km in 60 s,
    91 m/s): one fix against one, it would close in by 5.5 km, but it is implausible."""
    r = Run()
    r.ban(zone_ban(SOLNA, 100))
    for k, d in enumerate([6000.0, 500.0, 6000.0, 6000.0]):
        r.fix(T0 + timedelta(minutes=k), fwd(SOLNA, 300, 100 + d), 10.0)
    assert not r.of_kind("approach") and not r.alerts
    r2 = Run()  # the same at 35 m/s is plausible, and a fast approach
    r2.ban(zone_ban(SOLNA, 100))
    for k, d in enumerate([2600.0, 500.0]):
        r2.fix(T0 + timedelta(minutes=k), fwd(SOLNA, 300, 100 + d), 10.0)
    assert len(r2.of_kind("approach")) == 1


# ============================================================ rule 5: late proximity evidence
def _late_run(offset_s: float) -> Run:
    """Her phone every minute at Hammarby sjöstad; his tag in Nacka; at 10:13 a live fix, then
    a stored one stamped 10:05 + `offset_s`, 200 m from where she was at 10:05."""
    r = Run()
    r.ban(zone_ban(NACKA, 50, proximity_m=500.0, electronic_monitoring=False))
    for k in range(15):
        r.fix(T0 + timedelta(minutes=k), fwd(HAMMARBY, 0, 4 * k), 12, "P-1102", "PH-1102")
    him = fwd(NACKA, 90, 1000)  # 1 km east of his zone, 4.6 km from her
    for k in range(4):
        r.fix(T0 + timedelta(minutes=k, seconds=2), him, 9)
    r.fix(T0 + timedelta(minutes=13), him, 9)
    stored = T0 + timedelta(minutes=5, seconds=offset_s)
    r.fix(stored, fwd(fwd(HAMMARBY, 0, 20), 135, 200), 9)
    return r


def test_a_late_fix_is_compared_with_her_fix_closest_in_time() -> None:
    r = _late_run(5)
    [late] = r.of_kind("late_evidence")
    assert late[0]["protected_person"] == "P-1102" and late[0]["priority"] == 3
    assert not r.of_kind("proximity_breach") and not r.tasks


def test_her_fix_closest_in_time_must_be_within_max_fix_age() -> None:
    """Her fixes are a minute apart, so some fix is always within 30 s: move his stored fix to
    before her first fix by more than max_fix_age_s (120 s) instead."""
    r = _late_run(-5 * 60 - 130)
    assert not r.of_kind("late_evidence")


def test_her_late_fix_is_compared_with_his_fix_closest_in_time() -> None:
    r = Run()
    r.ban(zone_ban(NACKA, 50, proximity_m=500.0, electronic_monitoring=False))
    him = fwd(HAMMARBY, 270, 300)
    for k in range(12):  # he walks away west, a fix a minute: at 10:00 300 m from her home
        r.fix(T0 + timedelta(minutes=k), fwd(him, 270, 400 * k), 9)
    r.fix(T0 + timedelta(minutes=11), HAMMARBY, 12, "P-1102", "PH-1102")
    r.fix(T0 + timedelta(seconds=3), HAMMARBY, 12, "P-1102", "PH-1102")  # her stored fix
    [late] = r.of_kind("late_evidence")
    assert late[0]["protected_person"] == "P-1102"


def test_an_in_order_fix_older_than_her_latest_uses_her_fix_closest_in_time() -> None:
    """His tag uploads its stored fixes in order (his device had nothing newer), but her
    latest fix is 8 minutes newer: he is compared with her fix of that time."""
    r = Run()
    r.ban(zone_ban(NACKA, 50, proximity_m=500.0, electronic_monitoring=False))
    for k in range(10):
        r.fix(T0 + timedelta(minutes=k), HAMMARBY, 10, "P-1102", "PH-1102")
    r.fix(T0 + timedelta(minutes=1, seconds=5), fwd(HAMMARBY, 0, 200), 8)
    [prox] = r.of_kind("proximity_breach")
    assert prox[0]["priority"] == 1
    assert prox[0]["protected_position"]["ts"] == "2026-11-22T10:01:00Z"


# ============================================================ rule 6: knock counts events
def _approach_alert(person: str, at: datetime, n: int) -> Alert:
    return Alert(f"A-{n}", Kind.approach, 2, "probable", f"KF-{n}", 1, person, at, "")


def test_knock_counts_approach_events_not_alerts() -> None:
    k = KnockTracker()
    t = T0
    opened = [  # minutes after T0; within 30 min of the last *counted* one: the same event
        0,
        10,
        29,  # event 1 (three alerts, three bans)
        31,  # event 2 (31 min after the last counted one, 2 after the last alert)
        24 * 60,
        24 * 60 + 20,  # event 3: knock
    ]
    tasks = [
        k.observe(_approach_alert("P-1", t + timedelta(minutes=m), i), POLICY)
        for i, m in enumerate(opened)
    ]
    assert [len(x) for x in tasks] == [0, 0, 0, 0, 1, 0]
    [knock] = tasks[4]
    assert (knock.role, knock.kind, knock.alert_id) == ("outreach", "knock", "A-4")


def test_knock_counting_restarts_after_a_knock_and_keeps_the_gap() -> None:
    k = KnockTracker()
    for i, hours in enumerate([0, 24, 48]):
        k.observe(_approach_alert("P-1", T0 + timedelta(hours=hours), i), POLICY)
    # 10 min after the knock's event: the same event; then two more events: the next knock
    assert not k.observe(_approach_alert("P-1", T0 + timedelta(hours=48, minutes=10), 3), POLICY)
    assert not k.observe(_approach_alert("P-1", T0 + timedelta(hours=72), 4), POLICY)
    assert not k.observe(_approach_alert("P-1", T0 + timedelta(hours=96), 5), POLICY)
    assert k.observe(_approach_alert("P-1", T0 + timedelta(hours=120), 6), POLICY)


# ============================================================ golden stories, semantically
def test_scenario_v2_fast_approach() -> None:
    out = output("v2_fast_approach")
    by_person = {revs[0]["restrained_person"]: revs for revs in out.of_kind("approach")}
    assert set(by_person) == {"P-7010", "P-7020"} and len(out.alerts) == 2
    for revs in by_person.values():
        assert revs[0]["distance_m"] == pytest.approx(500, abs=2) and revs[0]["priority"] == 2
    drive = by_person["P-7010"]
    assert drive[0]["opened_at"] == "2026-11-22T15:05:00Z"
    assert [v["episode"] for v in drive] == ["active", "ended"]  # parked: no revision between
    assert "not closing in" in drive[-1]["reason"]
    assert by_person["P-7020"][0]["opened_at"] == "2026-11-22T15:01:00Z"
    assert not out.tasks


def test_scenario_v2_late_proximity() -> None:
    out = output("v2_late_proximity")
    late = out.only("late_evidence")
    assert late[0]["protected_person"] == "P-7111" and late[0]["priority"] == 3
    assert late[0]["position"]["ts"] == "2026-11-22T20:05:05Z"
    assert len(out.alerts) == 1 and not out.tasks


def test_scenario_v2_multipath_jump() -> None:
    out = output("v2_multipath_jump")
    by_person = {revs[0]["restrained_person"]: revs for revs in out.of_kind("zone_breach")}
    outlier, real = by_person["P-7210"], by_person["P-7220"]
    assert {v["priority"] for v in outlier} == {2} and outlier[-1]["episode"] == "ended"
    assert "implausible jump" in outlier[0]["reason"]
    assert not out.tasks_for(outlier[0]["alert_id"])
    assert (real[0]["priority"], real[1]["priority"]) == (2, 1)
    assert ts(real[1]["updated_at"]) - ts(real[0]["updated_at"]) == timedelta(seconds=5)
    assert {t["kind"] for t in out.tasks_for(real[0]["alert_id"])} == {
        "respond",
        "interview",
    }
    assert not out.of_kind("approach")


def test_scenario_v2_knock_events() -> None:
    out = output("v2_knock_events")
    approaches = sorted(out.of_kind("approach"), key=lambda revs: revs[0]["opened_at"])
    assert len(approaches) == 4
    assert len({revs[0]["ban_id"] for revs in approaches[:2]}) == 2  # one event, two bans
    [knock] = [t for t in out.tasks if t["kind"] == "knock"]
    assert knock["alert_id"] == approaches[3][0]["alert_id"]  # the third event, not alert


# ============================================================ standing still: noise
def _standing_fixes(
    rng: random.Random,
    where: tuple[float, float],
    start: datetime,
    n: int,
    every_s: float,
    acc: tuple[float, float],
    outlier_rate: float,
    truncate_sigmas: float | None = None,
    max_run: int | None = None,
    clean_start: int = 0,
) -> list[tuple[datetime, tuple[float, float], float, bool]]:
    """(time, position, accuracy, is_outlier) of a person standing at `where`: honest 2-D
    Gaussian noise (per-axis sigma = accuracy / 1.5096; its radius cut at `truncate_sigmas`
    sigma if given), and multipath outliers at `outlier_rate`: jumps of 30-150 m (one in
    seven 150-3,000 m, unless truncated) in any direction, claiming 5-15 m. `max_run`: at most
    that many outliers in a row; `clean_start`: none among the first fixes."""
    out: list[tuple[datetime, tuple[float, float], float, bool]] = []
    for k in range(n):
        at = start + timedelta(seconds=k * every_s)
        if (
            k >= clean_start
            and not (
                max_run is not None and len(out) >= max_run and all(o[3] for o in out[-max_run:])
            )
            and rng.random() < outlier_rate
        ):
            big = truncate_sigmas is None and rng.random() < 1 / 7
            r = rng.uniform(150, 3000) if big else rng.uniform(30, 150)
            out.append((at, fwd(where, rng.uniform(0, 360), r), rng.uniform(5, 15), True))
            continue
        a = rng.uniform(*acc)
        s = a * SIGMA_PER_ACCURACY
        r = math.hypot(rng.gauss(0, s), rng.gauss(0, s))
        if truncate_sigmas is not None:
            r = min(r, truncate_sigmas * s)
        out.append((at, fwd(where, rng.uniform(0, 360), r), a, False))
    return out


@st.composite
def standing_still(draw: st.DrawFn) -> tuple[Json, list[Incoming]]:
    """A person standing still near a zone (and maybe near the protected person, standing
    still too), any accuracy 5-50 m, a fix every 1-50 s for up to an hour, occasional
    outliers of up to 150 m (at most two in a row, none among the first six fixes)."""
    place = draw(st.sampled_from([SUNDBYBERG, SOLNA, KUNGSHOLMEN, HAMMARBY, NACKA]))
    radius, buffer = draw(st.floats(30, 400)), draw(st.sampled_from([0.0, 30.0, 50.0]))
    a_lo = draw(st.floats(5, 50))
    a_hi = draw(st.floats(a_lo, 50))
    jitter = 3 * a_hi * SIGMA_PER_ACCURACY  # the noise's cut: at most 99 m
    # neither a fix nor an outlier's 15 m disc reaches in
    gap = draw(st.floats(jitter + 150 + 15 + 1, 1400))
    where = fwd(place, draw(st.floats(0, 360)), radius + buffer + gap)
    prox = draw(st.sampled_from([None, 200.0, 500.0]))
    apart = (prox or 0) + 2 * jitter + 150 + 100 + draw(st.floats(0, 1000))
    her = fwd(where, draw(st.floats(0, 360)), apart)
    every = draw(st.floats(1, 50))
    n = min(int(3600 / every), 150)
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    rate = draw(st.sampled_from([0.0, 0.02, 0.1]))
    his = _standing_fixes(rng, where, T0, n, every, (a_lo, a_hi), rate, 3.0, 2, 6)
    events = [(at, fix(*pos, at, a)) for at, pos, a, _ in his]
    if prox is not None:
        hers = _standing_fixes(
            rng, her, T0 + timedelta(seconds=every / 2), n, every, (a_lo, a_hi), 0.0, 3.0
        )
        events += [
            (at, fix(*pos, at, a, person_id="P-1102", device_id="PH-1102", source="phone"))
            for at, pos, a, _ in hers
        ]
    feature = circle("home", place[0], place[1], radius, buffer_m=buffer)
    value = ban("KF-2026-0042", [feature], proximity_m=prox)
    events.sort(key=lambda e: e[0])
    return value, [Incoming(POSITIONS, e["person_id"], encode(e)) for _, e in events]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(standing_still())
def test_standing_still_never_opens_a_priority_1_alert_nor_an_approach(
    case: tuple[Json, list[Incoming]],
) -> None:
    """The contract makes a fix whose point lies inside zone + buffer `probable` (p1) unless
    it is an implausible jump, and a 150 m jump 30 s after the last fix is a plausible 4 m/s.
    So the domain where "standing still never opens p1" is what the contract says is: the
    person stands farther than the noise can carry a fix. Honest Gaussian noise is
    unbounded; here its radius is cut at 3 sigma (1.99 x the accuracy, 99 m at 50 m; 98.9 %
    of fixes are within it) and outliers reach 150 m, so he stands > 3 sigma + 150 m outside
    zone + buffer, and > 2 x 3 sigma + 150 m outside her proximity circle.

    Approach is the part that is not trivial: 150 m multipath jumps with 5-15 m claimed
    accuracy beat the contract's threshold (50 m, twice the accuracies) one fix against one.
    The engine compares runs of three consecutive fixes (an older run at its nearest, the
    newest at its farthest, each with its largest accuracy): with at most two outliers in a
    row, each run holds a true fix whose noise is < 1.99 x its accuracy, so the closing it
    can show stays below twice the accuracies. (While the window holds fewer than six fixes,
    shorter runs stand in and 300 m of closing is required: enough against a 150 m jump for
    a zone, not always for a protected person's circle, whose noise adds to it; so outliers
    are kept out of the first six fixes here, and fixes come at least every 50 s, which
    keeps six in the 300 s window.)
    """
    the_ban, events = case
    engine = Engine(POLICY, event_clock=True)
    engine.handle(Incoming(BANS, the_ban["ban_id"], encode(the_ban)), NOW)
    outs = [o for r in engine.handle_batch(events, NOW) for o in r.outputs]
    alerts = [v for topic, _, v in outs if topic == "alerts" and v is not None]
    assert not [v for v in alerts if v["priority"] == 1]
    assert not [v for v in alerts if v["kind"] in ("approach", "zone_breach", "proximity_breach")]


# 50 persons, 8 hours, a fix every 30 s
DAY_PLACES = [
    (59.1955, 17.6253),  # Södertälje
    (59.3326, 18.0649),  # Stockholm C
    (59.3597, 17.9989),  # Solna
    (59.2400, 17.9800),  # Huddinge
    (59.3105, 18.1636),  # Nacka
    (59.4439, 18.0687),  # Täby
    (59.4200, 17.8300),  # Järfälla
    (59.3650, 18.1400),  # Lidingö
    (59.1370, 18.1300),  # Haninge
    (59.2900, 17.9500),  # Hägersten
]


@dataclass
class Day:
    alerts: dict[str, list[Json]]
    # per person: (zone centre, reach = radius + buffer, standing distance outside)
    people: dict[str, tuple[tuple[float, float], float, float]]
    sent: dict[str, list[tuple[datetime, tuple[float, float], float, bool]]]


def simulated_day(seed: int, persons: int = 50, outlier_rate: float = 0.01) -> Day:
    rng = random.Random(seed)
    engine = Engine(POLICY, event_clock=True)
    people: dict[str, tuple[tuple[float, float], float, float]] = {}
    sent = {}
    events = []
    for i in range(persons):
        person = f"P-{i:04d}"
        centre = fwd(DAY_PLACES[i % len(DAY_PLACES)], rng.uniform(0, 360), rng.uniform(0, 3000))
        radius, buffer = rng.uniform(80, 250), rng.choice([0.0, 30.0, 50.0])
        outside = rng.uniform(60, 300)
        where = fwd(centre, rng.uniform(0, 360), radius + buffer + outside)
        feature = circle("home", centre[0], centre[1], radius, buffer_m=buffer)
        value = ban(f"KF-SIM-{i:03d}", [feature], restrained_person=person, proximity_m=None)
        engine.handle(Incoming(BANS, value["ban_id"], encode(value)), NOW)
        people[person] = (centre, radius + buffer, outside)
        start = T0 + timedelta(seconds=rng.uniform(0, 30))
        fixes = _standing_fixes(rng, where, start, 8 * 120 + 1, 30.0, (10, 30), outlier_rate)
        sent[person] = fixes
        events += [
            (at, i, fix(*pos, at, a, person_id=person, device_id=f"EM-{i:04d}"))
            for at, pos, a, _ in fixes
        ]
    events.sort(key=lambda e: (e[0], e[1]))
    msgs = [Incoming(POSITIONS, e["person_id"], encode(e)) for _, _, e in events]
    alerts: dict[str, list[Json]] = {}
    for j in range(0, len(msgs), 1000):
        for r in engine.handle_batch(msgs[j : j + 1000], NOW):
            for topic, _, v in r.outputs:
                if topic == "alerts" and v is not None:
                    alerts.setdefault(v["alert_id"], []).append(v)
    return Day(alerts, people, sent)


@pytest.mark.slow
def test_a_simulated_day_of_50_persons_standing_still_near_zones() -> None:
    """50 persons stand still 60-300 m outside a zone (+ buffer) for 8 hours, a fix every
    30 s (961 each), accuracy 10-30 m with honest 2-D Gaussian noise (per-axis sigma =
    accuracy / 1.51), and 1 % multipath outliers: 30-150 m jumps (one in seven up to 3 km)
    claiming 5-15 m. At most 2 approach alerts in total.

    Priority 1 cannot be ruled out here without breaking the contract, and the test does not
    pretend otherwise: a fix whose point lies inside zone + buffer is `probable` (p1), and
    (i) Gaussian noise puts one: at 60 m outside with 30 m accuracy (sigma 19.9 m) a fix
    lands inside with probability P(Z > 3.0) = 1.3e-3, i.e. ~1.2 times in a 961-fix day;
    (ii) a 150 m multipath jump 30 s after the last fix implies (150 - 10 - 20) / 30 = 4 m/s,
    plausible under rule 3 (which stops jumps beyond ~40 x 30 + both accuracies = 1.2 km
    here). So the test checks instead that every p1 alert is one the contract demands: the
    revision that made it p1 carries a fix inside zone + buffer (pyproj, independently of
    the engine) that was not an implausible jump; and that persons whose fixes never land
    inside get no alert of any kind. Measured on seed 1 (commit of this test): 0 approach
    alerts (the engine before contract v2: 50 of 50 persons, 38,714 revisions, up to 960 on
    one alert); 22 zone-breach alerts, 14 of them p1 (9 persons), each on a fix inside.
    """
    day = simulated_day(seed=1)
    approach = [revs for revs in day.alerts.values() if revs[0]["kind"] == "approach"]
    assert len(approach) <= 2
    assert sum(len(revs) for revs in approach) <= 2 * 12
    for revs in day.alerts.values():
        assert revs[0]["kind"] in ("zone_breach", "approach")
        person = revs[0]["restrained_person"]
        centre, reach, _ = day.people[person]
        for v in revs:
            if v["priority"] == 1 and (v is revs[0] or revs[revs.index(v) - 1]["priority"] == 2):
                p = v["position"]
                assert inv(centre, (p["lat"], p["lon"])) <= reach + 0.5, v
                assert "implausible" not in v["reason"]
    inside_somewhere = {
        person
        for person, fixes in day.sent.items()
        for _, pos, a, _ in fixes
        if inv(day.people[person][0], pos) - a <= day.people[person][1] + 0.5
    }
    alerted = {revs[0]["restrained_person"] for revs in day.alerts.values()}
    assert alerted <= inside_somewhere | {r[0]["restrained_person"] for r in approach}
    assert len(alerted) < 50  # not vacuous the other way either: most persons get nothing


def test_the_simulated_day_is_not_vacuous() -> None:
    """A smaller day (5 persons, 2 % outliers): the noise model does put fixes inside and
    does fool a one-against-one comparison (what the engine did before contract v2)."""
    day = simulated_day(seed=3, persons=5, outlier_rate=0.02)
    outliers = sum(o for fixes in day.sent.values() for *_, o in fixes)
    assert outliers > 50
    fooled = 0
    for person, fixes in day.sent.items():
        centre, reach, _ = day.people[person]
        d = [(inv(centre, pos) - reach, a) for _, pos, a, _ in fixes]
        fooled += sum(
            1 for (d0, a0), (d1, a1) in itertools.pairwise(d) if d0 - d1 > max(50.0, 2 * (a0 + a1))
        )
    assert fooled > 10


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-90, 90),
    st.floats(-180, 180),
    st.floats(-90, 90),
    st.floats(-180, 180),
    st.floats(0.5, 500),
    st.floats(0.5, 500),
    st.floats(0, 600),
)
def test_the_cheap_plausibility_bound_never_lets_an_implausible_jump_through(
    lat1: float, lon1: float, lat2: float, lon2: float, acc1: float, acc2: float, dt: float
) -> None:
    """`_surely_plausible` short-cuts the exact test on the hot path: where it says yes, the
    exact implied speed must be within the limit (anywhere: poles, antimeridian)."""
    a = LastFix(lat1, lon1, acc1, T0, "EM-1")
    later = T0 + timedelta(seconds=dt)
    f = LocationFix(
        person_id="P-1",
        device_id="EM-1",
        ts=later,
        lat=lat2,
        lon=lon2,
        accuracy_m=acc2,
        source=FixSource.ankle_tag,
    )
    if _surely_plausible(a, f, POLICY.max_speed_mps):
        assert implied_speed(a, lat2, lon2, acc2, later) <= POLICY.max_speed_mps
