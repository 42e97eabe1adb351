"""Realistic-size frames for the picture tests and bench: a central-Tokyo day of street hails
peaking at the landmarks, its forecast and guidance, a scored held-out day and statistics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from taxi_assets.guidance import cruising_guidance
from taxi_assets.mesh import mesh_center
from taxi_assets.model.evaluation import slice_metrics
from taxi_assets.pictures import LANDMARKS
from taxi_assets.service_area import CENTRAL_TOKYO, ServiceArea
from taxi_assets.validation.drift import compare_statistics
from taxi_assets.validation.statistics import compute_statistics

DAY = date(2026, 5, 1)
TICK = datetime(2026, 5, 1, 9, 7, tzinfo=UTC)  # 18:07 in Tokyo


def hail_rate(area: ServiceArea = CENTRAL_TOKYO) -> pl.DataFrame:
    """cell, rate: expected street hails per 15-minute bucket, bumps at the landmarks."""
    lat, lon = mesh_center(pl.col("cell"), area.mesh_level)
    cells = area.cells().select("cell", lat=lat, lon=lon)
    rate = pl.lit(0.05)
    for landmark in LANDMARKS:
        distance2 = (pl.col("lat") - landmark.lat) ** 2 + (pl.col("lon") - landmark.lon) ** 2
        rate = rate + 3.0 * (-distance2 / (2 * 0.006**2)).exp()
    return cells.select("cell", rate=rate)


def cell_demand_day(area: ServiceArea = CENTRAL_TOKYO, seed: int = 1) -> pl.DataFrame:
    """cell, bucket_start, street_hail_pickups for every cell and 15-minute bucket of DAY."""
    rng = np.random.default_rng(seed)
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) - timedelta(hours=9)
    buckets = pl.DataFrame(
        {"bucket_start": [start + timedelta(minutes=15 * i) for i in range(96)]}
    ).with_columns(pl.col("bucket_start").dt.cast_time_unit("us"))
    frame = hail_rate(area).join(buckets, how="cross")
    hour = (pl.col("bucket_start").dt.hour() + 9) % 24
    mean = pl.col("rate") * (0.4 + (hour - 4).clip(0, 20) / 10)
    expected = frame.select(mean)["rate"].to_numpy()
    return frame.select("cell", "bucket_start").with_columns(
        street_hail_pickups=pl.Series(rng.poisson(expected), dtype=pl.Int32)
    )


def forecast_tick(area: ServiceArea = CENTRAL_TOKYO, horizons: int = 1) -> pl.DataFrame:
    """A demand_forecast-shaped tick: every cell per horizon."""
    rates = hail_rate(area)
    return pl.concat(
        [
            rates.select(
                tick=pl.lit(TICK).dt.cast_time_unit("us"),
                model_version=pl.lit("demand-test"),
                cell="cell",
                horizon=pl.lit(h, pl.Int8),
                bucket_start=pl.lit(TICK + timedelta(minutes=15 * h)).dt.cast_time_unit("us"),
                expected_street_hails=pl.col("rate") * (1 + 0.2 * h),
                expected_vacant_taxis=pl.col("rate") * 4 + 0.5,
                opportunity=pl.lit(0.1),
            )
            for h in range(horizons)
        ]
    )


def guidance_for(forecast: pl.DataFrame, area: ServiceArea = CENTRAL_TOKYO) -> pl.DataFrame:
    return cruising_guidance(forecast, area, TICK)


def scored_day(seed: int = 2, with_production: bool = True) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(slices, scored) as model_evaluation has them: hour slices of every predictor and
    one scored row per cell and bucket."""
    rng = np.random.default_rng(seed)
    demand = cell_demand_day(seed=seed)
    truth = demand.join(
        cell_demand_day(seed=seed + 1).rename({"street_hail_pickups": "last"}),
        on=["cell", "bucket_start"],
    )
    n = truth.height
    actual = truth["street_hail_pickups"].cast(pl.Float64)
    scored = truth.select(
        "cell",
        "bucket_start",
        hour=(pl.col("bucket_start").dt.hour() + 9) % 24,
        day_type=pl.lit("weekday"),
        actual=actual,
        pred_model=(actual * 0.8 + rng.gamma(2.0, 0.2, n)),
        pred_last_week=pl.col("last").cast(pl.Float64),
        pred_historical_average=(actual * 0.5 + 0.5),
        pred_oracle=(actual * 0.9 + 0.1),
    )
    if with_production:
        scored = scored.with_columns(pred_production=pl.col("pred_model") * 1.1 + 0.05)
    predictors = [c.removeprefix("pred_") for c in scored.columns if c.startswith("pred_")]
    return slice_metrics(scored, predictors, busiest_cells=[]), scored


def drift_statistics(seed: int = 3) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(comparison, today's statistics, yesterday's) with speed_kmh drifted."""
    rng = np.random.default_rng(seed)
    edges = {"speed_kmh": [0.0, 5, 10, 15, 20, 25, 30, 40, 60], "heading": [0.0, 90, 180, 270, 360]}

    def day(shift: float) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "speed_kmh": rng.gamma(3.0, 6.0 + shift, 20_000),
                "heading": rng.uniform(0, 360, 20_000),
                "status": rng.choice(["vacant", "occupied", "dispatched"], 20_000),
            }
        )

    today = compute_statistics(day(6.0), edges)
    before = compute_statistics(day(0.0), edges)
    return compare_statistics(today, before), today, before
