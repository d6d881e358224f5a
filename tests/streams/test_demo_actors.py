"""The demo's actors without a broker: which tasks they answer, how, and that a driven unit's
positions move to its target (the loop itself runs on the broker: test_demo_loop.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.demo.actors import Actors, Pace, distance_m
from streams.demo.scenario import PATROL_POSITIONS, Record, Track, driven, scripted_position


def ago(seconds: float) -> str:
    t = datetime.now(UTC) - timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


ZERO = Pace(answer_s=0, drive_mps=1000, drive_min_s=0.05, drive_max_s=0.05, on_scene_s=0, role_s=0)
TARGET = {"lat": 59.33, "lon": 18.03}


def task(task_id: str, kind: str, **extra: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "task_id": task_id,
        "kind": kind,
        "seq": 1,
        "state": "assigned",
        "unit_id": None,
        "role": None,
        "target": None,
        "created_at": ago(0),  # now, when the test builds it (not at collection)
        "restrained_person": None,
    }
    value.update(extra)
    return value


def play(tasks: list[dict[str, Any]], later: list[dict[str, Any]] | None = None) -> Any:
    """Feed `tasks` to the actors, then `later` once they began; what they sent, and drives."""
    sent: list[dict[str, Any]] = []
    drives: dict[str, Track] = {}

    async def send(task_id: str, value: dict[str, Any]) -> None:
        assert value["task_id"] == task_id
        sent.append(value)

    async def main() -> None:
        t = [0.0]
        actors = Actors(send, lambda: t[0], scripted_position, drives, ZERO)
        for v in tasks:
            actors.observe(v)
        await asyncio.sleep(0.01)
        for v in later or []:
            actors.observe(v)
        t[0] = 100.0
        while actors.jobs:
            await asyncio.gather(*actors.jobs)

    asyncio.run(main())
    return sent, drives


def test_a_unit_accepts_drives_arrives_and_closes_with_its_kinds_outcome() -> None:
    sent, drives = play([task("t1", "protect", unit_id="SM-3310", target=TARGET)])
    assert [u["action"] for u in sent] == ["accept", "en_route", "on_scene", "done"]
    assert sent[-1]["outcome"] == "protected_safe" and {u["by"] for u in sent} == {"SM-3310"}
    assert {u["role"] for u in sent} == {"patrol"}
    lat, lon = drives["SM-3310"].at(1e9)  # the drive ends at the target
    assert distance_m((lat, lon), (TARGET["lat"], TARGET["lon"])) < 1
    start = scripted_position("SM-3310", 0)
    assert start is not None and distance_m(drives["SM-3310"].at(0), start) < 1


def test_the_first_respond_task_of_the_declining_ban_is_declined_the_next_accepted() -> None:
    ban = {"ban_id": "KF-2026-0077", "target": TARGET}
    sent, drives = play(
        [task("t1", "respond", unit_id="SM-3310", **ban)],
        [task("t2", "respond", unit_id="SM-3320", **ban)],
    )
    assert [(u["task_id"], u["action"]) for u in sent][:2] == [("t1", "decline"), ("t2", "accept")]
    assert sent[-1]["outcome"] == "contact_made"
    start = scripted_position("SM-3310", 0.0)  # the decliner stays where it was then
    assert start is not None and distance_m(drives["SM-3310"].at(1e9), start) < 1


def test_roles_hold_the_interview_and_the_consenting_persons_talk_only() -> None:
    sent, _ = play(
        [
            task("i1", "interview", role="investigator", restrained_person="P-7731"),
            task("m1", "motivational_talk", role="negotiator", restrained_person="P-8810"),
            task("m2", "motivational_talk", role="negotiator", restrained_person="P-7731"),
            task("r1", "referral", role="social_services", restrained_person="P-8810"),
            task("u1", "respond", unit_id="SÖ-2150", target=TARGET),  # left to a person
        ]
    )
    got = {u["task_id"]: u for u in sent}
    assert set(got) == {"i1", "m1"}
    assert got["i1"]["outcome"] == "held" and got["i1"]["role"] == "investigator"
    assert got["m1"]["outcome"] == "held_accepts_help" and got["m1"]["consent_to_share"] is True


def test_a_task_that_ends_is_answered_no_further_and_old_ones_not_at_all() -> None:
    sent, _ = play(
        [
            task("t1", "respond", unit_id="SÖ-2140", target=TARGET),
            task("old", "respond", unit_id="SÖ-2140", created_at="2020-01-01T00:00:00Z"),
            task("stale", "respond", unit_id="CI-1210", created_at=ago(120)),  # read again
            task("t2", "respond", unit_id="CI-1210", target=TARGET, seq=2, state="accepted"),
        ],
        [task("t1", "respond", unit_id="SÖ-2140", seq=2, state="cancelled")],
    )
    assert [(u["task_id"], u["action"]) for u in sent] == [("t1", "accept")]


def test_a_driven_unit_reports_from_its_drive_and_others_from_the_script() -> None:
    drive = Track(((10.0, 59.0, 18.0), (20.0, 60.0, 18.0)))
    rec = Record(15.0, PATROL_POSITIONS, "SÖ-2140", {"unit_id": "SÖ-2140", "lat": 1.0, "lon": 2.0})
    assert driven(rec, {"SÖ-2140": drive}).value["lat"] == 59.5
    assert driven(rec, {"SM-3310": drive}) is rec
