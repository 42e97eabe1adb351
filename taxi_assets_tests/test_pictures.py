"""Pictures on the asset pages: each is a real PNG with content, the assets carry them after a
real ``dg.materialize``, and the Dagster UI shows one in headless Chromium."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pytest
from PIL import Image
from playwright.sync_api import expect

from taxi_assets import pictures
from taxi_assets.definitions import ASSET_MODULES, build_definitions
from taxi_assets.resources import local_resources
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.settings import EvaluationSettings, ValidationSettings
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets_tests import picture_frames as frames
from taxi_assets_tests.browser import browser_page
from taxi_assets_tests.conftest import SMALL_FLEET
from taxi_assets_tests.dagster_services import running_dagster

# Distinct colours a plot with axes, text and a colour scale has at least; a blank or
# single-colour canvas has one or two.
MIN_COLOURS = 16


def decoded(png: bytes | None) -> Image.Image:
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.load()  # decodes every pixel: a truncated PNG raises here
    return image.convert("RGB")


def colours(image: Image.Image) -> int:
    return len(np.unique(np.asarray(image).reshape(-1, 3), axis=0))


def assert_has_content(png: bytes | None) -> Image.Image:
    image = decoded(png)
    assert image.width >= 600 and image.height >= 300, image.size
    assert colours(image) >= MIN_COLOURS, colours(image)
    return image


def embedded(value: Any) -> bytes:
    """The PNG inside a markdown metadata value (or its plain text)."""
    text = getattr(value, "value", value)
    assert isinstance(text, str) and "](data:image/png;base64," in text, str(text)[:200]
    return pictures.png_from_markdown(text)


# ---- the drawings -----------------------------------------------------------------------


def test_forecast_map_draws_one_panel_per_horizon_with_guidance_arrows() -> None:
    one = frames.forecast_tick(horizons=1)
    guidance = frames.guidance_for(one)
    assert guidance.filter(pl.col("target_cell") != pl.col("cell")).height > 0
    single = assert_has_content(pictures.forecast_map_png(one, CENTRAL_TOKYO, guidance))
    three = assert_has_content(
        pictures.forecast_map_png(frames.forecast_tick(horizons=3), CENTRAL_TOKYO, guidance)
    )
    assert three.width > 2 * single.width  # a panel per horizon, side by side
    # The arrows are drawn in cyan (tab:cyan), which the colour scale never uses.
    cyan = np.all(np.abs(np.asarray(single).astype(int) - (23, 190, 207)) < 40, axis=-1)
    assert cyan.sum() > 50
    without = decoded(pictures.forecast_map_png(one, CENTRAL_TOKYO))
    assert not np.all(np.abs(np.asarray(without).astype(int) - (23, 190, 207)) < 40, axis=-1).any()


def test_forecast_map_of_a_tick_without_horizons_is_the_bucket_in_progress() -> None:
    old_tick = frames.forecast_tick().drop("horizon")
    assert_has_content(pictures.forecast_map_png(old_tick, CENTRAL_TOKYO))


def test_street_hail_heatmap_has_content_and_an_empty_day_still_draws() -> None:
    demand = frames.cell_demand_day()
    assert_has_content(pictures.street_hail_heatmap_png(demand, CENTRAL_TOKYO, frames.DAY))
    quiet = demand.with_columns(pl.lit(0, pl.Int32).alias("street_hail_pickups"))
    decoded(pictures.street_hail_heatmap_png(quiet, CENTRAL_TOKYO, frames.DAY))


def test_evaluation_picture_has_error_by_hour_and_predicted_vs_observed() -> None:
    slices, scored = frames.scored_day()
    both = assert_has_content(pictures.evaluation_png(slices, scored))
    hours_only = assert_has_content(pictures.evaluation_png(slices, None))
    assert both.width > 1.5 * hours_only.width
    # No production model yet: the other predictors are drawn all the same.
    slices, scored = frames.scored_day(with_production=False)
    assert_has_content(pictures.evaluation_png(slices, scored))
    # Rows at three horizons add the error by horizon between the two panels.
    horizons = pl.concat(
        scored.with_columns(horizon=pl.lit(h, pl.Int8), pred_model=pl.col("pred_model") * (1 + h))
        for h in range(3)
    )
    three = assert_has_content(pictures.evaluation_png(slices, horizons))
    assert three.width > 1.3 * both.width


def test_drift_picture_shows_the_worst_feature() -> None:
    comparison, today, before = frames.drift_statistics()
    assert pictures.worst_drift_feature(comparison) == "speed_kmh"
    assert_has_content(pictures.drift_png(comparison, today, before, "clean_probes"))
    # A categorical worst feature draws its most frequent values.
    categorical = comparison.filter(pl.col("feature").is_in(["status", "__row_count__"]))
    assert pictures.worst_drift_feature(categorical) == "status"
    assert_has_content(pictures.drift_png(categorical, today, before, "clean_probes"))
    only_rows = comparison.filter(pl.col("feature") == "__row_count__")
    assert pictures.drift_png(only_rows, today, before, "clean_probes") is None


def test_markdown_round_trip_and_a_failed_drawing_is_a_note_not_an_error() -> None:
    png = pictures.evaluation_png(*frames.scored_day())
    value = pictures.picture(png, "caption")
    assert isinstance(value, dg.MarkdownMetadataValue) and value.value.endswith("caption")
    assert embedded(value) == png
    empty = frames.forecast_tick().clear()
    note = pictures.forecast_picture(empty, CENTRAL_TOKYO)
    assert "not drawn" in note.value and "no rows" in note.value


# ---- on the assets ----------------------------------------------------------------------

DAYS = ("2026-04-28", "2026-04-29", "2026-04-30")
TICK = "2026-04-30T18:07:00+09:00"
FAST_TRAINING = {
    "window_days": 2,
    "iterations": 10,
    "supply_iterations": 5,
    "early_stopping_rounds": 5,
}
BLESS_ANY = EvaluationSettings(
    must_beat_baselines=False, production_tolerance=10.0, slice_tolerance=10.0
)
# A 60-taxi city wanders from day to day more than the calibrated thresholds allow.
LOOSE_DRIFT = ValidationSettings(
    numeric_js_threshold=1.0,
    categorical_linf_threshold=1.0,
    row_count_ratio_min=0.0,
    row_count_ratio_max=100.0,
    use_calibrated_per_feature=False,
)


def city_resources(data_dir: Path) -> dict[str, Any]:
    source = SimulatedProbeSource(fleet_size=SMALL_FLEET, seed=7)
    resources = local_resources(str(data_dir), str(data_dir / "artifacts"), source)
    return {**resources, "validation": LOOSE_DRIFT, "evaluation": BLESS_ANY}


def materialize_data_path(
    data_dir: Path, instance: dg.DagsterInstance, day: str
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        dg.load_assets_from_modules(list(ASSET_MODULES)),
        selection=dg.AssetSelection.groups(
            "ingestion", "cleaning", "demand", "validation", "features"
        ),
        partition_key=day,
        resources=city_resources(data_dir),
        instance=instance,
        raise_on_error=False,
    )


def latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str | None = None):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(asset),
            asset_partitions=None if partition is None else [partition],
        ),
        limit=1,
    ).records
    assert records, f"{asset} {partition or ''} was not materialized"
    return records[0].asset_materialization.metadata


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """Three simulated days through the data path, a model trained, evaluated and deployed
    on the last, and one forecast tick with its guidance."""
    data_dir = tmp_path_factory.mktemp("pictures") / "data"
    with dg.instance_for_test() as instance:
        for day in DAYS:
            assert materialize_data_path(data_dir, instance, day).success
        defs = build_definitions(city_resources(data_dir))
        training = defs.resolve_job_def("training_job").execute_in_process(
            partition_key=DAYS[-1],
            instance=instance,
            run_config={"ops": {"demand_model": {"config": FAST_TRAINING}}},
            raise_on_error=False,
        )
        assert training.success
        forecast = defs.resolve_job_def("forecast_job").execute_in_process(
            instance=instance,
            run_config={"ops": {"demand_forecast": {"config": {"tick": TICK}}}},
            raise_on_error=False,
        )
        assert forecast.success
        yield instance


def test_cell_demand_carries_the_days_street_hail_map(city: dg.DagsterInstance) -> None:
    for day in DAYS:
        assert_has_content(embedded(latest_metadata(city, "cell_demand", day)["street_hail_map"]))


def test_statistics_carry_the_worst_features_histogram_once_there_is_a_day_before(
    city: dg.DagsterInstance,
) -> None:
    for source in ("clean_probes", "cell_demand", "training_features"):
        first = latest_metadata(city, f"{source}_statistics", DAYS[0])
        assert "worst_feature_histogram" not in first  # nothing to compare the first day with
        later = latest_metadata(city, f"{source}_statistics", DAYS[1])
        picture = later["worst_feature_histogram"].value
        assert f"{source}: {DAYS[1]} vs previous day" in picture
        assert_has_content(embedded(picture))


def test_model_evaluation_carries_error_by_hour(city: dg.DagsterInstance) -> None:
    evaluation = latest_metadata(city, "model_evaluation", DAYS[-1])
    image = assert_has_content(embedded(evaluation["error_by_hour"]))
    assert image.width > 1000  # both panels: the per-row predictions were there


def test_the_forecast_tick_carries_its_map_with_guidance(city: dg.DagsterInstance) -> None:
    guidance = latest_metadata(city, "cruising_guidance")
    assert "with where the guidance sends vacant taxis" in guidance["forecast_map"].value
    assert_has_content(embedded(guidance["forecast_map"]))


# ---- in the UI --------------------------------------------------------------------------


@pytest.mark.services
def test_the_asset_page_shows_the_picture_in_a_browser(tmp_path: Path) -> None:
    """A live webserver over an instance holding one materialized day; in headless Chromium
    the cell_demand page's "[Show Markdown]" of street_hail_map opens the picture, which
    the browser decodes (natural size > 0); the screenshot is kept for a person to look at."""
    day = DAYS[0]
    with running_dagster(tmp_path, daemon=False) as services:
        with services.instance() as instance:
            assert materialize_data_path(services.data_dir, instance, day).success
        with browser_page(screenshot_on_failure=tmp_path / "failure.png") as page:
            page.set_default_timeout(90_000)
            page.add_locator_handler(
                page.get_by_role("button", name="Skip"), lambda skip: skip.click()
            )
            page.goto(f"{services.url}/assets/cell_demand?view=overview&partition={day}")
            row = page.get_by_role("row").filter(has_text="street_hail_map")
            row.get_by_text("[Show Markdown]").click()
            dialog = page.get_by_role("dialog")
            image = dialog.locator('img[src^="data:image/png;base64,"]')
            expect(image).to_be_visible()
            natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert natural[0] >= 600 and natural[1] >= 300, natural
            expect(dialog).to_contain_text(re.compile(f"Street hails per cell on {day}"))
            page.screenshot(path=str(tmp_path / "cell_demand_page.png"))
    assert_has_content((tmp_path / "cell_demand_page.png").read_bytes())
