"""The console's web application: the contract's HTTP API, the page, and the guards around both.

Routes (CONTRACT.md, "Dispatch console HTTP API", plus what the page needs):

| route | who |
|---|---|
| `GET /healthz` | anyone: 200 while the console is consuming, else 503 |
| `GET /` | the page (200 with a session or token, 401 without: the page then shows its login) |
| `GET /static/...` | anyone: the page's code and the vendored map library, no data |
| `POST /login`, `POST /logout` | a token for a session cookie, and back |
| `GET /api/me` | any role: who the session belongs to |
| `GET /api/alerts` | dispatcher, viewer |
| `GET /api/alerts/{alert_id}` | dispatcher, viewer; writes an `audit` record first |
| `POST /api/alerts/{alert_id}/ack`, `/resolve` | dispatcher; publishes an AlertAction |
| `GET /api/stream` | every role, each sees its own: patrol units only their unit's tasks |
| `GET /api/tasks?unit=ID` | dispatcher, viewer; patrol for its own unit only |

Guards, on every response: a strict Content-Security-Policy (`default-src 'self'`, no inline
script or style, `frame-ancestors 'none'`), `X-Content-Type-Options: nosniff`,
`Referrer-Policy: no-referrer`, `Cache-Control: no-store` on the API. State-changing requests
(every POST) must be JSON (`Content-Type: application/json`, which a cross-site form cannot send
without a CORS preflight that this server never grants) and, when the browser says where they
come from (`Origin`), come from this very host; the session cookie is `HttpOnly` and
`SameSite=Strict`. The access log names the route pattern, never the path's ids or the query.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from alerts.console.auth import Limiter, Sessions, Tokens
from alerts.console.store import Event, Store, Value
from config.settings import Principal

log = logging.getLogger("banwatch.console")

STATIC = Path(__file__).resolve().parent / "static"
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

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "geolocation=(), camera=(), microphone=()",
}


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _system_clock() -> datetime:
    return datetime.now(UTC)


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
    streams: set[asyncio.Queue[Event | None]] = field(default_factory=set)
    pending: dict[tuple[str, str], float] = field(default_factory=dict)


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal", object)  # type: ignore[arg-type]
SESSION: web.RequestKey[str] = web.RequestKey("session", str)


def make_app(
    store: Store,
    publish: Publish,
    tokens: Mapping[str, Principal],
    *,
    health: Callable[[], bool] = lambda: True,
    clock: Callable[[], datetime] = _system_clock,
    limiter: Limiter | None = None,
    sessions: Sessions | None = None,
    keepalive_s: float = 15.0,
    secure_cookie: bool = False,
) -> web.Application:
    """The console as an aiohttp application. `publish` must raise when the record was not
    accepted (then the request fails with 503 and, for a detail, nothing is shown)."""
    app = web.Application(
        middlewares=[_security_headers, _authenticate, _same_origin_json],
        client_max_size=MAX_BODY,
    )
    app[CONSOLE] = Console(
        store=store,
        publish=publish,
        tokens=Tokens(tokens),
        sessions=sessions or Sessions(),
        limiter=limiter or Limiter(),
        health=health,
        clock=clock,
        keepalive_s=keepalive_s,
        secure_cookie=secure_cookie,
    )
    from alerts.console import api, stream

    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/", page)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/api/me", me)
    r.add_get("/api/alerts", api.list_alerts)
    r.add_get("/api/alerts/{alert_id}", api.alert_detail)
    r.add_post("/api/alerts/{alert_id}/ack", api.acknowledge)
    r.add_post("/api/alerts/{alert_id}/resolve", api.resolve)
    r.add_get("/api/tasks", api.list_tasks)
    r.add_get("/api/stream", stream.events)
    r.add_static("/static", STATIC, follow_symlinks=False, show_index=False)
    app.on_shutdown.append(_close_streams)
    return app


# ---------------------------------------------------------------------------- middlewares
PUBLIC = frozenset({("GET", "/healthz"), ("HEAD", "/healthz"), ("POST", "/login")})


def _is_public(request: web.Request) -> bool:
    if (request.method, request.path) in PUBLIC:
        return True
    return request.method in ("GET", "HEAD") and (
        request.path == "/" or request.path.startswith("/static/")
    )


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        if exc.text is None or exc.content_type != "application/json":
            response = web.json_response(
                {"error": exc.reason}, status=exc.status, headers=_keep_headers(exc)
            )
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/api/") or request.path in ("/login", "/logout", "/"):
        response.headers.setdefault("Cache-Control", "no-store")
    elif request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-cache")
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _keep_headers(exc: web.HTTPException) -> dict[str, str]:
    keep = ("WWW-Authenticate", "Retry-After", "Allow")
    return {k: v for k, v in exc.headers.items() if k in keep}


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


def _too_many(wait: float) -> web.HTTPTooManyRequests:
    return web.HTTPTooManyRequests(
        text=json.dumps({"error": "too many failed attempts; try again later"}),
        content_type="application/json",
        headers={"Retry-After": str(max(1, int(wait + 0.999)))},
    )


def _unauthorized(message: str = "authentication required") -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text=json.dumps({"error": message}),
        content_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="banwatch"'},
    )


def forbidden(message: str) -> web.HTTPForbidden:
    return web.HTTPForbidden(text=json.dumps({"error": message}), content_type="application/json")


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sets `request["principal"]` from the bearer token or the session cookie; 401 without."""
    c = request.app[CONSOLE]
    principal: Principal | None = None
    auth = request.headers.get("Authorization", "")
    if auth:
        scheme, _, token = auth.partition(" ")
        client = client_address(request)
        wait = c.limiter.retry_after(client)
        if wait > 0:
            raise _too_many(wait)
        principal = c.tokens.find(token.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            c.limiter.failed(client)
            raise _unauthorized("invalid token")
    else:
        sid = request.cookies.get(COOKIE)
        if sid:
            principal = c.sessions.get(sid)
            if principal is not None:
                request[SESSION] = sid
    request[PRINCIPAL] = principal
    if principal is None and not _is_public(request):
        raise _unauthorized()
    return await handler(request)


@web.middleware
async def _same_origin_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """POSTs must be JSON and, when the browser names their origin, from this host."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(
                text=json.dumps({"error": "send JSON (Content-Type: application/json)"}),
                content_type="application/json",
            )
        origin = request.headers.get("Origin")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc != request.host):
            raise forbidden("cross-origin request refused")
    return await handler(request)


# ------------------------------------------------------------------------------ handlers
def principal_of(request: web.Request) -> Principal:
    p = request.get(PRINCIPAL)
    if not isinstance(p, Principal):  # the middleware lets no such request through
        raise _unauthorized()
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


async def healthz(request: web.Request) -> web.Response:
    c = request.app[CONSOLE]
    if c.health():
        return json_ok({"status": "consuming"})
    return json_ok({"status": "not consuming"}, status=503)


async def page(request: web.Request) -> web.Response:
    """The page; without a session the same page answers 401 and shows its login form."""
    status = 200 if request.get(PRINCIPAL) is not None else 401
    return web.Response(
        body=(STATIC / "index.html").read_bytes(), status=status, content_type="text/html"
    )


async def me(request: web.Request) -> web.Response:
    p = principal_of(request)
    c = request.app[CONSOLE]
    return json_ok({**p.model_dump(), "now": rfc3339(c.clock())})


async def login(request: web.Request) -> web.Response:
    c = request.app[CONSOLE]
    client = client_address(request)
    wait = c.limiter.retry_after(client)
    if wait > 0:
        raise _too_many(wait)
    body = await read_json(request)
    token = body.get("token")
    principal = c.tokens.find(token) if isinstance(token, str) and len(token) <= 512 else None
    if principal is None:
        c.limiter.failed(client)
        log.info("login refused")
        raise _unauthorized("invalid token")
    obj = f"user:{principal.user}"
    await publish_or_503(c, "audit", obj, audit(c, principal, "login", obj, "console session"))
    sid = c.sessions.create(principal)
    response = json_ok(principal.model_dump())
    response.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        samesite="Strict",
        secure=c.secure_cookie or request.secure,
        path="/",
    )
    log.info("login: %s (%s)", principal.user, principal.role)
    return response


async def logout(request: web.Request) -> web.Response:
    c = request.app[CONSOLE]
    sid = request.get(SESSION)
    if isinstance(sid, str):
        c.sessions.end(sid)
    response = json_ok({"status": "logged out"})
    response.del_cookie(COOKIE, path="/")
    return response


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
        "ts": rfc3339(c.clock()),
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


def new_instance_name() -> str:
    return secrets.token_hex(4)


def drop_streams(app: web.Application) -> None:
    """End every open event stream (browsers reconnect and resume with Last-Event-ID)."""
    for q in list(app[CONSOLE].streams):
        q.put_nowait(None)


async def _close_streams(app: web.Application) -> None:
    drop_streams(app)


class AccessLog(AbstractAccessLogger):
    """One line per request: method, route pattern (never the ids in the path, never the
    query), status, milliseconds."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = "-"
        match = getattr(request, "match_info", None)
        if match is not None and match.route.resource is not None:
            route = match.route.resource.canonical
        self.logger.info("%s %s %d %.0fms", request.method, route, response.status, time * 1000)
