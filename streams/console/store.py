"""What the console knows: the latest revision of every alert, tasks, bans' zones, patrol units.

Fed one record at a time, in any order the topics deliver them (from Kafka by
`streams/console/service.py`, directly by tests). Consumers keep the highest `seq` per alert
(CONTRACT.md), so a redelivered or older revision never replaces a newer one. Every change the
page must see (an alert's new latest revision, a new or closed task) becomes an `Event` with an
increasing id; a bounded log of them lets a dropped Server-Sent Events connection resume with
`Last-Event-ID`. Event ids are `<instance>.<n>`: a console that restarted (or another replica)
does not know the old instance's numbers, and the client gets a fresh snapshot instead.

Pure: no I/O, no clock. Records that are not what the contract says are skipped, never raised.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from alerts.taskmodel import OUTCOMES
from streams.console.lifecycle import valid_actions

log = logging.getLogger("banwatch.console.store")

Value = dict[str, Any]
Listener = Callable[["Event"], None]

#: Unacknowledged first (escalated before all), then acknowledged; resolved is off the board.
_STATE_RANK = {"escalated": 0, "open": 1, "updated": 1, "acknowledged": 2}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: A task that has ended (contract v2); a task without `state` (v1) ends with its alert.
TASK_ENDED = frozenset({"done", "declined", "expired", "cancelled"})
#: A unit's board status from its most advanced live task (`tasked`: assigned, not answered).
UNIT_STATUS = {
    "assigned": "tasked",
    "accepted": "accepted",
    "en_route": "en_route",
    "on_scene": "on_scene",
}
_UNIT_RANK = {"tasked": 1, "accepted": 2, "en_route": 3, "on_scene": 4}


@dataclass(frozen=True, slots=True)
class Event:
    """One change for the live page: `kind` "alert" (data: the latest revision) or "task"
    (data: the task's latest revision with `closed`); `unit` and `role` are the task's, for
    the patrol and follow-up role filters."""

    n: int
    kind: Literal["alert", "task"]
    data: Value
    unit: str | None = None
    role: str | None = None


def parse_ts(text: object) -> datetime:
    """An RFC 3339 timestamp as an aware datetime; the epoch for anything unreadable."""
    if not isinstance(text, str):
        return _EPOCH
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return _EPOCH
    return t if t.tzinfo is not None else _EPOCH


def urgency(alert: Mapping[str, Any]) -> tuple[int, int, datetime, str]:
    """Sort key, most urgent first: priority, then escalated / unacknowledged / acknowledged,
    then the one waiting longest (oldest `opened_at`), then the id for a stable order."""
    p = alert.get("priority")
    return (
        p if isinstance(p, int) else 9,
        _STATE_RANK.get(str(alert.get("state")), 3),
        parse_ts(alert.get("opened_at")),
        str(alert.get("alert_id")),
    )


class Store:
    def __init__(self, instance: str, max_revisions: int = 200, max_events: int = 10_000) -> None:
        if not instance or "." in instance:
            raise ValueError("instance: a non-empty name without '.'")
        self.instance = instance
        self.max_revisions = max_revisions
        self._alerts: dict[str, Value] = {}
        self._revisions: dict[str, dict[int, Value]] = {}
        self._tasks: dict[str, Value] = {}
        self._tasks_of_alert: dict[str, list[str]] = {}
        self._bans: dict[str, Value] = {}
        self._units: dict[str, Value] = {}
        self._events: deque[Event] = deque(maxlen=max_events)
        self._n = 0
        self._listeners: list[Listener] = []
        self.skipped = 0  # records that were not what the contract says
        self._restored: set[str] = set()  # alerts seeded from the record store, not live

    # ------------------------------------------------------------------ feeding
    def apply_alert(self, value: object) -> bool:
        """Apply one alert revision; True if it became the alert's latest."""
        if not _is_alert(value):
            self.skipped += 1
            return False
        assert isinstance(value, dict)
        aid: str = value["alert_id"]
        seq: int = value["seq"]
        if aid in self._restored:  # a live revision replaces what the store said, whatever seq
            self._restored.discard(aid)
            self._alerts.pop(aid, None)
            self._revisions.pop(aid, None)
        revs = self._revisions.setdefault(aid, {})
        revs.setdefault(seq, value)
        while len(revs) > self.max_revisions:
            del revs[min(revs)]
        held = self._alerts.get(aid)
        if held is not None and held["seq"] >= seq:
            return False
        self._alerts[aid] = value
        self._emit("alert", value)
        if value.get("state") == "resolved" and (held is None or held.get("state") != "resolved"):
            for tid in self._tasks_of_alert.get(aid, []):
                self._emit_task(self._tasks[tid])
        return True

    def restore_alert(self, value: object) -> bool:
        """Put an alert from the record store on the board, marked `restored`: it was open when
        the embedded broker lost its topics, and no stream worker tracks it any more. An alert
        the topics already hold is left alone (True only when it was added)."""
        if not _is_alert(value):
            self.skipped += 1
            return False
        assert isinstance(value, dict)
        aid: str = value["alert_id"]
        if aid in self._alerts:
            return False
        view = {**value, "restored": True}
        self._restored.add(aid)
        self._alerts[aid] = view
        self._revisions[aid] = {value["seq"]: view}
        self._emit("alert", view)
        return True

    def is_restored(self, alert_id: str) -> bool:
        return alert_id in self._restored

    def close_restored(self, alert_id: str) -> Value | None:
        """Take a restored alert off the board (a dispatcher closed it; the audit record says
        so): it shows as `resolved` with `closed_in_console`. None if it is not a restored one."""
        held = self._alerts.get(alert_id)
        if alert_id not in self._restored or held is None:
            return None
        view = {**held, "state": "resolved", "closed_in_console": True}
        self._alerts[alert_id] = view
        self._emit("alert", view)
        return view

    def apply_task(self, value: object) -> bool:
        """Apply one task revision; True if it became the task's latest. Consumers keep the
        highest `seq` (contract v2); a task without `seq` (v1) is replaced when it changes."""
        if not _is_task(value):
            self.skipped += 1
            return False
        assert isinstance(value, dict)
        tid: str = value["task_id"]
        held = self._tasks.get(tid)
        if held is not None:
            seq, held_seq = _seq(value), _seq(held)
            if held == value or seq < held_seq or (seq == held_seq and seq > 0):
                return False
        elif isinstance(value.get("alert_id"), str):  # a referral has no alert
            self._tasks_of_alert.setdefault(value["alert_id"], []).append(tid)
        self._tasks[tid] = value
        self._emit_task(value)
        return True

    def apply_ban(self, key: str | None, value: object) -> None:
        """Apply a contact-ban record (the newest version wins); a tombstone forgets the ban."""
        if value is None:
            if key is not None:
                self._bans.pop(key, None)
            return
        if not (
            isinstance(value, dict)
            and isinstance(value.get("ban_id"), str)
            and isinstance(value.get("version"), int)
        ):
            self.skipped += 1
            return
        held = self._bans.get(value["ban_id"])
        if held is None or held["version"] <= value["version"]:
            self._bans[value["ban_id"]] = value

    def apply_unit(self, value: object) -> None:
        """Apply a patrol position (the newest `ts` per unit wins)."""
        if not (
            isinstance(value, dict)
            and isinstance(value.get("unit_id"), str)
            and _is_number(value.get("lat"))
            and _is_number(value.get("lon"))
        ):
            self.skipped += 1
            return
        held = self._units.get(value["unit_id"])
        if held is None or parse_ts(held.get("ts")) <= parse_ts(value.get("ts")):
            self._units[value["unit_id"]] = value

    # ------------------------------------------------------------------ reading
    def alert(self, alert_id: str) -> Value | None:
        return self._alerts.get(alert_id)

    def revisions(self, alert_id: str) -> list[Value]:
        """Every revision held for the alert, oldest first (the newest `max_revisions`)."""
        revs = self._revisions.get(alert_id, {})
        return [revs[s] for s in sorted(revs)]

    def open_alerts(self) -> list[Value]:
        """Latest revision of every alert not resolved, most urgent first."""
        live = [a for a in self._alerts.values() if a.get("state") != "resolved"]
        return sorted(live, key=urgency)

    def tasks(
        self, *, unit: str | None = None, role: str | None = None, alert_id: str | None = None
    ) -> list[Value]:
        """Tasks (with `closed`: their alert is resolved), filtered by unit, role and alert;
        open ones first, then by priority and due time."""
        if alert_id is not None:
            pool = [self._tasks[t] for t in self._tasks_of_alert.get(alert_id, [])]
        else:
            pool = list(self._tasks.values())
        out = [
            self._task_view(t)
            for t in pool
            if (unit is None or t.get("unit_id") == unit)
            and (role is None or t.get("role") == role)
        ]
        out.sort(
            key=lambda t: (
                t["closed"],
                t.get("priority") if isinstance(t.get("priority"), int) else 9,
                parse_ts(t.get("due_by")),
                str(t.get("task_id")),
            )
        )
        return out

    def task(self, task_id: str) -> Value | None:
        """The task's latest revision, with `closed`; None if unknown."""
        held = self._tasks.get(task_id)
        return None if held is None else self._task_view(held)

    def unit_board(self) -> list[Value]:
        """Every unit known from patrol positions or tasks, with its board status: the most
        advanced of its live tasks (`on_scene`, `en_route`, `accepted`, `tasked`), else `free`
        (`off_duty` when its AVL says so); the task behind the status and the AVL's own."""
        live: dict[str, list[Value]] = {}
        for t in self._tasks.values():
            unit = t.get("unit_id")
            if not isinstance(unit, str) or t.get("role"):
                continue
            view = self._task_view(t)
            live.setdefault(unit, [])
            if not view["closed"]:
                live[unit].append(view)
        out = []
        for unit_id in sorted({*self._units, *live}):
            pos = self._units.get(unit_id) or {}
            tasks = live.get(unit_id, [])
            status, task = ("off_duty" if pos.get("status") == "off_duty" else "free"), None
            for t in tasks:
                s = UNIT_STATUS.get(str(t.get("state", "assigned")), "tasked")
                if task is None or _UNIT_RANK[s] > _UNIT_RANK[status]:
                    status, task = s, t
            out.append(
                {
                    "unit_id": unit_id,
                    "status": status,
                    "task": None
                    if task is None
                    else {
                        k: task.get(k)
                        for k in ("task_id", "kind", "alert_id", "priority", "state", "updated_at")
                    },
                    "tasks": len(tasks),
                    "avl_status": pos.get("status"),
                    "position_ts": pos.get("ts"),
                }
            )
        return out

    def ban(self, ban_id: str) -> Value | None:
        return self._bans.get(ban_id)

    def unit(self, unit_id: str) -> Value | None:
        return self._units.get(unit_id)

    def counts(self) -> dict[str, int]:
        return {
            "alerts": len(self._alerts),
            "open_alerts": sum(1 for a in self._alerts.values() if a.get("state") != "resolved"),
            "restored_alerts": len(self._restored),
            "tasks": len(self._tasks),
            "bans": len(self._bans),
            "units": len(self._units),
        }

    # ------------------------------------------------------------------- events
    @property
    def last_event_id(self) -> str:
        return f"{self.instance}.{self._n}"

    def since(self, last_event_id: str | None) -> list[Event] | None:
        """Events after `last_event_id`, or None when they cannot be told (another instance's
        id, a malformed one, or older than the log keeps): the client then needs a snapshot."""
        if not last_event_id:
            return None
        instance, _, num = last_event_id.strip().rpartition(".")
        if instance != self.instance or not num.isdigit():
            return None
        n = int(num)
        if n > self._n:
            return None
        oldest = self._events[0].n if self._events else self._n + 1
        if n < oldest - 1:
            return None
        return [e for e in self._events if e.n > n]

    def event_id(self, event: Event) -> str:
        return f"{self.instance}.{event.n}"

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every new event; returns the function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _emit_task(self, task: Value) -> None:
        self._emit("task", self._task_view(task), task.get("unit_id"), task.get("role"))

    def _emit(
        self,
        kind: Literal["alert", "task"],
        data: Value,
        unit: object = None,
        role: object = None,
    ) -> None:
        self._n += 1
        event = Event(
            self._n,
            kind,
            data,
            unit if isinstance(unit, str) else None,
            role if isinstance(role, str) else None,
        )
        self._events.append(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as exc:  # one broken connection must not stop the others
                log.error("event listener failed: %s", type(exc).__name__)

    def _task_view(self, task: Value) -> Value:
        """The task with `closed` (its state ended (v2), or, for a task without a state (v1),
        its alert was resolved), the `actions` valid from its state and its kind's
        `outcomes` (streams/console/lifecycle.py), so that the page mirrors no rule."""
        state = task.get("state")
        if isinstance(state, str):
            closed = state in TASK_ENDED
        else:
            alert = self._alerts.get(str(task.get("alert_id")))
            closed = alert is not None and alert.get("state") == "resolved"
        return {
            **task,
            "closed": closed,
            "actions": [] if closed else valid_actions(task),
            "outcomes": list(OUTCOMES.get(str(task.get("kind")), ())),
        }


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_alert(v: object) -> bool:
    return (
        isinstance(v, dict)
        and isinstance(v.get("alert_id"), str)
        and bool(v["alert_id"])
        and isinstance(v.get("seq"), int)
        and not isinstance(v.get("seq"), bool)
        and isinstance(v.get("state"), str)
    )


def _seq(v: Value) -> int:
    seq = v.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0


def _is_task(v: object) -> bool:
    return isinstance(v, dict) and isinstance(v.get("task_id"), str) and bool(v["task_id"])
