"""Cruising policies for the simulator's closed loop (issue 12 part 6).

A policy (``taxi_assets.simulation.cruising.CruisingPolicy``) is the guidance the
production service would send: ``cruising_guidance`` on a forecast of the tick, allocating
the guided vacant taxis the simulator reports per cell. Two sources of forecasts:

- the production model's, one per 15-minute bucket (``serving.forecast_tick``), built by
  the caller;
- the *oracle*'s: the simulator's true street-hail rate of the bucket in progress, with
  the model's expected vacant taxis, so the two policies differ only in the hails they
  expect.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import polars as pl

from taxi_assets.guidance import DEFAULT_GUIDANCE, GuidanceParams, cruising_guidance
from taxi_assets.service_area import ServiceArea
from taxi_assets.serving import target_bucket
from taxi_assets.simulation.cruising import CruisingPolicy


def guidance_policy(
    forecast_for: Callable[[datetime], pl.DataFrame],
    area: ServiceArea,
    params: GuidanceParams = DEFAULT_GUIDANCE,
) -> CruisingPolicy:
    """The policy following ``cruising_guidance`` on ``forecast_for(tick)``; the guided
    vacant taxis of each cell are the taxis it allocates."""

    def policy(tick: datetime, vacant: pl.DataFrame) -> pl.DataFrame:
        return cruising_guidance(forecast_for(tick), area, tick, params, vacant_now=vacant)

    return policy


def bucket_forecasts(
    forecasts: dict[datetime, pl.DataFrame], bucket_minutes: int
) -> Callable[[datetime], pl.DataFrame]:
    """``forecast_for(tick)``: the forecast of the bucket in progress at the tick, from
    forecasts keyed by bucket start (UTC); a missing bucket is an error naming it."""

    def forecast_for(tick: datetime) -> pl.DataFrame:
        bucket = target_bucket(tick, bucket_minutes)
        if bucket not in forecasts:
            raise KeyError(f"no forecast for the bucket starting {bucket.isoformat()}")
        return forecasts[bucket]

    return forecast_for


def oracle_forecasts(
    true_demand: pl.DataFrame,
    model_forecasts: dict[datetime, pl.DataFrame],
    bucket_minutes: int,
) -> dict[datetime, pl.DataFrame]:
    """Per bucket of ``model_forecasts``: the true street-hail rate of each cell in that
    bucket (``true_demand``'s 5-minute Poisson means, summed) in place of the model's
    hails (for horizon h, the bucket h after), with the model's ``expected_vacant_taxis``
    kept."""
    true_hails = (
        true_demand.group_by("cell", bucket=pl.col("slice_start").dt.truncate(f"{bucket_minutes}m"))
        .agg(true_hails=pl.col("expected_street_hails").sum())
        .with_columns(pl.col("cell").cast(pl.Int64))
    )
    out = {}
    for bucket, forecast in model_forecasts.items():
        if "horizon" not in forecast.columns:
            forecast = forecast.with_columns(horizon=pl.lit(0, pl.Int8))
        # Horizon h forecasts the bucket h buckets after the one in progress.
        rows = forecast.with_columns(
            pl.col("cell").cast(pl.Int64),
            bucket=pl.lit(bucket).dt.cast_time_unit("us").dt.convert_time_zone("UTC")
            + pl.duration(minutes=pl.col("horizon").cast(pl.Int64) * bucket_minutes),
        )
        joined = rows.join(true_hails, on=["cell", "bucket"], how="left")
        if joined.filter(pl.col("horizon") == 0)["true_hails"].is_null().all():
            raise ValueError(f"true_demand: no rate for the bucket starting {bucket.isoformat()}")
        out[bucket] = joined.with_columns(
            expected_street_hails=pl.col("true_hails").fill_null(0.0)
        ).drop("true_hails", "bucket")
    return out
