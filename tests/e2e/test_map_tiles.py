"""The map gets streets (`BANWATCH_MAP_TILES`): Chromium against the console in this process and
a local tile server (a thread serving generated PNG tiles). With the setting, tiles are fetched
from that server, drawn, and attributed, and the CSP names that origin and no other; without
it, the page asks nothing of the tile server (or of any host but the console).
"""

from __future__ import annotations

import re
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from config.settings import MapTiles
from streams.console.app import make_app
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.served import Served
from tests.streams.consolekit import DISPATCHER, TOKENS, Recorder, filled_store

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]

ATTRIBUTION = "© Test Tiles <b>not bold</b>"  # shown as text, never as markup


def png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A solid `size` x `size` PNG (8-bit RGB), written by hand: no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


class TileServer:
    """Serves /<anything>/<a>/<b>/<c>.png as a generated tile; notes every request's path."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        seen = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                m = re.fullmatch(r"/\w+/(\d+)/(\d+)/(\d+)\.png", self.path)
                if m is None:
                    self.send_error(404)
                    return
                a, b, c = (int(x) for x in m.groups())
                body = png((40 + a * 5 % 200, 90 + b % 120, 140 + c % 100))
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Console(Served):
    """The console app (its in-memory store, filled) served from a thread of this process."""

    def __init__(self, tiles: MapTiles | None) -> None:
        self.app = make_app(filled_store(), Recorder(), TOKENS, map_tiles=tiles)
        Served.__init__(self, self.app)


@pytest.fixture
def tile_server() -> Iterator[TileServer]:
    s = TileServer()
    try:
        yield s
    finally:
        s.close()


def origins_in(csp: str) -> set[str]:
    """Every host source a CSP names (keywords, schemes like `data:` left out)."""
    out = set()
    for directive in csp.split(";"):
        for token in directive.split()[1:]:
            if not token.startswith("'") and not token.endswith(":"):
                out.add(token)
    return out


def open_console(console: Console) -> tuple[Any, Any, Any, list[str], dict[str, str]]:
    """Chromium logged in as the dispatcher, the map shown: (playwright, browser, page, every
    request's URL, the page's response headers)."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    response = page.goto(console.url)
    assert response is not None
    page.fill("#token", DISPATCHER)
    page.click("#login-button")
    page.wait_for_selector("#app:not([hidden])")
    page.wait_for_selector("#conn.live")
    page.wait_for_selector("#map .leaflet-map-pane", state="attached")
    return pw, browser, page, requests, response.all_headers()


def _tiles_drawn(page: Any) -> int:
    return int(
        page.evaluate(
            """() => [...document.querySelectorAll('#map img.leaflet-tile-loaded')]
                .filter((i) => i.complete && i.naturalWidth === 256).length"""
        )
    )


@pytest.mark.parametrize("form", ["xyz", "wmts"])
def test_tiles_are_fetched_drawn_and_attributed(tile_server: TileServer, form: str) -> None:
    template = (
        "/xyz/{z}/{x}/{y}.png" if form == "xyz" else "/wmts/{TileMatrix}/{TileRow}/{TileCol}.png"
    )
    tiles = MapTiles(url=tile_server.origin + template, attribution=ATTRIBUTION)
    console = Console(tiles)
    pw = browser = None
    try:
        pw, browser, page, requests, headers = open_console(console)
        page.wait_for_function(
            "() => document.querySelectorAll('#map img.leaflet-tile-loaded').length >= 2",
            timeout=20_000,
        )
        assert _tiles_drawn(page) >= 2
        assert len(tile_server.paths) >= 2
        assert all(p.startswith(f"/{form}/") for p in tile_server.paths)
        # zoom, then row and column in WMTS order (the map shows Sweden: ~59° N, ~17.6° E)
        for p in tile_server.paths:
            z, a, b = (int(x) for x in re.findall(r"\d+", p))
            x, y = (a, b) if form == "xyz" else (b, a)
            assert abs(x / 2**z - 0.549) < 0.03 and abs(y / 2**z - 0.295) < 0.03, p
        shown = page.inner_text("#map .leaflet-control-attribution")
        assert ATTRIBUTION in shown  # the text itself, markup and all: nothing rendered bold
        assert page.locator("#map .leaflet-control-attribution b").count() == 0
        # the console's own vector layers are still drawn above the streets
        page.wait_for_selector("#map path.leaflet-interactive, #map .leaflet-marker-icon")
        csp = headers["content-security-policy"]
        assert origins_in(csp) == {tile_server.origin}
        img = next(d for d in csp.split(";") if d.strip().startswith("img-src"))
        assert img.split() == ["img-src", "'self'", "data:", tile_server.origin]
        for directive in csp.split(";"):
            if not directive.strip().startswith("img-src"):
                assert tile_server.origin not in directive
        console_origin = console.url.rstrip("/")
        asked = {f"{u.scheme}://{u.netloc}" for u in map(urlsplit, requests) if u.netloc}
        others = asked - {console_origin}
        assert others == {tile_server.origin}
    finally:
        if browser is not None:
            browser.close()
        if pw is not None:
            pw.stop()
        console.close()


def test_without_the_setting_no_tile_is_asked_for(tile_server: TileServer) -> None:
    console = Console(None)
    pw = browser = None
    try:
        pw, browser, page, requests, headers = open_console(console)
        page.wait_for_selector("#map path.leaflet-interactive, #map .leaflet-marker-icon")
        page.wait_for_timeout(1500)  # time enough for a base layer to start loading
        assert page.evaluate("fetch('/api/map').then((r) => r.json())") == {"tiles": None}
        assert tile_server.paths == []
        assert page.locator("#map .leaflet-tile").count() == 0
        assert page.locator("#map .leaflet-control-attribution").count() == 0
        console_origin = console.url.rstrip("/")
        asked = {f"{u.scheme}://{u.netloc}" for u in map(urlsplit, requests) if u.netloc}
        assert asked == {console_origin}
        csp = headers["content-security-policy"]
        assert origins_in(csp) == set()
        assert "img-src 'self' data:;" in csp
    finally:
        if browser is not None:
            browser.close()
        if pw is not None:
            pw.stop()
        console.close()
