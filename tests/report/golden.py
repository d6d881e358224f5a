# ruff: noqa: E501  (the log reads best one record a line)
"""A small hand-written record log for `banwatch report`, where every figure is known.

Period 2026-11-02 .. 2026-11-15 (Europe/Stockholm, UTC+1 in November): ISO weeks W45 and W46.
The records are written as contract version 2 describes them: alert revisions (with `response`
on one), task revisions with `seq`/`state`, `task-updates` with outcomes, dead letters, input
positions. Two dead letters far outside the period (2026-10-01, 2026-12-20) mark the span of
data, so that 30-day effect windows are complete and 90-day ones are not.

The expected figures, worked out by hand, are in tests/unit/test_report.py next to each check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Rec = tuple[str, str | None, dict[str, Any]]

FIRST, LAST = "2026-11-02", "2026-11-15"


def _pos(lat: float, lon: float, ts: str) -> dict[str, Any]:
    return {"lat": lat, "lon": lon, "accuracy_m": 8.0, "ts": ts}


def alert(
    aid: str,
    seq: int,
    state: str,
    kind: str,
    priority: int,
    confidence: str | None,
    person: str,
    opened: str,
    updated: str,
    **extra: Any,
) -> Rec:
    v: dict[str, Any] = {
        "alert_id": aid,
        "seq": seq,
        "state": state,
        "kind": kind,
        "priority": priority,
        "confidence": confidence,
        "ban_id": f"KF-2026-{person[-2:]}00",
        "ban_version": 1,
        "restrained_person": person,
        "zone_id": "home",
        "position": _pos(59.196123, 17.626789, opened),
        "distance_m": 0.0,
        "opened_at": opened,
        "updated_at": updated,
        "reason": f"fix inside zone 'home' of {person}",
        "recommended_units": [{"unit_id": "SÖ-2140", "distance_m": 850.0}],
        "episode": "active",
        "contract_version": 2,
    }
    v.update(extra)
    return ("alerts", aid, v)


def task(
    tid: str,
    seq: int,
    state: str,
    kind: str,
    aid: str,
    person: str,
    created: str,
    updated: str,
    unit: str | None = None,
) -> Rec:
    role = {
        "interview": "investigator",
        "motivational_talk": "negotiator",
        "referral": "social_services",
    }.get(kind)
    v: dict[str, Any] = {
        "task_id": tid,
        "seq": seq,
        "state": state,
        "alert_id": aid,
        "kind": kind,
        "priority": 1,
        "unit_id": unit,
        "role": role,
        "ban_id": f"KF-2026-{person[-2:]}00",
        "target": {"lat": 59.196123, "lon": 17.626789} if unit else None,
        "created_at": created,
        "due_by": created,
        "updated_at": updated,
        "instructions": "free text of the task",
        "contract_version": 2,
    }
    if role is not None:
        v["restrained_person"] = person
    return ("patrol-tasks", unit or role, v)


def update(
    tid: str,
    action: str,
    ts: str,
    by: str = "SÖ-2140",
    outcome: str | None = None,
    consent: bool | None = None,
) -> Rec:
    return (
        "task-updates",
        tid,
        {
            "task_id": tid,
            "by": by,
            "role": "patrol",
            "ts": ts,
            "action": action,
            "outcome": outcome,
            "consent_to_share": consent,
            "note": "free text, never in the report",
        },
    )


def dead(reason: str, key: str, ts: str) -> Rec:
    return (
        "dead-letters",
        key,
        {
            "source_topic": "positions",
            "partition": 0,
            "offset": 1,
            "key": key,
            "raw": '{"lat": 59.31234}',
            "error": "free text",
            "reason": reason,
            "ts": ts,
        },
    )


def position(person: str, device: str, ts: str, lat: float, lon: float) -> Rec:
    return (
        "positions",
        person,
        {
            "person_id": person,
            "device_id": device,
            "ts": ts,
            "lat": lat,
            "lon": lon,
            "accuracy_m": 10.0,
            "source": "ankle_tag",
        },
    )


def chain(person: str, aid: str, steps: list[tuple[str, str, str, str | None, bool | None]]) -> list[Rec]:
    """Role tasks of one person: (task id, kind, done at, outcome, consent) each; outcome None
    leaves the task assigned."""
    out: list[Rec] = []
    for tid, kind, at, outcome, consent in steps:
        out.append(task(tid, 1, "assigned", kind, aid, person, at, at))
        if outcome is not None:
            out.append(update(tid, "done", at, by="role", outcome=outcome, consent=consent))
            out.append(task(tid, 2, "done", kind, aid, person, at, at))
    return out


def records() -> list[Rec]:
    r: list[Rec] = []
    A = alert
    # --- span markers (outside the period)
    r.append(dead("schema", "P-X1", "2026-10-01T00:00:00Z"))
    r.append(dead("schema", "P-X1", "2026-12-20T00:00:00Z"))
    # --- a1: P-A1, zone breach P1 confirmed, acked after 30 s, unit accepts 20 s, on scene 360 s
    r += [
        A("a1", 1, "open", "zone_breach", 1, "confirmed", "P-A1", "2026-11-03T10:00:00Z", "2026-11-03T10:00:00Z"),
        A("a1", 2, "acknowledged", "zone_breach", 1, "confirmed", "P-A1", "2026-11-03T10:00:00Z", "2026-11-03T10:00:30Z"),
        A("a1", 3, "resolved", "zone_breach", 1, "confirmed", "P-A1", "2026-11-03T10:00:00Z", "2026-11-03T10:30:00Z", resolved_by="op-17"),
        task("t1", 1, "assigned", "respond", "a1", "P-A1", "2026-11-03T10:00:00Z", "2026-11-03T10:00:00Z", unit="SÖ-2140"),
        update("t1", "accept", "2026-11-03T10:00:20Z"),
        update("t1", "on_scene", "2026-11-03T10:06:00Z"),
        update("t1", "done", "2026-11-03T10:20:00Z", outcome="contact_made"),
        task("t1", 4, "done", "respond", "a1", "P-A1", "2026-11-03T10:00:00Z", "2026-11-03T10:20:00Z", unit="SÖ-2140"),
        # an older confirmed violation of P-A1, before the period (counts for the effect only)
        A("a1old", 1, "open", "zone_breach", 1, "confirmed", "P-A1", "2026-10-15T12:00:00Z", "2026-10-15T12:00:00Z"),
        # an approach of P-A1 (P2)
        A("ap1", 1, "open", "approach", 2, "probable", "P-A1", "2026-11-03T09:50:00Z", "2026-11-03T09:50:00Z"),
    ]
    # --- a2: P-A2, escalated, acked after 120 s; first unit's task expires, second accepts at
    # 50 s, on scene 570 s, finds a false alarm
    r += [
        A("a2", 1, "open", "zone_breach", 1, "confirmed", "P-A2", "2026-11-04T22:30:00Z", "2026-11-04T22:30:00Z"),
        A("a2", 2, "escalated", "zone_breach", 1, "confirmed", "P-A2", "2026-11-04T22:30:00Z", "2026-11-04T22:31:00Z"),
        A("a2", 3, "acknowledged", "zone_breach", 1, "confirmed", "P-A2", "2026-11-04T22:30:00Z", "2026-11-04T22:32:00Z"),
        A("a2", 4, "resolved", "zone_breach", 1, "confirmed", "P-A2", "2026-11-04T22:30:00Z", "2026-11-04T22:45:00Z", resolved_by="op-17"),
        task("t2a", 1, "assigned", "respond", "a2", "P-A2", "2026-11-04T22:30:00Z", "2026-11-04T22:30:00Z", unit="SÖ-2141"),
        task("t2a", 2, "expired", "respond", "a2", "P-A2", "2026-11-04T22:30:00Z", "2026-11-04T22:30:30Z", unit="SÖ-2141"),
        task("t2b", 1, "assigned", "respond", "a2", "P-A2", "2026-11-04T22:30:30Z", "2026-11-04T22:30:30Z", unit="SÖ-2142"),
        update("t2b", "accept", "2026-11-04T22:30:50Z", by="SÖ-2142"),
        update("t2b", "en_route", "2026-11-04T22:31:00Z", by="SÖ-2142"),
        update("t2b", "on_scene", "2026-11-04T22:40:00Z", by="SÖ-2142"),
        update("t2b", "done", "2026-11-04T22:44:00Z", by="SÖ-2142", outcome="false_alarm"),
        # P-A2 approaches at 23:30 UTC on Sunday 8 Nov: 00:30 on Monday 9 Nov, local time
        A("ap2", 1, "open", "approach", 2, "probable", "P-A2", "2026-11-08T23:30:00Z", "2026-11-08T23:30:00Z"),
        # a confirmed violation after the period (within 30 days of the talk)
        A("a2b", 1, "open", "zone_breach", 1, "confirmed", "P-A2", "2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z"),
    ]
    # --- a3: P-A3, P2 from an implausible jump, P1 confirmed a minute later; acked 45 s after
    # it became P1; first unit declines, second accepts at 40 s; on scene from `response`
    imp = "fix implausible: 2226 m in 30 s from the previous fix (counts at most as possible)"
    r += [
        A("a3", 1, "open", "zone_breach", 2, "possible", "P-A3", "2026-11-05T08:00:00Z", "2026-11-05T08:00:00Z", reason=imp, position=_pos(59.0, 18.0, "2026-11-05T08:00:30Z")),
        A("a3", 2, "updated", "zone_breach", 2, "possible", "P-A3", "2026-11-05T08:00:00Z", "2026-11-05T08:00:40Z", reason=imp, position=_pos(59.0, 18.0, "2026-11-05T08:00:30Z")),
        A("a3", 3, "updated", "zone_breach", 1, "confirmed", "P-A3", "2026-11-05T08:00:00Z", "2026-11-05T08:01:00Z"),
        A("a3", 4, "acknowledged", "zone_breach", 1, "confirmed", "P-A3", "2026-11-05T08:00:00Z", "2026-11-05T08:01:45Z"),
        task("t3", 1, "assigned", "respond", "a3", "P-A3", "2026-11-05T08:01:00Z", "2026-11-05T08:01:00Z", unit="SÖ-2143"),
        update("t3", "decline", "2026-11-05T08:01:10Z", by="SÖ-2143"),
        task("t3", 2, "declined", "respond", "a3", "P-A3", "2026-11-05T08:01:00Z", "2026-11-05T08:01:10Z", unit="SÖ-2143"),
        task("t3b", 1, "assigned", "respond", "a3", "P-A3", "2026-11-05T08:01:10Z", "2026-11-05T08:01:10Z", unit="SÖ-2144"),
        A("a3", 5, "acknowledged", "zone_breach", 1, "confirmed", "P-A3", "2026-11-05T08:00:00Z", "2026-11-05T08:09:00Z",
          response={"unit_id": "SÖ-2144", "accepted_at": "2026-11-05T08:01:40Z", "on_scene_at": "2026-11-05T08:09:00Z", "outcome": None}),
        A("a3", 6, "resolved", "zone_breach", 1, "confirmed", "P-A3", "2026-11-05T08:00:00Z", "2026-11-05T08:30:00Z", resolved_by="op-17"),
        position("P-A3", "EM-A3", "2026-11-05T08:00:00Z", 58.98, 18.0),
        position("P-A3", "EM-A3", "2026-11-05T08:00:30Z", 59.0, 18.0),
        position("P-A3", "EM-A3", "2026-11-05T08:01:00Z", 59.0045, 18.0),
    ]
    # --- a4: P-A4, acked after 10 s, resolved by an operator without any unit response
    r += [
        A("a4", 1, "open", "zone_breach", 1, "confirmed", "P-A4", "2026-11-10T14:00:00Z", "2026-11-10T14:00:00Z"),
        A("a4", 2, "acknowledged", "zone_breach", 1, "confirmed", "P-A4", "2026-11-10T14:00:00Z", "2026-11-10T14:00:10Z"),
        A("a4", 3, "resolved", "zone_breach", 1, "confirmed", "P-A4", "2026-11-10T14:00:00Z", "2026-11-10T14:20:00Z", resolved_by="op-17"),
    ]
    # --- a5: P-A5, proximity P1 probable (not a confirmed violation), never acknowledged,
    # resolved by the system (ban lifted): neither answered nor a false alarm
    r += [
        A("a5", 1, "open", "proximity_breach", 1, "probable", "P-A5", "2026-11-11T03:00:00Z", "2026-11-11T03:00:00Z"),
        A("a5", 2, "resolved", "proximity_breach", 1, "probable", "P-A5", "2026-11-11T03:00:00Z", "2026-11-11T05:00:00Z", resolved_by="system"),
    ]
    # --- a6: P-A6, acked after exactly 60 s (within the SLA), still open
    r += [
        A("a6", 1, "open", "zone_breach", 1, "confirmed", "P-A6", "2026-11-12T09:00:00Z", "2026-11-12T09:00:00Z"),
        A("a6", 2, "acknowledged", "zone_breach", 1, "confirmed", "P-A6", "2026-11-12T09:00:00Z", "2026-11-12T09:01:00Z"),
    ]
    # --- signal loss: P-A6's tag silent 12:00-14:00 UTC (2 h); P-A2's silent from 22:00 UTC on
    # 15 Nov, still at the period's end (23:00 UTC): 1 h
    r += [
        A("s1", 1, "open", "signal_lost", 2, None, "P-A6", "2026-11-06T12:05:00Z", "2026-11-06T12:05:00Z", position=_pos(59.1, 18.1, "2026-11-06T12:00:00Z")),
        A("s1", 2, "updated", "signal_lost", 2, None, "P-A6", "2026-11-06T12:05:00Z", "2026-11-06T14:00:00Z", episode="ended"),
        A("s2", 1, "open", "signal_lost", 2, None, "P-A2", "2026-11-15T22:05:00Z", "2026-11-15T22:05:00Z", position=_pos(59.2, 18.2, "2026-11-15T22:00:00Z")),
    ]
    # --- dead letters in the period
    r += [
        dead("schema", "P-A1", "2026-11-03T12:00:00Z"),
        dead("schema", "P-A2", "2026-11-04T12:00:00Z"),
        dead("decode", "P-A3", "2026-11-05T12:00:00Z"),
    ]
    # --- the outreach chains
    r += chain("P-A1", "a1", [
        ("i1", "interview", "2026-11-03T15:00:00Z", "held", None),
        ("m1", "motivational_talk", "2026-11-06T10:00:00Z", "held_accepts_help", True),
        ("f1", "referral", "2026-11-08T10:00:00Z", "contact_made", None),
    ])
    r += chain("P-A2", "a2", [
        ("i2", "interview", "2026-11-05T15:00:00Z", "held", None),
        ("m2", "motivational_talk", "2026-11-07T10:00:00Z", "held_declines_help", None),
    ])
    r += chain("P-A3", "a3", [
        ("i3", "interview", "2026-11-06T15:00:00Z", "not_reached", None),
        ("i3b", "interview", "2026-11-07T15:00:00Z", "refused", None),
    ])
    r += chain("P-A4", "a4", [
        ("i4", "interview", "2026-11-11T10:00:00Z", "held", None),
        ("m4", "motivational_talk", "2026-11-12T10:00:00Z", "held_accepts_help", False),
    ])
    r += chain("P-A6", "a6", [("i6", "interview", "2026-11-12T10:00:00Z", None, None)])
    return r


def write(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for topic, key, value in records():
            f.write(json.dumps({"topic": topic, "key": key, "value": value}, ensure_ascii=False))
            f.write("\n")
    return path
