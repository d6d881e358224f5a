"""The loop closed end to end as a person sees it: `banwatch up --demo` (embedded broker, worker
with the demo's scripted units and roles, console, store) and Debian's Chromium, logged in with
the tokens `up` prints. The dispatcher sees the demo's unit accept and arrive on the alert; the
negotiator holds P-7731's talk (the part the demo leaves to a person), records the person's
consent with the plain-language question, and the worker's referral appears in the social
services' queue. Nothing is mocked; no request leaves the machine."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from streams.kafka.broker import free_port
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.streams.up import Up

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def _tokens(up: Up) -> dict[str, str]:
    return {
        line.split("(", 1)[1].split(")", 1)[0]: line.rsplit(" ", 1)[1]
        for line in up.lines
        if line.startswith("console token (")
    }


def test_the_loop_closes_in_the_browser_on_up_demo(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system-deps.sh", pytrace=False)
    from playwright.sync_api import sync_playwright

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BANWATCH_")},
        "BANWATCH_EMBEDDED_BROKER_PORT": str(free_port()),
        "BANWATCH_CONSOLE_PORT": str(free_port()),
        "BANWATCH_METRICS_PORT": str(free_port()),
        "BANWATCH_STORE_METRICS_PORT": str(free_port()),
        "BANWATCH_WORKER_WEB_PORT": str(free_port()),
        "BANWATCH_BROKER_SESSION_TIMEOUT_S": "2",
        "BANWATCH_BROKER_HEARTBEAT_S": "0.5",
        "BANWATCH_DATA_DIR": str(tmp_path / "data"),
    }
    up = Up(env, "--demo")
    errors: list[str] = []
    foreign: list[str] = []
    try:
        up.wait_ready(120)
        tokens = _tokens(up)
        base = up.console
        origin = urlsplit(base).netloc
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            def guard(route: Any) -> None:
                if urlsplit(route.request.url).netloc == origin:
                    route.continue_()
                else:
                    foreign.append(route.request.url)
                    route.abort()

            def login(token: str) -> Any:
                # a context each: the login's session cookie is per context
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                context.route("**/*", guard)
                page = context.new_page()
                page.set_default_timeout(90_000)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(base)
                page.fill("#token", token)
                page.click("#login-button")
                page.wait_for_selector("#app:not([hidden])")
                return page

            # the dispatcher: the demo's unit SÖ-2140 accepts the zone breach's respond task
            # (about 44 s in) and is on scene (about 57 s): the alert card says so
            dispatcher = login(tokens["dispatcher"])
            dispatcher.wait_for_selector(".response[data-response-unit='SÖ-2140']")
            dispatcher.wait_for_function(
                "() => [...document.querySelectorAll('.response')]"
                ".some(e => /on scene/i.test(e.textContent))"
            )

            # the negotiator: P-7731's talk appears once the demo's investigator has held the
            # interview; held, help accepted, consent given
            negotiator = login(tokens["negotiator"])
            card = negotiator.wait_for_selector(
                "[data-kind=motivational_talk][data-state=assigned]:has-text('P-7731')"
            )
            assert card is not None
            card.click()
            negotiator.wait_for_selector("#task-state[data-state=assigned]")
            negotiator.click("#task-accept")
            negotiator.wait_for_selector("#task-state[data-state=accepted]")
            negotiator.click("[data-outcome=held_accepts_help]")
            question = negotiator.text_content("#consent .question") or ""
            assert "agrees that social services may be told" in question
            negotiator.click("#consent-yes")
            negotiator.click("#task-done")
            negotiator.wait_for_selector("#task-state[data-state=done]")

            # social services: the referral the worker made from that outcome
            social = login(tokens["social_services"])
            t0 = time.monotonic()
            social.wait_for_selector("[data-kind=referral]:has-text('P-7731')")
            assert time.monotonic() - t0 < 60
            browser.close()
    finally:
        rc = up.stop(40, group=True)
    assert errors == [], errors
    assert foreign == [], foreign
    assert rc == 0, up.tail()
    assert "Traceback" not in "\n".join(up.lines), up.tail(80)
