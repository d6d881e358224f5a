"""The report's figures on a hand-written log (tests/report/golden.py), checked exactly.

Every expected number below was worked out by hand from the log; each check says how. Cells
are compared as (value, persons) before suppression; `publish` is tested on its own, at 4 and
5 persons.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.report import Cell, Period, compute, percentile, publish
from alerts.report.cells import protect
from config.policy import load_policy
from tests.report import golden

PERIOD = Period(date(2026, 11, 2), date(2026, 11, 15))


def raw(x: Any) -> Any:
    """Cells as [value, persons], recursively ([value, persons, "forced"] for a cell suppressed
    to protect another)."""
    if isinstance(x, Cell):
        return [x.value, x.persons, "forced"] if x.forced else [x.value, x.persons]
    if isinstance(x, dict):
        return {k: raw(v) for k, v in x.items()}
    if isinstance(x, list):
        return [raw(v) for v in x]
    return x


@pytest.fixture(scope="module")
def fig() -> dict[str, Any]:
    return raw(compute(golden.records(), PERIOD, load_policy()))


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == 4.0
    assert percentile([10.0, 30.0, 45.0, 60.0, 120.0], 50) == 45.0
    assert percentile([7.0], 90) == 7.0


def test_period_is_local_days() -> None:
    assert PERIOD.start.isoformat() == "2026-11-02T00:00:00+01:00"
    assert PERIOD.end.isoformat() == "2026-11-16T00:00:00+01:00"
    assert PERIOD.weeks() == ["2026-W45", "2026-W46"]


def test_source_span_is_whole_days(fig: dict[str, Any]) -> None:
    # the two span markers; 79 records in the log
    assert fig["source"] == {"records": 79, "first_day": "2026-10-01", "last_day": "2026-12-20"}


def test_response_whole_period(fig: dict[str, Any]) -> None:
    t = fig["response"]["total"]
    # P1 in the period: a1 a2 a3 a4 a5 a6 (a1old and a2b are outside), six persons
    assert t["p1_alerts"] == [6, 6]
    # ack from becoming P1: a1 30, a2 120, a3 45 (P1 at 08:01:00, acked 08:01:45), a4 10,
    # a6 60; a5 never (resolved by the system). Sorted 10 30 45 60 120: p50 rank 3, p90 rank 5
    assert t["acknowledge"] == {
        "n": [5, 5],
        "p50_s": [45.0, 5],
        "p90_s": [120.0, 5],
        "within_sla": [4, 4],  # <= 60 s: a1, a3, a4, a6 (exactly 60 counts)
        "share_within_sla": [0.6667, 4],  # 4 of the 6 P1 alerts
        "never_acknowledged": [1, 1],
    }
    # unit accepted: a1 20 s (update), a2 50 s (second unit; the first expired), a3 40 s (from
    # the alert's `response`, after a decline). 20 40 50: p50 rank 2, p90 rank 3
    assert t["unit_accepted"] == {"n": [3, 3], "p50_s": [40.0, 3], "p90_s": [50.0, 3]}
    # on scene: a1 360 s, a2 600 s, a3 480 s (response.on_scene_at 08:09:00 - 08:01:00)
    assert t["on_scene"] == {"n": [3, 3], "p50_s": [480.0, 3], "p90_s": [600.0, 3]}
    assert t["escalations"] == [1, 1]  # a2
    assert t["tasks_expired"] == [1, 1]  # t2a
    assert t["tasks_declined"] == [1, 1]  # t3


def test_response_per_week(fig: dict[str, Any]) -> None:
    w45, w46 = fig["response"]["weeks"]
    assert (w45["week"], w46["week"]) == ("2026-W45", "2026-W46")
    # W45: a1 a2 a3; acks 30 120 45 -> p50 45, p90 120; within: a1, a3
    assert w45["p1_alerts"] == [3, 3]
    assert w45["acknowledge"]["p50_s"] == [45.0, 3]
    assert w45["acknowledge"]["p90_s"] == [120.0, 3]
    assert w45["acknowledge"]["within_sla"] == [2, 2]
    assert w45["escalations"] == [1, 1]
    # W46: a4 a5 a6; acks 10 60 -> p50 rank 1 = 10, p90 rank 2 = 60; a5 never
    assert w46["p1_alerts"] == [3, 3]
    assert w46["acknowledge"]["p50_s"] == [10.0, 2]
    assert w46["acknowledge"]["p90_s"] == [60.0, 2]
    assert w46["acknowledge"]["share_within_sla"] == [0.6667, 2]
    assert w46["acknowledge"]["never_acknowledged"] == [1, 1]
    assert w46["unit_accepted"]["n"] == [0, 0]
    assert w46["on_scene"]["p50_s"] == [None, 0]


def test_alerts_by_kind_day_hour(fig: dict[str, Any]) -> None:
    a = fig["alerts"]
    # opened in the period: ap1 ap2 a1 a2 a3 a4 a5 a6 s1 s2; persons A1..A6
    assert a["total"] == [10, 6]
    assert a["by_kind"] == {
        "zone_breach": [5, 5],
        "proximity_breach": [1, 1],
        "approach": [2, 2],
        "signal_lost": [2, 2],
    }
    days = {d["day"]: d for d in a["per_day"]}
    assert len(days) == 14
    # 3 Nov: a1 (P1) and ap1 (P2)
    assert days["2026-11-03"]["by_kind"]["zone_breach"] == {
        "all": [1, 1],
        "1": [1, 1],
        "2": [0, 0],
        "3": [0, 0],
    }
    assert days["2026-11-03"]["by_priority"] == {"1": [1, 1], "2": [1, 1], "3": [0, 0]}
    # ap2 at 23:30 UTC on Sunday 8 Nov is 00:30 on Monday 9 Nov local time
    assert days["2026-11-08"]["by_kind"]["approach"]["all"] == [0, 0]
    assert days["2026-11-09"]["by_kind"]["approach"]["2"] == [1, 1]
    # a3 counts at its most urgent priority (1), though it opened at 2
    assert days["2026-11-05"]["by_priority"] == {"1": [1, 1], "2": [0, 0], "3": [0, 0]}
    hours = {h["hour"]: (h["alerts"], h["violations"]) for h in a["by_hour"]}
    # local hours: ap2 0, a5 4, a3 9, ap1 10, a6 10, a1 11, s1 13, a4 15, a2 23, s2 23 (a2 and
    # s2 are both P-A2: one person)
    assert {h: c for h, (c, _) in hours.items() if c[0]} == {
        0: [1, 1],
        4: [1, 1],
        9: [1, 1],
        10: [2, 2],
        11: [1, 1],
        13: [1, 1],
        15: [1, 1],
        23: [2, 1],
    }
    assert {h: v for h, (_, v) in hours.items() if v[0]} == {
        4: [1, 1],
        9: [1, 1],
        10: [1, 1],
        11: [1, 1],
        15: [1, 1],
        23: [1, 1],
    }


def test_false_alarms(fig: dict[str, Any]) -> None:
    fa = fig["alerts"]["false_alarms"]
    # zone breaches: a2's unit found a false alarm; a4 was resolved by an operator with no unit
    # ever accepting; a1, a3 had a response; a6 is open. 2 of 5
    # (one person each way: the union and the share would give them away, they are forced)
    assert fa["zone_breach"] == {
        "alerts": [5, 5],
        "false_alarm_outcome": [1, 1],
        "resolved_without_response": [1, 1],
        "false_alarms": [2, 2, "forced"],
        "share": [0.4, 2, "forced"],
    }
    # a5 was resolved by the system (ban lifted): not a false alarm
    assert fa["proximity_breach"]["false_alarms"] == [0, 0]
    assert fa["proximity_breach"]["share"] == [0.0, 1, "forced"]  # 1 person: small anyway


def test_funnel(fig: dict[str, Any]) -> None:
    steps = {s["step"]: s for s in fig["funnel"]["steps"]}
    # confirmed violations in the period: A1 A2 A3 A4 A6 (A5's was only probable)
    assert steps["confirmed_violation"]["persons"] == [5, 5]
    # interview held: A1 A2 A4; A3 refused (after not_reached), A6's interview is open
    assert steps["interview_held"]["persons"] == [3, 3]
    assert steps["interview_held"]["share_of_previous"] == [0.6, 3]
    assert steps["interview_held"]["dropped"] == {"pending": [1, 1], "refused": [1, 1]}
    assert steps["talk_held"]["persons"] == [3, 3]
    assert steps["talk_held"]["dropped"] == {}
    # A2 declined help
    assert steps["accepted_help"]["persons"] == [2, 2]
    assert steps["accepted_help"]["dropped"] == {"held_declines_help": [1, 1]}
    # A4 accepted help without consent to share
    assert steps["consent"]["persons"] == [1, 1]
    assert steps["consent"]["dropped"] == {"no_consent": [1, 1]}
    assert steps["referral_contact_made"]["persons"] == [1, 1]
    assert steps["referral_contact_made"]["share_of_previous"] == [1.0, 1]


def test_effect(fig: dict[str, Any]) -> None:
    e = fig["effect"]
    # talks held in the period: A1 (accepts, 6 Nov), A2 (declines, 7 Nov), A4 (accepts, 12 Nov)
    assert e["talks_held"] == [3, 3]
    w30, w90 = e["windows"]
    # 30 days: A1 before a1old + a1 = 2, after 0; A2 before a2 = 1, after a2b (20 Nov) = 1;
    # A4 before a4 = 1, after 0
    assert w30["incomplete_follow_up"] == [0, 0]
    assert w30["all"] == {
        "persons": [3, 3],
        "violations_before": [4, 3],
        "violations_after": [1, 3],
        "persons_none_after": [2, 2],
        "share_none_after": [0.6667, 2],
        "persons_with_violations_before": [3, 3],
        "of_them_none_after": [2, 2],
        "share_of_them_none_after": [0.6667, 2],
        "persons_fewer_after": [2, 2],
        "persons_same": [1, 1],
        "persons_more_after": [0, 0],
    }
    assert w30["accepts"]["persons"] == [2, 2]
    assert w30["accepts"]["violations_before"] == [3, 2]
    assert w30["accepts"]["share_none_after"] == [1.0, 2]
    assert w30["declines"]["persons"] == [1, 1]
    assert w30["declines"]["violations_after"] == [1, 1]
    assert w30["declines"]["share_none_after"] == [0.0, 1]
    # 90 days reach before the data's first record (1 Oct) for every talk
    assert w90["incomplete_follow_up"] == [3, 3]
    assert w90["all"]["persons"] == [0, 0]
    assert w90["all"]["share_none_after"] == [None, 0]


def test_data_quality(fig: dict[str, Any]) -> None:
    q = fig["data_quality"]
    # s1: last fix 12:00, restored 14:00 = 2 h; s2: last fix 22:00 UTC 15 Nov, period ends
    # 23:00 UTC = 1 h
    assert q["signal_loss"] == {"hours": [3.0, 2], "episodes": [2, 2]}
    # in the period: schema (P-A1, P-A2), decode (P-A3); the two span markers are outside
    assert q["dead_letters"] == {"decode": [1, 1], "schema": [2, 2]}
    # a3's two revisions name the same implausible fix; among the positions, the jump of
    # 0.02 deg latitude (~2.2 km) in 30 s is the only one over 40 m/s
    assert q["implausible_fixes"] == {"in_alerts": [1, 1], "in_positions": [1, 1]}


@settings(max_examples=15, deadline=None)
@given(st.permutations(golden.records()))
def test_order_and_duplicates_do_not_matter(shuffled: list[golden.Rec]) -> None:
    """A store query or a concatenated log may hold records in any order, some twice."""
    expected = raw(compute(golden.records(), PERIOD, load_policy()))
    got = raw(compute(shuffled + shuffled[:20], PERIOD, load_policy()))
    assert got["source"]["records"] == expected["source"]["records"] + 20
    del got["source"], expected["source"]
    assert got == expected


def _persons(n: int) -> list[golden.Rec]:
    """`n` persons, one P1 zone breach each, acked in 30 s, on 3 Nov."""
    out: list[golden.Rec] = []
    for i in range(n):
        p, aid = f"P-S{i:02d}", f"s{i}"
        t0, t1 = f"2026-11-03T10:{i:02d}:00Z", f"2026-11-03T10:{i:02d}:30Z"
        out.append(golden.alert(aid, 1, "open", "zone_breach", 1, "confirmed", p, t0, t0))
        out.append(golden.alert(aid, 2, "acknowledged", "zone_breach", 1, "confirmed", p, t0, t1))
    return out


def test_suppression_at_four_persons() -> None:
    published, suppressed = publish(compute(_persons(4), PERIOD, load_policy()))
    total = published["response"]["total"]
    assert total["p1_alerts"] == "<5"
    assert total["acknowledge"]["p50_s"] == "<5"
    assert published["alerts"]["by_kind"]["zone_breach"] == "<5"
    assert published["funnel"]["steps"][0]["persons"] == "<5"
    assert total["escalations"] == 0  # an empty cell is not small: shown
    assert suppressed > 0
    # the same cells published at 5
    five, suppressed5 = publish(compute(_persons(5), PERIOD, load_policy()))
    assert five["response"]["total"]["p1_alerts"] == 5
    assert five["response"]["total"]["acknowledge"]["p50_s"] == 30.0
    assert five["alerts"]["by_kind"]["zone_breach"] == 5
    assert five["funnel"]["steps"][0]["persons"] == 5
    assert suppressed5 < suppressed


def test_suppression_counts_persons_not_records() -> None:
    """Ten alerts of one person are one person: suppressed."""
    recs = []
    for i in range(10):
        t = f"2026-11-03T1{i}:00:00Z"
        recs.append(golden.alert(f"x{i}", 1, "open", "zone_breach", 1, "confirmed", "P-1", t, t))
    published, _ = publish(compute(recs, PERIOD, load_policy()))
    assert published["alerts"]["by_kind"]["zone_breach"] == "<5"


def test_protect_suppresses_a_second_cell_beside_a_lone_small_one() -> None:
    """A group whose sum is published (a day's priorities, a step's drop-outs): one small cell
    alone could be recovered by subtraction, so the smallest other one goes too."""
    assert protect([Cell(10, 10), Cell(3, 3), Cell(20, 20)]) == [
        Cell(10, 10, True),
        Cell(3, 3),
        Cell(20, 20),
    ]
    two = [Cell(10, 10), Cell(3, 3), Cell(2, 2)]
    assert protect(two) == two  # two small ones: neither can be told from the other
    alone = [Cell(3, 3), Cell(0, 0)]
    assert protect(alone) == alone  # no other cell to take
    out, n = publish(protect([Cell(10, 10), Cell(3, 3), Cell(20, 20)]))
    assert (out, n) == (["<5", "<5", 20], 2)


def test_a_small_week_takes_the_other_week_with_it() -> None:
    """Six persons in W45, two in W46: the period's total (8) minus W45 would give W46 away, so
    W45's count is suppressed too, and with it its share within the SLA."""
    recs = _persons(6)
    for i in range(2):
        p, t0, t1 = f"P-T{i}", f"2026-11-10T10:0{i}:00Z", f"2026-11-10T10:0{i}:30Z"
        for seq, state, at in ((1, "open", t0), (2, "acknowledged", t1)):
            recs.append(golden.alert(f"t{i}", seq, state, "zone_breach", 1, "confirmed", p, t0, at))
    out, _ = publish(compute(recs, PERIOD, load_policy()))
    w45, w46 = out["response"]["weeks"]
    assert out["response"]["total"]["p1_alerts"] == 8
    assert w46["p1_alerts"] == "<5"
    assert w45["p1_alerts"] == "<5"  # 6 persons, suppressed to protect W46
    assert w45["acknowledge"]["share_within_sla"] == "<5"


def test_publish_counts_each_suppressed_cell() -> None:
    out, n = publish({"a": Cell(3, 4), "b": [Cell(7, 5), Cell(1, 1)], "c": Cell(0, 0), "d": 2})
    assert out == {"a": "<5", "b": [7, "<5"], "c": 0, "d": 2}
    assert n == 2


def test_free_text_never_becomes_a_label() -> None:
    recs = [
        golden.dead("P-7731 was at 59.1961,17.6268", "P-1", "2026-11-03T10:00:00Z"),
        golden.alert("k", 1, "open", "Zone Breach of P-7731", 1, None, "P-1", "2026-11-03T10:00:00Z", "2026-11-03T10:00:00Z"),  # noqa: E501
    ]
    f = compute(recs, PERIOD, load_policy())
    assert list(f["data_quality"]["dead_letters"]) == ["other"]
    assert f["alerts"]["kinds"] == ["other"]
