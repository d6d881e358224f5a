"""`banwatch tail tasks` shows the task lifecycle (contract v2), `--unit` and `--role` keep one
unit's or one role's tasks, and `banwatch tail notifications` follows the protected persons'
warnings: as a user runs them, against the embedded broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from streams.kafka.blocking import make_producer, produce_json
from streams.kafka.broker import EmbeddedBroker
from streams.kafka.topics import ensure_topics
from tests.streams.test_commands import ALERT, banwatch, banwatch_tail, read_all
from tests.streams.workers import ROOT, ts

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(120)]

LIFE = [("assigned", None), ("accepted", None), ("en_route", None), ("on_scene", None)]


def _task(task_id: str, kind: str, seq: int, state: str, **over: Any) -> dict[str, Any]:
    t: dict[str, Any] = {
        "task_id": task_id,
        "alert_id": "a1",
        "kind": kind,
        "priority": 1,
        "unit_id": None,
        "role": None,
        "ban_id": "KF-T1",
        "target": None,
        "created_at": ts(),
        "updated_at": ts(seq),
        "due_by": ts(600),
        "instructions": f"instructions of {task_id}",
        "seq": seq,
        "state": state,
        "outcome": None,
        "contract_version": 2,
    }
    t.update(over)
    return t


def _note(person: str, level: str, code: str) -> dict[str, Any]:
    return {
        "notification_id": f"n-{person}-{level}",
        "person_id": person,
        "ban_id": "KF-T1",
        "alert_id": "a1",
        "ts": ts(),
        "level": level,
        "code": code,
        "police_dispatched": True,
        "contract_version": 2,
    }


def test_tail_shows_the_task_lifecycle_and_the_warnings(
    broker: EmbeddedBroker, prefix: str
) -> None:
    ensure_topics(broker.bootstrap, prefix)
    env = {"BANWATCH_KAFKA_BOOTSTRAP": broker.bootstrap, "BANWATCH_TOPIC_PREFIX": prefix}
    p = make_producer(broker.bootstrap)
    revisions = [
        _task("t-r1", "respond", i + 1, state, unit_id="SÖ-1", attempt=1)
        for i, (state, _) in enumerate(LIFE)
    ]
    revisions.append(
        _task("t-r1", "respond", 5, "done", unit_id="SÖ-1", attempt=1, outcome="contact_made")
    )
    revisions.append(_task("t-r2", "respond", 1, "declined", unit_id="SÖ-2", attempt=2))
    revisions.append(_task("t-i1", "interview", 1, "assigned", role="investigator"))
    revisions.append(_task("t-i1", "interview", 2, "done", role="investigator", outcome="held"))
    revisions.append(_task("t-m1", "motivational_talk", 1, "assigned", role="negotiator"))
    for t in revisions:
        produce_json(p, prefix + "patrol-tasks", t["unit_id"] or t["role"], t)
    for person, level, code in (
        ("P-V1", "warning", "approach"),
        ("P-V2", "warning", "approach"),
        ("P-V1", "danger", "zone_breach"),
        ("P-V1", "all_clear", "zone_breach"),
    ):
        produce_json(p, prefix + "protected-notifications", person, _note(person, level, code))
    p.flush()
    p.close()

    out = banwatch_tail(env, "tasks", "--from-beginning", "--unit", "SÖ-1").splitlines()
    assert [line.split()[5] for line in out] == [
        "assigned",
        "accepted",
        "en_route",
        "on_scene",
        "done",
    ]
    assert out[-1].count("outcome contact_made") == 1 and "rev 5]" in out[-1]
    assert "instructions of t-r1" in out[0]
    assert all("instructions" not in line for line in out[1:])  # said once, on the first
    assert all("attempt 1" in line for line in out)

    out = banwatch_tail(env, "tasks", "--from-beginning", "--role", "investigator", "--json")
    rows = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert [(r["task_id"], r["seq"], r["state"], r["outcome"]) for r in rows] == [
        ("t-i1", 1, "assigned", None),
        ("t-i1", 2, "done", "held"),
    ]

    out = banwatch_tail(env, "notifications", "--from-beginning", "--person", "P-V1")
    lines = out.splitlines()
    assert [line.split()[1:3] for line in lines] == [
        ["WARNING", "approach"],
        ["DANGER", "zone_breach"],
        ["ALL_CLEAR", "zone_breach"],
    ]
    assert all("P-V1" in line and "police dispatched" in line for line in lines)
    out = banwatch_tail(env, "notifications", "--from-beginning", "--json")
    assert sorted(json.loads(x)["person_id"] for x in out.splitlines()) == [
        "P-V1",
        "P-V1",
        "P-V1",
        "P-V2",
    ]
    audit = [v for _, v in read_all(broker.bootstrap, prefix + "audit")]
    assert sorted(a["object"] for a in audit) == [
        "topic:notifications",
        "topic:notifications",
        "topic:tasks",
        "topic:tasks",
    ]
    # a filter that does not apply to the topic is a usage error, before anything is read
    r = banwatch("tail", "notifications", "--role", "negotiator", env=env)
    assert r.returncode == 2 and "--role" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_tail_ends_at_once_and_cleanly_on_ctrl_c_and_sigterm(
    broker: EmbeddedBroker, prefix: str, sig: signal.Signals
) -> None:
    """Ctrl-C or SIGTERM ends `tail` between two polls with status 0 (before: a SIGTERM killed
    it, status -15, and a Ctrl-C raised inside the Kafka client, which once left it hanging
    for over 10 s on a loaded machine)."""
    ensure_topics(broker.bootstrap, prefix)
    env = {"BANWATCH_KAFKA_BOOTSTRAP": broker.bootstrap, "BANWATCH_TOPIC_PREFIX": prefix}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "tail", "alerts", "--from-beginning"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    p = make_producer(broker.bootstrap)
    produce_json(p, prefix + "alerts", "a9", {**ALERT, "alert_id": "a9"})
    p.flush()
    shown = ""
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while "[a9 rev 1]" not in shown and time.monotonic() < deadline:
        shown += proc.stdout.readline()  # following: the alert produced after it started
    p.close()
    assert "[a9 rev 1]" in shown, shown
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, (proc.returncode, err[-2000:])
    assert time.monotonic() - sent < 5.0
    assert "Traceback" not in err
