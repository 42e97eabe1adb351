"""Replaying a day's guidance on what happened, by hand on a 3 x 3 area, and as the asset."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from taxi_assets.assets.monitoring_guidance import GUIDANCE_CHECK, guidance_accuracy
from taxi_assets.calendar import TOKYO
from taxi_assets.guidance_replay import REPLAY_COLUMNS, replay_guidance, replay_summary
from taxi_assets.model.registry import ArtifactStore
from taxi_assets.partitions import daily_partitions
from taxi_assets.resources import local_resources
from taxi_assets.settings import PipelineSettings
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets_tests.test_guidance import AREA, CENTRE, CORNER, EDGE

DAY = "2026-05-01"
TICK = datetime(2026, 5, 1, 18, 0, tzinfo=TOKYO)
BUCKET = TICK.astimezone(UTC)


def stored_forecast(cells: dict[int, tuple[float, float]]) -> pl.DataFrame:
    """One tick's forecast as demand_forecast stores it (horizon 0 only)."""
    return pl.DataFrame(
        {
            "cell": list(cells),
            "expected_street_hails": [h for h, _ in cells.values()],
            "expected_vacant_taxis": [v for _, v in cells.values()],
        },
        schema={
            "cell": pl.Int64,
            "expected_street_hails": pl.Float64,
            "expected_vacant_taxis": pl.Float64,
        },
    ).with_columns(
        tick=pl.lit(TICK).dt.cast_time_unit("us").dt.convert_time_zone("UTC"),
        horizon=pl.lit(0, pl.Int8),
        bucket_start=pl.lit(BUCKET).dt.cast_time_unit("us").dt.convert_time_zone("UTC"),
    )


def happened(cells: dict[int, tuple[int, int]]) -> pl.DataFrame:
    """The tick's bucket of cell_demand from {cell: (street hails, vacant taxis)}; every
    other cell of the area saw nothing."""
    every = {cell: cells.get(cell, (0, 0)) for cell in AREA.cells()["cell"]}
    return pl.DataFrame(
        {
            "cell": list(every),
            "street_hail_pickups": [h for h, _ in every.values()],
            "vacant_taxis": [v for _, v in every.values()],
        },
        schema={"cell": pl.Int64, "street_hail_pickups": pl.Int32, "vacant_taxis": pl.Int32},
    ).with_columns(bucket_start=pl.lit(BUCKET).dt.cast_time_unit("us").dt.convert_time_zone("UTC"))


# Everyone is told to head for the edge cell, where 3 hails then met 1 vacant taxi.
FORECAST = stored_forecast({EDGE: (4.0, 0.0)})
HAPPENED = happened({CORNER: (0, 2), EDGE: (3, 1), CENTRE: (1, 1)})


def test_following_staying_and_hindsight_by_hand() -> None:
    replay = replay_guidance(FORECAST, HAPPENED, AREA)

    assert replay.columns == list(REPLAY_COLUMNS)
    # Only cells with vacant taxis in the tick's bucket count.
    assert sorted(replay["cell"]) == sorted([CORNER, EDGE, CENTRE])
    rows = {row["cell"]: row for row in replay.iter_rows(named=True)}
    assert {row["target_cell"] for row in rows.values()} == {EDGE}
    assert rows[CORNER]["arrival_bucket_start"] == BUCKET  # 2.4 minutes away
    # Corner: arrives as the 2nd vacant taxi for 3 hails; staying found none of 0.
    assert (rows[CORNER]["following"], rows[CORNER]["staying"]) == (1.5, 0.0)
    assert rows[CORNER]["best_neighbour"] == 1.5
    # Edge: stays, the one vacant taxi there for 3 hails.
    assert (rows[EDGE]["following"], rows[EDGE]["staying"]) == (3.0, 3.0)
    # Centre: 1 hail for its own taxi, 1.5 at the edge.
    assert (rows[CENTRE]["following"], rows[CENTRE]["staying"]) == (1.5, 1.0)

    summary = replay_summary(replay)
    assert summary["vacant_taxis"] == 4.0
    assert summary["hails_per_vacant_taxi_following"] == pytest.approx((2 * 1.5 + 3 + 1.5) / 4)
    assert summary["hails_per_vacant_taxi_staying"] == pytest.approx((0 + 3 + 1) / 4)
    assert summary["hails_per_vacant_taxi_best_neighbour"] == pytest.approx(7.5 / 4)
    assert summary["following_to_staying_ratio"] == pytest.approx(1.875)
    assert summary["hindsight_gain_captured"] == pytest.approx(1.0)
    assert summary["share_of_vacant_taxis_sent_elsewhere"] == pytest.approx(3 / 4)


def materialize(tmp_path: Path, forecast: pl.DataFrame, demand: pl.DataFrame):
    data_dir, artifacts_dir = tmp_path / "data", tmp_path / "artifacts"
    (data_dir / "cell_demand").mkdir(parents=True)
    demand.write_parquet(data_dir / "cell_demand" / f"{DAY}.parquet")
    ArtifactStore(base_dir=str(artifacts_dir)).save_forecast(TICK, forecast)
    resources = local_resources(str(data_dir), str(artifacts_dir), SimulatedProbeSource())
    resources["settings"] = PipelineSettings(
        lat_min=AREA.lat_min, lat_max=AREA.lat_max, lon_min=AREA.lon_min, lon_max=AREA.lon_max
    )
    return dg.materialize(
        [
            dg.AssetSpec("cell_demand", partitions_def=daily_partitions),
            dg.AssetSpec("demand_forecast"),
            guidance_accuracy,
        ],
        selection=[guidance_accuracy],
        partition_key=DAY,
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
    )


def test_the_asset_reports_numbers_and_passes_when_following_paid(tmp_path: Path) -> None:
    result = materialize(tmp_path, FORECAST, HAPPENED)

    assert result.success
    [materialization] = result.asset_materializations_for_node("guidance_accuracy")
    metadata = {key: getattr(v, "value", v) for key, v in materialization.metadata.items()}
    assert metadata["ticks"] == 1
    assert metadata["hails_per_vacant_taxi_following"] == pytest.approx(1.875)
    assert metadata["hails_per_vacant_taxi_staying"] == pytest.approx(1.0)
    assert isinstance(metadata["hindsight_gain_captured"], float)
    [check] = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed) == (GUIDANCE_CHECK, True)


def test_the_check_warns_when_following_did_worse_than_staying(tmp_path: Path) -> None:
    # The forecast promised the edge; the hails came where the taxis already were.
    demand = happened({CORNER: (2, 2), EDGE: (0, 1), CENTRE: (1, 1)})

    result = materialize(tmp_path, FORECAST, demand)

    assert result.success  # a warning, not a failed run
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == GUIDANCE_CHECK
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert "staying" in (check.description or "")
