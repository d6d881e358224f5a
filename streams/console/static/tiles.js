/* banwatch dispatch console: the map's base layer (BANWATCH_MAP_TILES), apart from console.js.
 *
 * console.js calls `banwatchTiles.add(map)` once the map exists. This asks /api/map; when a
 * tile (or WMTS) server is configured it adds it as the base layer, under the console's own
 * vector layers, with its attribution shown as plain text. When none is, it adds nothing and
 * the page makes no request outside the console (the CSP would refuse one anyway).
 */
'use strict';
window.banwatchTiles = {
  add(map) {
    fetch('/api/map', { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
      .then((r) => (r.ok ? r.json() : null))
      .then((d) => {
        const t = d && d.tiles;
        if (!t || typeof L === 'undefined') return;
        const text = document.createElement('span');
        text.textContent = t.attribution; // Leaflet writes attributions as HTML: escape it
        L.control.attribution({ prefix: false }).addTo(map);
        L.tileLayer(t.url, {
          attribution: text.innerHTML,
          minZoom: t.min_zoom,
          maxZoom: t.max_zoom,
          referrerPolicy: 'no-referrer',
        }).addTo(map);
      })
      .catch(() => {}); // no base layer: the vector layers still show
  },
};
