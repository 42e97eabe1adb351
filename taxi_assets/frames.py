"""Column schemas of the frames that cross module boundaries.

These are the explicit schemas at the edges (sources, storage); the Pandera contracts in
``taxi_assets.contracts`` add the value rules on top.
"""

from __future__ import annotations

import polars as pl

PROBE_STATUSES = ("vacant", "occupied", "dispatched", "off_duty")
ProbeStatus = pl.Enum(PROBE_STATUSES)
UTC_TIMESTAMP = pl.Datetime("us", "UTC")

# Vehicle ids are opaque text (real feeds name taxis 'abboip', 'T-0043' or by a hash). A
# clean id is 1 to 64 characters without control characters and without surrounding
# whitespace: anything else is a broken export (a padded fixed-width column, a binary blob),
# and two spellings of one taxi would count it twice. 64 fits a SHA-256 hex digest.
MAX_VEHICLE_ID_CHARS = 64
NOT_A_CLEAN_VEHICLE_ID = r"^\s|\s$|[\x00-\x1f\x7f]"


# An integer feed's negative id is a placeholder for "unknown vehicle", not a taxi: merging
# every such ping into one vehicle would invent jumps and fares, so cleaning quarantines
# them (invalid_value) rather than the source refusing the whole file.
PLACEHOLDER_VEHICLE_ID = r"^-[0-9]+$"
CLEAN_VEHICLE_ID_RULE = (
    f"1 to {MAX_VEHICLE_ID_CHARS} characters, no surrounding whitespace, no control characters"
)


def is_clean_vehicle_id(ids: pl.Expr) -> pl.Expr:
    """True where a (String) vehicle id follows the clean-id rule; null stays null."""
    return ids.str.len_chars().is_between(1, MAX_VEHICLE_ID_CHARS) & ~ids.str.contains(
        NOT_A_CLEAN_VEHICLE_ID
    )


def is_kept_vehicle_id(ids: pl.Expr) -> pl.Expr:
    """A clean id that is no placeholder: what cleaning keeps and CleanProbes allows."""
    return is_clean_vehicle_id(ids) & ~ids.str.contains(PLACEHOLDER_VEHICLE_ID)


# No taxi reports a speed above this: the CleanProbes contract's bound, and the ceiling of
# the cleaning's configurable `max_speed_kmh`, so that cleaning never keeps what the
# contract forbids.
MAX_PHYSICAL_SPEED_KMH = 300.0

# One GPS ping as a probe source delivers it. The status is the feed's own text (cleaning
# maps it to PROBE_STATUSES with the `status_mapping` setting), so nothing is lost on read.
RAW_PROBES_SCHEMA = pl.Schema(
    {
        "vehicle_id": pl.String,
        "ts": UTC_TIMESTAMP,
        "lat": pl.Float64,
        "lon": pl.Float64,
        "speed_kmh": pl.Float32,
        "heading": pl.Float32,
        "status": pl.String,
    }
)

# Why a ping was quarantined; the first rule that applies wins, in this order.
REJECT_REASONS = (
    "duplicate",
    "missing_value",
    "invalid_value",
    "unknown_status",
    "zero_coordinates",
    "outside_service_area",
    "clock_skew",
    "outside_day",
    "conflicting_duplicate",
    "gps_jump",
    "stuck_status",
)
RejectReason = pl.Enum(REJECT_REASONS)

CLEAN_PROBES_SCHEMA = pl.Schema({**RAW_PROBES_SCHEMA, "status": ProbeStatus, "cell": pl.Int64})
REJECTED_PROBES_SCHEMA = pl.Schema({**RAW_PROBES_SCHEMA, "reason": RejectReason})

TripEvent = pl.Enum(("pickup", "dropoff"))
# A pickup from `vacant` is a street hail, from `dispatched` an app booking; a pickup
# from `off_duty` (a driver taking a fare without switching the meter on) is "other".
Booking = pl.Enum(("street_hail", "app_booking", "other"))
TRIP_EVENTS_SCHEMA = pl.Schema(
    {
        "vehicle_id": pl.String,
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
