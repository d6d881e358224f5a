"""The dispatch console in a real browser, against the whole running service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.demo.scenario import SODERTALJE_HOME
from streams.kafka.blocking import make_producer, produce_json
from tests.e2e.conftest import (
    DISPATCHER,
    PATROL_2140,
    ROOT,
    VIEWER,
    Service,
    Watched,
    fetch_status,
    login,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]

SCREENSHOT = ROOT / "docs" / "console.png"


def _report_contact(service: Service) -> str:
    """A 112 call: the protected person reports contact at home (ban KF-2026-0042)."""
    incident_id = f"I-E2E-{uuid.uuid4().hex[:8]}"
    producer = make_producer(service.bootstrap)
    try:
        value = {
            "incident_id": incident_id,
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "kind": "reported_contact",
            "ban_id": "KF-2026-0042",
            "lat": SODERTALJE_HOME[0],
            "lon": SODERTALJE_HOME[1],
            "source": "112",
            "note": "the protected person calls: he is at the door",
        }
        produce_json(producer, "incidents", incident_id, value).get(10)
    finally:
        producer.close()
    return incident_id


def test_dispatcher_sees_an_alert_arrive_live_and_acknowledges_it(
    watched: Watched, service: Service
) -> None:
    page = watched.page
    login(watched, service, DISPATCHER)
    assert page.is_hidden("#login")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    _report_contact(service)
    card = page.locator("[data-kind=reported_contact][data-priority='1']")
    card.wait_for(timeout=20_000)
    assert page.evaluate("window.__sameDocument") is True  # arrived over SSE, no reload
    # priority 1: the banner and the sound cue
    assert page.is_visible("#p1-banner")
    assert int(page.get_attribute("body", "data-cues") or "0") >= 1
    assert "P1" in page.title()

    card.click()
    page.wait_for_selector("#detail-state")
    assert page.text_content("#detail-body h3") is not None
    assert "reported_contact incident" in (page.text_content("#detail-body .reason") or "")
    page.fill("#note", "SÖ-2140 skickad")
    page.click("#ack")
    # the worker turns the AlertAction into an `acknowledged` revision, which arrives live
    page.wait_for_selector("#detail-state[data-state=acknowledged]", timeout=20_000)
    page.wait_for_selector("[data-kind=reported_contact][data-state=acknowledged]")
    assert page.evaluate("window.__sameDocument") is True

    # the screenshot for the README: the Södertälje breach on the map, its zone and units
    breach = page.locator("[data-kind=zone_breach][data-priority='1']")
    breach.wait_for(timeout=30_000)
    breach.click()
    page.wait_for_selector("#detail-state")
    page.wait_for_selector("#map path.leaflet-interactive")
    page.wait_for_timeout(700)  # the map's fit animation
    Path(SCREENSHOT).parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))


def test_a_viewer_cannot_acknowledge(watched: Watched, service: Service) -> None:
    page = watched.page
    login(watched, service, VIEWER)
    card = page.locator("[data-kind=tamper]")
    card.wait_for(timeout=30_000)
    alert_id = card.get_attribute("data-alert-id")
    card.click()
    page.wait_for_selector("#detail-state")
    assert page.is_disabled("#ack")
    assert page.is_disabled("#resolve")
    assert "viewer" in (page.text_content("#readonly") or "")
    # and the server says no too, whatever the page would send
    assert fetch_status(watched, "POST", f"/api/alerts/{alert_id}/ack") == 403
    assert fetch_status(watched, "GET", f"/api/alerts/{alert_id}") == 200


def test_a_patrol_login_sees_only_its_units_tasks(watched: Watched, service: Service) -> None:
    # other units have tasks too (so "only its own" means something)
    wait_until(
        lambda: (
            {t["unit_id"] for t in service.api("/api/tasks")["tasks"]} >= {"SÖ-2140", "SM-3320"}
        ),
        what="tasks for SÖ-2140 and SM-3320",
    )
    page = watched.page
    login(watched, service, PATROL_2140)
    assert "SÖ-2140" in (page.text_content("#who") or "")
    page.wait_for_selector("[data-task-id]")
    units = page.eval_on_selector_all("[data-task-id]", "els => els.map(e => e.dataset.unit)")
    assert units and set(units) == {"SÖ-2140"}
    assert page.query_selector("[data-alert-id]") is None
    assert page.is_hidden("#tabs")
    assert fetch_status(watched, "GET", "/api/alerts") == 403
    assert fetch_status(watched, "GET", "/api/tasks?unit=SM-3320") == 403
    assert fetch_status(watched, "GET", "/api/tasks?unit=SÖ-2140") == 200
    page.locator("[data-task-id]").first.click()
    page.wait_for_selector("#detail-body h3")


def test_the_page_asks_nothing_of_any_other_host(watched: Watched, service: Service) -> None:
    page = watched.page
    login(watched, service, DISPATCHER)
    breach = page.locator("[data-kind=zone_breach]").first
    breach.wait_for(timeout=30_000)
    breach.click()
    page.wait_for_selector("#map path.leaflet-interactive")
    page.click("#tab-tasks")
    page.wait_for_selector(".column")
    # the fixture checks every request at teardown; here: it did load its parts, from itself
    paths = {u.split(service.origin, 1)[1].split("?")[0] for u in watched.requests}
    assert {"/", "/static/console.js", "/static/vendor/leaflet/leaflet.js", "/api/stream"} <= paths
