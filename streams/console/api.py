"""The JSON routes over alerts and tasks (CONTRACT.md, "Dispatch console HTTP API").

Consulting an alert's detail is audited before anything is shown: if the audit record cannot
be written, the detail is not given (503). Acknowledge and resolve publish an AlertAction and
answer 202; the alert's state changes when the stream worker publishes the revision, which the
page sees arrive like any other. They are idempotent: an action the alert's state already
reflects, or one sent moments ago and not yet reflected, is not published again (200).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aiohttp import web

from config.settings import Principal
from config.topics import ALERT_ACKS, AUDIT
from streams.console.context import (
    CONSOLE,
    CONSULT_REASONS,
    MAX_NOTE,
    Console,
    audit,
    forbidden,
    json_ok,
    pending_expired,
    publish_or_503,
    read_json,
    require,
    rfc3339_ms,
)
from streams.console.outlines import buffered_outline
from streams.console.store import Value

log = logging.getLogger("banwatch.console")

#: What an action wants the alert's state to be (then it is already done).
_DONE_STATES = {"acknowledge": ("acknowledged", "resolved"), "resolve": ("resolved",)}


def _not_found() -> web.HTTPNotFound:
    return web.HTTPNotFound(
        text=json.dumps({"error": "no such alert"}), content_type="application/json"
    )


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def list_alerts(request: web.Request) -> web.Response:
    require(request, "dispatcher", "viewer")
    c = request.app[CONSOLE]
    return json_ok({"alerts": c.store.open_alerts(), "now": rfc3339_ms(c.clock())})


async def alert_detail(request: web.Request) -> web.Response:
    who = require(request, "dispatcher", "viewer")
    c = request.app[CONSOLE]
    reason_key = request.query.get("reason", "handling")
    reason = CONSULT_REASONS.get(reason_key)
    if reason is None:
        raise _bad_request(f"reason: one of {', '.join(sorted(CONSULT_REASONS))}")
    alert_id = request.match_info["alert_id"]
    alert = c.store.alert(alert_id)
    if alert is None:
        raise _not_found()
    obj = f"alert:{alert_id}"
    await publish_or_503(c, AUDIT, obj, audit(c, who, "consult", obj, reason))
    return json_ok(
        {
            "alert": alert,
            "revisions": c.store.revisions(alert_id),
            "tasks": c.store.tasks(alert_id=alert_id),
            "ban": _ban_view(c, alert.get("ban_id")),
            "units": _units_view(c, alert, alert_id),
            "now": rfc3339_ms(c.clock()),
        }
    )


def _ban_view(c: Console, ban_id: object) -> Value | None:
    """What the map needs of the ban: its zones and proximity distance."""
    ban = c.store.ban(ban_id) if isinstance(ban_id, str) else None
    if ban is None:
        return None
    keep = (
        "ban_id",
        "version",
        "kind",
        "status",
        "valid_from",
        "valid_until",
        "proximity_m",
        "electronic_monitoring",
        "zones",
    )
    view = {k: ban.get(k) for k in keep}
    features = (ban.get("zones") or {}).get("features") or []
    view["outlines"] = {
        f["properties"]["zone_id"]: outline
        for f in features
        if (outline := buffered_outline(f)) is not None
    }
    return view


def _units_view(c: Console, alert: Value, alert_id: str) -> list[Value]:
    """The latest position of every unit recommended for, or tasked with, this alert."""
    recommended: dict[str, Any] = {}
    for r in alert.get("recommended_units") or []:
        if isinstance(r, dict) and isinstance(r.get("unit_id"), str):
            recommended[r["unit_id"]] = r.get("distance_m")
    tasked = {
        t["unit_id"]: t.get("kind")
        for t in c.store.tasks(alert_id=alert_id)
        if isinstance(t.get("unit_id"), str)
    }
    out = []
    for unit_id in sorted({*recommended, *tasked}):
        pos = c.store.unit(unit_id)
        out.append(
            {
                "unit_id": unit_id,
                "recommended": unit_id in recommended,
                "distance_m": recommended.get(unit_id),
                "task": tasked.get(unit_id),
                "position": None
                if pos is None
                else {k: pos.get(k) for k in ("lat", "lon", "ts", "status")},
            }
        )
    return out


async def acknowledge(request: web.Request) -> web.Response:
    return await _act(request, "acknowledge")


async def resolve(request: web.Request) -> web.Response:
    return await _act(request, "resolve")


async def _act(request: web.Request, action: str) -> web.Response:
    who = require(request, "dispatcher")
    c = request.app[CONSOLE]
    alert_id = request.match_info["alert_id"]
    body = await read_json(request)
    note = body.get("note", "")
    if note is None:
        note = ""
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise _bad_request(f"note: text of at most {MAX_NOTE} characters")
    alert = c.store.alert(alert_id)
    if alert is None:
        raise _not_found()
    state = str(alert.get("state"))
    result = {"alert_id": alert_id, "action": action, "state": state}
    if state in _DONE_STATES[action]:
        return json_ok({**result, "published": False, "why": f"the alert is already {state}"})
    key = (alert_id, action)
    if not pending_expired(c, key):
        return json_ok({**result, "published": False, "why": "sent moments ago; waiting for it"})
    ts = rfc3339_ms(c.clock())
    record = {
        "alert_id": alert_id,
        "action": action,
        "by": who.user,
        "ts": ts,
        "note": note.strip(),
    }
    await publish_or_503(c, ALERT_ACKS, alert_id, record)
    c.pending[key] = time.monotonic()
    obj = f"alert:{alert_id}"
    await publish_or_503(
        c, AUDIT, obj, audit(c, who, action, obj, "operator action in the console")
    )
    log.info("%s by %s", action, who.user)
    return json_ok({**result, "published": True}, status=202)


async def list_tasks(request: web.Request) -> web.Response:
    who: Principal = require(request, "dispatcher", "viewer", "patrol")
    c = request.app[CONSOLE]
    unit = request.query.get("unit") or None
    role = request.query.get("role") or None
    alert_id = request.query.get("alert") or None
    if who.role == "patrol":
        if role is not None or alert_id is not None or (unit is not None and unit != who.unit):
            raise forbidden("a patrol unit sees its own tasks only")
        unit = who.unit
    tasks = c.store.tasks(unit=unit, role=role, alert_id=alert_id)
    return json_ok({"tasks": tasks, "unit": unit, "now": rfc3339_ms(c.clock())})
