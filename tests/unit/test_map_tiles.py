"""`BANWATCH_MAP_TILES`: what the setting accepts, what the page is told (`GET /api/map`) and
what the CSP then allows (the console in process, no browser: tests/e2e/test_map_tiles.py
drives Chromium against a tile server)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from config.settings import MapTiles, SettingsError, load_settings
from streams.console.app import CSP
from streams.console.tiles import csp
from tests.streams.consolekit import AUDITOR, DISPATCHER, PATROL, VIEWER, bearer, console

XYZ = {"url": "https://tiles.polisen.example/osm/{z}/{x}/{y}.png", "attribution": "© OSM"}


def settings_with(value: str) -> MapTiles | None:
    return load_settings({"BANWATCH_MAP_TILES": value}).map_tiles


def test_a_json_object_with_url_and_attribution() -> None:
    t = settings_with(json.dumps(XYZ))
    assert t is not None
    assert (t.origin, t.template, t.attribution) == (
        "https://tiles.polisen.example",
        XYZ["url"],
        "© OSM",
    )
    assert (t.min_zoom, t.max_zoom) == (0, 19)
    assert load_settings({}).map_tiles is None


def test_a_wmts_rest_template_becomes_xyz() -> None:
    url = (
        "https://karta.polisen.example:8443/wmts/1.0.0/topowebb/default/GoogleMapsCompatible/"
        "{TileMatrix}/{TileRow}/{TileCol}.png"
    )
    t = settings_with(json.dumps({"url": url, "attribution": "© Lantmäteriet", "max_zoom": 17}))
    assert t is not None
    assert t.origin == "https://karta.polisen.example:8443"
    assert t.template.endswith("/GoogleMapsCompatible/{z}/{y}/{x}.png")
    assert t.max_zoom == 17


def test_from_the_toml_file(tmp_path: Path) -> None:
    f = tmp_path / "banwatch.toml"
    f.write_text('[map_tiles]\nurl = "http://10.0.0.5/t/{z}/{x}/{y}.png"\nattribution = "x"\n')
    t = load_settings({"BANWATCH_CONFIG": str(f)}).map_tiles
    assert t is not None and t.origin == "http://10.0.0.5"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("https://tiles.example/{z}/{x}/{y}.png", "expected JSON"),  # a bare URL
        (json.dumps({"url": XYZ["url"]}), "attribution"),
        (json.dumps({**XYZ, "attribution": ""}), "attribution"),
        (json.dumps({**XYZ, "url": "https://{s}.tiles.example/{z}/{x}/{y}.png"}), "host"),
        (json.dumps({**XYZ, "url": "https://tiles.example/{z}/{x}.png"}), "{y}"),
        (json.dumps({**XYZ, "url": "https://tiles.example/{z}/{x}/{y}/{q}.png"}), "{q}"),
        (json.dumps({**XYZ, "url": "ftp://tiles.example/{z}/{x}/{y}.png"}), "http(s)"),
        (json.dumps({**XYZ, "url": "https://u:p@tiles.example/{z}/{x}/{y}.png"}), "credentials"),
        (json.dumps({**XYZ, "url": "https://tiles.example/{z}/{x}/{y}.png' x"}), "quotes"),
        (json.dumps({**XYZ, "min_zoom": 12, "max_zoom": 5}), "max_zoom"),
        (json.dumps({**XYZ, "extra": 1}), "extra"),
    ],
)
def test_anything_else_stops_the_process_with_one_line(value: str, says: str) -> None:
    with pytest.raises(SettingsError) as err:
        settings_with(value)
    msg = str(err.value)
    assert msg.startswith("BANWATCH_MAP_TILES") and says in msg and "\n" not in msg


def test_the_csp_gains_that_origin_for_images_only() -> None:
    t = MapTiles(**XYZ)  # type: ignore[arg-type]
    assert csp(CSP, None) == CSP
    widened = csp(CSP, t)
    assert widened.replace(" https://tiles.polisen.example", "", 1) == CSP
    assert "img-src 'self' data: https://tiles.polisen.example;" in widened


def test_the_page_is_told_its_base_layer_and_the_auditor_nothing() -> None:
    t = MapTiles(**XYZ)  # type: ignore[arg-type]

    async def scenario() -> None:
        async with console(map_tiles=t) as h:
            for token in (DISPATCHER, VIEWER, PATROL):
                r = await h.client.get("/api/map", headers=bearer(token))
                assert r.status == 200
                assert (await r.json())["tiles"] == {
                    "url": XYZ["url"],
                    "attribution": "© OSM",
                    "min_zoom": 0,
                    "max_zoom": 19,
                }
                assert "https://tiles.polisen.example" in r.headers["Content-Security-Policy"]
            assert (await h.client.get("/api/map", headers=bearer(AUDITOR))).status == 403
            assert (await h.client.get("/api/map")).status == 401
            page = await h.client.get("/")
            assert "img-src 'self' data: https://tiles.polisen.example;" in (
                page.headers["Content-Security-Policy"]
            )
        async with console() as h:
            r = await h.client.get("/api/map", headers=bearer(DISPATCHER))
            assert await r.json() == {"tiles": None}
            assert r.headers["Content-Security-Policy"] == CSP

    asyncio.run(asyncio.wait_for(scenario(), 30))
