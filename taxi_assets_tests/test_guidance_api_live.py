"""The guidance API as a real server (``taxi-assets serve`` on a loopback port) over a
stored tick, and its live map page in headless Chromium: a screenshot and a click."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest

from taxi_assets.api.cells import CellGrid
from taxi_assets.calendar import TOKYO
from taxi_assets.guidance import best_targets
from taxi_assets.model.registry import ArtifactStore
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets_tests.api_server import guidance_api
from taxi_assets_tests.browser import browser_page
from taxi_assets_tests.test_guidance_api import TOKYO_STATION, deploy, stored_forecast


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(base_dir=str(tmp_path / "artifacts"))


@pytest.fixture
def tick(artifacts: ArtifactStore) -> datetime:
    """A tick stored a minute ago (the server's clock is the real one)."""
    tick = datetime.now(TOKYO).replace(microsecond=0) - timedelta(minutes=1)
    deploy(artifacts, "2026-05-02-abc")
    artifacts.save_forecast(tick, stored_forecast(tick, "2026-05-02-abc", seed=1))
    return tick


@pytest.fixture
def server(artifacts: ArtifactStore, tick: datetime, tmp_path: Path) -> Iterator[str]:
    with guidance_api(
        Path(artifacts.base_dir), tmp_path / "serve.log", ["--refresh-seconds", "0"]
    ) as url:
        yield url


def test_serve_answers_over_http_and_picks_up_a_new_tick(
    server: str, artifacts: ArtifactStore, tick: datetime
) -> None:
    health = httpx.get(f"{server}/healthz")
    assert health.status_code == 200, health.text
    assert datetime.fromisoformat(health.json()["tick"]) == tick
    lat, lon = TOKYO_STATION
    guidance = httpx.get(f"{server}/v1/guidance", params={"lat": lat, "lon": lon})
    assert guidance.status_code == 200
    assert guidance.json()["cell"] == CellGrid.of(CENTRAL_TOKYO).cell_at(lat, lon)
    outside = httpx.get(f"{server}/v1/guidance", params={"lat": lat, "lon": 140.5})
    assert outside.status_code == 422
    assert outside.json()["detail"][0]["loc"] == ["query", "lon"]
    assert len(httpx.get(f"{server}/v1/forecast").json()["features"]) == 1520

    later = tick + timedelta(seconds=30)
    artifacts.save_forecast(later, stored_forecast(later, "2026-05-03-def", seed=2))
    health = httpx.get(f"{server}/healthz").json()
    assert datetime.fromisoformat(health["tick"]) == later
    assert health["model_version"] == "2026-05-03-def"


def test_the_live_map_shows_the_forecast_and_the_guidance_of_a_clicked_cell(
    server: str, artifacts: ArtifactStore, tick: datetime, tmp_path: Path
) -> None:
    forecast = artifacts.forecast(tick)
    assert forecast is not None
    # A cell whose taxis are sent elsewhere along a route of two stops or more.
    plans = best_targets(forecast, CENTRAL_TOKYO, tick)
    moving = plans.filter(pl.col("route").list.len() >= 2, pl.col("target_cell") != pl.col("cell"))
    clicked = moving.sort("target_expected_hails", descending=True)["cell"][0]
    with browser_page(screenshot_on_failure=tmp_path / "failure.png") as page:
        page.goto(server + "/")
        cells = page.locator("rect.cell")
        assert cells.count() == 1520
        fills = {cells.nth(i).get_attribute("fill") for i in range(0, 1520, 37)}
        assert len(fills) > 3  # coloured by the forecast, not one flat colour
        page.screenshot(path=str(tmp_path / "map.png"))
        assert (tmp_path / "map.png").stat().st_size > 20_000

        page.locator(f'rect.cell[data-cell="{clicked}"]').click()
        result = page.locator("#guidance-result")
        result.wait_for(timeout=10_000)
        assert result.get_attribute("data-cell") == str(clicked)
        expected = httpx.get(
            f"{server}/v1/guidance",
            params={
                "lat": page.locator(f'rect[data-cell="{clicked}"]').get_attribute("data-lat"),
                "lon": page.locator(f'rect[data-cell="{clicked}"]').get_attribute("data-lon"),
            },
        ).json()
        text = result.inner_text()
        assert f"{expected['route_expected_hails']:.3f}" in text
        assert " → ".join(str(stop["cell"]) for stop in expected["route"]) in text
        assert page.locator("rect.cell.selected").get_attribute("data-cell") == str(clicked)
        points = page.locator("#route").get_attribute("points") or ""
        assert len(points.split()) == 1 + len(expected["route"])  # from the cell, each stop
        target = expected["target"]["cell"]
        assert page.locator(f'rect.cell.route[data-cell="{target}"]').count() == 1
        page.screenshot(path=str(tmp_path / "clicked.png"))
