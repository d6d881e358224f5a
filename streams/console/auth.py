"""Who is asking: console tokens, login sessions and the brake on guessing.

A token (`BANWATCH_CONSOLE_TOKENS`) is checked against every configured token in constant time:
each comparison is of SHA-256 digests with `hmac.compare_digest`, and all of them run whatever
matches, so neither the position of a match nor a common prefix shows in the timing. `POST
/login` trades a token for a session id (random, server-side, idle-expiring), so the browser
never stores the token itself. Failed attempts, at `/login` or as a bearer token on any route,
are counted per client address and overall; past the limit every attempt from there is refused
(429) until the window has passed, a correct token included.

What must never happen here: a token, session id or note in a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from config.settings import Principal

Clock = Callable[[], float]  # monotonic seconds


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class Tokens:
    """The configured tokens; `find` compares in constant time."""

    def __init__(self, tokens: Mapping[str, Principal]) -> None:
        self._entries = [(_digest(t), p) for t, p in tokens.items()]

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, token: str) -> Principal | None:
        given = _digest(token)
        found: Principal | None = None
        for digest, principal in self._entries:
            if hmac.compare_digest(given, digest):  # no early exit: every entry is compared
                found = principal
        return found


@dataclass(slots=True)
class Session:
    principal: Principal
    created: float
    seen: float


class Sessions:
    """Server-side sessions: an id in an HttpOnly cookie, the principal here.

    A session ends after `idle_s` without a request or `max_s` after login, whichever first.
    """

    def __init__(
        self, idle_s: float = 4 * 3600, max_s: float = 13 * 3600, clock: Clock = time.monotonic
    ) -> None:
        self.idle_s = idle_s
        self.max_s = max_s
        self.clock = clock
        self._by_digest: dict[bytes, Session] = {}

    def create(self, principal: Principal) -> str:
        self._expire()
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        self._by_digest[_digest(sid)] = Session(principal, now, now)
        return sid

    def get(self, sid: str) -> Principal | None:
        session = self._by_digest.get(_digest(sid))  # a dict lookup by digest: no timing on sid
        if session is None:
            return None
        now = self.clock()
        if now - session.seen > self.idle_s or now - session.created > self.max_s:
            self._by_digest.pop(_digest(sid), None)
            return None
        session.seen = now
        return session.principal

    def end(self, sid: str) -> None:
        self._by_digest.pop(_digest(sid), None)

    def _expire(self) -> None:
        now = self.clock()
        for key, s in list(self._by_digest.items()):
            if now - s.seen > self.idle_s or now - s.created > self.max_s:
                del self._by_digest[key]


class Limiter:
    """Failed authentications per client address in a sliding window, plus an overall cap."""

    def __init__(
        self,
        per_client: int = 5,
        overall: int = 100,
        window_s: float = 60.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.per_client = per_client
        self.overall = overall
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        now = self.clock()
        self._trim(now)
        waits = []
        q = self._failures.get(client)
        if q is not None and len(q) >= self.per_client:
            waits.append(q[0] + self.window_s - now)
        if len(self._all) >= self.overall:
            waits.append(self._all[0] + self.window_s - now)
        return max([0.0, *waits])

    def failed(self, client: str) -> None:
        now = self.clock()
        self._failures.setdefault(client, deque()).append(now)
        self._all.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        cutoff = now - self.window_s
        while self._all and self._all[0] <= cutoff:
            self._all.popleft()
        for client, q in list(self._failures.items()):
            while q and q[0] <= cutoff:
                q.popleft()
            if not q:
                del self._failures[client]
