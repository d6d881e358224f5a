"""The console's web application: the contract's HTTP API, the page, and the guards around both.

Routes (CONTRACT.md, "Dispatch console HTTP API", plus what the page needs):

| route | who |
|---|---|
| `GET /healthz` | anyone: 200 while the console is consuming, else 503 |
| `GET /` | the page (200 with a session or token, 401 without: the page then shows its login) |
| `GET /static/...` | anyone: the page's code and the vendored map library, no data |
| `POST /login`, `POST /logout` | a token for a session cookie, and back |
| `GET /api/me` | any role: who the session belongs to |
| `GET /api/alerts` | dispatcher, viewer (the live board) |
| `GET /api/alerts?state=all&...` | dispatcher: the history, from the record store; audited |
| `GET /api/audit?object=&actor=&from=&to=&limit=&offset=` | auditor only; audited |
| `GET /api/alerts/{alert_id}` | dispatcher, viewer; writes an `audit` record first |
| `POST /api/alerts/{alert_id}/ack`, `/resolve` | dispatcher; publishes an AlertAction |
| `GET /api/stream` | dispatcher, viewer; patrol and follow-up roles: only their own tasks |
| `GET /api/tasks?unit=ID&role=R` | dispatcher, viewer; patrol its unit's, a role its role's |
| `POST /api/tasks/{task_id}/{action}` | patrol, follow-up roles; publishes a TaskUpdate |
| `GET /api/units` | dispatcher, viewer: the unit board |
| `GET /api/map` | every role with a map: its base layer (`BANWATCH_MAP_TILES`), or none |

The `auditor` role reads the audit and nothing else: every other API route answers it 403.
The history (`state=all` or one state, `ban_id`, `person`, `kind`, `from`, `to`) and the audit
(`object`, `actor`, `from`, `to`) are paged by `limit` (default 50, at most 200) and `offset`.

Guards, on every response: a strict Content-Security-Policy (`default-src 'self'`, no inline
script or style, `frame-ancestors 'none'`), `X-Content-Type-Options: nosniff`,
`Referrer-Policy: no-referrer`, `Cache-Control: no-store` on the API. State-changing requests
(every POST) must be JSON (`Content-Type: application/json`, which a cross-site form cannot send
without a CORS preflight that this server never grants) and, when the browser says where they
come from (`Origin`), come from this very host; the session cookie is `HttpOnly` and
`SameSite=Strict`. The access log names the route pattern, never the path's ids or the query.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from config.settings import MapTiles, Principal
from config.topics import AUDIT
from streams.console import api, stream, tasks, tiles
from streams.console.auth import Limiter, Sessions, Tokens
from streams.console.context import (
    CONSOLE,
    COOKIE,
    MAX_BODY,
    PRINCIPAL,
    SESSION,
    Console,
    Publish,
    Records,
    audit,
    client_address,
    forbidden,
    json_ok,
    log,
    principal_of,
    publish_or_503,
    read_json,
    rfc3339_ms,
    system_clock,
    unauthorized,
)
from streams.console.store import Store

STATIC = Path(__file__).resolve().parent / "static"
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

#: The headers above as this app sends them (its CSP names the map's tile server, if any).
_HEADERS: web.AppKey[dict[str, str]] = web.AppKey("security_headers", dict)


def make_app(
    store: Store,
    publish: Publish,
    tokens: Mapping[str, Principal],
    *,
    health: Callable[[], bool] = lambda: True,
    clock: Callable[[], datetime] = system_clock,
    limiter: Limiter | None = None,
    sessions: Sessions | None = None,
    keepalive_s: float = 15.0,
    secure_cookie: bool = False,
    records: Records | None = None,
    map_tiles: MapTiles | None = None,
) -> web.Application:
    """The console as an aiohttp application. `publish` must raise when the record was not
    accepted (then the request fails with 503 and, for a detail, nothing is shown).
    `map_tiles`: the map's base layer (streams/console/tiles.py), which the CSP then allows."""
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
        records=records,
    )
    app[tiles.TILES] = map_tiles
    app[_HEADERS] = {**SECURITY_HEADERS, "Content-Security-Policy": tiles.csp(CSP, map_tiles)}
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
    r.add_get("/api/tasks", tasks.list_tasks)
    r.add_post("/api/tasks/{task_id}/{action}", tasks.task_action)
    r.add_get("/api/units", tasks.unit_board)
    r.add_get("/api/audit", api.audit_search)
    r.add_get("/api/stream", stream.events)
    r.add_get("/api/map", tiles.map_config)
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
    for name, value in request.app[_HEADERS].items():
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


def _too_many(wait: float) -> web.HTTPTooManyRequests:
    return web.HTTPTooManyRequests(
        text=json.dumps({"error": "too many failed attempts; try again later"}),
        content_type="application/json",
        headers={"Retry-After": str(max(1, int(wait + 0.999)))},
    )


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
            raise unauthorized("invalid token")
    else:
        sid = request.cookies.get(COOKIE)
        if sid:
            principal = c.sessions.get(sid)
            if principal is not None:
                request[SESSION] = sid
    request[PRINCIPAL] = principal
    if principal is None and not _is_public(request):
        raise unauthorized()
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
    return json_ok({**p.model_dump(), "now": rfc3339_ms(c.clock())})


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
        raise unauthorized("invalid token")
    obj = f"user:{principal.user}"
    await publish_or_503(c, AUDIT, obj, audit(c, principal, "login", obj, "console session"))
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
