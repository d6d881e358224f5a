"""The demo closes the loop (`banwatch up --demo`): played with its actors against a real worker
on the embedded broker, units accept, drive, arrive and close, one declines and the task moves
on, the interview and the motivational talk are held with consent and a referral appears."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from streams.demo.actors import FAST, distance_m
from streams.demo.scenario import play_demo
from streams.kafka.broker import EmbeddedBroker
from tests.streams.workers import WorkerProc, collect

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(180)]

Json = dict[str, Any]


class Demo:
    """`play_demo` with its actors in a thread of its own."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(bootstrap, prefix), daemon=True)
        self.thread.start()

    def _run(self, bootstrap: str, prefix: str) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(
                play_demo(bootstrap, prefix, self.stop, actors=True, pace=FAST)
            )
        except BaseException as exc:
            self.error = exc

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(15)


def latest(records: list[Json]) -> dict[str, Json]:
    out: dict[str, Json] = {}
    for r in records:
        old = out.get(r["task_id"])
        if old is None or r["seq"] > old["seq"]:
            out[r["task_id"]] = r
    return out


def states(records: list[Json]) -> set[tuple[str, str]]:
    return {(r["kind"], r["state"]) for r in records}


def loop_closed(records: list[Json]) -> bool:
    s = states(records)
    return {
        ("respond", "accepted"),
        ("respond", "on_scene"),
        ("respond", "done"),
        ("respond", "declined"),
        ("interview", "done"),
        ("motivational_talk", "done"),
    } <= s and any(r["kind"] == "referral" for r in records)


def test_the_demo_closes_the_loop(broker: EmbeddedBroker) -> None:
    prefix = f"dl{time.monotonic_ns() % 10**8}."
    worker = WorkerProc(broker.bootstrap, prefix).start()
    demo = Demo(broker.bootstrap, prefix)
    try:
        got = collect(broker.bootstrap, prefix + "patrol-tasks", loop_closed, timeout_s=60)
    finally:
        demo.close()
        assert worker.stop() == 0, "\n".join(worker.lines[-30:])
    assert demo.error is None, repr(demo.error)
    assert loop_closed(got), sorted(states(got))

    # a respond task went all the way, and its unit drove there
    done = next(r for r in got if r["kind"] == "respond" and r["state"] == "done")
    assert done["outcome"] in {"contact_made", "not_found", "arrested"}
    target = (done["target"]["lat"], done["target"]["lon"])
    unit = done["unit_id"]
    on_scene = next(r for r in got if r["task_id"] == done["task_id"] and r["state"] == "on_scene")
    positions = collect(broker.bootstrap, prefix + "patrol-positions", lambda r: True, timeout_s=2)
    after = [p for p in positions if p["unit_id"] == unit and p["ts"] > on_scene["updated_at"]]
    assert after, unit
    assert distance_m((after[0]["lat"], after[0]["lon"]), target) < 30

    # the declined task moved on to another unit of the same alert
    declined = next(r for r in got if r["kind"] == "respond" and r["state"] == "declined")
    moved = [
        r
        for r in got
        if r["alert_id"] == declined["alert_id"]
        and r["kind"] == "respond"
        and r["unit_id"] != declined["unit_id"]
    ]
    assert moved, declined

    # the referral after the talk held with consent carries only what the contract allows
    referral = next(r for r in got if r["kind"] == "referral")
    talk = latest(got)[referral["chain"][-1]]
    assert talk["kind"] == "motivational_talk" and talk["outcome"] == "held_accepts_help"
    assert referral["restrained_person"] == "P-8810" and referral["role"] == "social_services"
    assert referral["target"] is None and referral["alert_id"] is None
