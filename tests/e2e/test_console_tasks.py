"""Tasks with a lifecycle in Chromium: a patrol unit takes its task from accept to done with an
outcome, a negotiator records a talk with the person's consent (given, and refused), and the
dispatcher sees the response on the alert and the unit board.

The console runs in this process over its in-memory store; what it publishes is recorded, and a
stand-in for the stream worker answers each TaskUpdate on `task-updates` the way the worker does:
with the task's next revision on `patrol-tasks` (seq + 1, the new state, the outcome), which the
page receives live over its event stream. So the buttons are seen to follow the worker's state,
not the page's own guess."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from streams.console.app import make_app
from streams.console.lifecycle import TARGET
from streams.console.store import Store
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.served import Served
from tests.streams.consolekit import (
    DISPATCHER,
    NEGOTIATOR,
    PATROL,
    TOKENS,
    Recorder,
    alert,
    revision,
    ts,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@dataclass
class Worker(Recorder):
    """Records what the console publishes; answers a TaskUpdate with the task's next revision
    a moment later, on the console's loop (as the console's feed would apply it)."""

    store: Store | None = None

    async def __call__(self, topic: str, key: str, value: dict[str, Any]) -> None:
        await super().__call__(topic, key, value)
        if topic == "task-updates" and self.store is not None:
            asyncio.get_running_loop().call_later(0.3, self._revise, dict(value))

    def _revise(self, update: dict[str, Any]) -> None:
        assert self.store is not None
        held = self.store.task(update["task_id"])
        assert held is not None
        task = {k: v for k, v in held.items() if k not in ("closed", "actions", "outcomes")}
        task.update(
            seq=task["seq"] + 1,
            state=TARGET[update["action"]],
            outcome=update["outcome"],
            updated_at=update["ts"],
        )
        self.store.apply_task(task)


def _store() -> Store:
    store = Store("e2e")
    store.apply_unit(
        {"unit_id": "SÖ-2140", "ts": ts(), "lat": 59.1966, "lon": 17.6268, "status": "available"}
    )
    store.apply_unit(
        {"unit_id": "SÖ-2160", "ts": ts(), "lat": 59.19, "lon": 17.62, "status": "available"}
    )
    response = {"unit_id": "SÖ-2140", "accepted_at": ts(12), "on_scene_at": None, "outcome": None}
    store.apply_alert(alert("a1", response=response))
    store.apply_task(revision("r1", "SÖ-2140"))
    store.apply_task(revision("r2", "SÖ-2150", alert_id="a1"))
    store.apply_task(
        revision("m1", None, kind="motivational_talk", role="negotiator", due_s=3 * 86400)
    )
    store.apply_task(revision("i1", None, kind="interview", role="investigator", due_s=86400))
    return store


class Console(Served):
    def __init__(self) -> None:
        self.store = _store()
        self.published = Worker(store=self.store)
        self.app = make_app(self.store, self.published, TOKENS)
        Served.__init__(self, self.app)

    def updates(self) -> list[dict[str, Any]]:
        return [v for _, v in self.published.on("task-updates")]


@pytest.fixture
def console() -> Iterator[Console]:
    c = Console()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page_of(chromium: Any, console: Console) -> Iterator[Any]:
    """Log in with a token; a CSP violation, a script error or any request to another host
    fails the test."""
    context = chromium.new_context(
        viewport={"width": 1400, "height": 900}, locale="sv-SE", timezone_id="Europe/Stockholm"
    )
    errors: list[str] = []
    foreign: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith(console.url):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    context.route("**/*", guard)

    def login(token: str) -> Any:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on(
            "console",
            lambda m: (
                errors.append(m.text)
                if m.type == "error" and "status of 401" not in m.text
                else None
            ),
        )
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(console.url)
        page.fill("#token", token)
        page.click("#login-button")
        page.wait_for_selector("#app:not([hidden])")
        page.wait_for_selector("#conn.live")
        return page

    try:
        yield login
    finally:
        context.close()
    assert errors == [], errors
    assert foreign == [], foreign


def _enabled(page: Any) -> list[str]:
    """The task buttons that may be pressed now."""
    return list(
        page.eval_on_selector_all(
            ".task-actions button.big:not([disabled])", "bs => bs.map(b => b.id.slice(5))"
        )
    )


def _wait_state(page: Any, state: str) -> None:
    page.wait_for_selector(f"#task-state[data-state={state}]")
    page.wait_for_selector("#task-pending", state="detached")


def test_a_patrol_unit_accepts_drives_arrives_and_closes_its_task(
    page_of: Any, console: Console
) -> None:
    page = page_of(PATROL)
    cards = page.eval_on_selector_all("[data-task-id]", "els => els.map(e => e.dataset.taskId)")
    assert cards == ["r1"]  # SÖ-2150's task is not shown to SÖ-2140
    page.click("[data-task-id=r1]")
    page.wait_for_selector("#task-state[data-state=assigned]")
    assert _enabled(page) == ["accept", "decline", "en_route", "on_scene"]  # done: outcome first

    page.fill("#task-note", "från Ronna")
    page.click("#task-accept")
    _wait_state(page, "accepted")  # the worker's revision, arrived over the event stream
    assert _enabled(page) == ["en_route", "on_scene"]
    page.wait_for_selector("[data-task-id=r1][data-state=accepted]")

    page.click("#task-en_route")
    _wait_state(page, "en_route")
    assert _enabled(page) == ["on_scene"]

    page.click("#task-on_scene")
    _wait_state(page, "on_scene")
    assert _enabled(page) == []  # Done waits for an outcome
    outcomes = page.eval_on_selector_all(".outcome", "bs => bs.map(b => b.dataset.outcome)")
    assert outcomes == ["contact_made", "not_found", "arrested", "protected_safe", "false_alarm"]
    assert page.query_selector("#consent") is None
    page.click("[data-outcome=contact_made]")
    assert _enabled(page) == ["done"]
    page.click("#task-done")
    _wait_state(page, "done")
    assert _enabled(page) == []
    assert page.query_selector(".outcome") is None

    updates = console.updates()
    assert [u["action"] for u in updates] == ["accept", "en_route", "on_scene", "done"]
    assert {(u["task_id"], u["by"], u["role"]) for u in updates} == {("r1", "SÖ-2140", "patrol")}
    assert [u["outcome"] for u in updates] == [None, None, None, "contact_made"]
    assert [u["note"] for u in updates] == ["från Ronna", "", "", ""]
    audits = [v for _, v in console.published.on("audit") if v["object"] == "task:r1"]
    assert [a["action"] for a in audits] == [
        "task_accept",
        "task_en_route",
        "task_on_scene",
        "task_done",
    ]
    assert "Ronna" not in str(audits)


@pytest.mark.parametrize("consent", [True, False])
def test_a_negotiator_records_a_talk_and_the_persons_consent(
    page_of: Any, console: Console, consent: bool
) -> None:
    page = page_of(NEGOTIATOR)
    assert page.is_hidden("#tabs") and page.is_hidden("#map")
    assert "Negotiator" in (page.text_content("#list-title") or "")
    cards = page.eval_on_selector_all("[data-task-id]", "els => els.map(e => e.dataset.taskId)")
    assert cards == ["m1"]  # the investigator's interview is not in the negotiator's queue
    assert "due" in (page.text_content("[data-task-id=m1] .due") or "")
    page.click("[data-task-id=m1]")
    page.wait_for_selector("#task-state[data-state=assigned]")
    assert page.query_selector("#task-en_route") is None  # a role's task is not driven to
    assert _enabled(page) == ["accept"]
    page.click("#task-accept")
    _wait_state(page, "accepted")

    page.click("[data-outcome=held_accepts_help]")
    page.wait_for_selector("#consent")
    question = page.text_content("#consent .question") or ""
    assert "agrees that social services may be told" in question
    assert _enabled(page) == []  # no default: Done waits for Yes or No
    page.click("#consent-yes" if consent else "#consent-no")
    summary = page.text_content("#consent-summary") or ""
    assert ("social services will be told" in summary) is consent
    assert ("nothing is passed to social services" in summary) is not consent
    # choosing another outcome drops the consent question (and the answer)
    page.click("[data-outcome=held_declines_help]")
    assert page.query_selector("#consent") is None
    page.click("[data-outcome=held_accepts_help]")
    assert _enabled(page) == []
    page.click("#consent-yes" if consent else "#consent-no")
    assert _enabled(page) == ["done"]
    page.click("#task-done")
    _wait_state(page, "done")

    done = console.updates()[-1]
    assert (done["task_id"], done["by"], done["role"], done["action"]) == (
        "m1",
        "neg-2",
        "negotiator",
        "done",
    )
    assert (done["outcome"], done["consent_to_share"]) == ("held_accepts_help", consent)
    [audit] = [v for _, v in console.published.on("audit") if v["action"] == "task_done"]
    assert audit["reason"].endswith("yes" if consent else "no")


def test_the_dispatcher_sees_the_response_and_the_unit_board(
    page_of: Any, console: Console
) -> None:
    page = page_of(DISPATCHER)
    response = page.text_content("[data-alert-id=a1] .response") or ""
    assert response.startswith("Response: SÖ-2140 · accepted ")
    page.click("#tab-units")
    page.wait_for_selector("#u-rows tr[data-unit]")
    statuses = page.eval_on_selector_all(
        "#u-rows tr[data-unit]", "rs => rs.map(r => [r.dataset.unit, r.dataset.status])"
    )
    assert statuses == [["SÖ-2140", "tasked"], ["SÖ-2150", "tasked"], ["SÖ-2160", "free"]]
    # the unit answers (as the worker would see it): the board follows, live
    console.loop.call_soon_threadsafe(
        console.store.apply_task, revision("r1", "SÖ-2140", seq=2, state="en_route")
    )
    page.wait_for_selector("#u-rows tr[data-unit='SÖ-2140'][data-status=en_route]")
