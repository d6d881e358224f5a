"""The report page in Chromium: it renders (every plot, every section, on screen and printed),
and it names no one: no pseudonym, ban, unit or alert id, no coordinate.

Debian's Chromium through Playwright, as tests/e2e does (`scripts/system-deps.sh` installs it).
The page of a simulated month is kept as docs/report.png for the README.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.cli import main
from streams.report import simulate
from tests.report import golden

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "report.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

#: Identifiers as the contract and the simulation write them, and alert/task ids (32 hex).
IDS = re.compile(r"\b(?:P|KF|EM|VD|SE|SÖ|I)-[A-Z0-9]|\b[0-9a-f]{32}\b")
#: A number with the precision of a coordinate (4+ decimals), in any locale.
PRECISE = re.compile(r"\d[.,]\d{4,}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("no /usr/bin/chromium (run scripts/system-deps.sh)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _report(tmp: Path, records: Path, first: str, last: str, *extra: str) -> Path:
    out = tmp / "report.html"
    args = ["report", "--from", first, "--to", last, "--records", str(records)]
    args += ["--out", str(out), "--audit", str(tmp / "audit.jsonl"), "--quiet", *extra]
    assert main(args) == 0
    return out


def _values(records: Path) -> set[str]:
    """Every id and coordinate in the records, as text."""
    found: set[str] = set()

    def walk(x: Any, key: str = "") -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, k)
        elif isinstance(x, list):
            for v in x:
                walk(v, key)
        elif isinstance(x, float) and key in ("lat", "lon") and len(repr(x).split(".")[1]) >= 3:
            found.add(repr(x))
        elif (
            isinstance(x, str)
            and (key.endswith("_id") or key in ("restrained_person", "key", "by"))
            and any(c.isdigit() for c in x)  # ids, not roles or zone names
            and len(x) >= 4
        ):
            found.add(x)

    for line in records.read_text("utf-8").splitlines():
        walk(json.loads(line))
    return found


def _check_private(page: Any, html: str, records: Path) -> None:
    text = page.inner_text("body")
    assert not IDS.search(text), IDS.search(text)
    assert not IDS.search(html), IDS.search(html)
    assert not PRECISE.search(html), PRECISE.search(html)
    tokens = set(re.findall(r"[\w.:-]+", html)) | set(re.findall(r"[\w.:-]+", text))
    assert tokens & _values(records) == set()


def test_golden_page(browser: Any, tmp_path: Path) -> None:
    records = golden.write(tmp_path / "records.jsonl")
    out = _report(tmp_path, records, golden.FIRST, golden.LAST)
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(out.as_uri())
    html = page.content()
    assert page.title().startswith("banwatch: programme report")
    assert page.locator("h2").all_inner_texts() == [
        "Response to priority-1 alerts",
        "Alerts",
        "The outreach chain",
        "Effect after a motivational talk",
        "Data quality",
    ]
    assert page.locator("svg").count() == 5
    for box in (page.locator("svg").nth(i).bounding_box() for i in range(5)):
        assert box is not None and box["width"] > 300 and box["height"] > 100
    text = page.inner_text("body")
    assert "Descriptive, not causal." in text
    assert "<5" in text
    _check_private(page, html, records)
    # printed: the print CSS applies and the page breaks into A4 pages
    page.emulate_media(media="print")
    head = page.evaluate("getComputedStyle(document.querySelector('thead th')).backgroundColor")
    assert head in ("rgba(0, 0, 0, 0)", "transparent")
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type/Page") >= 2
    page.close()


def test_month_page_and_screenshot(browser: Any, tmp_path: Path) -> None:
    records = tmp_path / "quarter.jsonl"
    simulate.write(records, bans=1500, seed=17)
    out = _report(tmp_path, records, "2026-11-01", "2026-11-30", "--locale", "sv")
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(out.as_uri())
    html = page.content()
    text = page.inner_text("body")
    # Swedish numbers: a thousands separator that is a no-break space, decimal commas
    assert re.search(r"\d\u00a0\d{3}", text)
    assert re.search(r"\d,\d\u00a0%", text)
    _check_private(page, html, records)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    # the top of the page: the privacy note, response, the first alert plots
    page.screenshot(
        path=str(SCREENSHOT), full_page=True, clip={"x": 0, "y": 0, "width": 1000, "height": 1900}
    )
    page.close()
    assert SCREENSHOT.stat().st_size > 50_000
