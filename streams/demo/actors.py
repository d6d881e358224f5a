"""The demo's actors: the patrol units and roles that answer their tasks (contract v2, "Tasks
have a lifecycle"), so that `banwatch up --demo` shows the loop close.

They read `patrol-tasks` and publish `task-updates` as the units and roles would, a few seconds
after a task appears (the demo plays in real time, so due times of hours or days are met by
acting at once; the acceptance SLA, 30 s of wall clock, by answering within seconds):

- a unit of `UNITS` accepts its respond or protect task, reports en route, drives to the
  target (its `patrol-positions` move there: `drives`, read by the demo's feed), reports on
  scene on arrival and closes with its kind's outcome; the first respond task for the ban of
  `DECLINE_BAN` is declined by its unit (the task moves on to the next nearest unit, and the
  unit stays where it is). A respond or protect task issued for an event older than
  `STALE_S` is left alone (one read again from the log, long answered or expired); the tamper
  alarm, relayed 45 s late, is answered like any other (its unit has the whole acceptance
  time from when it is asked);
- the investigator holds every interview (`held`); the negotiator holds the motivational talk
  of `CONSENTS` (`held_accepts_help`, `consent_to_share: true`): a referral to social services
  follows. Other role tasks (P-7731's talk, referrals, knocks) and the units not listed here
  (SÖ-2150, SÖ-2160) are left for a person in the console.

Nothing here decides anything: the worker judges every update (a task that ended meanwhile,
for instance one cancelled because its alert was resolved, is not answered again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import TopicPartition

from streams.demo.tracks import LatLon, Track, track
from streams.kafka.clients import groupless_consumer

log = logging.getLogger("banwatch.demo")

#: The units the demo plays; the others are left for the console.
UNITS = frozenset({"CI-1210", "SÖ-2140", "SM-3310", "SM-3320", "SM-3330"})
#: The ban whose first respond task is declined (P-8810's, on Södermalm).
DECLINE_BAN = "KF-2026-0077"
#: A respond or protect task created this long before it is read is not answered.
STALE_S = 90.0
#: How a unit closes its task, by task kind; at the tamper alarm of P-5120's ban nobody is
#: found (the tag was torn off).
OUTCOMES = {"respond": "contact_made", "protect": "protected_safe"}
BAN_OUTCOMES = {"KF-2026-0103": "not_found"}
#: Restrained persons whose motivational talk ends with help accepted and consent given.
CONSENTS = frozenset({"P-8810"})
#: Who acts for a role (the `by` of its updates).
ROLE_USERS = {"investigator": "demo-investigator", "negotiator": "demo-negotiator"}
END_STATES = frozenset({"done", "declined", "expired", "cancelled"})
M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Pace:
    """How soon the actors act, in seconds of wall clock."""

    answer_s: float = 4.0  # a unit answers (accepts or declines) this long after its task
    drive_mps: float = 12.0  # driving speed; the drive lasts between these two:
    drive_min_s: float = 10.0
    drive_max_s: float = 40.0
    on_scene_s: float = 10.0  # on scene this long before closing
    role_s: float = 6.0  # a role closes its task this long after it appears


#: The pace of the tests: the whole loop within half a minute of a breach.
FAST = Pace(
    answer_s=1.0, drive_mps=40.0, drive_min_s=3.0, drive_max_s=8.0, on_scene_s=2.0, role_s=1.0
)


def distance_m(a: LatLon, b: LatLon) -> float:
    """Metres between two nearby points (local flat approximation)."""
    north = (b[0] - a[0]) * M_PER_DEG
    east = (b[1] - a[1]) * M_PER_DEG * math.cos(math.radians(a[0]))
    return math.hypot(north, east)


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def update(task: dict[str, Any], by: str, role: str, action: str, **extra: Any) -> dict[str, Any]:
    """A TaskUpdate for `task` (contract v2), timestamped now."""
    value: dict[str, Any] = {
        "task_id": task["task_id"],
        "by": by,
        "role": role,
        "ts": rfc3339(datetime.now(UTC)),
        "action": action,
        "outcome": None,
        "consent_to_share": None,
    }
    value.update(extra)
    return value


def _created(task: dict[str, Any]) -> datetime | None:
    try:
        created = datetime.fromisoformat(str(task.get("created_at")))
    except ValueError:
        return None
    return created if created.tzinfo is not None else None


#: send(task id, update): publishes one record to `task-updates`
Send = Callable[[str, dict[str, Any]], Awaitable[None]]


class Actors:
    """Answers the tasks of the demo's units and roles. `clock()`: seconds into the demo (the
    feed's time, `speed` included); `where(unit, t)`: the unit's position at demo time `t`
    without a drive; `drives`: unit -> its track while driven here, read by the feed."""

    def __init__(
        self,
        send: Send,
        clock: Callable[[], float],
        where: Callable[[str, float], LatLon | None],
        drives: dict[str, Track],
        pace: Pace = Pace(),
        speed: float = 1.0,
        since: datetime | None = None,
    ) -> None:
        self.send = send
        self.clock = clock
        self.where = where
        self.drives = drives
        self.pace = pace
        self.speed = speed
        self.since = since or datetime.now(UTC)
        self.state: dict[str, tuple[int, str]] = {}  # task id -> (highest seq, its state)
        self.answered: set[str] = set()
        self.declined: set[str] = set()  # bans whose first respond was declined
        self.jobs: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------- reading
    def observe(self, task: dict[str, Any]) -> None:
        """One revision read from `patrol-tasks`: remember its state; a new task of ours that
        waits for an answer gets its actor."""
        task_id = task.get("task_id")
        if not isinstance(task_id, str):
            return
        raw_seq = task.get("seq")
        seq = raw_seq if isinstance(raw_seq, int) else 1
        state = str(task.get("state") or "assigned")
        if task_id in self.state and self.state[task_id][0] >= seq:
            return
        self.state[task_id] = (seq, state)
        if state != "assigned" or task_id in self.answered or not self._recent(task):
            return
        job = self._job(task)
        if job is None:
            return
        self.answered.add(task_id)
        t = asyncio.create_task(job, name=f"demo-actor-{task_id[:8]}")
        self.jobs.add(t)
        t.add_done_callback(self._finished)

    def _finished(self, t: asyncio.Task[None]) -> None:
        self.jobs.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("demo actor failed: %s", type(t.exception()).__name__)

    def _recent(self, task: dict[str, Any]) -> bool:
        """Only tasks of this demo run (a broker kept from an earlier run has older ones)."""
        created = _created(task)
        return created is not None and created >= self.since - timedelta(minutes=2)

    @staticmethod
    def _age_s(task: dict[str, Any]) -> float:
        created = _created(task)
        return 0.0 if created is None else (datetime.now(UTC) - created).total_seconds()

    def _job(self, task: dict[str, Any]) -> Coroutine[Any, Any, None] | None:
        kind, unit, role = task.get("kind"), task.get("unit_id"), task.get("role")
        if kind in OUTCOMES and unit in UNITS:
            if self._age_s(task) > STALE_S:
                return None
            return self._patrol(task, str(unit))
        person = task.get("restrained_person")
        if kind == "interview" and role == "investigator":
            return self._role(task, "investigator", outcome="held")
        if kind == "motivational_talk" and role == "negotiator" and person in CONSENTS:
            return self._role(
                task, "negotiator", outcome="held_accepts_help", consent_to_share=True
            )
        return None

    def _ended(self, task_id: str) -> bool:
        return self.state.get(task_id, (0, ""))[1] in END_STATES

    # -------------------------------------------------------------- acting
    async def _patrol(self, task: dict[str, Any], unit: str) -> None:
        task_id = task["task_id"]
        await asyncio.sleep(self.pace.answer_s)
        if self._ended(task_id):
            return
        here = self._position(unit)
        ban = task.get("ban_id")
        if task["kind"] == "respond" and ban == DECLINE_BAN and ban not in self.declined:
            self.declined.add(ban)
            if here is not None:  # stays where it is
                self.drives[unit] = track((self.clock(), here))
            await self.send(task_id, update(task, unit, "patrol", "decline"))
            return
        await self.send(task_id, update(task, unit, "patrol", "accept"))
        await asyncio.sleep(0.5)
        if self._ended(task_id):
            return
        await self.send(task_id, update(task, unit, "patrol", "en_route"))
        target = task.get("target")
        drive_s = self.pace.drive_min_s
        if here is not None and isinstance(target, dict):
            to = (float(target["lat"]), float(target["lon"]))
            p = self.pace
            drive_s = min(max(distance_m(here, to) / p.drive_mps, p.drive_min_s), p.drive_max_s)
            now = self.clock()
            self.drives[unit] = track((now, here), (now + drive_s * self.speed, to))
        await asyncio.sleep(drive_s)
        if self._ended(task_id):
            return
        await self.send(task_id, update(task, unit, "patrol", "on_scene"))
        await asyncio.sleep(self.pace.on_scene_s)
        if self._ended(task_id):
            return
        outcome = BAN_OUTCOMES.get(str(ban), OUTCOMES[str(task["kind"])])
        await self.send(task_id, update(task, unit, "patrol", "done", outcome=outcome))

    async def _role(self, task: dict[str, Any], role: str, **result: Any) -> None:
        await asyncio.sleep(self.pace.role_s)
        if self._ended(task["task_id"]):
            return
        await self.send(task["task_id"], update(task, ROLE_USERS[role], role, "done", **result))

    def _position(self, unit: str) -> LatLon | None:
        t = self.clock()
        drive = self.drives.get(unit)
        return drive.at(t) if drive is not None else self.where(unit, t)

    # ------------------------------------------------------------- running
    async def run(
        self, bootstrap: str, topic: str, stop: asyncio.Event, security: Any = None
    ) -> None:
        """Follow `topic` (`patrol-tasks` as deployed) until `stop`."""
        consumer = groupless_consumer(bootstrap, "banwatch-demo-actors", security)
        await consumer.start()
        try:
            parts: set[int] | None = None
            for _ in range(100):
                parts = consumer.partitions_for_topic(topic)
                if parts:
                    break
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
            if not parts:
                raise RuntimeError(f"topic {topic} does not exist")
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                for records in batches.values():
                    for r in records:
                        if r.value is None:
                            continue
                        with contextlib.suppress(ValueError):
                            value = orjson.loads(r.value)
                            if isinstance(value, dict):
                                self.observe(value)
        finally:
            for job in list(self.jobs):
                job.cancel()
            await asyncio.gather(*self.jobs, return_exceptions=True)
            await consumer.stop()
