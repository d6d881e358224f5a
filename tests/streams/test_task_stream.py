"""Task updates through real `banwatch worker` processes on the embedded broker (contract v2,
"Tasks have a lifecycle"): routed to the state that owns the task, answered with revised tasks
and alerts, dead-lettered with their reasons; busy units known on every partition; the task
index rebuilt after a restart.

The acceptance SLA runs on the worker's wall clock. The fleet is global, so a task that expires
goes on to the nearest free unit anywhere, another test's too: the shared worker gets a long
SLA (nothing expires while the module runs), and the expiry test a short one (TEST_SLA_S, a
policy file) on a worker of its own."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.blocking import follow
from streams.kafka.broker import EmbeddedBroker
from streams.worker.routing import partition_for
from tests.streams.workers import Feed, WorkerProc, ban, collect, fix, patrol, ts

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(240)]

NOTE = "the unit met her at the door of Storgatan 3"
TEST_SLA_S = 6.0
LONG_SLA_S = 300.0
LAT, LON = 59.1950, 17.6280

Json = dict[str, Any]


def sla_policy(tmp: Path, sla_s: float) -> Path:
    path = tmp / f"policy-{sla_s:g}.toml"
    path.write_text(f"task_accept_sla_s = {sla_s}\n", "utf-8")
    return path


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sla_policy(tmp_path_factory.mktemp("policy"), LONG_SLA_S)


WORKERS: dict[str, WorkerProc] = {}  # prefix -> the module's worker


@pytest.fixture(scope="module")
def worker(broker: EmbeddedBroker, policy_file: Path) -> Iterator[tuple[str, Feed]]:
    prefix = f"tu{time.monotonic_ns() % 10**8}."
    w = WorkerProc(broker.bootstrap, prefix, BANWATCH_POLICY_FILE=str(policy_file)).start()
    WORKERS[prefix] = w
    feed = Feed(broker.bootstrap, prefix)
    try:
        yield prefix, feed
    finally:
        feed.close()
        assert w.stop() == 0, "\n".join(w.lines[-30:])


# ----------------------------------------------------------------------------- helpers
def latest(records: list[Json]) -> dict[str, Json]:
    """task id -> its highest revision."""
    out: dict[str, Json] = {}
    for r in records:
        if r.get("task_id") is None:
            continue
        old = out.get(r["task_id"])
        if old is None or r["seq"] > old["seq"]:
            out[r["task_id"]] = r
    return out


def revisions(records: list[Json], task_id: str) -> list[Json]:
    return sorted((r for r in records if r.get("task_id") == task_id), key=lambda r: r["seq"])


def tasks(broker: EmbeddedBroker, prefix: str, done: Any, timeout_s: float = 25.0) -> list[Json]:
    return collect(broker.bootstrap, prefix + "patrol-tasks", done, timeout_s=timeout_s)


def responds(records: list[Json], ban_id: str) -> list[Json]:
    """The respond tasks of `ban_id`, first revisions, oldest first."""
    firsts = [r for r in records if r["ban_id"] == ban_id and r["kind"] == "respond"]
    return [r for r in firsts if r["seq"] == 1]


def breach(
    feed: Feed, ban_id: str, person: str, lon: float, units: list[tuple[str, float]]
) -> None:
    """A ban at `lon`, patrol units `north_deg` north of its zone, then a fix inside it."""
    feed.send("contact-bans", ban_id, ban(ban_id, person, person + "V", lon, LAT))
    for unit, north in units:
        feed.send("patrol-positions", unit, patrol(unit, LAT + north, lon, ts()))
    feed.flush()
    time.sleep(0.8)
    feed.send("positions", person, fix(person, "EM-" + person, LAT + 0.001, lon + 0.001, ts()))
    feed.flush()


def answer(feed: Feed, task: Json, action: str, by: str | None = None, **extra: Any) -> None:
    feed.send(
        "task-updates",
        task["task_id"],
        {
            "task_id": task["task_id"],
            "by": by or task["unit_id"] or "demo-user",
            "role": task["role"] or "patrol",
            "ts": ts(),
            "action": action,
            "outcome": None,
            "consent_to_share": None,
            **extra,
        },
    )
    feed.flush()


def first_respond(broker: EmbeddedBroker, prefix: str, ban_id: str) -> Json:
    got = tasks(broker, prefix, lambda r: bool(responds(r, ban_id)))
    found = responds(got, ban_id)
    assert found, got
    return found[0]


def person_on(partitions: set[int], stem: str) -> str:
    """A restrained person's pseudonym whose state lives on one of `partitions`."""
    return next(f"{stem}{i}" for i in range(1000) if partition_for(f"{stem}{i}") in partitions)


# ------------------------------------------------------------------------------- tests
def test_a_respond_task_accepted_en_route_on_scene_and_done_shows_on_the_alert(
    broker: EmbeddedBroker, worker: tuple[str, Feed]
) -> None:
    prefix, feed = worker
    lon = LON + 0.1
    breach(feed, "KF-T1", "P-T1", lon, [("SÖ-T1", 0.004)])
    task = first_respond(broker, prefix, "KF-T1")
    assert task["unit_id"] == "SÖ-T1" and task["state"] == "assigned"
    answer(feed, task, "accept", note=NOTE)
    for action in ("en_route", "on_scene"):
        answer(feed, task, action)
    answer(feed, task, "done", outcome="arrested")
    got = tasks(broker, prefix, lambda r: latest(r).get(task["task_id"], {}).get("state") == "done")
    states = [r["state"] for r in revisions(got, task["task_id"])]
    assert states == ["assigned", "accepted", "en_route", "on_scene", "done"], states
    assert revisions(got, task["task_id"])[-1]["outcome"] == "arrested"

    def responded(records: list[Json]) -> bool:
        return any(
            a["alert_id"] == task["alert_id"] and (a.get("response") or {}).get("outcome")
            for a in records
        )

    alerts = collect(broker.bootstrap, prefix + "alerts", responded, timeout_s=20)
    mine = sorted((a for a in alerts if a["alert_id"] == task["alert_id"]), key=lambda a: a["seq"])
    response = mine[-1]["response"]
    assert response["unit_id"] == "SÖ-T1" and response["outcome"] == "arrested"
    assert response["accepted_at"] is not None and response["on_scene_at"] is not None
    assert mine[0]["response"] is None  # nobody had accepted when the alert opened
    # the note is stored from task-updates, never copied on (nor in any output)
    for topic in ("banwatch-routed", "banwatch-task-route", "alerts", "patrol-tasks"):
        raw = [r.value for r in follow(broker.bootstrap, prefix + topic, True, idle_timeout_s=0.5)]
        assert raw and not any(NOTE.encode() in (v or b"") for v in raw), topic


def test_a_role_task_routes_to_its_restrained_person_and_the_chain_moves_on(
    broker: EmbeddedBroker, worker: tuple[str, Feed]
) -> None:
    prefix, feed = worker
    lon = LON + 0.2
    breach(feed, "KF-T2", "P-T2", lon, [("SÖ-T2", 0.004)])

    def interview(records: list[Json]) -> list[Json]:
        return [r for r in records if r["kind"] == "interview" and r["ban_id"] == "KF-T2"]

    got = tasks(broker, prefix, lambda r: bool(interview(r)))
    task = interview(got)[0]
    assert task["restrained_person"] == "P-T2" and task["role"] == "investigator"
    answer(feed, task, "done", by="inv-1", outcome="held")
    got = tasks(
        broker,
        prefix,
        lambda r: any(t["kind"] == "motivational_talk" and t["ban_id"] == "KF-T2" for t in r),
    )
    assert latest(got)[task["task_id"]]["state"] == "done"
    talk = next(t for t in got if t["kind"] == "motivational_talk" and t["ban_id"] == "KF-T2")
    assert talk["role"] == "negotiator" and talk["restrained_person"] == "P-T2"


def test_an_unmatched_sos_task_reaches_its_incident_scope(
    broker: EmbeddedBroker, worker: tuple[str, Feed]
) -> None:
    """An SOS that matches no ban: its alert and task live under `incident:<id>`, which the
    alert index knows; the update finds it through the alert's owner."""
    prefix, feed = worker
    lat, lon = LAT + 0.2, LON + 0.8
    feed.send("patrol-positions", "SÖ-S1", patrol("SÖ-S1", lat + 0.004, lon, ts()))
    feed.flush()
    time.sleep(0.8)
    sos = {"incident_id": "I-S1", "ts": ts(), "kind": "sos", "lat": lat, "lon": lon}
    feed.send("incidents", "I-S1", sos)
    feed.flush()

    def sos_task(records: list[Json]) -> list[Json]:
        return [r for r in records if r["unit_id"] == "SÖ-S1" and r["kind"] == "respond"]

    task = sos_task(tasks(broker, prefix, lambda r: bool(sos_task(r))))[0]
    assert task["ban_id"] is None
    answer(feed, task, "accept")
    got = tasks(
        broker, prefix, lambda r: latest(r).get(task["task_id"], {}).get("state") == "accepted"
    )
    assert latest(got)[task["task_id"]]["state"] == "accepted"


def test_a_decline_moves_the_task_to_the_next_unit(
    broker: EmbeddedBroker, worker: tuple[str, Feed]
) -> None:
    prefix, feed = worker
    lon = LON + 0.3
    breach(feed, "KF-T3", "P-T3", lon, [("SÖ-T3A", 0.004), ("SÖ-T3B", 0.008)])
    task = first_respond(broker, prefix, "KF-T3")
    assert task["unit_id"] == "SÖ-T3A" and task["attempt"] == 1
    answer(feed, task, "decline")
    got = tasks(broker, prefix, lambda r: len(responds(r, "KF-T3")) >= 2)
    assert latest(got)[task["task_id"]]["state"] == "declined"
    second = responds(got, "KF-T3")[1]
    assert second["unit_id"] == "SÖ-T3B" and second["attempt"] == 2
    assert second["alert_id"] == task["alert_id"] and second["task_id"] != task["task_id"]


def test_an_unanswered_task_expires_after_the_sla_on_the_wall_clock(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prefix = f"te{time.monotonic_ns() % 10**8}."
    env = {"BANWATCH_POLICY_FILE": str(sla_policy(tmp_path, TEST_SLA_S))}
    w = WorkerProc(broker.bootstrap, prefix, **env).start()
    feed = Feed(broker.bootstrap, prefix)
    try:
        breach(feed, "KF-T4", "P-T4", LON + 0.4, [("SÖ-T4A", 0.004), ("SÖ-T4B", 0.008)])
        task = first_respond(broker, prefix, "KF-T4")
        seen = time.monotonic()
        got = tasks(
            broker, prefix, lambda r: len(responds(r, "KF-T4")) >= 2, timeout_s=TEST_SLA_S + 20
        )
        took = time.monotonic() - seen
    finally:
        feed.close()
        assert w.stop() == 0, "\n".join(w.lines[-30:])
    expired = latest(got)[task["task_id"]]
    assert expired["state"] == "expired", expired
    second = responds(got, "KF-T4")[1]
    assert second["unit_id"] == "SÖ-T4B" and second["attempt"] == 2
    # not before the SLA (less the time it took us to see the task), and not much after
    assert TEST_SLA_S - 3 <= took <= TEST_SLA_S + 15, took


def test_an_unknown_task_and_an_invalid_transition_go_to_dead_letters(
    broker: EmbeddedBroker, worker: tuple[str, Feed]
) -> None:
    prefix, feed = worker
    lon = LON + 0.5
    breach(feed, "KF-T5", "P-T5", lon, [("SÖ-T5", 0.004)])
    task = first_respond(broker, prefix, "KF-T5")
    answer(feed, task, "accept")
    answer(feed, task, "done", outcome="contact_made")
    tasks(broker, prefix, lambda r: latest(r).get(task["task_id"], {}).get("state") == "done")
    answer(feed, task, "accept")  # after an end state
    answer(feed, {**task, "task_id": "no-such-task"}, "accept")

    def reasons(records: list[Json]) -> set[tuple[str, str]]:
        return {(d["source_topic"], d["reason"]) for d in records}

    dead = collect(
        broker.bootstrap,
        prefix + "dead-letters",
        lambda r: (
            {("task-updates", "unknown_task"), ("task-updates", "invalid_transition")} <= reasons(r)
        ),
        timeout_s=20,
    )
    assert ("task-updates", "unknown_task") in reasons(dead), dead
    assert ("task-updates", "invalid_transition") in reasons(dead), dead
    unknown = next(d for d in dead if d["reason"] == "unknown_task")
    assert unknown["key"] == "no-such-task"
    got = tasks(broker, prefix, lambda r: True, timeout_s=3)
    assert latest(got)[task["task_id"]]["state"] == "done"  # the late accept changed nothing
    ready = next(line for line in WORKERS[prefix].lines if line.startswith("worker: ready"))
    url = re.search(r"metrics: (http://\S+/metrics)", ready)
    assert url, ready
    with urllib.request.urlopen(url.group(1), timeout=5) as resp:
        text = resp.read().decode()
    for reason in ("unknown_task", "invalid_transition"):
        series = f'banwatch_dead_letters_total{{reason="{reason}",topic="task-updates"}}'
        assert f"{series} 1.0" in text, [ln for ln in text.splitlines() if "task-updates" in ln]


def test_a_busy_unit_is_not_tasked_by_an_alert_on_another_workers_partition(
    broker: EmbeddedBroker, policy_file: Path
) -> None:
    """Two workers: the range assignor gives each two partitions (0-1 and 2-3), so persons
    on partitions 0 and 3 are decided by different workers; the second knows the first's
    unit is busy only from the accepted task revision it read on `patrol-tasks`."""
    prefix = f"tb{time.monotonic_ns() % 10**8}."
    env = {"BANWATCH_POLICY_FILE": str(policy_file)}
    w1 = WorkerProc(broker.bootstrap, prefix, **env).start()
    w2 = WorkerProc(broker.bootstrap, prefix, **env).start()
    feed = Feed(broker.bootstrap, prefix)
    try:
        time.sleep(3)  # the first worker's rebalance after the second joined
        a, b = person_on({0}, "P-BA"), person_on({3}, "P-BB")
        lon = LON + 0.6
        # both bans' zones side by side; SÖ-B1 nearest to both, SÖ-B2 a little farther
        breach(feed, "KF-BA", a, lon, [("SÖ-B1", 0.004), ("SÖ-B2", 0.012)])
        task = first_respond(broker, prefix, "KF-BA")
        assert task["unit_id"] == "SÖ-B1"
        answer(feed, task, "accept")
        tasks(
            broker, prefix, lambda r: latest(r).get(task["task_id"], {}).get("state") == "accepted"
        )
        time.sleep(1.0)  # the other worker's task feed reads it
        feed.send("contact-bans", "KF-BB", ban("KF-BB", b, b + "V", lon + 0.003, LAT))
        feed.flush()
        time.sleep(0.8)
        feed.send("positions", b, fix(b, "EM-" + b, LAT + 0.001, lon + 0.004, ts()))
        feed.flush()
        other = first_respond(broker, prefix, "KF-BB")
        assert other["unit_id"] == "SÖ-B2", other
    finally:
        feed.close()
        assert w2.stop() == 0, "\n".join(w2.lines[-30:])
        assert w1.stop() == 0, "\n".join(w1.lines[-30:])


def test_a_task_update_after_a_worker_restart_still_reaches_its_task(
    broker: EmbeddedBroker, policy_file: Path
) -> None:
    prefix = f"tr{time.monotonic_ns() % 10**8}."
    env = {"BANWATCH_POLICY_FILE": str(policy_file)}  # a long SLA: the task waits meanwhile
    w = WorkerProc(broker.bootstrap, prefix, **env).start()
    feed = Feed(broker.bootstrap, prefix)
    try:
        breach(feed, "KF-R1", "P-R1", LON + 0.7, [("SÖ-R1", 0.004)])
        task = first_respond(broker, prefix, "KF-R1")
        assert w.stop() == 0, "\n".join(w.lines[-30:])
        w = WorkerProc(broker.bootstrap, prefix, **env).start()
        answer(feed, task, "accept")
        got = tasks(
            broker, prefix, lambda r: latest(r).get(task["task_id"], {}).get("state") == "accepted"
        )
        assert latest(got)[task["task_id"]]["state"] == "accepted"
        dead = collect(broker.bootstrap, prefix + "dead-letters", lambda r: True, timeout_s=2)
        assert [d for d in dead if d["source_topic"] == "task-updates"] == []
    finally:
        feed.close()
        assert w.stop() == 0, "\n".join(w.lines[-30:])
