"""Pandera data contracts, one DataFrameModel per asset, and the check that runs them.

We validate Polars frames with ``pandera.polars`` inside asset checks rather than through
dagster-pandera's DagsterType: that integration assumes pandas and breaks Polars IO.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.engines import polars_engine as pe

from taxi_assets.frames import (
    MAX_PHYSICAL_SPEED_KMH,
    MAX_VEHICLE_ID_CHARS,
    NOT_A_CLEAN_VEHICLE_ID,
    PLACEHOLDER_VEHICLE_ID,
    PROBE_STATUSES,
    REJECT_REASONS,
)

UtcTimestamp = pe.DateTime(time_zone="UTC", time_unit="us")
Status = pe.Enum(categories=list(PROBE_STATUSES))

# Bounds of the JIS X 0410 grid (all of Japan): a clean point outside them is a bug.
JAPAN_LAT = {"ge": 20.0, "le": 46.0}
JAPAN_LON = {"ge": 122.0, "le": 154.0}


class RawProbes(pa.DataFrameModel):
    """Structure only: raw probes are what the source delivered, faults included.

    Value rules belong to ``CleanProbes``; a bad value here is quarantined by the cleaning,
    not a broken contract. A missing column or a wrong type is.
    """

    vehicle_id: pl.String = pa.Field(nullable=True)
    ts: UtcTimestamp = pa.Field(nullable=True)
    lat: pl.Float64 = pa.Field(nullable=True)
    lon: pl.Float64 = pa.Field(nullable=True)
    speed_kmh: pl.Float32 = pa.Field(nullable=True)
    heading: pl.Float32 = pa.Field(nullable=True)
    # The feed's own words; cleaning maps them to a probe status (`status_mapping`).
    status: pl.String = pa.Field(nullable=True)

    class Config:
        strict = True
        ordered = True


class CleanProbes(pa.DataFrameModel):
    """Pings we trust: complete, plausible, one per vehicle and instant."""

    vehicle_id: pl.String = pa.Field(str_length={"min_value": 1, "max_value": MAX_VEHICLE_ID_CHARS})
    ts: UtcTimestamp
    lat: pl.Float64 = pa.Field(**JAPAN_LAT)
    lon: pl.Float64 = pa.Field(**JAPAN_LON)
    speed_kmh: pl.Float32 = pa.Field(ge=0, le=MAX_PHYSICAL_SPEED_KMH)
    heading: pl.Float32 = pa.Field(ge=0, le=360)
    status: Status
    cell: pl.Int64 = pa.Field(gt=0)

    class Config:
        strict = True
        unique = ["vehicle_id", "ts"]

    @pa.check(
        "vehicle_id",
        error="no surrounding whitespace or control characters, no negative-number placeholder",
    )
    def vehicle_id_is_clean(cls, data: pa.PolarsData) -> pl.LazyFrame:
        ids = pl.col(data.key)
        return data.lazyframe.select(
            ~ids.str.contains(NOT_A_CLEAN_VEHICLE_ID) & ~ids.str.contains(PLACEHOLDER_VEHICLE_ID)
        )


class RejectedProbes(RawProbes):
    """Quarantined pings: raw values as delivered, each with the reason it was removed."""

    reason: pe.Enum(categories=list(REJECT_REASONS))

    class Config:
        strict = True
        ordered = False


class TripEvents(pa.DataFrameModel):
    """Pickups and drop-offs, each placed in a mesh cell."""

    vehicle_id: pl.String
    ts: UtcTimestamp
    event: pe.Enum(categories=["pickup", "dropoff"])
    booking: pe.Enum(categories=["street_hail", "app_booking", "other"])
    lat: pl.Float64 = pa.Field(**JAPAN_LAT)
    lon: pl.Float64 = pa.Field(**JAPAN_LON)
    cell: pl.Int64 = pa.Field(gt=0)

    class Config:
        strict = True


class CellDemand(pa.DataFrameModel):
    """Demand and supply per cell and time bucket: counts, never negative."""

    cell: pl.Int64 = pa.Field(gt=0)
    bucket_start: UtcTimestamp
    street_hail_pickups: pl.Int32 = pa.Field(ge=0)
    app_booking_pickups: pl.Int32 = pa.Field(ge=0)
    pickups: pl.Int32 = pa.Field(ge=0)
    dropoffs: pl.Int32 = pa.Field(ge=0)
    vacant_taxis: pl.Int32 = pa.Field(ge=0)
    occupied_taxis: pl.Int32 = pa.Field(ge=0)

    class Config:
        strict = True
        unique = ["cell", "bucket_start"]

    @pa.dataframe_check(error="pickups must include street hails and app bookings")
    def pickups_cover_bookings(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("pickups") >= pl.col("street_hail_pickups") + pl.col("app_booking_pickups")
        )


class Weather(pa.DataFrameModel):
    """Hourly rain over the service area."""

    hour_start: UtcTimestamp = pa.Field(unique=True)
    rain_mm_per_h: pl.Float64 = pa.Field(ge=0, le=300)

    class Config:
        strict = True


class TrainingFeatures(pa.DataFrameModel):
    """Model features per cell, target bucket and horizon, with the two targets (counts)."""

    cell: pl.Int64 = pa.Field(gt=0)
    bucket_start: UtcTimestamp
    # Buckets between the bucket in progress when the forecast is issued and the target.
    horizon: pl.Int8 = pa.Field(ge=0)
    day_type: pl.String = pa.Field(isin=["weekday", "saturday", "holiday"])
    hour: pl.Int8 = pa.Field(ge=0, le=23)
    bucket_of_day: pl.Int16 = pa.Field(ge=0, lt=1440)
    weekday: pl.Int8 = pa.Field(ge=1, le=7)
    is_holiday: pl.Int8 = pa.Field(isin=[0, 1])
    # Null where the history does not reach back far enough (the first days stored).
    rain_mm_per_h: pl.Float64 = pa.Field(ge=0, nullable=True)
    hails_prev_1: pl.Float32 = pa.Field(ge=0, nullable=True)
    hails_prev_2: pl.Float32 = pa.Field(ge=0, nullable=True)
    hails_prev_3: pl.Float32 = pa.Field(ge=0, nullable=True)
    hails_prev_4: pl.Float32 = pa.Field(ge=0, nullable=True)
    hails_mean_prev_1h: pl.Float32 = pa.Field(ge=0, nullable=True)
    hails_mean_prev_3h: pl.Float32 = pa.Field(ge=0, nullable=True)
    app_bookings_prev_1: pl.Float32 = pa.Field(ge=0, nullable=True)
    dropoffs_prev_1: pl.Float32 = pa.Field(ge=0, nullable=True)
    vacant_prev_1: pl.Float32 = pa.Field(ge=0, nullable=True)
    occupied_prev_1: pl.Float32 = pa.Field(ge=0, nullable=True)
    vacant_mean_prev_1h: pl.Float32 = pa.Field(ge=0, nullable=True)
    hails_yesterday: pl.Float32 = pa.Field(ge=0, nullable=True)
    hails_last_week: pl.Float32 = pa.Field(ge=0, nullable=True)
    hails_mean_same_slot_7d: pl.Float32 = pa.Field(ge=0, nullable=True)
    vacant_yesterday: pl.Float32 = pa.Field(ge=0, nullable=True)
    street_hail_pickups: pl.Int32 = pa.Field(ge=0)
    vacant_taxis: pl.Int32 = pa.Field(ge=0)

    class Config:
        strict = True
        unique = ["cell", "bucket_start", "horizon"]
