"""What the console's application, its API and its event stream share (so that none of them
imports another in a circle): the per-application `Console`, the request keys, and the small
helpers every handler uses. No route lives here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web

from config.settings import Principal
from streams.console.auth import Limiter, Sessions, Tokens
from streams.console.store import Event, Store, Value

log = logging.getLogger("banwatch.console")

COOKIE = "banwatch_session"
MAX_NOTE = 500
MAX_BODY = 16 * 1024

#: Why a person opens an alert's detail: a closed set, so the audit log carries no free text.
CONSULT_REASONS = {
    "handling": "handling the alert from the dispatch board",
    "follow_up": "case follow-up",
    "review": "supervisory review",
}

#: (topic, key, value): topic is the contract's name (`alert-acks`, `audit`), without prefix.
Publish = Callable[[str, str, Value], Awaitable[None]]


def rfc3339_ms(t: datetime) -> str:
    """The console's times: RFC 3339 in UTC with milliseconds always (a fixed width for the
    page; the contract's records use alerts.model.rfc3339)."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def system_clock() -> datetime:
    return datetime.now(UTC)


class Page(Protocol):
    """One page of a search: the records, how many match in all, where the page starts."""

    @property
    def items(self) -> list[dict[str, Any]]: ...
    @property
    def total(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def offset(self) -> int: ...


class Records(Protocol):
    """The record store as the console sees it: read-only searches (`streams.store.queries.
    Records`, wired by `streams/console/service.py`). Blocking calls: run them in a thread."""

    def alert_history(self, **filters: Any) -> Page: ...
    def audit_search(self, **filters: Any) -> Page: ...
    def alert_revisions(self, alert_id: str) -> list[dict[str, Any]]: ...


@dataclass
class Console:
    """Everything the handlers share (one per application)."""

    store: Store
    publish: Publish
    tokens: Tokens
    sessions: Sessions
    limiter: Limiter
    health: Callable[[], bool]
    clock: Callable[[], datetime]
    keepalive_s: float
    pending_s: float = 15.0
    secure_cookie: bool = False
    #: the record store (history and audit searches); None: the console runs without one
    records: Records | None = None
    streams: set[asyncio.Queue[Event | None]] = field(default_factory=set)
    pending: dict[tuple[str, str], float] = field(default_factory=dict)
    #: task updates sent and not yet reflected: task_id -> (the state it moves to, monotonic)
    task_sent: dict[str, tuple[str, float]] = field(default_factory=dict)


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal", object)  # type: ignore[arg-type]
SESSION: web.RequestKey[str] = web.RequestKey("session", str)


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


def unauthorized(message: str = "authentication required") -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text=json.dumps({"error": message}),
        content_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="banwatch"'},
    )


def forbidden(message: str) -> web.HTTPForbidden:
    return web.HTTPForbidden(text=json.dumps({"error": message}), content_type="application/json")


def principal_of(request: web.Request) -> Principal:
    p = request.get(PRINCIPAL)
    if not isinstance(p, Principal):  # the middleware lets no such request through
        raise unauthorized()
    return p


def require(request: web.Request, *roles: str) -> Principal:
    p = principal_of(request)
    if p.role not in roles:
        raise forbidden(f"the {p.role} role may not do this")
    return p


def json_ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(
        data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False, allow_nan=False)
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body is not valid JSON"}),
            content_type="application/json",
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body must be a JSON object"}),
            content_type="application/json",
        )
    return body


def audit(c: Console, who: Principal, action: str, obj: str, reason: str) -> Value:
    """An AuditRecord (CONTRACT.md): who, when, what, why. Never coordinates or free text."""
    return {
        "ts": rfc3339_ms(c.clock()),
        "actor": who.user,
        "role": who.role,
        "action": action,
        "object": obj,
        "reason": reason,
    }


async def publish_or_503(c: Console, topic: str, key: str, value: Value) -> None:
    """Publish, or fail the request with 503 (the caller shows or changes nothing)."""
    try:
        await c.publish(topic, key, value)
    except Exception as exc:
        log.error("could not publish to %s: %s", topic, type(exc).__name__)
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "the message bus did not accept the record; try again"}),
            content_type="application/json",
        ) from None


def pending_expired(c: Console, key: tuple[str, str]) -> bool:
    at = c.pending.get(key)
    return at is None or time.monotonic() - at > c.pending_s
