"""The history search (dispatcher) and the audit view (auditor) in Chromium: filters, pages,
an alert's stored revisions, and each search landing in the audit. The console runs in this
process over a real SQLite record store written the way the sink writes it; what it publishes
(the searches' audit records) is caught by the recorder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.console.app import make_app
from streams.store.queries import Records
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.served import Served
from tests.streams.consolekit import (
    AUDITOR,
    DISPATCHER,
    TOKENS,
    VIEWER,
    Recorder,
    alert,
    filled_store,
    stored_records,
    ts,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _alerts() -> list[dict[str, Any]]:
    out = [
        alert(f"h{i:02}", opened_s=-600 * i, ban_id="KF-7" if i % 3 == 0 else "KF-8")
        for i in range(30)
    ]
    out.append(alert("h03", seq=2, state="acknowledged", opened_s=-1800, ban_id="KF-7"))
    out.append(alert("h03", seq=3, state="resolved", opened_s=-1800, ban_id="KF-7"))
    return out


def _audits() -> list[dict[str, Any]]:
    return [
        {
            "ts": ts(-60 * i),
            "actor": f"op-{i % 3}",
            "role": "dispatcher",
            "action": "consult",
            "object": f"alert:h{i:02}",
            "reason": "handling the alert from the dispatch board",
        }
        for i in range(40)
    ]


class Console(Served):
    def __init__(self, records: Records) -> None:
        self.published = Recorder()
        store = filled_store()
        store.restore_alert(alert("r9", kind="sos", priority=2, opened_s=-7200))
        self.app = make_app(store, self.published, TOKENS, records=records)
        Served.__init__(self, self.app)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    records = stored_records(str(tmp_path), alerts=_alerts(), audits=_audits())
    c = Console(records)
    try:
        yield c
    finally:
        c.close()
        records.close()


def _login(browser: Any, url: str, token: str) -> Any:
    page = browser.new_page()
    errors: list[str] = []
    # the page's first load answers 401 (the login); anything else (a CSP violation, a script
    # error) is a failure
    page.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and "status of 401" not in m.text else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.fill("#token", token)
    page.click("#login-button")
    page.wait_for_selector("#app:not([hidden])")
    page.errors = errors
    return page


def _wait_text(page: Any, selector: str, text: str) -> None:
    page.wait_for_function(
        "([s, t]) => document.querySelector(s).textContent === t", arg=[selector, text]
    )


def test_a_dispatcher_searches_the_history_pages_and_opens_revisions(console: Console) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = _login(browser, console.url, DISPATCHER)
            assert page.is_hidden("#tab-audit")
            # an alert restored after a restart: marked, and it cannot be acknowledged
            page.wait_for_selector("[data-alert-id=r9] .restored")
            page.click("[data-alert-id=r9]")
            page.wait_for_selector("#restored-note")
            assert page.is_disabled("#ack") and page.is_enabled("#resolve")
            page.click("#tab-history")
            page.fill("#h-ban", "KF-7")
            page.click("#h-search")
            page.wait_for_selector("#h-rows tr[data-alert-id]")
            ids = page.eval_on_selector_all(
                "#h-rows tr[data-alert-id]", "rs => rs.map(r => r.dataset.alertId)"
            )
            assert ids == [f"h{i:02}" for i in range(0, 30, 3)]  # newest first, KF-7 only
            assert page.text_content("#h-page") == "1–10 of 10"
            assert page.is_disabled("#h-next")

            page.fill("#h-ban", "")
            page.click("#h-search")
            _wait_text(page, "#h-page", "1–25 of 30")
            page.click("#h-next")
            _wait_text(page, "#h-page", "26–30 of 30")
            assert page.locator("#h-rows tr[data-alert-id]").count() == 5

            page.select_option("#h-state", "resolved")
            page.click("#h-search")
            _wait_text(page, "#h-page", "1–1 of 1")
            page.click("#h-rows tr[data-alert-id=h03]")
            page.wait_for_selector("#h-revs tbody tr")
            seqs = page.eval_on_selector_all("#h-revs tbody tr", "rs => rs.map(r => r.dataset.seq)")
            assert seqs == ["1", "2", "3"]
            assert "resolved" in page.text_content("#h-revs")
            assert page.errors == [], page.errors
        finally:
            browser.close()
    searches = [v for k, v in console.published.on("audit") if v["action"] == "search"]
    assert [s["object"] for s in searches] == ["ban:KF-7", "alerts", "alerts", "alerts"]
    assert "offset=25" in searches[2]["reason"] and "state=resolved" in searches[3]["reason"]
    consults = [v for k, v in console.published.on("audit") if v["action"] == "consult"]
    assert [c["object"] for c in consults] == ["alert:r9", "alert:h03"]
    assert consults[1]["reason"] == "supervisory review"


def test_an_auditor_sees_only_the_audit_and_searches_it(console: Console) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = _login(browser, console.url, AUDITOR)
            page.wait_for_selector("#a-rows tr")
            assert page.is_visible("#audit-view")
            for hidden in ("#board-view", "#tab-board", "#tab-tasks", "#tab-units", "#tab-history"):
                assert page.is_hidden(hidden), hidden
            _wait_text(page, "#a-page", "1–25 of 40")
            page.fill("#a-actor", "op-1")
            page.click("#a-search")
            _wait_text(page, "#a-page", "1–13 of 13")
            actors = page.eval_on_selector_all(
                "#a-rows tr", "rs => rs.map(r => r.children[1].textContent)"
            )
            assert set(actors) == {"op-1"} and len(actors) == 13
            page.fill("#a-actor", "")
            page.fill("#a-object", "alert:h04")
            page.click("#a-search")
            _wait_text(page, "#a-page", "1–1 of 1")
            page.fill("#a-object", "alert:h04 or 1=1")
            page.click("#a-search")
            page.wait_for_selector("#a-error:not([hidden])")
            assert "identifier" in page.text_content("#a-error")
            # the auditor's session reaches nothing else
            status = page.evaluate("fetch('/api/alerts').then(r => r.status)")
            assert status == 403
            expected = ("status of 400", "status of 403")  # the refused search, the fetch
            unexpected = [e for e in page.errors if not any(x in e for x in expected)]
            assert unexpected == [], page.errors
        finally:
            browser.close()
    searches = [k for k, v in console.published.on("audit") if v["action"] == "audit_search"]
    assert searches == ["audit", "user:op-1", "alert:h04"]


def test_a_viewer_gets_no_history_tab(console: Console) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = _login(browser, console.url, VIEWER)
            page.wait_for_selector("[data-alert-id=a1]")
            assert page.is_hidden("#tab-history") and page.is_hidden("#tab-audit")
        finally:
            browser.close()
