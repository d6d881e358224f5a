"""The map's base layer (`BANWATCH_MAP_TILES`): what the page is told, and what the CSP allows.

Without it the console is what it always was: its own vector layers on an empty map, and the
page never makes a request outside the console. With it, the page (static/tiles.js) adds the
configured tile or WMTS server as a base layer with its attribution, and the Content-Security-
Policy allows images from that one origin and no other; scripts, styles and connections stay
`'self'`. Tile requests carry no referrer (`Referrer-Policy: no-referrer`) and no cookie of ours.
"""

from __future__ import annotations

from aiohttp import web

from config.settings import MapTiles
from streams.console.context import forbidden, json_ok, principal_of

TILES: web.AppKey[MapTiles | None] = web.AppKey("map_tiles", MapTiles)

_IMG_SELF = "img-src 'self' data:"


def csp(base: str, tiles: MapTiles | None) -> str:
    """`base` with the tile server's origin added to `img-src` (nothing else changes)."""
    if tiles is None:
        return base
    if _IMG_SELF not in base:
        raise ValueError("the console's CSP has no img-src to extend")
    return base.replace(_IMG_SELF, f"{_IMG_SELF} {tiles.origin}", 1)


async def map_config(request: web.Request) -> web.Response:
    """`GET /api/map`: the base layer the page should add, or `{"tiles": null}` (every role
    with a map; the auditor has none)."""
    if principal_of(request).role == "auditor":
        raise forbidden("the auditor role reads the audit only")
    tiles = request.app[TILES]
    if tiles is None:
        return json_ok({"tiles": None})
    return json_ok(
        {
            "tiles": {
                "url": tiles.template,
                "attribution": tiles.attribution,
                "min_zoom": tiles.min_zoom,
                "max_zoom": tiles.max_zoom,
            }
        }
    )
