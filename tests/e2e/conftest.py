"""The whole service as a person uses it: `banwatch up` in its own process (embedded broker,
stream worker, console), the demo fed at five times its pace, and Debian's Chromium driven by
Playwright. Nothing is mocked.

Chromium comes from the system (`scripts/system-deps.sh` installs it); Playwright's own browser
download (`playwright install`) is never used.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from streams.demo.scenario import play_demo
from streams.kafka.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DEMO_SPEED = 5.0

DISPATCHER = "e2e-dispatcher-token-0123456789"
VIEWER = "e2e-viewer-token-0123456789abcd"
PATROL_2140 = "e2e-patrol-2140-token-01234567"
TOKENS = {
    DISPATCHER: {"user": "op-17", "role": "dispatcher"},
    VIEWER: {"user": "sup-3", "role": "viewer"},
    PATROL_2140: {"user": "pat-2140", "role": "patrol", "unit": "SÖ-2140"},
}


@dataclass
class Service:
    url: str
    bootstrap: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return urlsplit(self.url).netloc

    def api(self, path: str, token: str = DISPATCHER) -> Any:
        req = urllib.request.Request(
            self.url.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())


def _up(timeout_s: float = 90.0) -> Service:
    env = {
        **os.environ,
        "BANWATCH_EMBEDDED_BROKER_PORT": str(free_port()),
        "BANWATCH_CONSOLE_PORT": str(free_port()),
        "BANWATCH_METRICS_PORT": "0",
        "BANWATCH_CONSOLE_TOKENS": json.dumps(TOKENS),
        "BANWATCH_BROKER_SESSION_TIMEOUT_S": "2",
        "BANWATCH_BROKER_HEARTBEAT_S": "0.5",
        "BANWATCH_LOG_LEVEL": "warn",
        # a record store of its own: none of an earlier run's bans or alerts restored here
        "BANWATCH_DATA_DIR": tempfile.mkdtemp(prefix="banwatch-e2e-"),
    }
    env.pop("BANWATCH_KAFKA_BOOTSTRAP", None)
    env.pop("BANWATCH_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            for name in ("broker", "console"):
                if line.startswith(f"{name}: "):
                    found[name] = line.split(": ", 1)[1].strip()
            if line.startswith("ready in"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout_s) or "console" not in found:
        proc.kill()
        raise AssertionError("`banwatch up` did not get ready:\n" + "\n".join(lines[-40:]))
    return Service(found["console"], found["broker"], proc, lines)


class Demo:
    """`play_demo` in a thread of its own, stopped at the end of the session."""

    def __init__(self, bootstrap: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(bootstrap,), daemon=True)
        self.thread.start()

    def _run(self, bootstrap: str) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(play_demo(bootstrap, "", self.stop, speed=DEMO_SPEED))
        except BaseException as exc:  # reported at the end of the session
            self.error = exc

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(15)


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/system-deps.sh (it installs Debian's chromium)",
            pytrace=False,
        )
    svc = _up()
    demo = Demo(svc.bootstrap)
    try:
        yield svc
    finally:
        demo.close()
        if svc.proc.poll() is None:
            svc.proc.send_signal(signal.SIGINT)
            try:
                svc.proc.wait(30)
            except subprocess.TimeoutExpired:
                svc.proc.kill()
                svc.proc.wait(10)
    assert demo.error is None, repr(demo.error)
    log = "\n".join(svc.lines)
    assert "Traceback" not in log, log[-4000:]
    for secret in (DISPATCHER, VIEWER, PATROL_2140, "he is at the door", "SÖ-2140 skickad"):
        assert secret not in log  # tokens, incident notes and operators' notes never logged


@pytest.fixture(scope="module")
def browser(service: Service) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Watched:
    """A page and everything it asked the network for."""

    page: Any
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def watched(browser: Any, service: Service) -> Iterator[Watched]:
    context = browser.new_context(
        viewport={"width": 1600, "height": 900}, locale="sv-SE", timezone_id="Europe/Stockholm"
    )
    page = context.new_page()
    w = Watched(page)
    page.on("request", lambda r: w.requests.append(r.url))
    page.on("pageerror", lambda e: w.errors.append(f"page error: {e}"))
    page.on("console", lambda m: w.errors.append(m.text) if _unexpected(m) else None)

    def guard(route: Any) -> None:  # anything else would leave the machine: refuse it
        if urlsplit(route.request.url).netloc == service.origin:
            route.continue_()
        else:
            w.blocked.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page.set_default_timeout(20_000)
    try:
        yield w
    finally:
        context.close()
    foreign = [u for u in w.requests if urlsplit(u).netloc != service.origin]
    assert foreign == [] and w.blocked == [], foreign + w.blocked
    assert w.errors == [], w.errors


def _unexpected(message: Any) -> bool:
    """Console errors other than the statuses the tests provoke on purpose (the login page's
    own 401 probe, the 403s of refused roles): a CSP violation or a script error fails."""
    if message.type != "error":
        return False
    text = str(message.text)
    return not any(f"status of {s} " in text for s in (401, 403))


def login(w: Watched, service: Service, token: str) -> None:
    w.page.goto(service.url)
    w.page.fill("#token", token)
    w.page.click("#login-button")
    w.page.wait_for_selector("#app:not([hidden])")
    w.page.wait_for_selector("#conn.live")


def fetch_status(w: Watched, method: str, path: str) -> int:
    """The status of a request made by the page itself (its cookie, its origin)."""
    return int(
        w.page.evaluate(
            """async ([method, path]) => {
                const r = await fetch(path, {method, headers: {'Content-Type': 'application/json'},
                                             body: method === 'POST' ? '{"note": ""}' : undefined});
                return r.status;
            }""",
            [method, path],
        )
    )


def wait_until(predicate: Any, timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
