"""Demand and supply per mesh cell and time bucket: the training target of the model."""

from __future__ import annotations

from datetime import date

import polars as pl

from taxi_assets.calendar import bucket_start, bucket_starts
from taxi_assets.frames import CELL_DEMAND_SCHEMA
from taxi_assets.service_area import ServiceArea

COUNT_COLUMNS = [c for c in CELL_DEMAND_SCHEMA if c not in ("cell", "bucket_start")]


def aggregate_cell_demand(
    clean: pl.DataFrame | pl.LazyFrame,
    trip_events: pl.DataFrame | pl.LazyFrame,
    day: date,
    area: ServiceArea,
    bucket_minutes: int = 15,
) -> pl.DataFrame:
    """CELL_DEMAND_SCHEMA: every cell of the area x every bucket of the Tokyo day, dense.

    Pickups (street hails and app bookings also apart) and drop-offs are counted per cell
    and bucket; vacant_taxis / occupied_taxis are the distinct vehicles with at least one
    vacant / occupied ping there (the supply a forecast is compared against). Cells and
    buckets without activity are present with zeros, so a model sees true zeros.
    """
    bucket = bucket_start(pl.col("ts"), day, bucket_minutes).alias("bucket_start")
    keys = ["cell", "bucket_start"]
    events = (
        trip_events.lazy()
        .group_by("cell", bucket)
        .agg(
            street_hail_pickups=(
                (pl.col("event") == "pickup") & (pl.col("booking") == "street_hail")
            ).sum(),
            app_booking_pickups=(
                (pl.col("event") == "pickup") & (pl.col("booking") == "app_booking")
            ).sum(),
            pickups=(pl.col("event") == "pickup").sum(),
            dropoffs=(pl.col("event") == "dropoff").sum(),
        )
    )
    supply = (
        clean.lazy()
        .filter(pl.col("status").is_in(["vacant", "occupied"]))
        .select("cell", bucket, "status", "vehicle_id")
        .unique()
        .group_by(keys)
        .agg(
            vacant_taxis=(pl.col("status") == "vacant").sum(),
            occupied_taxis=(pl.col("status") == "occupied").sum(),
        )
    )
    grid = (
        area.cells()
        .lazy()
        .select("cell")
        .join(bucket_starts(day, bucket_minutes).to_frame().lazy(), how="cross")
    )
    return (
        grid.join(events, on=keys, how="left")
        .join(supply, on=keys, how="left")
        .with_columns(pl.col(COUNT_COLUMNS).fill_null(0))
        .select(CELL_DEMAND_SCHEMA.names())
        .cast(dict(CELL_DEMAND_SCHEMA))
        .sort(keys)
        .collect()
    )


def demand_summary(cell_demand: pl.DataFrame) -> dict[str, int]:
    """Headline counts of a day of cell demand, for asset metadata."""
    totals = cell_demand.select(
        cells_with_pickups=pl.col("cell").filter(pl.col("pickups") > 0).n_unique(),
        pickups=pl.col("pickups").sum(),
        street_hail_pickups=pl.col("street_hail_pickups").sum(),
        app_booking_pickups=pl.col("app_booking_pickups").sum(),
        dropoffs=pl.col("dropoffs").sum(),
    ).row(0, named=True)
    return {name: int(value or 0) for name, value in totals.items()}


def vacant_presence_by_cell(
    clean: pl.DataFrame | pl.LazyFrame,
    day: date,
    bucket_minutes: int = 15,
    max_gap_s: float = 600.0,
) -> pl.DataFrame:
    """Per (cell, bucket_start) with vacant pings: ``vacant_minutes``, the vacant taxi-time
    spent there, and ``vacant_taxis``, the distinct vacant taxis seen (cell_demand's count).

    Each vacant ping holds its taxi there until the vehicle's next ping (any status), at most
    ``max_gap_s`` (a longer silence says nothing about where the taxi was; the trip rules'
    ``max_pickup_gap_s`` is the same judgement); a vehicle's last ping holds nothing. The
    time goes to the ping's own cell and bucket, as cell_demand counts the ping there.
    """
    if not 0 < max_gap_s < float("inf"):
        raise ValueError(f"vacant presence max_gap_s must be a positive number, got {max_gap_s!r}")
    bucket = bucket_start(pl.col("ts"), day, bucket_minutes).alias("bucket_start")
    next_ts = pl.col("ts").shift(-1).over("vehicle_id")
    held_s = ((next_ts - pl.col("ts")).dt.total_microseconds() / 1e6).clip(0, max_gap_s)
    return (
        clean.lazy()
        .select("vehicle_id", "ts", "cell", "status")
        # Sorted as the cleaning delivers it; sorting again keeps a reordered frame honest.
        .sort("vehicle_id", "ts")
        .with_columns(held_minutes=held_s.fill_null(0.0) / 60.0)
        .filter(pl.col("status") == "vacant")
        .group_by("cell", bucket)
        .agg(
            vacant_minutes=pl.col("held_minutes").sum(),
            vacant_taxis=pl.col("vehicle_id").n_unique(),
        )
        .sort("cell", "bucket_start")
        .collect()
    )


def vacant_presence(
    clean: pl.DataFrame | pl.LazyFrame,
    day: date,
    bucket_minutes: int = 15,
    max_gap_s: float = 600.0,
) -> float | None:
    """The share of the vacant taxis seen in a cell and bucket that are there at a moment:
    vacant taxi-minutes over (bucket minutes x distinct vacant taxis seen), summed over the
    day's cells and buckets before dividing. None on a day without vacant pings.

    ``GuidanceConfig.vacant_presence`` (guidance.py) scales the supply forecast, a count of
    vacant taxis seen, to the competitors present; this measures it from a feed's pings.
    A taxi parked all bucket is 1; one passing through in a minute of 15 is 1/15.
    """
    cells = vacant_presence_by_cell(clean, day, bucket_minutes, max_gap_s)
    seen = cells["vacant_taxis"].sum()
    if not seen:
        return None
    return float(cells["vacant_minutes"].sum() / (bucket_minutes * seen))
