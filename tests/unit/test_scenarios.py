"""Golden replay scenarios (tests/scenarios/): the whole decision core on stories in real places.

Three kinds of checks:
- golden: `banwatch replay` output equals `expected.jsonl` byte for byte, and is the same twice;
- semantic: what CONTRACT.md promises for each story, asserted on the output without the golden
  file (so a regenerated golden file cannot quietly bless a regression);
- coverage: every alert kind, task kind and alert state of the contract appears somewhere.

`UPDATE_GOLDEN=1 pytest tests/unit/test_scenarios.py` rewrites the golden files (see
tests/scenarios/README.md); scenarios with a known core bug get no golden file until it is fixed.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from streams.cli import main

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
NAMES = sorted(p.parent.name for p in SCENARIOS.glob("*/events.jsonl"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

# scenario -> the core bug that makes its output contradict CONTRACT.md: no golden file is kept
# for such a scenario, and its golden test is a strict xfail until the bug is fixed
KNOWN_BUGS: dict[str, str] = {}

ALERT_KINDS = {
    "zone_breach",
    "proximity_breach",
    "reported_contact",
    "sos",
    "tamper",
    "approach",
    "signal_lost",
    "threat",
    "battery_low",
    "tip",
    "late_evidence",
    "unmatched_incident",
}
TASK_KINDS = {"respond", "protect", "interview", "motivational_talk", "referral", "knock"}
STATES = {"open", "updated", "escalated", "acknowledged", "resolved"}
DEAD_LETTER_REASONS = {
    "decode",
    "schema",
    "geometry",
    "future",
    "too_large",
    "key_mismatch",
    "unknown_topic",
    "unknown_alert",
    "internal",
    "unknown_task",
    "invalid_transition",
}
TASK_FIELDS = {
    "task_id",
    "alert_id",
    "kind",
    "priority",
    "unit_id",
    "role",
    "ban_id",
    "target",
    "created_at",
    "due_by",
    "instructions",
    "contract_version",
    # contract v2: the lifecycle
    "seq",
    "state",
    "updated_at",
    "outcome",
}
INPUT_TOPICS = {
    "contact-bans",
    "positions",
    "patrol-positions",
    "incidents",
    "alert-acks",
    "task-updates",
}


def task_fields(kind: str) -> set[str]:
    """The fields a task of `kind` carries (contract v2): role tasks name the restrained
    person, interviews and talks count the chain's violations, a referral carries its chain
    and no attempt."""
    if kind == "referral":
        return TASK_FIELDS | {"restrained_person", "chain"}
    out = TASK_FIELDS | {"attempt"}
    if kind not in ("respond", "protect"):
        out |= {"restrained_person"}
    if kind in ("interview", "motivational_talk"):
        out |= {"violations"}
    return out
FOLLOW_UPS = {  # kind: (role, due after creation)
    "interview": ("investigator", timedelta(hours=24)),
    "motivational_talk": ("negotiator", timedelta(hours=72)),
    "referral": ("social_services", timedelta(days=7)),
}


# ----------------------------------------------------------------------------------- helpers
def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def argv(name: str) -> list[str]:
    d = SCENARIOS / name
    args = json.loads((d / "args.json").read_text("utf-8"))
    out = ["replay", "--bans", str(d / "bans.jsonl"), "--events", str(d / "events.jsonl")]
    out += ["--now", args["now"]]
    if args.get("until"):
        out += ["--until", args["until"]]
    return out


def replay_text(name: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv(name)) == 0
    return buf.getvalue()


@dataclass
class Output:
    """A replay's output, grouped: alert revisions by id (in order), tasks, dead letters."""

    alerts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[list[dict[str, Any]]]:
        return [revs for revs in self.alerts.values() if revs[0]["kind"] == kind]

    def only(self, kind: str) -> list[dict[str, Any]]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind} alert, got {len(found)}"
        return found[0]

    def tasks_for(self, alert_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        return [t for t in self.tasks if t["alert_id"] == alert_id and kind in (None, t["kind"])]


@cache
def output(name: str) -> Output:
    out = Output()
    for line in replay_text(name).splitlines():
        rec = json.loads(line)
        v = rec["value"]
        if rec["topic"] == "alerts":
            assert rec["key"] == v["alert_id"]
            out.alerts.setdefault(v["alert_id"], []).append(v)
        elif rec["topic"] == "patrol-tasks":
            assert rec["key"] == (v["unit_id"] or v["role"])
            out.tasks.append(v)
        elif rec["topic"] == "protected-notifications":
            assert rec["key"] == v["person_id"]
            out.notifications.append(v)
        else:
            assert rec["topic"] == "dead-letters", rec["topic"]
            out.dead.append(v)
    return out


@cache
def events(name: str) -> list[dict[str, Any]]:
    text = (SCENARIOS / name / "events.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines()]


@cache
def bans(name: str) -> list[dict[str, Any]]:
    text = (SCENARIOS / name / "bans.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def first(revs: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    for r in revs:
        if all(r[k] == v for k, v in match.items()):
            return r
    raise AssertionError(f"no revision with {match}")


def states(revs: list[dict[str, Any]]) -> list[str]:
    """The alert's states in order, repeats collapsed."""
    out: list[str] = []
    for r in revs:
        if not out or out[-1] != r["state"]:
            out.append(r["state"])
    return out


def geojson_positions(coords: Any) -> set[tuple[float, float]]:
    """Every [lon, lat] of a GeoJSON coordinates array, however nested."""
    if coords and isinstance(coords[0], int | float):
        return {(coords[0], coords[1])}
    return set().union(*(geojson_positions(c) for c in coords))


def check_follow_ups(out: Output, alert: list[dict[str, Any]]) -> None:
    """The outreach chain opened when the alert first became confirmed: its interview, sent
    once (contract v2: the talk and the referral follow outcomes, never at once)."""
    confirmed_at = ts(first(alert, confidence="confirmed")["updated_at"])
    for kind, (role, due) in FOLLOW_UPS.items():
        firsts = [t for t in out.tasks_for(alert[0]["alert_id"], kind) if t["seq"] == 1]
        if kind != "interview":
            assert firsts == []
            continue
        [t] = firsts
        assert (t["role"], t["unit_id"], t["target"]) == (role, None, None)
        assert ts(t["created_at"]) == confirmed_at
        assert ts(t["due_by"]) - ts(t["created_at"]) == due


def check_patrol_task(
    out: Output, alert: list[dict[str, Any]], kind: str, unit: str, place: str
) -> dict[str, Any]:
    """One `kind` task to `unit`, sent when the alert became priority 1, aimed at the alert's
    `place` (`position` or `protected_position`) of that revision, due in 10 minutes."""
    p1 = first(alert, priority=1)
    [t] = [x for x in out.tasks_for(alert[0]["alert_id"], kind) if x["seq"] == x["attempt"] == 1]
    assert (t["unit_id"], t["role"], t["priority"]) == (unit, None, 1)
    assert t["created_at"] == p1["updated_at"]
    assert ts(t["due_by"]) - ts(t["created_at"]) == timedelta(minutes=10)
    pos = p1[place]
    assert t["target"] == {"lat": pos["lat"], "lon": pos["lon"]}
    if kind == "respond":  # the nearest of the units the alert recommends
        assert unit == p1["recommended_units"][0]["unit_id"]
    return t


# ------------------------------------------------------------------------------- golden files
def _golden_params() -> list[Any]:
    return [
        pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_BUGS[n], strict=True))
        if n in KNOWN_BUGS
        else n
        for n in NAMES
    ]


@pytest.mark.parametrize("name", _golden_params())
def test_replay_matches_golden_file(name: str) -> None:
    expected = SCENARIOS / name / "expected.jsonl"
    actual = replay_text(name).encode("utf-8")
    if UPDATE:
        if name in KNOWN_BUGS:
            pytest.skip(f"golden file withheld: {KNOWN_BUGS[name]}")
        expected.write_bytes(actual)
        pytest.skip("golden file rewritten")
    assert expected.exists(), f"{expected} missing: run UPDATE_GOLDEN=1 (tests/scenarios/README)"
    assert actual == expected.read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_replay_is_deterministic(name: str) -> None:
    assert replay_text(name) == replay_text(name)


@pytest.mark.skipif(shutil.which("banwatch") is None, reason="banwatch is not installed")
def test_installed_command_gives_the_same_bytes() -> None:
    run = subprocess.run(["banwatch", *argv("incidents")], capture_output=True, check=True)
    assert run.stdout == replay_text("incidents").encode("utf-8")


# ------------------------------------------------------------- invariants of every scenario
@pytest.mark.parametrize("name", NAMES)
def test_revisions_follow_the_lifecycle(name: str) -> None:
    allowed = {
        "open": STATES - {"open"},
        "updated": STATES - {"open"},
        "escalated": {"escalated", "acknowledged", "resolved"},
        "acknowledged": {"acknowledged", "resolved"},
        "resolved": set(),
    }
    for revs in output(name).alerts.values():
        assert [r["seq"] for r in revs] == list(range(1, len(revs) + 1))
        assert revs[0]["state"] == "open"
        for a, b in itertools.pairwise(revs):
            assert b["state"] in allowed[a["state"]], (a["state"], b["state"])
            assert ts(b["updated_at"]) >= ts(a["updated_at"])
            assert b["opened_at"] == a["opened_at"]
        for r in revs:
            assert r["contract_version"] == 2
            assert r["kind"] in ALERT_KINDS


@pytest.mark.parametrize("name", NAMES)
def test_priorities_follow_the_contract_table(name: str) -> None:
    fixed = {
        "reported_contact": 1,
        "sos": 1,
        "approach": 2,
        "threat": 2,
        "battery_low": 3,
        "tip": 3,
        "late_evidence": 3,
        "unmatched_incident": 3,
    }
    for revs in output(name).alerts.values():
        for r in revs:
            kind = r["kind"]
            if kind in fixed:
                assert r["priority"] == fixed[kind], r
            elif kind in ("zone_breach", "proximity_breach"):
                expected = 2 if r["confidence"] == "possible" else 1
                assert r["priority"] == expected, r
            else:
                assert r["priority"] in (1, 2), r


@pytest.mark.parametrize("name", NAMES)
def test_escalation_comes_only_after_the_ack_sla(name: str) -> None:
    """Priority-1 alerts not acknowledged within 60 s get an escalated revision at p1 + 60 s
    (or earlier when 3 units did not accept its respond task: contract v2)."""
    for revs in output(name).alerts.values():
        p1 = next((r for r in revs if r["priority"] == 1), None)
        if p1 is None:
            assert "escalated" not in states(revs)
            continue
        due = ts(p1["updated_at"]) + timedelta(seconds=60)
        acked = next((r for r in revs if r["state"] in ("acknowledged", "resolved")), None)
        escalated = next((r for r in revs if r["state"] == "escalated"), None)
        if acked is not None and ts(acked["updated_at"]) < due:
            assert escalated is None
        elif escalated is not None and "no unit accepted" in escalated["reason"]:
            assert ts(escalated["updated_at"]) <= due
        elif escalated is not None:
            assert ts(escalated["updated_at"]) == due


@pytest.mark.parametrize("name", NAMES)
def test_patrol_tasks_carry_only_what_the_unit_needs(name: str) -> None:
    """No zone geometry, no protected person's home, no incident free text in any task; and
    no incident free text in any alert."""
    out = output(name)
    homes = {
        pos
        for b in bans(name)
        for f in (b.get("zones") or {}).get("features", [])
        for pos in geojson_positions(f["geometry"]["coordinates"])
    }
    notes = [
        e["value"]["note"]
        for e in events(name)
        if isinstance(e.get("value"), dict) and e["value"].get("note")
    ]
    for t in out.tasks:
        assert set(t) == task_fields(t["kind"])
        assert t["kind"] in TASK_KINDS
        text = json.dumps(t, ensure_ascii=False)
        for word in ("note", "coordinates", "Feature", "zone_id", "label", "Bostad"):
            assert word not in text, (word, t)
        if t["target"] is not None:
            assert set(t["target"]) == {"lat", "lon"}
            assert (t["target"]["lon"], t["target"]["lat"]) not in homes
        if t["unit_id"] is not None:
            assert t["kind"] in ("respond", "protect") and t["role"] is None
        else:
            assert t["role"] is not None and t["target"] is None
    for revs in out.alerts.values():
        for r in revs:
            text = json.dumps(r, ensure_ascii=False)
            assert not any(n in text for n in notes), r


@pytest.mark.parametrize("name", NAMES)
def test_actions_refer_to_alerts_of_the_replay(name: str) -> None:
    """The acks in events.jsonl carry alert ids the replay produced when build.py ran. If the
    engine's ids change, they become `unknown_alert` dead letters: rerun build.py."""
    acks = [e for e in events(name) if e["topic"] == "alert-acks" and e["key"] != "0" * 32]
    unknown = [d for d in output(name).dead if d["reason"] == "unknown_alert"]
    assert len(unknown) == (name == "poison"), "alert ids changed: run tests/scenarios/build.py"
    assert {e["key"] for e in acks} <= set(output(name).alerts)


@pytest.mark.parametrize("name", NAMES)
def test_dead_letters_name_a_reason(name: str) -> None:
    for d in output(name).dead:
        assert d["reason"] in DEAD_LETTER_REASONS
        assert d["error"]
        assert d["source_topic"] in INPUT_TOPICS
        assert "raw" in d


# ------------------------------------------------------------------------ the stories
def test_sodertalje_breach() -> None:
    out = output("sodertalje_breach")
    assert set(out.alerts) and not out.dead
    breach = out.only("zone_breach")
    assert {r["zone_id"] for r in breach} == {"home"}
    assert {r["ban_version"] for r in breach} == {3}
    assert min(r["priority"] for r in breach) == 1
    # the episode takes the most severe level any fix reached, with a revision when it rises
    rises = [r["confidence"] for r in breach[:3]]
    assert rises == ["possible", "probable", "confirmed"]
    assert [r["priority"] for r in breach[:3]] == [2, 1, 1]
    assert "exceeds 100 m" in breach[0]["reason"]  # the coarse fix counts as possible only
    assert states(breach) == ["open", "updated", "escalated", "acknowledged", "resolved"]
    assert breach[-1]["episode"] == "ended" and breach[-1]["resolved_by"] == "op-17"
    ended = first(breach, episode="ended")
    assert ended["state"] == "acknowledged"  # the episode ended before dispatch resolved it
    # respond to the nearest *available* unit (the busy SÖ-2170 is nearer)
    check_patrol_task(out, breach, "respond", "SÖ-2140", "position")
    assert all(u["unit_id"] != "SÖ-2170" for r in breach for u in r["recommended_units"])
    assert not out.tasks_for(breach[0]["alert_id"], "protect")
    check_follow_ups(out, breach)
    # the approach came first, once, and is a warning only
    approach = out.only("approach")
    assert ts(approach[0]["opened_at"]) < ts(breach[0]["opened_at"])
    assert {r["priority"] for r in approach} == {2}
    assert not out.tasks_for(approach[0]["alert_id"])
    assert {t["kind"] for t in out.tasks} == {"respond", "interview"}


def test_sodermalm_proximity() -> None:
    out = output("sodermalm_proximity")
    assert not out.dead
    prox = out.only("proximity_breach")
    assert {r["protected_person"] for r in prox} == {"P-2207"}
    assert min(r["priority"] for r in prox) == 1
    assert "confirmed" in {r["confidence"] for r in prox}
    assert first(prox, priority=1)["distance_m"] <= 500  # priority 1 once the fix is within
    assert states(prox) == ["open", "updated", "acknowledged", "resolved"]  # acked in time
    assert first(prox, episode="ended")["state"] == "acknowledged"
    respond = check_patrol_task(out, prox, "respond", "SM-3320", "position")
    protect = check_patrol_task(out, prox, "protect", "SM-3310", "protected_position")
    assert respond["unit_id"] != protect["unit_id"]
    check_follow_ups(out, prox)
    approach = out.only("approach")
    assert approach[0]["protected_person"] == "P-2207" and approach[0]["zone_id"] is None
    assert ts(approach[0]["opened_at"]) < ts(prox[0]["opened_at"])
    assert approach[-1]["episode"] == "ended"
    assert not out.of_kind("zone_breach")  # her home in Hammarby sjöstad is far away


def test_incidents() -> None:
    out = output("incidents")
    assert not out.dead
    from_incidents = [revs for revs in out.alerts.values() if "incident_id" in revs[0]]
    by_incident = {revs[0]["incident_id"]: revs for revs in from_incidents}
    assert len(by_incident) == len(from_incidents)  # the re-delivered 112 call adds no alert
    expected = {
        "I-88123": ("reported_contact", 1, "KF-2026-0142"),
        "I-88124": ("sos", 1, "KF-2026-0142"),
        "I-88125": ("threat", 2, "KF-2026-0142"),
        "I-88126": ("tip", 3, "KF-2026-0142"),  # matched by its position in the work zone
        "I-88127": ("unmatched_incident", 3, None),
        "I-88128": ("tamper", 1, "KF-2026-0142"),
        "I-88129": ("battery_low", 3, "KF-2026-0142"),
    }
    assert {
        i: (r[0]["kind"], r[0]["priority"], r[0]["ban_id"]) for i, r in by_incident.items()
    } == expected
    contact = by_incident["I-88123"]
    assert states(contact) == ["open", "acknowledged"]
    check_patrol_task(out, contact, "respond", "SÖ-2140", "position")
    check_follow_ups(out, contact)
    sos = by_incident["I-88124"]
    assert states(sos) == ["open", "escalated", "acknowledged", "resolved"]
    respond = check_patrol_task(out, sos, "respond", "SÖ-2140", "position")
    protect = check_patrol_task(out, sos, "protect", "SÖ-2150", "protected_position")
    [call] = [e["value"] for e in events("incidents") if e["key"] == "I-88124"]
    assert protect["target"] == {"lat": call["lat"], "lon": call["lon"]}
    # contract v2 rule 9: respond goes to the incident's position when it has one
    assert respond["target"] == {"lat": call["lat"], "lon": call["lon"]}
    assert respond["unit_id"] != protect["unit_id"]
    tamper = by_incident["I-88128"]
    check_patrol_task(out, tamper, "respond", "SÖ-2140", "position")
    assert not out.tasks_for(tamper[0]["alert_id"], "interview")
    unmatched = by_incident["I-88127"]
    assert states(unmatched) == ["open", "acknowledged", "resolved"]
    for quiet in ("I-88125", "I-88126", "I-88127", "I-88129"):
        assert not out.tasks_for(by_incident[quiet][0]["alert_id"])
    # the tag went silent at 08:45; the timers ran on to --until 08:52
    lost = out.only("signal_lost")
    assert len(out.alerts) == len(from_incidents) + 1
    assert lost[0]["opened_at"] == "2026-11-22T08:50:00Z" and lost[0]["priority"] == 1
    assert states(lost) == ["open", "escalated"]
    assert first(lost, state="escalated")["updated_at"] == "2026-11-22T08:51:00Z"
    # no unit answers in this story: after the third unit's deadline the alert says so
    assert "no unit accepted the respond task: 3 units asked" in lost[-1]["reason"]
    check_patrol_task(out, lost, "respond", "SÖ-2140", "position")


def test_signal_loss() -> None:
    out = output("signal_loss")
    lost = {revs[0]["device_id"]: revs for revs in out.of_kind("signal_lost")}
    assert set(lost) == {"EM-0550", "EM-0551"}  # the protected person's phone is not watched
    assert len(out.alerts) == 2
    for revs in lost.values():
        # opened when the tag had been silent for signal_timeout_s
        silent_since = ts(revs[0]["position"]["ts"])
        assert ts(revs[0]["opened_at"]) == silent_since + timedelta(seconds=300)
        assert states(revs)[-1] == "resolved"
        assert "signal restored" in first(revs, episode="ended")["reason"]
    gnesta = lost["EM-0550"]  # ~25 km away: p2, then p1 once 40 m/s could reach the zone
    assert gnesta[0]["priority"] == 2
    rise = first(gnesta, priority=1)
    assert (
        ts(gnesta[0]["opened_at"])
        < ts(rise["updated_at"])
        < ts(gnesta[0]["opened_at"]) + timedelta(seconds=600)
    )
    assert states(gnesta) == ["open", "updated", "escalated", "acknowledged", "resolved"]
    check_patrol_task(out, gnesta, "respond", "SÖ-2810", "position")
    ronna = lost["EM-0551"]  # ~2 km from the zone: p1 at once
    assert ronna[0]["priority"] == 1
    assert states(ronna) == ["open", "escalated", "acknowledged", "resolved"]
    check_patrol_task(out, ronna, "respond", "SÖ-2150", "position")


def test_late_evidence() -> None:
    out = output("late_evidence")
    late = out.only("late_evidence")
    assert {r["priority"] for r in late} == {3}
    assert late[0]["zone_id"] == "home"
    # raised by a stored fix from inside the zone, uploaded after a newer live fix
    assert ts("2026-11-22T13:06:30Z") <= ts(late[0]["position"]["ts"]) < ts("2026-11-22T13:10:00Z")
    assert ts(late[0]["opened_at"]) == ts("2026-11-22T13:10:00Z")
    assert not out.tasks_for(late[0]["alert_id"])
    # the stored fixes changed no live state: the only breach is the live one, 10 minutes on
    breach = out.only("zone_breach")
    assert ts(breach[0]["opened_at"]) >= ts("2026-11-22T13:20:00Z")
    assert check_patrol_task(out, breach, "respond", "SÖ-2140", "position")
    # a late fix from inside that live episode is no late evidence: still one such alert
    assert len(out.of_kind("late_evidence")) == 1


def test_knock() -> None:
    out = output("knock")
    approaches = sorted(out.of_kind("approach"), key=lambda revs: revs[0]["opened_at"])
    assert len(approaches) == 3
    assert all(revs[-1]["episode"] == "ended" for revs in approaches)
    assert not out.of_kind("zone_breach")
    [knock] = [t for t in out.tasks if t["kind"] == "knock"]
    assert (knock["role"], knock["unit_id"], knock["ban_id"]) == ("outreach", None, "KF-2026-0404")
    third = approaches[2][0]
    assert knock["alert_id"] == third["alert_id"]
    assert knock["created_at"] == third["opened_at"]
    assert ts(third["opened_at"]) - ts(approaches[0][0]["opened_at"]) < timedelta(days=7)
    assert [t["kind"] for t in out.tasks] == ["knock"]


def test_jitter_gives_one_breach_alert_for_the_person_just_inside() -> None:
    out = output("jitter")
    breach = out.only("zone_breach")
    assert breach[0]["ban_id"] == "KF-2026-0506"
    assert all(r["episode"] == "active" for r in breach)  # jitter never ends the episode
    assert len(breach) > 30  # many revisions of the one alert
    assert states(breach) == ["open", "updated", "acknowledged"]
    check_patrol_task(out, breach, "respond", "SÖ-2140", "position")


def test_jitter_raises_no_approach() -> None:
    """Jitter of up to 20 m around a fixed point (accuracies 8-15 m) is no "closing in"."""
    out = output("jitter")
    assert not out.of_kind("approach")
    assert not [revs for revs in out.alerts.values() if revs[0]["ban_id"] == "KF-2026-0505"]


def test_ban_lifecycle() -> None:
    out = output("ban_lifecycle")
    assert not out.dead  # a stale version and a tombstone are no dead letters
    by_ban: dict[str, list[list[dict[str, Any]]]] = {}
    for revs in out.alerts.values():
        by_ban.setdefault(revs[0]["ban_id"], []).append(revs)
    assert set(by_ban) == {"KF-2026-0601", "KF-2026-0602"}  # the lifted ban C never alerts
    # A: the stale v1 (revoked) was ignored, so v2 holds; after v3 revoked it, nothing new
    [a] = by_ban["KF-2026-0601"]
    assert a[0]["kind"] == "zone_breach" and {r["ban_version"] for r in a} == {2}
    assert a[0]["opened_at"] == "2026-11-22T11:50:30Z"
    assert states(a) == ["open", "acknowledged", "resolved"]
    # contract v2 rule 7: the revocation (v3 at 11:52) resolves it; the operator's later
    # resolve changes nothing
    assert a[-1]["resolved_by"] == "system" and a[-1]["updated_at"] == "2026-11-22T11:52:00Z"
    assert "revoked" in a[-1]["reason"]
    # B: in force from 12:00 (inclusive) until 14:00 (exclusive)
    [b] = by_ban["KF-2026-0602"]
    assert b[0]["opened_at"] == "2026-11-22T12:00:00Z"
    assert all(ts(r["position"]["ts"]) < ts("2026-11-22T14:00:00Z") for r in b)
    assert states(b) == ["open", "acknowledged", "resolved"]
    assert b[-1]["resolved_by"] == "system" and b[-1]["updated_at"] == "2026-11-22T14:00:00Z"
    assert "expired" in b[-1]["reason"]


POISON_REASONS = [
    "decode",  # broken JSON
    "schema",  # a string for a number
    "schema",  # naive timestamp
    "future",
    "schema",  # "NaN" as a string
    "schema",  # NaN literal
    "schema",  # lat 91
    "schema",  # accuracy 0
    "schema",  # a personal identity number as id
    "key_mismatch",
    "decode",  # null value on positions
    "decode",  # a JSON array
    "decode",  # random bytes
    "too_large",
    "schema",  # a 12 000-character note
    "schema",  # unknown ban kind
    "geometry",  # self-intersecting polygon
    "geometry",  # ring not closed
    "schema",  # unknown patrol status
    "unknown_alert",
    "schema",  # empty object
]


def test_poison() -> None:
    out = output("poison")
    assert [d["reason"] for d in out.dead] == POISON_REASONS
    lines = events("poison")
    for d in out.dead:
        raw = lines[d["offset"] - 1]  # offsets are line numbers of the events file
        assert d["source_topic"] == raw["topic"] and d["key"] == raw["key"]
        if "value_b64" in raw:
            assert (d["raw"], d["raw_encoding"]) == (raw["value_b64"], "base64")
    assert "198504121234" not in json.dumps([*out.alerts.values(), out.tasks], ensure_ascii=False)
    # the record dated 2026-11-24 moved no clock: nothing happens after the story (16:00-16:20)
    assert all(
        r["updated_at"] < "2026-11-22T16:20:00Z" for revs in out.alerts.values() for r in revs
    )
    # the valid records between the poison still count
    approach = out.only("approach")
    breach = out.only("zone_breach")
    last_poison = max(ts(d["ts"]) for d in out.dead)
    assert ts(approach[0]["opened_at"]) < last_poison < ts(breach[0]["opened_at"])
    check_patrol_task(out, breach, "respond", "SÖ-2160", "position")
    check_follow_ups(out, breach)
    assert out.only("battery_low")[0]["priority"] == 3


# ---------------------------------------------------------------------------------- coverage
def test_scenarios_cover_the_contract() -> None:
    alert_kinds: set[str] = set()
    task_kinds: set[str] = set()
    seen_states: set[str] = set()
    dead = 0
    signal_starts: Counter[int] = Counter()
    signal_rises = 0
    for name in NAMES:
        out = output(name)
        for revs in out.alerts.values():
            alert_kinds.add(revs[0]["kind"])
            seen_states |= {r["state"] for r in revs}
            if revs[0]["kind"] == "signal_lost":
                signal_starts[revs[0]["priority"]] += 1
                signal_rises += revs[0]["priority"] == 2 and revs[-1]["priority"] == 1
        task_kinds |= {t["kind"] for t in out.tasks}
        dead += len(out.dead)
    assert alert_kinds == ALERT_KINDS
    assert task_kinds == TASK_KINDS
    assert seen_states == STATES
    assert dead > 0
    assert signal_starts[1] >= 1 and signal_rises >= 1
