"""The guidance API over a real stored tick: answers, errors, health and new ticks.

Ticks are written through ``ArtifactStore`` exactly where ``demand_forecast`` writes them;
the app is called in process (Starlette's TestClient) with a clock the test sets.
"""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from fastapi.testclient import TestClient

from taxi_assets.api.app import create_app, settings_for, store_from_env
from taxi_assets.api.cells import CellGrid
from taxi_assets.api.server import add_serve_parser
from taxi_assets.calendar import TOKYO, day_window_utc
from taxi_assets.features import build_features
from taxi_assets.guidance import GuidanceParams, guidance_for_position, opportunity
from taxi_assets.model.registry import ArtifactStore
from taxi_assets.model.training import TrainingParams, train_model
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.serving import FORECAST_COLUMNS, forecast_tick, live_cell_demand, target_bucket
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets_tests.conftest import SMALL_FLEET
from taxi_assets_tests.gcs_emulator import running_gcs_emulator
from taxi_assets_tests.test_serving import RULES, TODAY, YESTERDAY, nightly_demand

TICK = datetime(2026, 5, 3, 18, 0, tzinfo=TOKYO)
TOKYO_STATION = (35.6812, 139.7671)
REPO = Path(__file__).resolve().parents[1]


def stored_forecast(tick: datetime, model_version: str, seed: int) -> pl.DataFrame:
    """A forecast of every cell of the area, shaped as ``demand_forecast`` stores it: a
    few busy cells (gamma-distributed hails) and vacant taxis that follow them."""
    rng = np.random.default_rng(seed)
    cells = CENTRAL_TOKYO.cells()["cell"]
    hails = rng.gamma(0.4, 0.6, cells.len())
    return (
        pl.DataFrame(
            {
                "cell": cells,
                "expected_street_hails": hails,
                "expected_vacant_taxis": hails * rng.uniform(0.5, 3.0, cells.len()),
            }
        )
        .with_columns(
            tick=pl.lit(tick.astimezone(UTC)).dt.cast_time_unit("us"),
            model_version=pl.lit(model_version),
            horizon=pl.lit(0, pl.Int8),
            bucket_start=pl.lit(target_bucket(tick, 15).astimezone(UTC)).dt.cast_time_unit("us"),
            opportunity=opportunity(),
        )
        .select(FORECAST_COLUMNS)
    )


def deploy(store: ArtifactStore, model_version: str) -> None:
    _, generation = store.read_production_pointer()
    store.swap_production_pointer({"model_version": model_version, "history": []}, generation)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(base_dir=str(tmp_path / "artifacts"))


@pytest.fixture
def clock() -> Clock:
    return Clock(TICK + timedelta(minutes=2))


@pytest.fixture
def client(store: ArtifactStore, clock: Clock) -> TestClient:
    # refresh_seconds=0: every request checks the store, so a test sees its writes at once.
    app = create_app(settings_for(store, refresh_seconds=0), now=clock)
    return TestClient(app)


@pytest.fixture
def served(store: ArtifactStore) -> pl.DataFrame:
    deploy(store, "2026-05-02-abc")
    forecast = stored_forecast(TICK, "2026-05-02-abc", seed=1)
    store.save_forecast(TICK, forecast)
    return forecast


def test_guidance_is_guidance_for_position_on_the_stored_tick(
    client: TestClient, served: pl.DataFrame
) -> None:
    lat, lon = TOKYO_STATION
    response = client.get("/v1/guidance", params={"lat": lat, "lon": lon})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = guidance_for_position(served, CENTRAL_TOKYO, lat, lon, TICK, GuidanceParams())
    assert body["cell"] == expected["cell"]
    assert body["target"]["cell"] == expected["target_cell"]
    assert body["target"]["expected_hails"] == pytest.approx(expected["target_expected_hails"])
    assert body["stay_expected_hails"] == pytest.approx(expected["stay_expected_hails"])
    assert [stop["cell"] for stop in body["route"]] == expected["route"]
    assert body["route_expected_hails"] == pytest.approx(expected["route_expected_hails"])
    here = served.filter(pl.col("cell") == expected["cell"])
    assert body["expected_street_hails"] == pytest.approx(here["expected_street_hails"][0])
    assert body["model_version"] == "2026-05-02-abc"
    assert datetime.fromisoformat(body["tick"]) == TICK
    assert body["tick_age_seconds"] == 120.0
    # Each stop of the route is given with its cell's centre, inside that cell.
    grid = CellGrid.of(CENTRAL_TOKYO)
    for stop in body["route"]:
        assert grid.cell_at(stop["lat"], stop["lon"]) == stop["cell"]


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"lat": "north", "lon": 139.7}, "lat", "valid number"),
        ({"lat": 35.68}, "lon", "Field required"),
        ({"lat": 35.68, "lon": "nan"}, "lon", "finite number"),
        ({"lat": 95, "lon": 139.7}, "lat", "less than or equal to 90"),
        ({"lat": 35.9, "lon": 139.7}, "lat", "outside the service area"),
        ({"lat": 35.68, "lon": 139.5}, "lon", "outside the service area"),
    ],
)
def test_bad_or_out_of_area_coordinates_are_422_naming_the_field(
    client: TestClient, served: pl.DataFrame, params: dict, field: str, words: str
) -> None:
    response = client.get("/v1/guidance", params=params)
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert [problem["loc"] for problem in problems] == [["query", field]]
    assert words in problems[0]["msg"]


def test_both_coordinates_outside_name_both_fields(
    client: TestClient, served: pl.DataFrame
) -> None:
    response = client.get("/v1/guidance", params={"lat": 34.0, "lon": 135.5})  # Osaka
    assert response.status_code == 422
    assert [p["loc"][1] for p in response.json()["detail"]] == ["lat", "lon"]


def test_forecast_is_geojson_of_every_cell_with_its_forecast(
    client: TestClient, served: pl.DataFrame
) -> None:
    response = client.get("/v1/forecast", params={"horizon": 0})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    assert collection["model_version"] == "2026-05-02-abc"
    features = collection["features"]
    assert len(features) == CENTRAL_TOKYO.n_cells == 1520
    grid = CellGrid.of(CENTRAL_TOKYO)
    expected = dict(served.select("cell", "expected_street_hails").iter_rows())
    for feature in features:
        cell = feature["properties"]["cell"]
        ring = feature["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) == 5
        lon = sum(point[0] for point in ring[:4]) / 4
        lat = sum(point[1] for point in ring[:4]) / 4
        assert grid.cell_at(lat, lon) == cell  # the polygon is the cell's own
        assert feature["properties"]["expected_street_hails"] == pytest.approx(expected[cell])


def test_a_horizon_the_tick_lacks_is_422_naming_horizon(
    client: TestClient, served: pl.DataFrame
) -> None:
    response = client.get("/v1/forecast", params={"horizon": 2})
    assert response.status_code == 422
    problem = response.json()["detail"][0]
    assert problem["loc"] == ["query", "horizon"]
    assert "stored: [0]" in problem["msg"]


def test_health_reports_the_tick_age_and_503_when_stale(
    client: TestClient, served: pl.DataFrame, clock: Clock
) -> None:
    healthy = client.get("/healthz")
    assert healthy.status_code == 200
    assert healthy.json()["status"] == "ok"
    assert healthy.json()["tick_age_seconds"] == 120.0
    clock.at = TICK + timedelta(minutes=16)
    stale = client.get("/healthz")
    assert stale.status_code == 503
    assert stale.json()["status"] == "stale"
    assert "960 s old, more than the 900 s allowed" in stale.json()["detail"]
    # Guidance is still given from the stale tick, with its age, for the app to judge.
    lat, lon = TOKYO_STATION
    assert client.get("/v1/guidance", params={"lat": lat, "lon": lon}).status_code == 200


def test_health_is_503_without_a_deployed_model_or_a_tick(
    client: TestClient, store: ArtifactStore
) -> None:
    empty = client.get("/healthz")
    assert empty.status_code == 503
    assert empty.json()["status"] == "no_model_deployed"
    assert "production pointer is missing" in empty.json()["detail"]
    deploy(store, "2026-05-02-abc")
    no_tick = client.get("/healthz")
    assert no_tick.status_code == 503
    assert no_tick.json()["status"] == "no_forecast"
    lat, lon = TOKYO_STATION
    guidance = client.get("/v1/guidance", params={"lat": lat, "lon": lon})
    assert guidance.status_code == 503
    assert guidance.json()["status"] == "no_forecast"


def test_a_new_tick_is_served_without_a_restart(
    client: TestClient, store: ArtifactStore, served: pl.DataFrame, clock: Clock
) -> None:
    first = client.get("/v1/forecast").json()
    later = TICK + timedelta(minutes=5)
    newer = stored_forecast(later, "2026-05-03-def", seed=2)
    store.save_forecast(later, newer)
    clock.at = later + timedelta(seconds=30)
    second = client.get("/v1/forecast").json()
    assert datetime.fromisoformat(first["tick"]) == TICK
    assert datetime.fromisoformat(second["tick"]) == later
    assert second["model_version"] == "2026-05-03-def"
    expected = dict(newer.select("cell", "expected_street_hails").iter_rows())
    cell = second["features"][0]["properties"]["cell"]
    assert second["features"][0]["properties"]["expected_street_hails"] == pytest.approx(
        expected[cell]
    )
    assert client.get("/healthz").json()["tick_age_seconds"] == 30.0


def test_the_store_is_checked_at_most_every_refresh_interval(
    store: ArtifactStore, served: pl.DataFrame, clock: Clock
) -> None:
    app = create_app(settings_for(store, refresh_seconds=3600), now=clock)
    client = TestClient(app)
    assert datetime.fromisoformat(client.get("/healthz").json()["tick"]) == TICK
    later = TICK + timedelta(minutes=5)
    store.save_forecast(later, stored_forecast(later, "2026-05-03-def", seed=2))
    # Within the interval the parsed tick is served without reading the store again...
    assert datetime.fromisoformat(client.get("/healthz").json()["tick"]) == TICK
    # ...and a check picks the newer one up.
    app.state.tick_cache.refresh()
    assert datetime.fromisoformat(client.get("/healthz").json()["tick"]) == later


def test_latest_forecast_tick_reads_names_across_days(store: ArtifactStore) -> None:
    assert store.latest_forecast_tick() is None
    evening = datetime(2026, 5, 2, 23, 55, tzinfo=TOKYO)
    store.save_forecast(evening, stored_forecast(evening, "v", seed=3))
    assert store.latest_forecast_tick() == evening
    after_midnight = datetime(2026, 5, 3, 0, 5, tzinfo=TOKYO)
    store.save_forecast(after_midnight, stored_forecast(after_midnight, "v", seed=3))
    assert store.latest_forecast_tick() == after_midnight
    assert store.forecast(after_midnight) is not None
    assert store.forecast(after_midnight + timedelta(minutes=5)) is None


def test_the_map_page_draws_every_cell(client: TestClient, served: pl.DataFrame) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.text.count('class="cell"') == 1520
    assert "2026-05-02-abc" in page.text
    assert "http://" not in page.text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_api_reads_the_bucket_with_the_reader_key_in_production() -> None:
    store = store_from_env(
        {
            "TAXI_ASSETS_ENV": "production",
            "TAXI_ASSETS_GCS_BUCKET": "proj-taxi-artifacts",
            "TAXI_ASSETS_GCS_PREFIX": "taxi_assets",
            "TAXI_ASSETS_GCS_READER_CREDENTIALS": "cmVhZGVy",
            "TAXI_ASSETS_GCS_WRITER_CREDENTIALS": "d3JpdGVy",
        }
    )
    assert store.base_dir == "gs://proj-taxi-artifacts/taxi_assets/artifacts"
    assert store.gcs_credentials == "cmVhZGVy"  # the reader's, never the writer's
    local = store_from_env({"TAXI_ASSETS_DATA_DIR": "/srv/data"})
    assert local.base_dir == "/srv/data/artifacts"


def test_the_helm_api_deployment_holds_the_reader_secret_only() -> None:
    values = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
    (deployment,) = [m for m in values["extraManifests"] if m["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert [source["secretRef"]["name"] for source in container["envFrom"]] == [
        "taxi-assets-gcs-reader"
    ]
    assert "envSecrets" not in container and "env" in container
    assert {e["name"] for e in container["env"]} == {
        "TAXI_ASSETS_ENV",
        "TAXI_ASSETS_GCS_BUCKET",
        "TAXI_ASSETS_GCS_PREFIX",
    }
    # The command is one the CLI accepts.
    assert container["command"][:2] == ["taxi-assets", "serve"]
    parser = argparse.ArgumentParser()
    add_serve_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(container["command"][1:] + container["args"])
    assert (args.host, args.port, args.max_tick_age_minutes) == ("0.0.0.0", 8000, 15.0)
    (service,) = [m for m in values["extraManifests"] if m["kind"] == "Service"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_an_unreadable_new_tick_keeps_the_last_one_served_and_says_so(
    client: TestClient, store: ArtifactStore, served: pl.DataFrame, tmp_path: Path
) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    later = TICK + timedelta(minutes=5)
    # A tick file cut short (what a crashed copy by hand would leave).
    broken = tmp_path / "artifacts" / "forecasts" / "2026-05-03" / "180500.parquet"
    broken.write_bytes(b"PAR1 not a parquet file")
    assert store.latest_forecast_tick() == later
    health = client.get("/healthz").json()
    assert datetime.fromisoformat(health["tick"]) == TICK
    assert "still serving the tick read before" in health["store_error"]
    lat, lon = TOKYO_STATION
    guidance = client.get("/v1/guidance", params={"lat": lat, "lon": lon})
    assert datetime.fromisoformat(guidance.json()["tick"]) == TICK


def test_the_api_serves_ticks_from_a_gcs_bucket(clock: Clock) -> None:
    """gs:// through the same ArtifactStore code, on gcp-storage-emulator: the newest tick
    another process uploads is served at the next request."""
    with running_gcs_emulator() as emulator:
        store = ArtifactStore(
            base_dir=emulator.url("api", "artifacts"), gcs_endpoint_url=emulator.endpoint_url
        )
        deploy(store, "2026-05-02-abc")
        store.save_forecast(TICK, stored_forecast(TICK, "2026-05-02-abc", seed=1))
        client = TestClient(create_app(settings_for(store, refresh_seconds=0), now=clock))
        assert client.get("/healthz").json()["status"] == "ok"

        later = TICK + timedelta(minutes=5)
        buffer = io.BytesIO()
        stored_forecast(later, "2026-05-03-def", seed=2).write_parquet(buffer)
        emulator.client().bucket(emulator.bucket).blob(
            "api/artifacts/forecasts/2026-05-03/180500.parquet"
        ).upload_from_string(buffer.getvalue())
        lat, lon = TOKYO_STATION
        body = client.get("/v1/guidance", params={"lat": lat, "lon": lon}).json()
        assert datetime.fromisoformat(body["tick"]) == later
        assert body["model_version"] == "2026-05-03-def"


@pytest.fixture(scope="module")
def real_tick() -> tuple[datetime, pl.DataFrame]:
    """A tick forecast by a tiny real model the way ``demand_forecast`` makes it: the live
    window of a simulated day through the nightly functions, yesterday stored."""
    city = SimulatedProbeSource(fleet_size=SMALL_FLEET, seed=7)
    raw = {day: city.read_probes(day).probes for day in (YESTERDAY, TODAY)}
    nightly = pl.concat([nightly_demand(frame, day) for day, frame in raw.items()])
    weather = pl.concat([city.read_weather(day) for day in (YESTERDAY, TODAY)])
    model = train_model(
        build_features(nightly, weather, nightly, 15),
        TrainingParams(iterations=20, supply_iterations=10),
    )
    tick = datetime(TODAY.year, TODAY.month, TODAY.day, 18, 5, tzinfo=TOKYO)
    live = live_cell_demand(raw, tick, CENTRAL_TOKYO, RULES, 15)
    stored = nightly.filter(pl.col("bucket_start") < day_window_utc(TODAY)[0])
    forecast = forecast_tick(model, "v-real", live, stored, weather, CENTRAL_TOKYO, tick, 15)
    return tick, forecast


def test_guidance_on_a_tick_a_real_model_forecast(
    store: ArtifactStore, clock: Clock, real_tick: tuple[datetime, pl.DataFrame]
) -> None:
    tick, forecast = real_tick
    deploy(store, "v-real")
    store.save_forecast(tick, forecast)
    clock.at = tick + timedelta(minutes=1)
    client = TestClient(create_app(settings_for(store, refresh_seconds=0), now=clock))
    assert client.get("/healthz").json()["status"] == "ok"
    # /v1/forecast answers the bucket in progress (horizon 0) unless asked for another.
    in_progress = forecast.filter(pl.col("horizon") == 0)
    busiest = in_progress.sort("expected_street_hails", descending=True).row(0, named=True)
    grid = CellGrid.of(CENTRAL_TOKYO)
    for cell in (busiest["cell"], grid.cells[0], grid.cells[-1]):
        lat, lon = grid.center(cell)
        body = client.get("/v1/guidance", params={"lat": lat, "lon": lon}).json()
        expected = guidance_for_position(forecast, CENTRAL_TOKYO, lat, lon, tick)
        assert body["cell"] == cell == expected["cell"]
        assert body["target"]["cell"] == expected["target_cell"]
        assert [stop["cell"] for stop in body["route"]] == expected["route"]
        assert body["route_expected_hails"] == pytest.approx(expected["route_expected_hails"])
        assert body["model_version"] == "v-real"
    features = client.get("/v1/forecast").json()["features"]
    by_cell = {f["properties"]["cell"]: f["properties"] for f in features}
    assert by_cell[busiest["cell"]]["expected_street_hails"] == pytest.approx(
        busiest["expected_street_hails"]
    )
