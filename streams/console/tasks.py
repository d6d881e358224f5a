"""The routes over tasks (CONTRACT.md v2, "Tasks have a lifecycle" and "Roles"): the task lists
each role may see, the updates a unit or a follow-up role sends, the dispatcher's unit board.

An update is checked here first (who may answer the task, whether the action is valid from
its state, the outcome and the consent; `lifecycle.py`), then published to `task-updates` (key
task_id) with an `audit` record, and answered 202. The task's state changes when the stream
worker publishes its next revision on `patrol-tasks`, which the page sees arrive live. Until
then the update counts as sent: the same action again is not published twice (200), and the
next one is checked against the state it will have.

The note of an update is free text: it goes into the TaskUpdate (the record store keeps it)
and nowhere else: not into the audit record, not into a log line.
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from config.settings import FOLLOW_UP_ROLES
from config.topics import AUDIT, TASK_UPDATES
from streams.console.context import (
    CONSOLE,
    MAX_NOTE,
    Console,
    audit,
    forbidden,
    json_ok,
    publish_or_503,
    read_json,
    require,
    rfc3339_ms,
)
from streams.console.lifecycle import (
    ENDED,
    RANK,
    TARGET,
    Refused,
    check,
    may_answer,
    state_of,
)
from streams.console.store import Value

log = logging.getLogger("banwatch.console")

#: Who answers tasks: a patrol unit its unit's, each follow-up role its role's.
ANSWERING = ("patrol", *FOLLOW_UP_ROLES)


def _error(status: int, message: str) -> web.HTTPException:
    cls = {400: web.HTTPBadRequest, 403: web.HTTPForbidden, 404: web.HTTPNotFound}[status]
    return cls(text=json.dumps({"error": message}), content_type="application/json")


async def list_tasks(request: web.Request) -> web.Response:
    """`GET /api/tasks?unit=&role=&alert=`: dispatchers and viewers any; a patrol unit its own
    unit's only, a follow-up role its own role's only. Open tasks first, by priority and due."""
    who = require(request, "dispatcher", "viewer", *ANSWERING)
    c = request.app[CONSOLE]
    unit = request.query.get("unit") or None
    role = request.query.get("role") or None
    alert_id = request.query.get("alert") or None
    if who.role == "patrol":
        if role is not None or alert_id is not None or (unit is not None and unit != who.unit):
            raise forbidden("a patrol unit sees its own tasks only")
        unit = who.unit
    elif who.role in FOLLOW_UP_ROLES:
        if unit is not None or alert_id is not None or (role is not None and role != who.role):
            raise forbidden(f"the {who.role} role sees the tasks of its own role only")
        role = who.role
    tasks = c.store.tasks(unit=unit, role=role, alert_id=alert_id)
    return json_ok({"tasks": tasks, "unit": unit, "role": role, "now": rfc3339_ms(c.clock())})


async def unit_board(request: web.Request) -> web.Response:
    """`GET /api/units`: every unit free, tasked, accepted, en route or on scene (dispatcher,
    viewer)."""
    require(request, "dispatcher", "viewer")
    c = request.app[CONSOLE]
    return json_ok({"units": c.store.unit_board(), "now": rfc3339_ms(c.clock())})


def _order(state: str) -> int:
    return len(RANK) if state in ENDED else RANK.get(state, 0)


def _expected_state(c: Console, task_id: str, held: str) -> str:
    """The state the task will have: the held one, or the one an update sent moments ago moves
    it to while the worker's revision has not arrived yet."""
    sent = c.task_sent.get(task_id)
    if sent is None:
        return held
    target, at = sent
    if time.monotonic() - at > c.pending_s or _order(held) >= _order(target):
        del c.task_sent[task_id]
        return held
    return target


async def task_action(request: web.Request) -> web.Response:
    """`POST /api/tasks/{task_id}/{action}`, body `{"outcome", "consent_to_share", "note"}`:
    publish a TaskUpdate and its audit record (202); 400 for an update the worker would
    reject, 403 for a task that is not the user's, 404 for an unknown task."""
    who = require(request, *ANSWERING)
    c = request.app[CONSOLE]
    task_id = request.match_info["task_id"]
    action = request.match_info["action"]
    body = await read_json(request)
    note = body.get("note")
    note = "" if note is None else note
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise _error(400, f"note: text of at most {MAX_NOTE} characters")
    outcome = body.get("outcome")
    consent = body.get("consent_to_share")
    task = c.store.task(task_id)
    if task is None:
        raise _error(404, "no such task")
    if not may_answer(who, task):
        raise _error(
            403, "this task is not for your " + ("unit" if who.role == "patrol" else "role")
        )
    held = state_of(task)
    state = _expected_state(c, task_id, held)
    result: Value = {"task_id": task_id, "action": action}
    if action in TARGET and state != held and state == TARGET[action]:
        return json_ok({**result, "published": False, "why": "sent moments ago; waiting for it"})
    try:
        check(task, state, action, outcome, consent)
    except Refused as refused:
        raise _error(refused.status, refused.message) from None
    record = {
        "task_id": task_id,
        "by": who.unit if who.role == "patrol" else who.user,
        "role": who.role,
        "ts": rfc3339_ms(c.clock()),
        "action": action,
        "outcome": outcome,
        "consent_to_share": consent,
        "note": note.strip(),
    }
    await publish_or_503(c, TASK_UPDATES, task_id, record)
    c.task_sent[task_id] = (TARGET[action], time.monotonic())
    obj = f"task:{task_id}"
    await publish_or_503(c, AUDIT, obj, audit(c, who, "task_" + action, obj, _reason(task, record)))
    log.info("task %s by %s (%s)", action, who.user, who.role)
    return json_ok({**result, "state": TARGET[action], "published": True}, status=202)


def _reason(task: Value, record: Value) -> str:
    """The audit record's reason: the action, the kind, the unit, the outcome and the consent;
    closed-set words and identifiers only, never the note."""
    parts = [f"{record['action']} on a {task.get('kind')} task in the console"]
    if record["role"] == "patrol":
        parts.append(f"unit {record['by']}")
    if record["outcome"] is not None:
        parts.append(f"outcome {record['outcome']}")
    if record["consent_to_share"] is not None:
        consent = "yes" if record["consent_to_share"] else "no"
        parts.append(f"consent to share with social services: {consent}")
    return "; ".join(parts)
