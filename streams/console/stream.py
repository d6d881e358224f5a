"""`GET /api/stream`: Server-Sent Events of alert revisions and tasks, resumable.

A new connection first gets a `snapshot` (the open alerts, most urgent first, and the tasks the
role may see) whose id marks where it stands; then every change as an `alert` or `task` event
with its own id. A browser that lost the connection reconnects with `Last-Event-ID` and gets
exactly the events it missed, or a fresh snapshot when they cannot be told (the console
restarted, or they are older than the store's event log). A `clock` event (without an id)
every `keepalive_s` keeps proxies from closing an idle stream and lets the page show that the
stream is alive and how far its clock is from the server's.

Dispatchers and viewers see everything; a patrol unit sees only its own unit's tasks, a
follow-up role (investigator, negotiator, social_services, outreach) only its role's tasks, and
neither sees any alert. A connection that cannot keep up (its queue overflows) is closed; the
browser reconnects and resumes.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from config.settings import FOLLOW_UP_ROLES, Principal
from streams.console.context import CONSOLE, SESSION, require, rfc3339_ms
from streams.console.store import Event, Value

QUEUE = 2000


def _visible(who: Principal, event: Event) -> bool:
    if who.role == "patrol":
        return event.kind == "task" and event.unit == who.unit
    if who.role in FOLLOW_UP_ROLES:
        return event.kind == "task" and event.role == who.role
    return True


def _frame(event: str, data: Value, event_id: str | None = None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


async def events(request: web.Request) -> web.StreamResponse:
    # not the auditor: audit only
    who = require(request, "dispatcher", "viewer", "patrol", *FOLLOW_UP_ROLES)
    c = request.app[CONSOLE]
    store = c.store
    queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE)
    overflow = False

    def listen(event: Event) -> None:
        nonlocal overflow
        if not _visible(who, event):
            return
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            overflow = True

    unsubscribe = store.subscribe(listen)
    c.streams.add(queue)
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        last = request.headers.get("Last-Event-ID") or request.query.get("lastEventId")
        missed = store.since(last)
        out = [b"retry: 2000\n\n"]
        if missed is None:
            base = int(store.last_event_id.rpartition(".")[2])
            out.append(_frame("snapshot", _snapshot(request, who), store.last_event_id))
        else:
            base = missed[-1].n if missed else int(str(last).rpartition(".")[2])
            for e in missed:
                if _visible(who, e):
                    out.append(_frame(e.kind, e.data, store.event_id(e)))
        out.append(_frame("clock", {"now": rfc3339_ms(c.clock())}))
        await response.write(b"".join(out))
        session = request.get(SESSION)
        while not overflow:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=c.keepalive_s)
            except TimeoutError:
                if isinstance(session, str) and c.sessions.get(session) is None:
                    break  # logged out or expired: the stream ends with the session
                await response.write(_frame("clock", {"now": rfc3339_ms(c.clock())}))
                continue
            if event is None:  # the console is shutting down
                break
            if event.n <= base:
                continue
            await response.write(_frame(event.kind, event.data, store.event_id(event)))
        return response
    except ConnectionResetError:  # the browser went away; it reconnects with Last-Event-ID
        return response
    finally:
        unsubscribe()
        c.streams.discard(queue)


def _snapshot(request: web.Request, who: Principal) -> Value:
    c = request.app[CONSOLE]
    if who.role == "patrol":
        return {"alerts": [], "tasks": c.store.tasks(unit=who.unit), "now": rfc3339_ms(c.clock())}
    if who.role in FOLLOW_UP_ROLES:
        return {"alerts": [], "tasks": c.store.tasks(role=who.role), "now": rfc3339_ms(c.clock())}
    return {
        "alerts": c.store.open_alerts(),
        "tasks": c.store.tasks(),
        "now": rfc3339_ms(c.clock()),
    }
