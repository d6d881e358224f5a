"""The JSON routes over alerts (CONTRACT.md, "Dispatch console HTTP API"); tasks: tasks.py.

Consulting an alert's detail is audited before anything is shown: if the audit record cannot
be written, the detail is not given (503). Acknowledge and resolve publish an AlertAction and
answer 202; the alert's state changes when the stream worker publishes the revision, which the
page sees arrive like any other. They are idempotent: an action the alert's state already
reflects, or one sent moments ago and not yet reflected, is not published again (200).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from config.settings import Principal
from config.topics import ALERT_ACKS, AUDIT
from streams.console.context import (
    CONSOLE,
    CONSULT_REASONS,
    MAX_NOTE,
    Console,
    Page,
    Records,
    audit,
    json_ok,
    pending_expired,
    publish_or_503,
    read_json,
    require,
    rfc3339_ms,
)
from streams.console.outlines import buffered_outline
from streams.console.store import Value
from streams.store.queries import RESOLVE_RESTORED

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
    """The open alerts of the live board; with `state` (`all` or one state) the history search
    over the record store instead (`alert_history`)."""
    if request.query.get("state"):
        return await alert_history(request)
    require(request, "dispatcher", "viewer")
    c = request.app[CONSOLE]
    return json_ok({"alerts": c.store.open_alerts(), "now": rfc3339_ms(c.clock())})


# ---------------------------------------------------------------- history and audit searches
#: A page of a search: `limit` records (default 50, at most MAX_PAGE) from `offset`.
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_OFFSET = 1_000_000
ALERT_STATES = ("open", "updated", "acknowledged", "escalated", "resolved")
#: What a search may name: identifiers (ban ids, pseudonyms, users, `kind:id` objects), never
#: free text, so that the audit record of the search can say what was searched for.
_IDENT = re.compile(r"^[\w.:@/-]{1,256}$")
_WORD = re.compile(r"^[a-z_]{1,32}$")


def _ident(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    if not _IDENT.match(value):
        raise _bad_request(f"{name}: an identifier (letters, digits and . : @ / - _)")
    return value


def _word(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    if not _WORD.match(value):
        raise _bad_request(f"{name}: a word of the contract (lower case and _)")
    return value


def _time(query: Mapping[str, str], name: str) -> datetime | None:
    text = query.get(name, "").strip()
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        raise _bad_request(f"{name}: an RFC 3339 time with its offset (2026-11-22T21:50:00Z)")
    return t


def _int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise _bad_request(f"{name}: a whole number from {low} to {high}")
    return int(text)


def _window(query: Mapping[str, str]) -> dict[str, Any]:
    """`from`/`to` (aware; `to` exclusive) and the page (`limit`, `offset`)."""
    start, end = _time(query, "from"), _time(query, "to")
    if start is not None and end is not None and end <= start:
        raise _bad_request("to: after from")
    return {
        "start": start,
        "end": end,
        "limit": _int(query, "limit", DEFAULT_PAGE, 1, MAX_PAGE),
        "offset": _int(query, "offset", 0, 0, MAX_OFFSET),
    }


def _records(c: Console) -> Records:
    if c.records is None:
        raise _unavailable(
            "this console has no record store (BANWATCH_DATA_DIR or BANWATCH_DATABASE_URL)"
        )
    return c.records


def _unavailable(message: str) -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(
        text=json.dumps({"error": message}), content_type="application/json"
    )


async def _search(call: Callable[..., Any], filters: dict[str, Any]) -> Any:
    try:
        return await asyncio.to_thread(call, **filters)
    except Exception as exc:
        log.error("record store search failed: %s", type(exc).__name__)
        raise _unavailable("the record store did not answer; try again") from None


def _described(filters: Mapping[str, Any]) -> str:
    """The search's filters for its audit record: identifiers, words, times, the page."""
    parts = []
    for name, value in filters.items():
        if value is None:
            continue
        name = {"start": "from", "end": "to"}.get(name, name)
        if isinstance(value, datetime):
            value = rfc3339_ms(value)
        parts.append(f"{name}={value}")
    return " ".join(parts)


def _paged(key: str, page: Page, c: Console) -> dict[str, Any]:
    end = page.offset + len(page.items)
    return {
        key: page.items,
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "next_offset": end if end < page.total else None,
        "now": rfc3339_ms(c.clock()),
    }


async def alert_history(request: web.Request) -> web.Response:
    """`GET /api/alerts?state=all&ban_id=&person=&kind=&from=&to=&limit=&offset=`: the latest
    stored revision of every alert matching, newest first (dispatcher). Audited."""
    who = require(request, "dispatcher")
    c = request.app[CONSOLE]
    q = request.query
    state = q.get("state", "all").strip()
    if state != "all" and state not in ALERT_STATES:
        raise _bad_request(f"state: all or one of {', '.join(ALERT_STATES)}")
    filters: dict[str, Any] = {
        "state": state,
        "ban_id": _ident(q, "ban_id"),
        "person": _ident(q, "person"),
        "kind": _word(q, "kind"),
        **_window(q),
    }
    page = await _search(_records(c).alert_history, filters)
    ban_id, person = filters["ban_id"], filters["person"]
    obj = f"ban:{ban_id}" if ban_id else f"person:{person}" if person else "alerts"
    await publish_or_503(
        c, AUDIT, obj, audit(c, who, "search", obj, "alert history: " + _described(filters))
    )
    return json_ok(_paged("alerts", page, c))


async def audit_search(request: web.Request) -> web.Response:
    """`GET /api/audit?object=&actor=&from=&to=&limit=&offset=`: audit records, newest first
    (auditor only). The search is itself audited."""
    who = require(request, "auditor")
    c = request.app[CONSOLE]
    q = request.query
    filters: dict[str, Any] = {
        "object": _ident(q, "object"),
        "actor": _ident(q, "actor"),
        **_window(q),
    }
    page = await _search(_records(c).audit_search, filters)
    obj = filters["object"] or (f"user:{filters['actor']}" if filters["actor"] else "audit")
    await publish_or_503(
        c, AUDIT, obj, audit(c, who, "audit_search", obj, "audit: " + _described(filters))
    )
    return json_ok(_paged("records", page, c))


async def alert_detail(request: web.Request) -> web.Response:
    who = require(request, "dispatcher", "viewer")
    c = request.app[CONSOLE]
    reason_key = request.query.get("reason", "handling")
    reason = CONSULT_REASONS.get(reason_key)
    if reason is None:
        raise _bad_request(f"reason: one of {', '.join(sorted(CONSULT_REASONS))}")
    alert_id = request.match_info["alert_id"]
    alert = c.store.alert(alert_id)
    revisions = c.store.revisions(alert_id)
    source = "live"
    if (
        c.records is not None
        and who.role == "dispatcher"
        and (alert is None or c.store.is_restored(alert_id))
    ):
        # an alert of the history (no longer on the topics) or restored after a restart:
        # its revisions come from the record store
        try:
            stored = await _search(c.records.alert_revisions, {"alert_id": alert_id})
        except web.HTTPServiceUnavailable:
            if alert is None:
                raise
            stored = []  # a restored alert still opens with what the board holds
        if stored:
            source = "store"
            revisions = stored
            if alert is None:
                alert = stored[-1]
    if alert is None:
        raise _not_found()
    obj = f"alert:{alert_id}"
    await publish_or_503(c, AUDIT, obj, audit(c, who, "consult", obj, reason))
    return json_ok(
        {
            "alert": alert,
            "source": source,
            "revisions": revisions,
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
    if c.store.is_restored(alert_id):
        return await _act_on_restored(c, who, alert_id, action)
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


RESTORED_ACK = (
    "this alert was restored from the record store after banwatch restarted: no stream worker "
    "tracks it any more, so it cannot be acknowledged or escalated. Handle it by the usual "
    "procedure, then take it off the board with Resolve (written to the audit log)."
)


async def _act_on_restored(c: Console, who: Principal, alert_id: str, action: str) -> web.Response:
    """A restored alert: no AlertAction (the worker would reject it as unknown). Acknowledge is
    refused (409) with the reason; Resolve takes it off the board and writes an audit record
    (action `resolve_restored`) that keeps it off at the next start. Its stored history is not
    changed: the history still shows its last revision."""
    if action != "resolve":
        return json_ok({"error": RESTORED_ACK, "alert_id": alert_id, "restored": True}, 409)
    obj = f"alert:{alert_id}"
    await publish_or_503(
        c,
        AUDIT,
        obj,
        audit(
            c,
            who,
            RESOLVE_RESTORED,
            obj,
            "restored alert taken off the board in the console; no stream worker tracks it",
        ),
    )
    c.store.close_restored(alert_id)
    log.info("restored alert closed by %s", who.user)
    return json_ok(
        {
            "alert_id": alert_id,
            "action": action,
            "state": "resolved",
            "restored": True,
            "published": False,
            "why": "restored alert: closed in the console and in the audit log",
        }
    )
