"""Golden scenarios for contract version 2, "Tasks have a lifecycle": acceptance, reassignment,
busy units, the alert's response, dead letters, and the outreach chain.

Registered in build.py (`python tests/scenarios/build.py v2_task_response ...` writes them).
Task updates name their task by `TaskRef(kind, nth)`: the nth task of that kind in order of
first revision, looked up by replaying (like acknowledgements' `Ref`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from build import Ref, Scenario, Story, TaskRef, ban, circle_zone, t
from build_v2_incidents import (
    HUDDINGE_C,
    KISTA,
    LIDINGO_C,
    NACKA_FORUM,
    SOLNA_C,
    SUNDBYBERG_C,
    TABY_C,
    VALLINGBY,
    fwd,
)

M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


def _inside(s: Story, person: str, place: tuple[float, float], at: datetime) -> None:
    """One phone fix 40 m inside a 150 m home circle around `place` (accuracy 8 m):
    a confirmed zone breach, priority 1."""
    lat, lon = fwd(place, 180.0, 110.0)
    s.fix(person, f"PH-{person[2:]}", at, lat, lon, 8.0, "phone")


def _units(prefix: str, place: tuple[float, float], n: int) -> list[tuple[str, float, float, str]]:
    """`n` available units north-east of `place`, 600 m, 900 m, 1200 m, ... away."""
    return [
        (f"{prefix}-{10 * (i + 1)}", *fwd(place, 45.0, 600.0 + 300.0 * i), "available")
        for i in range(n)
    ]


def task_response() -> Scenario:
    """Acceptance in time, the alert's response, a busy unit skipped, expiry and the next
    unit, and every kind of invalid update."""
    west = fwd(SOLNA_C, 270.0, 800.0)
    a = ban("KF-2026-0901", "P-7301", ["P-7311"], [circle_zone("home", "Bostad", *SOLNA_C, 150)])
    b = ban("KF-2026-0902", "P-7302", ["P-7312"], [circle_zone("home", "Bostad", *west, 150)])
    s = Story()
    t0 = t("2026-11-22T14:00:00Z")
    units = [
        ("T-10", *fwd(SOLNA_C, 45.0, 600.0), "available"),
        ("T-20", *SUNDBYBERG_C, "available"),
        ("T-30", *KISTA, "available"),
    ]
    s.patrols(units, t0, t0 + 30 * M, every_s=60)
    # A: T-10 accepts in 12 s, drives, arrives, closes with contact made
    _inside(s, "P-7301", SOLNA_C, t0 + M)
    s.action(Ref("zone_breach", 0), "acknowledge", "op-17", after_s=20)
    s.task_update(TaskRef("respond", 0), "accept", "T-10", after_s=12, note="on my way")
    s.task_update(TaskRef("respond", 0), "en_route", "T-10", after_s=40)
    s.task_update(TaskRef("respond", 0), "on_scene", "T-10", at=t0 + 7 * M)
    s.task_update(
        TaskRef("respond", 0), "done", "T-10", at=t0 + 15 * M, outcome="contact_made", note="ok"
    )
    # B, 800 m west: T-10 is nearest but busy; T-20 lets the deadline pass, T-30 accepts
    _inside(s, "P-7302", west, t0 + 3 * M)
    s.action(Ref("zone_breach", 1), "acknowledge", "op-17", after_s=30)
    s.task_update(TaskRef("respond", 2), "accept", "T-30", after_s=15)
    # invalid: the expired task, another unit's task, backwards, an outcome of another kind,
    # after done, a role task answered as patrol, and a task nobody issued
    s.task_update(TaskRef("respond", 1), "accept", "T-20", at=t0 + 5 * M)
    s.task_update(TaskRef("respond", 2), "en_route", "T-10", at=t0 + 6 * M)
    s.task_update(TaskRef("respond", 2), "on_scene", "T-30", at=t0 + 8 * M)
    s.task_update(TaskRef("respond", 2), "en_route", "T-30", at=t0 + 9 * M)
    s.task_update(TaskRef("respond", 0), "accept", "T-10", at=t0 + 16 * M)
    s.task_update(TaskRef("respond", 2), "done", "T-30", at=t0 + 20 * M, outcome="held")
    s.task_update(TaskRef("respond", 2), "done", "T-30", at=t0 + 21 * M, outcome="arrested")
    s.task_update(TaskRef("interview", 0), "accept", "T-10", at=t0 + 22 * M)
    s.raw(
        t0 + 23 * M,
        "task-updates",
        "0" * 32,
        value={
            "task_id": "0" * 32,
            "by": "T-20",
            "role": "patrol",
            "ts": "2026-11-22T14:23:00Z",
            "action": "accept",
            "outcome": None,
            "consent_to_share": None,
            "note": "which task is this?",
        },
    )
    return Scenario(
        "v2_task_response",
        """\
        Contract v2 task lifecycle. Two bans with a 150 m home circle: A at Solna C, B 800 m
        west of it; units T-10 (600 m north-east of Solna C), T-20 (Sundbyberg C), T-30 (Kista).
        Expect: A's breach (14:01) sends `respond` to T-10, which accepts at 14:01:12 (task
        `accepted`, and the alert's `response` names T-10 with `accepted_at`), reports en route,
        on scene at 14:07 (`on_scene_at`) and done at 14:15 with `contact_made` (the response's
        `outcome`). B's breach (14:03) does not recommend or task T-10 (busy): T-20 is asked,
        lets the 30 s deadline pass (`expired` at 14:03:30) and T-30 is asked (`attempt` 2) and
        accepts. Dead letters `invalid_transition`: T-20 accepting its expired task, T-10
        answering T-30's task, T-30 going back from on scene to en route, `held` as a respond
        outcome, T-10 accepting its done task, a patrol answering the interview; and
        `unknown_task` for a task id nobody issued. No dead letter carries the update's note.
        """,
        [a, b],
        s,
        until="2026-11-22T14:30:00Z",
    )


def task_declines() -> Scenario:
    """Three declines escalate; three units without acceptance on an acknowledged alert."""
    c = ban(
        "KF-2026-0903", "P-7303", ["P-7313"], [circle_zone("home", "Bostad", *NACKA_FORUM, 150)]
    )
    d = ban("KF-2026-0904", "P-7304", ["P-7314"], [circle_zone("home", "Bostad", *HUDDINGE_C, 150)])
    s = Story()
    t0 = t("2026-11-22T16:00:00Z")
    s.patrols(_units("D", NACKA_FORUM, 4) + _units("H", HUDDINGE_C, 4), t0, t0 + 10 * M, 60)
    # C: D-10, D-20 and D-30 decline in turn; D-40 is never asked
    _inside(s, "P-7303", NACKA_FORUM, t0 + timedelta(seconds=30))
    s.task_update(TaskRef("respond", 0), "decline", "D-10", after_s=5)
    s.task_update(TaskRef("respond", 1), "decline", "D-20", after_s=8)
    s.task_update(TaskRef("respond", 2), "decline", "D-30", after_s=10)
    s.task_update(TaskRef("respond", 0), "decline", "D-10", at=t0 + M)  # declined already
    # D: acknowledged at once; H-10 declines, H-20 lets it expire, H-30 declines
    _inside(s, "P-7304", HUDDINGE_C, t0 + 2 * M)
    s.action(Ref("zone_breach", 1), "acknowledge", "op-4", after_s=10)
    s.task_update(TaskRef("respond", 3), "decline", "H-10", after_s=20)
    s.task_update(TaskRef("respond", 5), "decline", "H-30", after_s=10)
    return Scenario(
        "v2_task_declines",
        """\
        Contract v2: after 3 units without acceptance the alert says so and escalates, unless it
        is acknowledged. Two bans with a 150 m home circle, at Nacka Forum (C) and Huddinge C
        (D), four units near each (600, 900, 1200 and 1500 m away).
        Expect: C's breach (16:00:30) goes to D-10, which declines at once; D-20 (`attempt` 2)
        and D-30 (`attempt` 3) decline too: at 16:00:53 the alert gets a revision "no unit
        accepted the respond task: 3 units asked, escalated" (before the ack SLA was due), and
        D-40 is never asked. D-10 declining again is `invalid_transition`. D's breach (16:02)
        is acknowledged at 16:02:10; H-10 declines, H-20 lets the deadline pass, H-30 declines:
        the revision says so and the alert stays acknowledged.
        """,
        [c, d],
        s,
        until="2026-11-22T16:10:00Z",
    )


def outreach_consent() -> Scenario:
    """The chain with consent (to a referral), a second violation absorbed, the chain without
    consent (closed, no referral), and a new chain after a closed one."""
    e = ban("KF-2026-0905", "P-7401", ["P-7411"], [circle_zone("home", "Bostad", *TABY_C, 150)])
    f = ban("KF-2026-0906", "P-7402", ["P-7412"], [circle_zone("home", "Bostad", *LIDINGO_C, 150)])
    s = Story()
    d1 = t("2026-11-10T10:00:00Z")
    # E (P-7401): breach, then a reported contact while the interview is open
    _inside(s, "P-7401", TABY_C, d1)
    s.incident(
        "I-9401",
        d1 + 4 * H,
        "reported_contact",
        ban_id=e["ban_id"],
        source="112",
        note="she called: he stood at the door",
    )
    s.task_update(TaskRef("interview", 0), "accept", "inv-3", "investigator", at=d1 + D - H)
    s.task_update(
        TaskRef("interview", 0), "done", "inv-3", "investigator", at=d1 + D + H, outcome="held"
    )
    s.task_update(
        TaskRef("motivational_talk", 1),
        "done",
        "neg-1",
        "negotiator",
        at=d1 + 2 * D + 5 * H,
        outcome="held_accepts_help",
        consent=True,
        note="wants help with alcohol; agreed to be contacted",
    )
    s.task_update(TaskRef("referral", 0), "accept", "soc-2", "social_services", at=d1 + 3 * D)
    s.task_update(
        TaskRef("referral", 0),
        "done",
        "soc-2",
        "social_services",
        at=d1 + 5 * D,
        outcome="contact_made",
    )
    s.incident("I-9402", d1 + 6 * D, "reported_contact", ban_id=e["ban_id"], source="112")
    # F (P-7402): interview held, talk held, help accepted without consent: no referral
    _inside(s, "P-7402", LIDINGO_C, d1 + 30 * M)
    s.task_update(
        TaskRef("interview", 1), "done", "inv-5", "investigator", at=d1 + 6 * H, outcome="held"
    )
    s.task_update(
        TaskRef("motivational_talk", 0),
        "done",
        "neg-1",
        "negotiator",
        at=d1 + D,
        outcome="held_accepts_help",
        consent=False,
    )
    s.task_update(  # the chain is closed: the talk is done
        TaskRef("motivational_talk", 0),
        "done",
        "neg-1",
        "negotiator",
        at=d1 + D + 2 * H,
        outcome="held_accepts_help",
        consent=True,
    )
    s.incident("I-9403", d1 + 2 * D, "reported_contact", ban_id=f["ban_id"], source="112")
    return Scenario(
        "v2_outreach_consent",
        """\
        Contract v2 outreach chain. P-7401 (home circle at Täby C) and P-7402 (Lidingö C); no
        patrol unit on duty, so only the chain's tasks appear.
        Expect: P-7401's breach (Nov 10 10:00) opens the chain: one `interview` (investigator,
        due 24 h, `violations` 1), no talk or referral yet. A reported contact at 14:00 is a
        second violation: the interview gets a revision with `violations` 2, no second chain.
        The interview is held (Nov 11 11:00): a `motivational_talk` (negotiator) created then,
        due 72 h later. Help accepted with consent (Nov 12 15:00): a `referral` (social
        services, due 7 days) carrying only its ids, the ban, the person's pseudonym, the role
        and `chain` (the interview's and the talk's task ids), with no alert, unit, target or
        note. Its `contact_made` closes the chain; the reported contact of Nov 16 opens a new
        one (a new interview, `violations` 1).
        P-7402: interview held, talk held with help accepted but `consent_to_share: false`: no
        referral, the chain closes; answering the done talk again is `invalid_transition`; the
        reported contact of Nov 12 opens a new chain.
        """,
        [e, f],
        s,
        until="2026-11-17T12:00:00Z",
    )


def outreach_retries() -> Scenario:
    """`not_reached` three times retried 24 h later, the fourth gives up; a violation while a
    retry waits; `refused` closes the chain."""
    g = ban("KF-2026-0907", "P-7501", ["P-7511"], [circle_zone("home", "Bostad", *KISTA, 150)])
    h = ban("KF-2026-0908", "P-7502", ["P-7512"], [circle_zone("home", "Bostad", *VALLINGBY, 150)])
    s = Story()
    d1 = t("2026-11-12T08:00:00Z")
    _inside(s, "P-7501", KISTA, d1)
    inv = "investigator"
    s.task_update(
        TaskRef("interview", 0), "done", "inv-7", inv, at=d1 + 12 * H, outcome="not_reached"
    )
    # a violation while the retry waits: counted, carried by the retried interview
    s.incident("I-9501", d1 + D + 4 * H, "reported_contact", ban_id=g["ban_id"], source="112")
    s.task_update(
        TaskRef("interview", 2), "done", "inv-7", inv, at=d1 + 2 * D + H, outcome="not_reached"
    )
    s.task_update(
        TaskRef("interview", 3), "done", "inv-7", inv, at=d1 + 3 * D + 10 * H, outcome="not_reached"
    )
    s.task_update(
        TaskRef("interview", 4), "done", "inv-7", inv, at=d1 + 5 * D + 2 * H, outcome="not_reached"
    )
    s.incident("I-9502", d1 + 5 * D + 4 * H, "reported_contact", ban_id=g["ban_id"], source="112")
    # P-7502: interview held, the talk refused: the chain closes, no referral
    _inside(s, "P-7502", VALLINGBY, d1 + H)
    s.task_update(TaskRef("interview", 1), "done", "inv-8", inv, at=d1 + 4 * H, outcome="held")
    s.task_update(TaskRef("motivational_talk", 0), "accept", "neg-2", "negotiator", at=d1 + D)
    s.task_update(
        TaskRef("motivational_talk", 0),
        "done",
        "neg-2",
        "negotiator",
        at=d1 + D + 2 * H,
        outcome="refused",
    )
    return Scenario(
        "v2_outreach_retries",
        """\
        Contract v2 outreach chain: `not_reached` asks for the same step again 24 h later, at
        most three times. P-7501 (home circle at Kista), P-7502 (Vällingby); no patrol units.
        Expect: P-7501's breach (Nov 12 08:00) opens the chain (interview, `attempt` 1). Not
        reached at 20:00: the same step again at Nov 13 20:00 (`attempt` 2, created and due
        from then). A reported contact at Nov 13 12:00, while the retry waits, is counted: the
        retried interview carries `violations` 2. Not reached again at Nov 14 09:00, Nov 15
        18:00 (retries at Nov 15 09:00 and Nov 16 18:00, `attempt` 3 and 4); the fourth not
        reached (Nov 17 10:00) gives up: no further interview, the chain is closed, and the
        reported contact of Nov 17 12:00 opens a new chain (a new interview, `violations` 1).
        P-7502: interview held (Nov 12 13:00), the talk refused (Nov 13 10:00): the chain
        closes, no referral.
        """,
        [g, h],
        s,
        until="2026-11-19T00:00:00Z",
    )


SCENARIOS = [task_response, task_declines, outreach_consent, outreach_retries]
