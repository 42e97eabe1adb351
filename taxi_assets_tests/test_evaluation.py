"""Forecast metrics, baselines and the oracle on small hand-computed examples."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from taxi_assets.model.evaluation import (
    PREDICTORS,
    historical_average_predictions,
    historical_average_table,
    horizon_metadata,
    horizon_metrics,
    horizons_markdown,
    last_week_predictions,
    metric_exprs,
    oracle_predictions,
    overall_markdown,
    overall_metrics,
    slice_metrics,
    slices_markdown,
)

# Two half-mesh cells in second mesh 533946 and one in 533947.
CELL_A, CELL_B, CELL_C = 533946113, 533946114, 533947111
TOKYO_MIDNIGHT_UTC = datetime(2026, 4, 30, 15, 0, tzinfo=UTC)


def metrics_of(
    actual: list[float] | np.ndarray,
    predicted: list[float] | np.ndarray,
    mape_min_pickups: float = 10,
) -> dict:
    frame = pl.DataFrame({"y": actual, "mu": predicted}, schema={"y": pl.Float64, "mu": pl.Float64})
    return frame.select(metric_exprs("y", "mu", mape_min_pickups)).row(0, named=True)


def scored_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "cell": [CELL_A, CELL_B, CELL_C, CELL_A],
            "bucket_start": [TOKYO_MIDNIGHT_UTC] * 3 + [TOKYO_MIDNIGHT_UTC + timedelta(hours=8)],
            "hour": [0, 0, 0, 8],
            "bucket_of_day": [0, 0, 0, 32],
            "day_type": ["weekday", "saturday", "holiday", "weekday"],
            "actual": [0.0, 2.0, 12.0, 4.0],
            "pred_model": [1.0, 2.0, 10.0, 4.0],
            "pred_last_week": [0.0, 3.0, 9.0, 6.0],
            "pred_historical_average": [0.5, 1.5, 11.0, 3.0],
        },
        schema_overrides={"hour": pl.Int8, "bucket_of_day": pl.Int16},
    )


def test_metrics_on_a_hand_computed_example() -> None:
    metrics = metrics_of([0.0, 2.0], [1.0, 2.0])
    assert metrics["rows"] == 2
    assert metrics["mae"] == pytest.approx(0.5)
    assert metrics["rmse"] == pytest.approx(math.sqrt(0.5))
    # mean(2 * (0 - (0 - 1)), 2 * (2 ln 1 - 0)) = mean(2, 0)
    assert metrics["poisson_deviance"] == pytest.approx(1.0)


def test_mape_is_null_when_no_row_is_busy_enough() -> None:
    metrics = metrics_of([0.0, 2.0, 9.0], [1.0, 2.0, 8.0])
    assert metrics["mape"] is None
    assert metrics["mape_rows"] == 0


def test_mape_only_counts_busy_rows_in_percent() -> None:
    metrics = metrics_of([0.0, 10.0, 20.0], [5.0, 12.0, 15.0])
    assert metrics["mape"] == pytest.approx(100 * (0.2 + 0.25) / 2)
    assert metrics["mape_rows"] == 2


def test_deviance_floors_zero_predictions() -> None:
    metrics = metrics_of([0.0, 1.0], [0.0, 0.0])
    expected = (2 * 1e-3 + 2 * (math.log(1 / 1e-3) - (1 - 1e-3))) / 2
    assert metrics["poisson_deviance"] == pytest.approx(expected)


def test_overall_metrics_one_row_per_present_predictor() -> None:
    overall = overall_metrics(scored_frame(), PREDICTORS)
    assert overall.get_column("predictor").to_list() == [
        "model",
        "last_week",
        "historical_average",
    ]
    model = overall.row(0, named=True)
    assert model["rows"] == 4
    assert model["mae"] == pytest.approx((1 + 0 + 2 + 0) / 4)
    assert model["mape_rows"] == 1


def test_slice_metrics_covers_every_slice_kind() -> None:
    slices = slice_metrics(scored_frame(), PREDICTORS, busiest_cells=[CELL_C])
    model = slices.filter(pl.col("predictor") == "model")
    labels = {
        kind: sorted(model.filter(pl.col("slice_kind") == kind).get_column("slice").to_list())
        for kind in ("hour", "day_kind", "area", "busiest")
    }
    assert labels == {
        "hour": ["00", "08"],
        "day_kind": ["weekday", "weekend_or_holiday"],
        "area": ["533946", "533947"],
        "busiest": ["busiest", "other"],
    }
    # Every kind partitions the same rows.
    rows_per_kind = model.group_by("slice_kind").agg(pl.col("rows").sum())
    assert rows_per_kind.get_column("rows").to_list() == [4] * 4
    weekend = model.filter(pl.col("slice") == "weekend_or_holiday").row(0, named=True)
    assert weekend["rows"] == 2
    assert weekend["mae"] == pytest.approx(1.0)
    busiest = model.filter(pl.col("slice") == "busiest").row(0, named=True)
    assert busiest["mape"] == pytest.approx(100 * 2 / 12)
    assert slices.columns == [
        "slice_kind",
        "slice",
        "predictor",
        "rows",
        "mae",
        "rmse",
        "poisson_deviance",
        "mape",
    ]
    assert slices.equals(slice_metrics(scored_frame(), PREDICTORS, busiest_cells=[CELL_C]))


def test_markdown_reports() -> None:
    scored = scored_frame()
    slices_md = slices_markdown(slice_metrics(scored, PREDICTORS, busiest_cells=[CELL_C]))
    header = slices_md.splitlines()[0]
    assert header == (
        "| slice_kind | slice | rows | mae model | mae last_week | mae historical_average "
        "| rmse model | rmse last_week | rmse historical_average |"
    )
    assert len(slices_md.splitlines()) == 2 + 8
    overall_md = overall_markdown(overall_metrics(scored, PREDICTORS))
    assert overall_md.splitlines()[2].startswith("| model | 4 | 0.75 |")


def test_oracle_sums_three_slices_per_bucket_aligned_to_tokyo_midnight() -> None:
    slice_starts = [TOKYO_MIDNIGHT_UTC + timedelta(minutes=m) for m in (-5, 0, 5, 10, 15)]
    true_demand = pl.DataFrame(
        {
            "cell": [CELL_A] * 5,
            "slice_start": slice_starts,
            "expected_street_hails": [100.0, 1.0, 2.0, 4.0, 8.0],
            "expected_app_bookings": [0.0] * 5,
        }
    )
    oracle = oracle_predictions(true_demand, bucket_minutes=15)
    assert oracle.to_dicts() == [
        {
            "cell": CELL_A,
            "bucket_start": TOKYO_MIDNIGHT_UTC - timedelta(minutes=15),
            "pred_oracle": 100.0,
        },
        {"cell": CELL_A, "bucket_start": TOKYO_MIDNIGHT_UTC, "pred_oracle": 7.0},
        {
            "cell": CELL_A,
            "bucket_start": TOKYO_MIDNIGHT_UTC + timedelta(minutes=15),
            "pred_oracle": 8.0,
        },
    ]
    assert oracle.schema["bucket_start"] == pl.Datetime("us", "UTC")
    # Hour buckets also start at Tokyo full hours (15:00 UTC), the day's last at 14:00 UTC.
    hourly = oracle_predictions(true_demand, bucket_minutes=60)
    assert hourly.get_column("bucket_start").to_list() == [
        TOKYO_MIDNIGHT_UTC - timedelta(hours=1),
        TOKYO_MIDNIGHT_UTC,
    ]


def training_rows() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "cell": [CELL_A, CELL_A, CELL_A, CELL_A, CELL_B],
            "bucket_of_day": [0, 0, 0, 0, 5],
            "day_type": ["weekday", "weekday", "saturday", "holiday", "weekday"],
            "street_hail_pickups": [2, 4, 1, 5, 7],
        }
    )


def test_historical_average_pools_saturdays_and_holidays() -> None:
    table = historical_average_table(training_rows())
    assert table.to_dicts() == [
        {"cell": CELL_A, "day_kind": "weekday", "bucket_of_day": 0, "historical_average": 3.0},
        {
            "cell": CELL_A,
            "day_kind": "weekend_or_holiday",
            "bucket_of_day": 0,
            "historical_average": 3.0,
        },
        {"cell": CELL_B, "day_kind": "weekday", "bucket_of_day": 5, "historical_average": 7.0},
    ]


def test_historical_average_falls_back_to_cell_mean_then_zero() -> None:
    table = pl.DataFrame(
        {
            "cell": [CELL_A, CELL_A],
            "day_kind": ["weekday", "weekend_or_holiday"],
            "bucket_of_day": [0, 0],
            "historical_average": [2.0, 6.0],
        }
    )
    rows = pl.DataFrame(
        {
            "cell": [CELL_C, CELL_A, CELL_A, CELL_A],
            "bucket_of_day": [0, 0, 0, 9],
            "day_type": ["weekday", "holiday", "weekday", "weekday"],
        }
    )
    predicted = historical_average_predictions(rows, table)
    assert predicted.columns == [*rows.columns, "pred_historical_average"]
    assert predicted.get_column("pred_historical_average").to_list() == [0.0, 6.0, 2.0, 4.0]


def test_last_week_falls_back_to_historical_average() -> None:
    rows = pl.DataFrame({"hails_last_week": [3, None], "pred_historical_average": [1.5, 2.5]})
    predicted = last_week_predictions(rows).get_column("pred_last_week")
    assert predicted.dtype == pl.Float64
    assert predicted.to_list() == [3.0, 2.5]


def expected_poisson_deviance(rate: float, max_count: int = 200) -> float:
    """E[2 (y ln(y / rate) - (y - rate))] for y ~ Poisson(rate), summed over the pmf."""
    total = 0.0
    for y in range(max_count):
        pmf = math.exp(y * math.log(rate) - rate - math.lgamma(y + 1))
        y_log_ratio = y * math.log(y / rate) if y else 0.0
        total += pmf * 2 * (y_log_ratio - (y - rate))
    return total


def test_an_oracle_on_poisson_draws_scores_its_theoretical_error() -> None:
    rng = np.random.default_rng(42)
    rates = np.array([0.2, 1.0, 3.0, 8.0])
    rate = rng.choice(rates, size=200_000)
    counts = rng.poisson(rate).astype(float)
    metrics = metrics_of(counts, rate)
    # Var(y) = rate for a Poisson count, so the oracle's RMSE is sqrt(mean rate).
    assert metrics["rmse"] == pytest.approx(math.sqrt(rate.mean()), rel=0.02)
    expected = np.mean([expected_poisson_deviance(r) for r in rates])
    assert metrics["poisson_deviance"] == pytest.approx(expected, rel=0.02)


def test_metrics_per_horizon_become_numeric_metadata_per_horizon() -> None:
    one = scored_frame()
    later = one.with_columns(pred_model=pl.col("actual") + 2.0)  # 2 hails off everywhere
    scored = pl.concat(
        [
            one.with_columns(horizon=pl.lit(0, pl.Int8)),
            later.with_columns(horizon=pl.lit(2, pl.Int8)),
        ]
    )

    per_horizon = horizon_metrics(scored, ("model", "last_week"))

    assert per_horizon.select("horizon", "predictor").rows() == [
        (0, "model"),
        (0, "last_week"),
        (2, "model"),
        (2, "last_week"),
    ]
    expected_h0 = overall_metrics(one, ("model", "last_week"))
    assert per_horizon.filter(pl.col("horizon") == 0).drop("horizon").equals(expected_h0)
    metadata = horizon_metadata(per_horizon)
    assert metadata["rmse_h2"] == pytest.approx(2.0)
    assert metadata["mae_h2"] == pytest.approx(2.0)
    assert metadata["rmse_h0"] == pytest.approx(expected_h0["rmse"][0])
    # The baselines do not depend on the horizon: the same at both.
    assert metadata["rmse_last_week_h0"] == pytest.approx(metadata["rmse_last_week_h2"])
    assert all(isinstance(value, float) for value in metadata.values())
    assert not any(key.endswith("_h1") for key in metadata)
    table = horizons_markdown(per_horizon)
    assert "rmse model" in table and "poisson_deviance last_week" in table


def test_a_scored_frame_without_horizons_is_horizon_0() -> None:
    per_horizon = horizon_metrics(scored_frame(), ("model",))
    assert per_horizon["horizon"].to_list() == [0]
    # Old ticks stacked with new ones have a null horizon: the bucket in progress.
    stacked = scored_frame().with_columns(horizon=pl.Series([None, 0, 1, None], dtype=pl.Int8))
    rows = horizon_metrics(stacked, ("model",)).select("horizon", "rows").rows()
    assert rows == [(0, 3), (1, 1)]
    assert set(horizon_metadata(per_horizon)) >= {"rmse_h0", "poisson_deviance_h0", "mae_h0"}
