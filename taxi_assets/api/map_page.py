"""The live map page: the forecast drawn server-side as SVG, one rectangle per cell, with a
few lines of JavaScript of our own for the click (no CDN, no map tiles: the machines that
show it may reach nothing but this service).

Cells are coloured by expected street hails for the chosen horizon; clicking a cell asks
``/v1/guidance`` for a taxi at its centre and draws the route. The page polls ``/healthz``
and reloads itself when a newer tick is served.
"""

from __future__ import annotations

import html
import json
import math

from taxi_assets.api.cells import CellGrid
from taxi_assets.api.ticks import LiveTick
from taxi_assets.calendar import TOKYO
from taxi_assets.mesh import rows_per_degree
from taxi_assets.simulation.places import HOTSPOTS

# Pixels per cell edge of latitude; longitude is scaled by cos(latitude) so cells keep
# their true shape (a 500 m half-mesh cell is about 460 m tall and 560 m wide in Tokyo).
CELL_HEIGHT_PX = 16.0
# YlOrRd (ColorBrewer), light to dark: 0 hails to the busiest cell of the tick, on a square-
# root scale (a few hotspots would otherwise leave every other cell the palest colour).
PALETTE = ("#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026")
# Stations labelled on the map, so a reader knows where the hotspots are.
LANDMARKS = tuple(spot for spot in HOTSPOTS["station"] if spot.weight >= 0.5)


def colour(value: float, top: float) -> str:
    """The palette colour of ``value`` on a scale from 0 to ``top``."""
    if top <= 0 or value <= 0:
        return PALETTE[0]
    position = math.sqrt(min(value / top, 1.0)) * (len(PALETTE) - 1)
    low = int(position)
    high = min(low + 1, len(PALETTE) - 1)
    share = position - low
    a, b = _rgb(PALETTE[low]), _rgb(PALETTE[high])
    return "#" + "".join(f"{round(x + (y - x) * share):02x}" for x, y in zip(a, b, strict=True))


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def render_svg(live: LiveTick, grid: CellGrid, horizon: int) -> str:
    """The service area as SVG: every cell coloured by its expected street hails."""
    lat_min, lat_max, lon_min, lon_max = grid.area.snapped_bounds
    y_scale = CELL_HEIGHT_PX * rows_per_degree(grid.area.mesh_level)
    x_scale = y_scale * math.cos(math.radians((lat_min + lat_max) / 2))
    width, height = (lon_max - lon_min) * x_scale, (lat_max - lat_min) * y_scale

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return (lon - lon_min) * x_scale, (lat_max - lat) * y_scale

    hails = dict(live.forecast_at(horizon).select("cell", "expected_street_hails").iter_rows())
    top = max(hails.values(), default=0.0) or 0.0
    parts = [
        f'<svg id="map" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.1f} {height:.1f}">'
    ]
    for cell in grid.cells:
        bounds = grid.bounds(cell)
        x0, y0 = xy(bounds.north, bounds.west)
        x1, y1 = xy(bounds.south, bounds.east)
        value = float(hails.get(cell) or 0.0)
        lat, lon = bounds.center
        parts.append(
            f'<rect class="cell" x="{x0:.2f}" y="{y0:.2f}" width="{x1 - x0:.2f}" '
            f'height="{y1 - y0:.2f}" fill="{colour(value, top)}" data-cell="{cell}" '
            f'data-lat="{lat:.6f}" data-lon="{lon:.6f}" data-hails="{value:.3f}">'
            f"<title>{cell}: {value:.2f} street hails expected</title></rect>"
        )
    for spot in LANDMARKS:
        if lat_min <= spot.lat < lat_max and lon_min <= spot.lon < lon_max:
            x, y = xy(spot.lat, spot.lon)
            parts.append(
                f'<circle class="landmark" cx="{x:.1f}" cy="{y:.1f}" r="3"/>'
                f'<text class="landmark" x="{x + 5:.1f}" y="{y - 4:.1f}">'
                f"{html.escape(spot.name)}</text>"
            )
    parts.append('<polyline id="route" points="" /></svg>')
    return "".join(parts)


def render_page(live: LiveTick, grid: CellGrid, horizon: int) -> str:
    """The whole page: map, legend, horizon links and the guidance panel."""
    frame = live.forecast_at(horizon)
    total = float(frame["expected_street_hails"].sum())
    top = float(frame["expected_street_hails"].max() or 0.0)
    bucket = frame["bucket_start"][0] if "bucket_start" in frame.columns else None
    links = " ".join(
        f'<a href="/?horizon={h}"{" class=current" if h == horizon else ""}>{h}</a>'
        for h in live.horizons
    )
    # Evenly spaced along the palette: the colour scale is a square root.
    steps = (colour(top * (i / 7) ** 2, top) for i in range(8))
    legend = "".join(f'<span style="background:{c}"></span>' for c in steps)
    return PAGE.format(
        tick=html.escape(f"{live.tick.astimezone(TOKYO):%Y-%m-%d %H:%M:%S} Tokyo"),
        tick_json=json.dumps(live.tick.isoformat()),
        model=html.escape(live.model_version),
        horizon=horizon,
        links=links,
        bucket=html.escape(f"{bucket.astimezone(TOKYO):%H:%M}" if bucket is not None else "-"),
        total=f"{total:.1f}",
        top=f"{top:.2f}",
        legend=legend,
        svg=render_svg(live, grid, horizon),
        script=SCRIPT,
    )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Street-hail forecast · taxi_assets</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 16px; color: #222; display: flex; gap: 20px; }}
#map .cell {{ stroke: #fff; stroke-width: 0.4; cursor: pointer; }}
#map .cell:hover {{ stroke: #333; stroke-width: 1; }}
#map .cell.route {{ stroke: #1f4fd1; stroke-width: 2; }}
#map .cell.selected {{ stroke: #000; stroke-width: 2.5; }}
#map circle.landmark {{ fill: #222; }}
#map text.landmark {{ font-size: 11px; fill: #222; paint-order: stroke; stroke: #fff;
  stroke-width: 3px; pointer-events: none; }}
#route {{ fill: none; stroke: #1f4fd1; stroke-width: 3; stroke-linejoin: round;
  pointer-events: none; }}
aside {{ width: 340px; }}
h1 {{ font-size: 18px; margin: 0 0 8px; }}
.legend span {{ display: inline-block; width: 24px; height: 12px; }}
a.current {{ font-weight: bold; text-decoration: none; color: #000; }}
#guidance {{ margin-top: 16px; padding: 10px; background: #f4f4f4; min-height: 60px; }}
#guidance dt {{ font-weight: 600; }} #guidance dd {{ margin: 0 0 6px 0; }}
</style></head>
<body>
<div>{svg}</div>
<aside>
<h1>Street hails expected per 500 m cell</h1>
<div>tick <b id="tick">{tick}</b></div>
<div>model <b>{model}</b></div>
<div>bucket from {bucket} · horizon {horizon} (choose: {links})</div>
<div>{total} street hails expected over the area; busiest cell {top}</div>
<div class="legend">0 {legend} {top} (square-root scale)</div>
<div id="guidance">Click a cell to see where a vacant taxi there should head.</div>
</aside>
<script>const SERVED_TICK = {tick_json};
{script}</script>
</body></html>
"""

SCRIPT = """
const svg = document.getElementById('map');
const panel = document.getElementById('guidance');
const rectOf = (cell) => svg.querySelector(`rect[data-cell="${cell}"]`);
const centre = (rect) => {
  const x = parseFloat(rect.getAttribute('x')) + parseFloat(rect.getAttribute('width')) / 2;
  const y = parseFloat(rect.getAttribute('y')) + parseFloat(rect.getAttribute('height')) / 2;
  return `${x.toFixed(1)},${y.toFixed(1)}`;
};
const fmt = (x) => Number(x).toFixed(3);
svg.addEventListener('click', async (event) => {
  const rect = event.target.closest('rect.cell');
  if (!rect) return;
  svg.querySelectorAll('rect.selected, rect.route').forEach(
    (r) => r.classList.remove('selected', 'route'));
  rect.classList.add('selected');
  const url = `/v1/guidance?lat=${rect.dataset.lat}&lon=${rect.dataset.lon}`;
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) {
    panel.textContent = `${response.status}: ${JSON.stringify(body.detail)}`;
    return;
  }
  const cells = [body.cell, ...body.route.map((stop) => stop.cell)];
  const points = cells.map(rectOf).filter(Boolean);
  points.slice(1).forEach((r) => r.classList.add('route'));
  document.getElementById('route').setAttribute('points', points.map(centre).join(' '));
  const stays = body.target.cell === body.cell;
  panel.innerHTML = `<dl id="guidance-result" data-cell="${body.cell}">
    <dt>cell</dt><dd>${body.cell} (${fmt(body.expected_street_hails)} street hails expected)</dd>
    <dt>best target</dt><dd>${stays ? 'stay in this cell' : body.target.cell + ', ' +
      body.target.distance_km.toFixed(2) + ' km, ' + body.target.arrival_minutes.toFixed(1) +
      ' min away'}</dd>
    <dt>hails one taxi can expect</dt><dd>there ${fmt(body.target.expected_hails)},
      staying ${fmt(body.stay_expected_hails)},
      along the route ${fmt(body.route_expected_hails)}</dd>
    <dt>route</dt><dd>${body.route.map((stop) => stop.cell).join(' → ')}</dd>
    <dt>tick</dt><dd>${body.tick} (model ${body.model_version})</dd></dl>`;
});
setInterval(async () => {
  try {
    const health = await (await fetch('/healthz')).json();
    if (health.tick && health.tick !== SERVED_TICK) location.reload();
  } catch (error) { /* the service is restarting: try again later */ }
}, 30000);
"""
