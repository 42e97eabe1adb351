"""Column schemas of the frames that cross module boundaries.

These are the explicit schemas at the edges (sources, storage); the Pandera contracts in
``taxi_assets.contracts`` add the value rules on top.
"""

from __future__ import annotations

import polars as pl

PROBE_STATUSES = ("vacant", "occupied", "dispatched", "off_duty")
ProbeStatus = pl.Enum(PROBE_STATUSES)
UTC_TIMESTAMP = pl.Datetime("us", "UTC")

# One GPS ping as a probe source delivers it.
RAW_PROBES_SCHEMA = pl.Schema(
    {
        "vehicle_id": pl.Int32,
        "ts": UTC_TIMESTAMP,
        "lat": pl.Float64,
        "lon": pl.Float64,
        "speed_kmh": pl.Float32,
        "heading": pl.Float32,
        "status": ProbeStatus,
    }
)

# Why a ping was quarantined; the first rule that applies wins, in this order.
REJECT_REASONS = (
    "duplicate",
    "missing_value",
    "invalid_value",
    "zero_coordinates",
    "outside_service_area",
    "clock_skew",
    "outside_day",
    "conflicting_duplicate",
    "gps_jump",
    "stuck_status",
)
RejectReason = pl.Enum(REJECT_REASONS)

CLEAN_PROBES_SCHEMA = pl.Schema({**RAW_PROBES_SCHEMA, "cell": pl.Int64})
REJECTED_PROBES_SCHEMA = pl.Schema({**RAW_PROBES_SCHEMA, "reason": RejectReason})

TripEvent = pl.Enum(("pickup", "dropoff"))
# A pickup from `vacant` is a street hail, from `dispatched` an app booking; a pickup
# from `off_duty` (a driver taking a fare without switching the meter on) is "other".
Booking = pl.Enum(("street_hail", "app_booking", "other"))
TRIP_EVENTS_SCHEMA = pl.Schema(
    {
        "vehicle_id": pl.Int32,
        "ts": UTC_TIMESTAMP,
        "event": TripEvent,
        "booking": Booking,
        "lat": pl.Float64,
        "lon": pl.Float64,
        "cell": pl.Int64,
    }
)

# Dense: one row per service-area cell and time bucket of the day, zeros included.
CELL_DEMAND_SCHEMA = pl.Schema(
    {
        "cell": pl.Int64,
        "bucket_start": UTC_TIMESTAMP,
        "street_hail_pickups": pl.Int32,
        "app_booking_pickups": pl.Int32,
        "pickups": pl.Int32,
        "dropoffs": pl.Int32,
        "vacant_taxis": pl.Int32,
        "occupied_taxis": pl.Int32,
    }
)

WEATHER_SCHEMA = pl.Schema({"hour_start": UTC_TIMESTAMP, "rain_mm_per_h": pl.Float64})
