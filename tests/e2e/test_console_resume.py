"""A dropped event stream resumes with Last-Event-ID: the browser gets what it missed, without
a reload. The console runs in this process on its in-memory store, so the test can cut every
stream at a moment of its choosing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from streams.console.app import drop_streams, make_app
from streams.console.store import Store
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.served import Served
from tests.streams.consolekit import DISPATCHER, TOKENS, Recorder, alert, filled_store

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]


class Console(Served):
    def __init__(self) -> None:
        self.store: Store = filled_store()
        self.app = make_app(self.store, Recorder(), TOKENS)
        Served.__init__(self, self.app)


@pytest.fixture
def console() -> Iterator[Console]:
    c = Console()
    try:
        yield c
    finally:
        c.close()


def test_a_dropped_stream_resumes_with_last_event_id(console: Console) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            streams: list[Any] = []
            page.on("request", lambda r: streams.append(r) if "/api/stream" in r.url else None)
            page.goto(console.url)
            page.fill("#token", DISPATCHER)
            page.click("#login-button")
            page.wait_for_selector("#conn.live")
            page.wait_for_selector("[data-alert-id=a1]")
            page.evaluate("window.__sameDocument = true")
            console.call(console.store.apply_alert, alert("seen", kind="sos"))
            page.wait_for_selector("[data-alert-id=seen]")
            # the connection drops, and while it is down an alert arrives and one is resolved
            console.call(drop_streams, console.app)
            console.call(console.store.apply_alert, alert("missed", kind="sos"))
            console.call(console.store.apply_alert, alert("a1", seq=2, state="resolved"))
            page.wait_for_selector("[data-alert-id=missed]", timeout=15_000)
            page.wait_for_selector("[data-alert-id=a1]", state="detached")
            assert page.evaluate("window.__sameDocument") is True
            assert len(streams) >= 2
            last = streams[-1]
            resumed_from = last.all_headers().get("last-event-id", "")  # the browser's own
            assert f"{console.store.instance}." in resumed_from
        finally:
            browser.close()
