"""Contract v2 "Tasks have a lifecycle": the transition table, the golden stories of
tests/scenarios/v2_task_* and v2_outreach_*, rules over every scenario's output, and
hypothesis properties of the engine under arbitrary task updates."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from alerts.engine import Engine, Incoming, Result
from alerts.model import TASKS
from alerts.outreach import MAX_RETRIES, RETRY_AFTER
from alerts.replay import _after
from alerts.snapshot import (
    dump_alert,
    dump_ban_state,
    dump_outreach,
    load_alert,
    load_ban_state,
    load_outreach,
)
from alerts.tasklife import MAX_UNITS
from alerts.taskmodel import ACTION_STATE, FINAL, OUTCOMES, RANK, TaskState, check
from alerts.tasks import REFERRAL_INSTRUCTIONS
from config.policy import load_policy
from geofence.decoding import BANS, PATROL_POSITIONS, POSITIONS, TASK_UPDATES
from streams.cli.replay_files import read_bans, read_events
from tests.unit.catalogue import circle, direct, encode
from tests.unit.test_scenarios import NAMES, Output, events, first, output, ts
from tests.unit.test_scenarios import SCENARIOS as SCENARIOS_DIR

POLICY = load_policy()
SLA = timedelta(seconds=POLICY.task_accept_sla_s)
ACTIONS = list(ACTION_STATE)
#: What a referral may carry (contract v2), and nothing else.
REFERRAL_FIELDS = {
    "task_id",
    "kind",
    "seq",
    "state",
    "role",
    "ban_id",
    "restrained_person",
    "created_at",
    "due_by",
    "updated_at",
    "outcome",
    "priority",
    "chain",
    "contract_version",
    "alert_id",
    "unit_id",
    "target",
    "instructions",
}


# ------------------------------------------------------------------------ the transition table
FORWARD = ["assigned", "accepted", "en_route", "on_scene", "done"]


@pytest.mark.parametrize("kind", sorted(OUTCOMES))
@pytest.mark.parametrize("state", [s.value for s in TaskState])
@pytest.mark.parametrize("action", ACTIONS)
def test_transition_table(kind: str, state: str, action: str) -> None:
    """Forward only (skipping allowed), nothing after an end state, decline only while
    assigned and only for unit tasks, an outcome with done only and from the kind's set."""
    target = ACTION_STATE[action].value
    outcome = sorted(OUTCOMES[kind])[0] if action == "done" else None
    unit_task = kind in ("respond", "protect")
    why = check(kind, TaskState(state), action, outcome, declinable=unit_task)
    if state in ("done", "declined", "expired", "cancelled"):
        assert why is not None and "end state" in why
    elif action == "decline":
        assert (why is None) == (unit_task and state == "assigned")
    else:
        assert (why is None) == (FORWARD.index(target) > FORWARD.index(state))


@pytest.mark.parametrize("kind", sorted(OUTCOMES))
def test_outcomes_only_with_done_and_from_the_kinds_set(kind: str) -> None:
    everything = set().union(*OUTCOMES.values())
    for outcome in sorted(everything):
        why = check(kind, TaskState.accepted, "done", outcome, declinable=False)
        assert (why is None) == (outcome in OUTCOMES[kind])
    assert check(kind, TaskState.accepted, "done", None, declinable=False) is not None
    for action in ("accept", "en_route", "on_scene"):
        some = sorted(OUTCOMES[kind])[0]
        assert check(kind, TaskState.assigned, action, some, declinable=False) is not None


def test_the_table_has_one_forward_path() -> None:
    assert sorted(RANK, key=RANK.__getitem__) == [TaskState(s) for s in FORWARD]
    assert {TaskState(s) for s in ("done", "declined", "expired", "cancelled")} == FINAL


# ------------------------------------------------------------------------ helpers
def revisions(out: Output) -> dict[str, list[dict[str, Any]]]:
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in out.tasks:
        by_id[t["task_id"]].append(t)
    return by_id


def of(out: Output, kind: str, **match: Any) -> list[list[dict[str, Any]]]:
    """Every task of `kind` (its revisions), in order of creation, whose first revision
    matches `match`."""
    return [
        revs
        for revs in revisions(out).values()
        if revs[0]["kind"] == kind and all(revs[0][k] == v for k, v in match.items())
    ]


def task_updates(name: str) -> list[dict[str, Any]]:
    return [e["value"] for e in events(name) if e["topic"] == "task-updates"]


# ------------------------------------------------------------------------ the stories
def test_acceptance_in_time_and_the_alerts_response() -> None:
    out = output("v2_task_response")
    ups = [u for u in task_updates("v2_task_response") if u["by"] == "T-10"]
    [revs] = of(out, "respond", unit_id="T-10")
    assert [r["state"] for r in revs] == FORWARD
    assert [r["seq"] for r in revs] == [1, 2, 3, 4, 5]
    assert revs[-1]["outcome"] == "contact_made" and revs[0]["attempt"] == 1
    alert = out.alerts[revs[0]["alert_id"]]
    accept, on_scene, done = (
        next(u for u in ups if u["action"] == a) for a in ("accept", "on_scene", "done")
    )
    assert ts(accept["ts"]) - ts(revs[0]["created_at"]) < SLA
    responses = [r for r in alert if r["response"] is not None]
    assert alert[0]["response"] is None
    assert [r["response"] for r in responses][-1] == {
        "unit_id": "T-10",
        "accepted_at": accept["ts"],
        "on_scene_at": on_scene["ts"],
        "outcome": "contact_made",
    }
    # accept, on scene and done each give an alert revision, at the update's time
    for u, key in ((accept, "accepted_at"), (on_scene, "on_scene_at"), (done, "outcome")):
        r = first(alert, updated_at=u["ts"])
        assert r["response"][key] is not None


def test_a_busy_unit_is_skipped_and_an_expired_task_moves_on() -> None:
    out = output("v2_task_response")
    [a_revs] = of(out, "respond", unit_id="T-10")
    busy_until = ts(a_revs[-1]["updated_at"])  # done
    b_tasks = [r for r in of(out, "respond") if r[0]["alert_id"] != a_revs[0]["alert_id"]]
    b_alert = out.alerts[b_tasks[0][0]["alert_id"]]
    # T-10 is the nearest unit to B, but busy: neither recommended nor tasked
    for r in b_alert:
        if ts(r["updated_at"]) < busy_until:
            assert "T-10" not in [u["unit_id"] for u in r["recommended_units"]]
    assert [t[0]["unit_id"] for t in b_tasks] == ["T-20", "T-30"]
    assert [t[0]["attempt"] for t in b_tasks] == [1, 2]
    expired = b_tasks[0][-1]
    assert expired["state"] == "expired"
    assert ts(expired["updated_at"]) == ts(expired["created_at"]) + SLA
    assert b_tasks[1][0]["created_at"] == expired["updated_at"]
    assert b_tasks[1][-1]["state"] == "done" and b_tasks[1][-1]["outcome"] == "arrested"


def test_invalid_updates_are_dead_letters_without_their_note() -> None:
    out = output("v2_task_response")
    reasons = sorted(d["reason"] for d in out.dead)
    assert reasons == ["invalid_transition"] * 6 + ["unknown_task"]
    assert {d["source_topic"] for d in out.dead} == {"task-updates"}
    notes = [u["note"] for u in task_updates("v2_task_response") if u["note"]]
    assert notes
    for d in out.dead:
        assert "note" not in json.loads(d["raw"])
        assert not any(n in json.dumps(d, ensure_ascii=False) for n in notes)
    for revs in out.alerts.values():
        assert not any(n in json.dumps(revs, ensure_ascii=False) for n in notes)


def test_three_declines_escalate_and_the_fourth_unit_is_not_asked() -> None:
    out = output("v2_task_declines")
    c = [t for t in of(out, "respond") if t[0]["unit_id"].startswith("D-")]
    assert [t[0]["unit_id"] for t in c] == ["D-10", "D-20", "D-30"]
    assert [t[0]["attempt"] for t in c] == [1, 2, 3] == list(range(1, MAX_UNITS + 1))
    assert all(t[-1]["state"] == "declined" for t in c)
    for prev, nxt in itertools.pairwise(c):
        assert nxt[0]["created_at"] == prev[-1]["updated_at"]  # at once
    alert = out.alerts[c[0][0]["alert_id"]]
    said = first(alert, updated_at=c[-1][-1]["updated_at"])
    assert said["state"] == "escalated"
    assert "no unit accepted the respond task: 3 units asked, escalated" in said["reason"]
    assert "acknowledged" not in [r["state"] for r in alert]
    assert [d["reason"] for d in out.dead] == ["invalid_transition"]


def test_three_units_without_acceptance_on_an_acknowledged_alert() -> None:
    out = output("v2_task_declines")
    d = [t for t in of(out, "respond") if t[0]["unit_id"].startswith("H-")]
    assert [t[-1]["state"] for t in d] == ["declined", "expired", "declined"]
    alert = out.alerts[d[0][0]["alert_id"]]
    said = first(alert, updated_at=d[-1][-1]["updated_at"])
    assert said["state"] == "acknowledged" and "stays acknowledged" in said["reason"]
    assert "escalated" not in [r["state"] for r in alert]


def test_the_chain_with_consent_ends_in_a_referral_that_carries_only_what_it_may() -> None:
    out = output("v2_outreach_consent")
    [i1, _i2] = of(out, "interview", restrained_person="P-7401")
    [talk] = of(out, "motivational_talk", restrained_person="P-7401")
    [ref] = of(out, "referral")
    # a second violation while the interview is open: a revision, no second chain
    assert [r["violations"] for r in i1][:2] == [1, 2]
    assert i1[-1]["state"] == "done" and i1[-1]["outcome"] == "held"
    assert talk[0]["created_at"] == i1[-1]["updated_at"]
    assert ts(talk[0]["due_by"]) - ts(talk[0]["created_at"]) == timedelta(hours=72)
    assert talk[-1]["outcome"] == "held_accepts_help"
    r = ref[0]
    assert set(r) == REFERRAL_FIELDS
    assert (r["alert_id"], r["unit_id"], r["target"]) == (None, None, None)
    assert r["instructions"] == REFERRAL_INSTRUCTIONS
    assert r["chain"] == [i1[0]["task_id"], talk[0]["task_id"]]
    assert (r["role"], r["restrained_person"]) == ("social_services", "P-7401")
    assert r["created_at"] == talk[-1]["updated_at"]
    assert ts(r["due_by"]) - ts(r["created_at"]) == timedelta(days=7)
    text = json.dumps(ref, ensure_ascii=False)
    for word in ("P-7411", "lat", "lon", "zone", "note", "alcohol", "Bostad"):
        assert word not in text
    assert [x["state"] for x in ref] == ["assigned", "accepted", "done"]


def test_a_closed_chain_lets_the_next_violation_open_a_new_one() -> None:
    out = output("v2_outreach_consent")
    for person in ("P-7401", "P-7402"):
        chains = of(out, "interview", restrained_person=person)
        assert len(chains) == 2
        assert chains[1][0]["violations"] == 1 and chains[1][0]["attempt"] == 1
        assert chains[1][0]["alert_id"] != chains[0][0]["alert_id"]


def test_help_without_consent_gives_no_referral() -> None:
    out = output("v2_outreach_consent")
    [talk] = of(out, "motivational_talk", restrained_person="P-7402")
    assert talk[-1]["outcome"] == "held_accepts_help"
    assert not of(out, "referral", restrained_person="P-7402")
    assert [d["reason"] for d in out.dead] == ["invalid_transition"]


def test_not_reached_retries_three_times_then_gives_up() -> None:
    out = output("v2_outreach_retries")
    tries = of(out, "interview", restrained_person="P-7501")
    first_chain = tries[: MAX_RETRIES + 1]
    assert [t[0]["attempt"] for t in first_chain] == [1, 2, 3, 4]
    assert all(t[-1]["outcome"] == "not_reached" for t in first_chain)
    for prev, nxt in itertools.pairwise(first_chain):
        assert ts(nxt[0]["created_at"]) == ts(prev[-1]["updated_at"]) + RETRY_AFTER
        assert ts(nxt[0]["due_by"]) - ts(nxt[0]["created_at"]) == timedelta(hours=24)
    # the violation while the first retry waited is carried by it
    assert [t[0]["violations"] for t in first_chain] == [1, 2, 2, 2]
    # the fourth not reached gave up: the next interview is a new chain's, opened by the
    # reported contact after it
    [new] = tries[MAX_RETRIES + 1 :]
    assert (new[0]["attempt"], new[0]["violations"]) == (1, 1)
    contact = [e["value"] for e in events("v2_outreach_retries") if e["topic"] == "incidents"]
    assert new[0]["created_at"] == contact[-1]["ts"]


def test_refused_closes_the_chain() -> None:
    out = output("v2_outreach_retries")
    [talk] = of(out, "motivational_talk", restrained_person="P-7502")
    assert talk[-1]["outcome"] == "refused"
    assert not of(out, "referral")
    assert len(of(out, "interview", restrained_person="P-7502")) == 1


# ------------------------------------------------------------------ rules over every story
@pytest.mark.parametrize("name", NAMES)
def test_task_states_only_move_forward(name: str) -> None:
    for revs in revisions(output(name)).values():
        assert [r["seq"] for r in revs] == list(range(1, len(revs) + 1))
        assert revs[0]["state"] == "assigned"
        _forward([r["state"] for r in revs])


def _forward(states: list[str]) -> None:
    for a, b in itertools.pairwise(states):
        assert a not in ("done", "declined", "expired", "cancelled"), states
        if b == a:
            continue  # a revision that changes no state (an interview's violations count)
        if b in FORWARD:
            assert FORWARD.index(b) > FORWARD.index(a), states
        elif b == "declined":
            assert a == "assigned", states


@pytest.mark.parametrize("name", NAMES)
def test_a_unit_never_holds_two_active_unit_tasks(name: str) -> None:
    _one_task_per_unit(output(name).tasks)


def _one_task_per_unit(tasks: Iterable[dict[str, Any]]) -> None:
    """Replaying the revisions in order: a unit never holds two tasks that are assigned,
    accepted, en route or on scene at once."""
    holding: dict[str, set[str]] = defaultdict(set)
    for t in tasks:
        unit = t["unit_id"]
        if unit is None:
            continue
        if t["state"] in ("assigned", "accepted", "en_route", "on_scene"):
            holding[unit].add(t["task_id"])
            assert len(holding[unit]) == 1, (unit, holding[unit])
        else:
            holding[unit].discard(t["task_id"])


@pytest.mark.parametrize("name", NAMES)
def test_no_referral_without_consent(name: str) -> None:
    out = output(name)
    consented = {
        u["task_id"]
        for u in task_updates(name)
        if u["action"] == "done"
        and u["outcome"] == "held_accepts_help"
        and u["consent_to_share"] is True
    }
    talks = {revs[0]["task_id"]: revs for revs in of(out, "motivational_talk")}
    for revs in of(out, "referral"):
        talk = revs[0]["chain"][-1]
        assert talk in consented and talks[talk][-1]["outcome"] == "held_accepts_help"
        assert set(revs[0]) == REFERRAL_FIELDS


# ------------------------------------------------------------------ hypothesis properties
HOME = (59.3600, 18.0000)
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
UNITS = [f"U-{i}" for i in range(1, 6)]
BAN_IDS = ["KF-2026-9001", "KF-2026-9002"]
ROLES = ["patrol", "investigator", "negotiator", "social_services", "outreach"]


class Desk:
    """An engine on event time, two bans around one home, five units near it."""

    def __init__(self) -> None:
        self.engine = Engine(POLICY, event_clock=True)
        self.tasks: list[dict[str, Any]] = []
        self.now = T0
        for i, ban_id in enumerate(BAN_IDS):
            value = {
                "ban_id": ban_id,
                "version": 1,
                "kind": "extended",
                "status": "active",
                "restrained_person": f"P-90{i}",
                "protected_persons": [f"P-91{i}"],
                "valid_from": "2026-11-01T00:00:00Z",
                "valid_until": "2027-05-01T00:00:00Z",
                "electronic_monitoring": True,
                "proximity_m": None,
                "zones": {"type": "FeatureCollection", "features": [circle("home", *HOME, 150)]},
            }
            self.send(BANS, None, value)
        self.patrols()

    def send(self, topic: str, key: str | None, value: dict[str, Any]) -> Result:
        r = self.engine.handle(
            Incoming(topic, key, encode(value)), datetime(2027, 1, 1, tzinfo=UTC)
        )
        self.tasks.extend(v for tp, _, v in r.outputs if tp == TASKS and v is not None)
        return r

    def patrols(self) -> None:
        for i, unit in enumerate(UNITS):
            lat, lon = direct(*HOME, 45.0 + 60 * i, 500.0 + 200 * i)
            value = {
                "unit_id": unit,
                "ts": self.now.isoformat(),
                "lat": lat,
                "lon": lon,
                "status": "available",
                "capabilities": ["patrol"],
            }
            self.send(PATROL_POSITIONS, unit, value)

    def breach(self, person: str) -> None:
        lat, lon = direct(*HOME, 180.0, 100.0)
        value = {
            "person_id": person,
            "device_id": f"EM-{person}",
            "ts": self.now.isoformat(),
            "lat": lat,
            "lon": lon,
            "accuracy_m": 5.0,
            "source": "ankle_tag",
        }
        self.send(POSITIONS, person, value)

    def ids(self) -> list[str]:
        return list(dict.fromkeys(t["task_id"] for t in self.tasks))


ANY_OUTCOME = sorted(set().union(*OUTCOMES.values()))
step = st.tuples(
    st.integers(0, 40),  # which task (modulo those issued; the newest is likelier)
    st.sampled_from([*ACTIONS, "accept", "done", "done"]),
    st.sampled_from([True, True, True, False]),  # by the task's own unit/role, else another
    st.integers(0, 9),  # an outcome of the task's kind, or (9) any outcome or none
    st.sampled_from([True, True, False, None]),  # consent with a done
    st.sampled_from([0, 5, 20, 29, 30, 31, 90, 3600, 86400, 90000]),  # seconds later
    st.sampled_from([None, None, None, "P-900", "P-901", "patrol"]),  # a breach, patrols
)


def _outcome(kind: str, pick: int, which: int) -> str | None:
    if pick == 9:
        return [*ANY_OUTCOME, None][which % (len(ANY_OUTCOME) + 1)]
    mine = sorted(OUTCOMES[kind])
    return mine[pick % len(mine)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=25))
def test_any_updates_keep_the_lifecycle_rules(steps: list[tuple[Any, ...]]) -> None:
    """Whatever units and roles answer, in whatever order: a task's states only move
    forward, a unit never holds two active unit tasks, no referral without consent, and
    every update is applied or dead-lettered with a lifecycle reason."""
    desk = Desk()
    desk.breach("P-900")
    consent: set[str] = set()
    for which, action, own, outcome, agree, later, extra in steps:
        desk.now += timedelta(seconds=later)
        if extra == "patrol":
            desk.patrols()
        elif extra is not None:
            desk.breach(extra)
        ids = desk.ids()
        if not ids:
            continue
        task_id = ids[-1 - which % len(ids)] if which % 2 else ids[which % len(ids)]
        latest = [t for t in desk.tasks if t["task_id"] == task_id][-1]
        mine = latest["unit_id"] or latest["role"]
        if latest["unit_id"] is not None:
            by, role = (mine if own else UNITS[which % len(UNITS)]), "patrol"
        else:
            by, role = "op-1", (mine if own else ROLES[which % len(ROLES)])
        value = {
            "task_id": task_id,
            "by": by,
            "role": role,
            "ts": desk.now.isoformat(),
            "action": action,
            "outcome": None if action != "done" else _outcome(latest["kind"], outcome, which),
            "consent_to_share": agree,
            "note": "secret words",
        }
        r = desk.send(TASK_UPDATES, task_id, value)
        if r.reason is not None:
            assert r.reason.value in ("invalid_transition", "unknown_task")
            assert all("secret words" not in json.dumps(o) for o in r.outputs)
        elif (action, value["outcome"], agree) == ("done", "held_accepts_help", True):
            consent.add(task_id)
    by_id: dict[str, list[str]] = defaultdict(list)
    for t in desk.tasks:
        by_id[t["task_id"]].append(t["state"])
        if t["kind"] == "referral" and t["seq"] == 1:
            assert t["chain"][-1] in consent
    for states in by_id.values():
        assert states[0] == "assigned"
        _forward(states)
    _one_task_per_unit(desk.tasks)


CHAIN = {
    "interview": "investigator",
    "motivational_talk": "negotiator",
    "referral": "social_services",
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from([True, False, None]), st.integers(1, 200)),
        min_size=1,
        max_size=12,
    )
)
def test_the_chain_follows_outcomes_as_the_contract_says(
    answers: list[tuple[int, bool | None, int]],
) -> None:
    """A model of the chain run beside the engine: whatever the outcomes, the engine opens
    exactly the steps the contract calls for (the talk only after `held`, the referral only
    after help accepted with consent, a `not_reached` step again 24 h later at most three
    times), and no referral ever without consent."""
    desk = Desk()
    desk.breach("P-900")
    expect: list[tuple[str, int, datetime]] = [("interview", 1, desk.now)]
    kind, tries, open_ = "interview", 1, True
    for pick, agree, minutes in answers:
        if not open_:
            break
        current = [t for t in desk.tasks if t["kind"] == kind and t["seq"] == 1][-1]
        outcome = sorted(OUTCOMES[kind])[pick % len(OUTCOMES[kind])]
        desk.now += timedelta(minutes=minutes)
        value = {
            "task_id": current["task_id"],
            "by": "op-9",
            "role": CHAIN[kind],
            "ts": desk.now.isoformat(),
            "action": "done",
            "outcome": outcome,
            "consent_to_share": agree,
            "note": None,
        }
        assert desk.send(TASK_UPDATES, current["task_id"], value).reason is None
        if outcome == "not_reached":
            if tries > MAX_RETRIES:
                open_ = False
            else:
                tries += 1
                desk.now += RETRY_AFTER
                expect.append((kind, 0 if kind == "referral" else tries, desk.now))
                desk.patrols()  # moves the event clock: the retry fires
        elif (kind, outcome) == ("interview", "held") or (
            kind,
            outcome,
            agree,
        ) == ("motivational_talk", "held_accepts_help", True):
            kind, tries = ("motivational_talk" if kind == "interview" else "referral"), 1
            expect.append((kind, 0 if kind == "referral" else 1, desk.now))
            event(f"opened {kind}")
        else:
            open_ = False
    got = [
        (t["kind"], t.get("attempt", 0), ts(t["created_at"]))
        for t in desk.tasks
        if t["seq"] == 1 and t["kind"] in CHAIN and t["restrained_person"] == "P-900"
    ]
    assert got == expect


# ------------------------------------------------------------------------ by hand
def _update(desk: Desk, task: dict[str, Any], action: str, **extra: Any) -> Result:
    value = {
        "task_id": task["task_id"],
        "by": task["unit_id"] or "op-9",
        "role": "patrol" if task["unit_id"] else task["role"],
        "ts": desk.now.isoformat(),
        "action": action,
        "outcome": None,
        "consent_to_share": None,
        "note": None,
        **extra,
    }
    return desk.send(TASK_UPDATES, task["task_id"], value)


def _latest(desk: Desk, kind: str) -> dict[str, Any]:
    return [t for t in desk.tasks if t["kind"] == kind][-1]


def test_a_unit_busy_on_another_worker_is_not_tasked() -> None:
    """`Engine.note_task`: a revision seen on patrol-tasks (another partition's task) makes
    its unit busy here; an older or repeated revision changes nothing; done frees it."""
    desk = Desk()
    nearest = "U-1"
    foreign = {"task_id": "t-far", "seq": 2, "unit_id": nearest, "state": "accepted"}
    desk.engine.note_task(foreign)
    desk.engine.note_task({**foreign, "seq": 1, "state": "assigned"})  # older: ignored
    desk.breach("P-900")
    respond = _latest(desk, "respond")
    assert respond["unit_id"] != nearest
    alert = desk.engine.states[BAN_IDS[0]].alerts[respond["alert_id"]]
    assert nearest not in [u["unit_id"] for u in alert.recommended_units]
    desk.engine.note_task({**foreign, "seq": 3, "state": "done"})
    assert not desk.engine.fleet.busy(nearest)


def test_resolving_an_alert_cancels_its_tasks_and_frees_the_unit() -> None:
    desk = Desk()
    desk.breach("P-900")
    respond = _latest(desk, "respond")
    assert _update(desk, respond, "accept").reason is None
    assert desk.engine.fleet.busy(respond["unit_id"])
    desk.now += timedelta(minutes=2)
    ack = {
        "alert_id": respond["alert_id"],
        "action": "resolve",
        "by": "op-1",
        "ts": desk.now.isoformat(),
        "note": None,
    }
    desk.send("alert-acks", respond["alert_id"], ack)
    last = _latest(desk, "respond")
    assert (last["task_id"], last["state"]) == (respond["task_id"], "cancelled")
    assert not desk.engine.fleet.busy(respond["unit_id"])
    interview = _latest(desk, "interview")
    assert interview["state"] == "assigned"  # the chain is about the person: it goes on
    assert _update(desk, last, "on_scene").reason.value == "invalid_transition"


def test_a_violation_while_the_talk_is_open_revises_the_talk() -> None:
    desk = Desk()
    desk.breach("P-900")
    assert _update(desk, _latest(desk, "interview"), "done", outcome="held").reason is None
    talk = _latest(desk, "motivational_talk")
    desk.now += timedelta(hours=1)
    incident = {
        "incident_id": "I-1",
        "ts": desk.now.isoformat(),
        "kind": "reported_contact",
        "ban_id": BAN_IDS[0],
    }
    desk.send("incidents", "I-1", incident)
    revised = _latest(desk, "motivational_talk")
    assert (revised["task_id"], revised["seq"], revised["violations"]) == (talk["task_id"], 2, 2)
    assert len({t["task_id"] for t in desk.tasks if t["kind"] == "interview"}) == 1


def test_a_referral_not_reached_is_asked_again_and_its_answer_closes_the_chain() -> None:
    desk = Desk()
    desk.breach("P-900")
    _update(desk, _latest(desk, "interview"), "done", outcome="held")
    _update(
        desk,
        _latest(desk, "motivational_talk"),
        "done",
        outcome="held_accepts_help",
        consent_to_share=True,
    )
    first_ref = _latest(desk, "referral")
    _update(desk, first_ref, "done", outcome="not_reached")
    desk.now += RETRY_AFTER
    desk.patrols()
    again = _latest(desk, "referral")
    assert again["task_id"] != first_ref["task_id"] and again["chain"] == first_ref["chain"]
    assert again["created_at"] == desk.now.isoformat().replace("+00:00", "Z")
    assert _update(desk, again, "done", outcome="declined").reason is None
    desk.now += timedelta(days=2)
    desk.patrols()
    assert _latest(desk, "referral")["task_id"] == again["task_id"]  # closed: nothing more


def test_a_knock_task_has_the_lifecycle_of_its_role() -> None:
    engine = Engine(POLICY, event_clock=True)
    d = SCENARIOS_DIR / "knock"
    for line in (d / "bans.jsonl").read_text("utf-8").splitlines():
        engine.handle(Incoming(BANS, None, line.encode()), datetime(2027, 1, 1, tzinfo=UTC))
    knocks: list[dict[str, Any]] = []
    for line in (d / "events.jsonl").read_text("utf-8").splitlines():
        e = json.loads(line)
        raw = None if e["value"] is None else json.dumps(e["value"]).encode()
        r = engine.handle(Incoming(e["topic"], e["key"], raw), datetime(2027, 1, 1, tzinfo=UTC))
        knocks += [v for tp, _, v in r.outputs if tp == TASKS and v and v["kind"] == "knock"]
    [knock] = knocks
    assert knock["role"] == "outreach" and knock["restrained_person"]
    base = {
        "task_id": knock["task_id"],
        "by": "out-1",
        "ts": knock["created_at"],
        "outcome": None,
        "consent_to_share": None,
        "note": None,
    }

    def send(**v: Any) -> Result:
        return engine.handle(
            Incoming(TASK_UPDATES, knock["task_id"], encode({**base, **v})),
            datetime(2027, 1, 1, tzinfo=UTC),
        )

    assert send(role="patrol", action="accept").reason.value == "invalid_transition"
    assert send(role="outreach", action="done", outcome="held").reason.value == (
        "invalid_transition"
    )
    r = send(role="outreach", action="done", outcome="not_home")
    assert r.reason is None
    [(_, key, done)] = r.outputs
    assert (key, done["state"], done["outcome"], done["seq"]) == ("outreach", "done", "not_home", 2)


# ------------------------------------------------------------------ the stream's hand-over
def _handed_over(engine: Engine) -> Engine:
    """A new engine that adopts every state of `engine` from its snapshot's JSON (as a
    worker taking over the partitions does); the registry and the fleet are global (every
    worker reads bans, patrol positions and patrol-tasks), the clock is the log's."""
    fresh = Engine(engine.policy, event_clock=True)
    fresh.registry, fresh.fleet, fresh.clock = engine.registry, engine.fleet, engine.clock
    fresh.knock = engine.knock
    for state in engine.states.values():
        fresh.adopt(load_ban_state(json.loads(json.dumps(dump_ban_state(state)))))
    for a in engine.unmatched.values():
        fresh.adopt_unmatched(load_alert(json.loads(json.dumps(dump_alert(a)))))
    for o in engine.book.people.values():
        fresh.adopt_outreach(load_outreach(json.loads(json.dumps(dump_outreach(o)))))
    return fresh


@pytest.mark.parametrize(
    "name",
    [
        "v2_task_response",
        "v2_task_declines",
        "v2_outreach_consent",
        "v2_outreach_retries",
        "v2_sos",
    ],
)
def test_a_new_owner_after_every_record_decides_the_same(name: str) -> None:
    """Tasks, their deadlines, the chains and their retries survive a hand-over: adopted
    after every record, the engine writes the golden file byte for byte."""
    d = SCENARIOS_DIR / name
    args = json.loads((d / "args.json").read_text("utf-8"))
    now, until = ts(args["now"]), ts(args["until"])
    engine = Engine(POLICY, event_clock=True)
    out: list[Any] = []
    for raw in read_bans(str(d / "bans.jsonl"), POLICY, now):
        out += engine.handle(Incoming(BANS, None, raw), now).outputs
    for msg in read_events(str(d / "events.jsonl")):
        if _after(msg, until, now, POLICY):
            continue
        out += engine.handle(msg, now).outputs
        engine = _handed_over(engine)
    out += engine.tick(until)
    text = "".join(
        json.dumps({"topic": t, "key": k, "value": v}, ensure_ascii=False, separators=(",", ":"))
        + "\n"
        for t, k, v in out
    )
    golden = (d / "expected.jsonl").read_text("utf-8")
    assert [json.loads(x) for x in text.splitlines()] == [
        json.loads(x) for x in golden.splitlines()
    ]


def test_an_adopted_state_is_the_truth_about_its_units() -> None:
    """A failed engine call is recovered by adopting the state again: a revision it had
    noted (its output dropped) must not keep a unit busy."""
    desk = Desk()
    desk.breach("P-900")
    respond = _latest(desk, "respond")
    unit = respond["unit_id"]
    saved = dump_ban_state(desk.engine.states[BAN_IDS[0]])
    assert _update(desk, respond, "accept").reason is None
    assert desk.engine.fleet.busy(unit)
    desk.engine.reset_routed()  # the call "failed": its outputs are dropped, state adopted
    desk.engine.adopt(load_ban_state(saved))
    assert not desk.engine.fleet.busy(unit) and desk.engine.fleet.asked(unit)


def test_one_incident_on_two_of_the_persons_bans_is_one_violation() -> None:
    desk = Desk()
    for ban_id in BAN_IDS:  # both bans restrain P-900 now (version 2)
        value = {
            "ban_id": ban_id,
            "version": 2,
            "kind": "extended",
            "status": "active",
            "restrained_person": "P-900",
            "protected_persons": ["P-910"],
            "valid_from": "2026-11-01T00:00:00Z",
            "valid_until": "2027-05-01T00:00:00Z",
            "electronic_monitoring": True,
            "proximity_m": None,
            "zones": {"type": "FeatureCollection", "features": [circle("home", *HOME, 150)]},
        }
        desk.send(BANS, None, value)
    desk.breach("P-900")
    desk.now += timedelta(hours=1)
    incident = {
        "incident_id": "I-2",
        "ts": desk.now.isoformat(),
        "kind": "reported_contact",
        "person_id": "P-900",
    }
    r = desk.send("incidents", "I-2", incident)
    opened = [
        v for tp, _, v in r.outputs if tp == "alerts" and v and v["kind"] == "reported_contact"
    ]
    assert len(opened) == 2  # one alert per ban
    assert [t["violations"] for t in desk.tasks if t["kind"] == "interview"][-1] == 2


def test_an_unmatched_sos_keeps_its_own_tasks_and_deadlines() -> None:
    """An SOS that matches no ban holds its respond task itself (its incident's scope): the
    deadline passes, the next unit is asked, and after three the alert says so."""
    out = output("v2_sos")
    unmatched = [revs for revs in out.of_kind("sos") if revs[0]["ban_id"] is None]
    said_so = 0
    for revs in unmatched:
        tasks = of(out, "respond", alert_id=revs[0]["alert_id"])
        for prev, nxt in pairwise(tasks):
            assert prev[-1]["state"] == "expired"
            assert nxt[0]["created_at"] == prev[-1]["updated_at"]
            assert nxt[0]["attempt"] == prev[0]["attempt"] + 1
        if len(tasks) == MAX_UNITS and tasks[-1][-1]["state"] == "expired":
            said = first(revs, updated_at=tasks[-1][-1]["updated_at"])
            assert "no unit accepted the respond task" in said["reason"]
            said_so += 1
    assert said_so >= 1


def _late_incident(desk: Desk, at: datetime) -> None:
    lat, lon = direct(*HOME, 180.0, 100.0)
    value = {
        "incident_id": "I-LATE",
        "ts": at.isoformat(),
        "kind": "reported_contact",
        "ban_id": BAN_IDS[0],
        "person_id": None,
        "lat": lat,
        "lon": lon,
        "source": "112",
        "note": None,
    }
    desk.send("incidents", "I-LATE", value)


def test_a_late_incidents_unit_gets_the_whole_acceptance_time() -> None:
    """The acceptance SLA counts from when the unit is asked: an incident that reaches the
    engine 45 s after its own time (a slow 112 hand-over, a worker catching up) does not
    expire its respond task at once (event time: the clock the log has reached)."""
    desk = Desk()
    desk.now = T0 + timedelta(seconds=60)
    desk.patrols()  # the log's clock is at T0 + 60 s
    _late_incident(desk, T0 + timedelta(seconds=15))
    first = _latest(desk, "respond")
    assert first["state"] == "assigned" and first["created_at"] == "2026-11-22T12:00:15Z"
    desk.now = T0 + timedelta(seconds=60) + SLA - timedelta(seconds=1)
    desk.patrols()
    assert [t["state"] for t in desk.tasks if t["task_id"] == first["task_id"]] == ["assigned"]
    desk.now += timedelta(seconds=2)
    desk.patrols()
    expired = [t for t in desk.tasks if t["task_id"] == first["task_id"]][-1]
    assert expired["state"] == "expired"
    assert expired["updated_at"] == "2026-11-22T12:01:30Z"  # 30 s after it was asked


def test_a_late_incident_on_the_wall_clock_gets_the_whole_acceptance_time() -> None:
    """The same in the stream (no event clock: timers on the worker's wall clock)."""
    engine = Engine(POLICY)
    desk = Desk()
    engine.registry, engine.fleet = desk.engine.registry, desk.engine.fleet
    desk.engine = engine
    wall = T0 + timedelta(seconds=60)
    lat, lon = direct(*HOME, 180.0, 100.0)
    incident = {
        "incident_id": "I-LATE",
        "ts": (T0 + timedelta(seconds=15)).isoformat(),
        "kind": "reported_contact",
        "ban_id": BAN_IDS[0],
        "person_id": None,
        "lat": lat,
        "lon": lon,
        "source": "112",
        "note": None,
    }
    out = engine.handle(Incoming("incidents", "I-LATE", encode(incident)), wall).outputs
    tasks = [v for t, _, v in out if t == TASKS and v is not None and v["kind"] == "respond"]
    assert [t["state"] for t in tasks] == ["assigned"]
    soon = engine.tick(wall + SLA - timedelta(seconds=1))
    assert not [v for t, _, v in soon if t == TASKS]
    later = engine.tick(wall + SLA + timedelta(seconds=1))
    states = [(v["task_id"], v["state"]) for t, _, v in later if t == TASKS and v is not None]
    assert (tasks[0]["task_id"], "expired") in states


def test_the_fleet_forgets_the_oldest_ended_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The busy-unit book stays bounded on a long-running worker: only the newest ended
    tasks keep their seq; a live task is never forgotten."""
    import alerts.assignment as assignment

    monkeypatch.setattr(assignment, "ENDED_TASKS_KEPT", 10)
    fleet = assignment.Fleet()
    fleet.note_task({"task_id": "live", "seq": 2, "unit_id": "U-0", "state": "accepted"})
    for i in range(100):
        fleet.note_task({"task_id": f"t{i}", "seq": 1, "unit_id": "U-1", "state": "assigned"})
        fleet.note_task({"task_id": f"t{i}", "seq": 2, "unit_id": "U-1", "state": "done"})
    assert len(fleet._task_seq) == 11 and "live" in fleet._task_seq
    assert fleet.busy("U-0") and not fleet.busy("U-1") and not fleet.asked("U-1")


def test_escalated_and_acknowledged_revisions_never_recommend_a_busy_unit() -> None:
    """A unit that accepted another alert's respond task is busy: the escalation of an
    alert left unacknowledged (and an acknowledgement) lists the units free by then."""
    desk = Desk()
    desk.breach("P-900")
    desk.breach("P-901")
    alerts = {v["alert_id"]: v["ban_id"] for v in desk.tasks if v["kind"] == "respond"}
    assert sorted(alerts.values()) == BAN_IDS
    second = next(t for t in desk.tasks if t["kind"] == "respond" and t["ban_id"] == BAN_IDS[1])
    desk.now += timedelta(seconds=5)
    assert _update(desk, second, "accept").reason is None
    busy = second["unit_id"]
    first_alert = next(a for a, b in alerts.items() if b == BAN_IDS[0])
    revisions: list[dict[str, Any]] = []
    for seconds in (40, 65, 70):  # the first alert escalates at 60 s (ack_sla_s)
        desk.now = T0 + timedelta(seconds=seconds)
        unit = UNITS[-1]
        lat, lon = direct(*HOME, 90.0, 3000.0)
        position = {"unit_id": unit, "ts": desk.now.isoformat(), "lat": lat, "lon": lon,
                    "status": "available", "capabilities": ["patrol"]}  # fmt: skip
        r = desk.send(PATROL_POSITIONS, unit, position)
        revisions += [v for t, k, v in r.outputs if t == "alerts" and k == first_alert]
    escalated = [v for v in revisions if v["state"] == "escalated"]
    assert escalated, revisions
    assert busy not in [u["unit_id"] for u in escalated[0]["recommended_units"]]
    ack = {"alert_id": first_alert, "action": "acknowledge", "by": "op-1",
           "ts": desk.now.isoformat(), "note": None}  # fmt: skip
    r = desk.send("alert-acks", first_alert, ack)
    [acked] = [v for t, k, v in r.outputs if t == "alerts" and k == first_alert]
    assert acked["state"] == "acknowledged"
    assert busy not in [u["unit_id"] for u in acked["recommended_units"]]


def test_a_protect_task_owed_for_want_of_a_unit_goes_when_one_is_free() -> None:
    """A proximity breach's respond takes the only free unit; the protect task is owed and
    goes with the alert's next revision once a second unit reports free (review's case)."""
    engine = Engine(POLICY, event_clock=True)
    now = datetime(2026, 12, 30, tzinfo=UTC)
    ban = {
        "ban_id": "KF-1", "version": 1, "kind": "extended", "status": "active",
        "restrained_person": "P-1", "protected_persons": ["P-9"],
        "valid_from": "2026-11-01T00:00:00Z", "valid_until": "2027-05-01T00:00:00Z",
        "electronic_monitoring": True, "proximity_m": 500,
        "zones": {"type": "FeatureCollection", "features": []},
    }  # fmt: skip
    engine.handle(Incoming(BANS, None, encode(ban)), now)

    def unit(u: str, ts: str, lat: float, lon: float) -> tuple[str, str, dict[str, Any]]:
        value = {"unit_id": u, "ts": ts, "lat": lat, "lon": lon, "status": "available",
                 "capabilities": ["patrol"]}  # fmt: skip
        return (PATROL_POSITIONS, u, value)

    def fix(person: str, device: str, ts: str, lat: float, lon: float, source: str) -> Any:
        value = {"person_id": person, "device_id": device, "ts": ts, "lat": lat, "lon": lon,
                 "accuracy_m": 8.0, "source": source}  # fmt: skip
        return (POSITIONS, person, value)

    tasks: list[dict[str, Any]] = []
    for topic, key, value in [
        unit("U1", "2026-11-22T10:00:00Z", 59.362, 18.003),
        fix("P-9", "VD-9", "2026-11-22T10:00:05Z", 59.36, 18.0, "victim_device"),
        fix("P-1", "PH-P-1", "2026-11-22T10:00:10Z", 59.3605, 18.0005, "phone"),
        unit("U2", "2026-11-22T10:00:12Z", 59.361, 18.001),
        fix("P-9", "VD-9", "2026-11-22T10:00:20Z", 59.36, 18.0, "victim_device"),
        fix("P-1", "PH-P-1", "2026-11-22T10:00:25Z", 59.3605, 18.0005, "phone"),
    ]:
        out = engine.handle(Incoming(topic, key, encode(value)), now).outputs
        tasks += [v for t, _, v in out if t == TASKS and v is not None]
    assert [(t["kind"], t["unit_id"]) for t in tasks if t["seq"] == 1 and t["unit_id"]] == [
        ("respond", "U1"),
        ("protect", "U2"),
    ]


def test_updates_dated_out_of_order_are_refused_and_times_never_run_backwards() -> None:
    """An update dated more than `max_future_skew_s` before its task's creation or before
    the update applied before it is `invalid_transition` (out of order); within that skew it
    is stamped at the earlier time, so the alert's response never runs backwards."""
    desk = Desk()
    desk.breach("P-900")
    respond = _latest(desk, "respond")
    skew = timedelta(seconds=POLICY.max_future_skew_s)
    desk.now = T0 - timedelta(hours=1)
    early = _update(desk, respond, "accept")
    assert early.reason is not None and early.reason.value == "invalid_transition"
    desk.now = T0 + timedelta(seconds=25)
    assert _update(desk, respond, "accept").reason is None
    desk.now = T0 + timedelta(seconds=25) - skew - timedelta(seconds=1)
    late = _update(desk, respond, "on_scene")
    assert late.reason is not None and late.reason.value == "invalid_transition"
    desk.now = T0 + timedelta(seconds=15)  # a car terminal's clock 10 s behind the console's
    r = _update(desk, respond, "on_scene")
    assert r.reason is None
    [alert] = [v for t, _, v in r.outputs if t == "alerts"]
    response = alert["response"]
    assert response["accepted_at"] == response["on_scene_at"] == "2026-11-22T12:00:25Z"
    assert _latest(desk, "respond")["updated_at"] == "2026-11-22T12:00:25Z"


def test_an_update_to_a_closed_chains_task_stays_invalid_after_a_new_chain_opens() -> None:
    """A closed chain's tasks leave the person's state when the next chain opens; a late
    update to one of them is still `invalid_transition` (it ended), not `unknown_task`."""
    desk = Desk()
    desk.breach("P-900")
    first = _latest(desk, "interview")
    desk.now = T0 + timedelta(hours=1)
    assert _update(desk, first, "done", outcome="refused").reason is None  # chain closed
    desk.now = T0 + timedelta(hours=2)
    lat, lon = direct(*HOME, 180.0, 100.0)
    incident = {"incident_id": "I-2", "ts": desk.now.isoformat(), "kind": "reported_contact",
                "ban_id": BAN_IDS[0], "person_id": None, "lat": lat, "lon": lon,
                "source": "112", "note": None}  # fmt: skip
    desk.send("incidents", "I-2", incident)
    second = _latest(desk, "interview")
    assert second["task_id"] != first["task_id"]
    desk.now = T0 + timedelta(hours=3)
    again = _update(desk, first, "done", outcome="held")
    assert again.reason is not None and again.reason.value == "invalid_transition"
    unknown = _update(desk, {**first, "task_id": "no-such-task"}, "done", outcome="held")
    assert unknown.reason is not None and unknown.reason.value == "unknown_task"
