"""The guidance API: an ASGI app (FastAPI) over the latest forecast tick in the artifact
store.

- ``GET /v1/guidance?lat=&lon=``: the cell of the position, the best target and route for a
  vacant taxi there, the street hails expected, the tick and the model version;
- ``GET /v1/forecast?horizon=``: the service area's cells as a GeoJSON FeatureCollection
  with their forecast;
- ``GET /healthz``: the latest tick's age; 503 when no model is deployed, no tick is stored
  or the tick is older than ``max_tick_age``;
- ``GET /``: the live map page.

Bad or out-of-area coordinates answer 422 in FastAPI's own shape (``detail[].loc`` names the
field). Handlers are ``async`` and answer from the tick parsed in memory; only the periodic
check of the store runs in a worker thread (:class:`TickCache`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from taxi_assets.api.cells import CellGrid
from taxi_assets.api.map_page import render_page
from taxi_assets.api.ticks import LiveTick, TickCache
from taxi_assets.guidance import GuidanceParams
from taxi_assets.model.registry import ArtifactStore
from taxi_assets.resources import DEFAULT_GCS_PREFIX
from taxi_assets.service_area import ServiceArea
from taxi_assets.settings import PipelineSettings

DEFAULT_MAX_TICK_AGE = timedelta(minutes=15)
DEFAULT_REFRESH_SECONDS = 5.0
# The read-only key of the API's own service account (docs/deployment.md); unset, gcsfs
# uses Application Default Credentials (e.g. GKE workload identity).
READER_CREDENTIALS_ENV = "TAXI_ASSETS_GCS_READER_CREDENTIALS"


@dataclass(frozen=True)
class ApiSettings:
    store: ArtifactStore
    area: ServiceArea
    params: GuidanceParams
    max_tick_age: timedelta = DEFAULT_MAX_TICK_AGE
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS


def store_from_env(env: Mapping[str, str] | None = None) -> ArtifactStore:
    """The artifact store the pipeline writes, as the API reads it: the local folder
    (``TAXI_ASSETS_ARTIFACTS_DIR``, default ``<data dir>/artifacts``) or, with
    ``TAXI_ASSETS_ENV=production``, ``gs://<bucket>/<prefix>/artifacts`` with the reader's
    key."""
    env = os.environ if env is None else env
    if env.get("TAXI_ASSETS_ENV", "local") == "production":
        bucket = env.get("TAXI_ASSETS_GCS_BUCKET")
        if not bucket:
            raise ValueError("TAXI_ASSETS_GCS_BUCKET is missing: the bucket of the artifacts")
        prefix = env.get("TAXI_ASSETS_GCS_PREFIX", DEFAULT_GCS_PREFIX).strip("/")
        root = f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"
        return ArtifactStore(
            base_dir=f"{root}/artifacts",
            gcs_credentials=env.get(READER_CREDENTIALS_ENV) or None,
        )
    data_dir = env.get("TAXI_ASSETS_DATA_DIR", "data")
    return ArtifactStore(base_dir=env.get("TAXI_ASSETS_ARTIFACTS_DIR", f"{data_dir}/artifacts"))


def settings_for(
    store: ArtifactStore,
    max_tick_age: timedelta = DEFAULT_MAX_TICK_AGE,
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
    pipeline: PipelineSettings | None = None,
) -> ApiSettings:
    """API settings with the pipeline's service area and bucket width."""
    pipeline = pipeline or PipelineSettings()
    return ApiSettings(
        store=store,
        area=pipeline.service_area(),
        params=GuidanceParams(bucket_minutes=pipeline.bucket_minutes),
        max_tick_age=max_tick_age,
        refresh_seconds=refresh_seconds,
    )


def _unavailable(status: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": status, "detail": detail, **extra}, status_code=503)


def create_app(
    settings: ApiSettings, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> FastAPI:
    """The API over ``settings.store``; ``now`` is the clock tick ages are measured with."""
    grid = CellGrid.of(settings.area)
    cache = TickCache(settings.store, grid, settings.params, settings.refresh_seconds)
    app = FastAPI(
        title="taxi_assets guidance API",
        description="Where a vacant taxi should head, from the latest street-hail forecast.",
        version="1",
    )
    app.state.tick_cache = cache

    async def serving() -> LiveTick | JSONResponse:
        """The tick to answer from, or the 503 to answer when there is none."""
        state = await cache.current()
        if state.live is None:
            reason = state.error or "no forecast tick is stored in the artifact store yet"
            return _unavailable("no_forecast", reason)
        return state.live

    def age_seconds(live: LiveTick) -> float:
        return round((now() - live.tick).total_seconds(), 3)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        state = await cache.current()
        if state.stored is None or state.stored.deployed_model is None:
            detail = state.error or "no model is deployed (the production pointer is missing)"
            return _unavailable("no_model_deployed", detail)
        if state.live is None:
            detail = state.error or "no forecast tick is stored in the artifact store yet"
            return _unavailable("no_forecast", detail, model_version=state.stored.deployed_model)
        age = age_seconds(state.live)
        body = {
            "tick": state.live.tick.isoformat(),
            "tick_age_seconds": age,
            "max_tick_age_seconds": settings.max_tick_age.total_seconds(),
            "model_version": state.live.model_version,
            "deployed_model": state.stored.deployed_model,
            "store_error": state.error,
        }
        if age > settings.max_tick_age.total_seconds():
            return _unavailable(
                "stale",
                f"the latest forecast tick is {age:.0f} s old, more than the "
                f"{settings.max_tick_age.total_seconds():.0f} s allowed",
                **body,
            )
        return JSONResponse({"status": "ok", **body})

    @app.get("/v1/guidance")
    async def guidance(
        lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)],
        lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)],
    ) -> JSONResponse:
        """The best target and route for a vacant taxi at (lat, lon)."""
        cell = grid.cell_at(lat, lon)
        if cell is None:
            raise RequestValidationError(out_of_area_errors(lat, lon, settings.area))
        live = await serving()
        if isinstance(live, JSONResponse):
            return live
        return JSONResponse(guidance_body(live, grid, cell, lat, lon, age_seconds(live)))

    @app.get("/v1/forecast")
    async def forecast(horizon: Annotated[int, Query(ge=0)] = 0) -> Response:
        """The service area's cells with their forecast, as GeoJSON."""
        live = await serving()
        if isinstance(live, JSONResponse):
            return live
        _check_horizon(live, horizon)
        body = live.rendered.get(("geojson", horizon))
        if body is None:
            body = json.dumps(forecast_geojson(live, grid, horizon)).encode()
            live.rendered[("geojson", horizon)] = body
        return Response(body, media_type="application/geo+json")

    @app.get("/", response_class=HTMLResponse)
    async def live_map(horizon: Annotated[int, Query(ge=0)] = 0) -> Response:
        """The live map: cells coloured by expected street hails; click one for guidance."""
        live = await serving()
        if isinstance(live, JSONResponse):
            return live
        _check_horizon(live, horizon)
        page = live.rendered.get(("map", horizon))
        if page is None:
            page = render_page(live, grid, horizon).encode()
            live.rendered[("map", horizon)] = page
        return HTMLResponse(page)

    return app


def out_of_area_errors(lat: float, lon: float, area: ServiceArea) -> list[dict[str, Any]]:
    """422 details naming each coordinate outside the area's bounds (FastAPI's shape)."""
    lat_min, lat_max, lon_min, lon_max = area.snapped_bounds
    errors = [
        {
            "type": "out_of_service_area",
            "loc": ("query", name),
            "msg": f"{label} {value} is outside the service area [{low}, {high})",
            "input": value,
        }
        for name, label, value, low, high in (
            ("lat", "latitude", lat, lat_min, lat_max),
            ("lon", "longitude", lon, lon_min, lon_max),
        )
        if not low <= value < high
    ]
    # On a cell edge float rounding can put a point inside the bounds but in no cell.
    return errors or [
        {
            "type": "out_of_service_area",
            "loc": ("query", "lat"),
            "msg": f"({lat}, {lon}) lies on the edge of the service area, in no cell",
            "input": lat,
        }
    ]


def _check_horizon(live: LiveTick, horizon: int) -> None:
    if horizon not in live.horizons:
        raise RequestValidationError(
            [
                {
                    "type": "unknown_horizon",
                    "loc": ("query", "horizon"),
                    "msg": f"horizon {horizon} is not in the tick; stored: {list(live.horizons)}",
                    "input": horizon,
                }
            ]
        )


def guidance_body(
    live: LiveTick, grid: CellGrid, cell: int, lat: float, lon: float, age: float
) -> dict[str, Any]:
    """The answer for a taxi at (lat, lon) in ``cell``."""
    row = live.guidance[cell]
    hails, vacant = live.expected_now.get(cell, (0.0, 0.0))

    def place(code: int) -> dict[str, float | int]:
        c_lat, c_lon = grid.center(code)
        return {"cell": code, "lat": round(c_lat, 6), "lon": round(c_lon, 6)}

    return {
        "position": {"lat": lat, "lon": lon},
        "cell": cell,
        "expected_street_hails": hails,
        "expected_vacant_taxis": vacant,
        "target": {
            **place(row["target_cell"]),
            "distance_km": row["target_distance_km"],
            "arrival_minutes": row["target_arrival_minutes"],
            "expected_hails": row["target_expected_hails"],
        },
        "stay_expected_hails": row["stay_expected_hails"],
        "route": [place(code) for code in row["route"]],
        "route_expected_hails": row["route_expected_hails"],
        "tick": live.tick.isoformat(),
        "tick_age_seconds": age,
        "model_version": live.model_version,
    }


def forecast_geojson(live: LiveTick, grid: CellGrid, horizon: int) -> dict[str, Any]:
    """Every cell of the area as a GeoJSON polygon with its forecast at ``horizon``."""
    frame = live.forecast_at(horizon)
    columns = [
        c
        for c in ("expected_street_hails", "expected_vacant_taxis", "opportunity")
        if c in frame.columns
    ]
    values = {row[0]: row[1:] for row in frame.select("cell", *columns).iter_rows()}
    bucket = frame["bucket_start"][0].isoformat() if "bucket_start" in frame.columns else None
    features = [
        {
            "type": "Feature",
            "id": cell,
            "geometry": {"type": "Polygon", "coordinates": [grid.bounds(cell).ring()]},
            "properties": {
                "cell": cell,
                **dict(zip(columns, values.get(cell, (None,) * len(columns)), strict=True)),
            },
        }
        for cell in grid.cells
    ]
    return {
        "type": "FeatureCollection",
        "tick": live.tick.isoformat(),
        "model_version": live.model_version,
        "horizon": horizon,
        "bucket_start": bucket,
        "features": features,
    }
