"""The data path (raw probes -> cell_demand) in straightforward, vectorized pandas.

The same rules as the Polars path, written the way a pandas user would: boolean masks,
``duplicated``, ``groupby(...).transform`` and ``shift`` with a same-vehicle mask. Only the
kept pings matter for cell_demand, so rejected rows are dropped rather than labelled.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from taxi_assets.calendar import day_window_utc, validate_bucket_minutes
from taxi_assets.cleaning import EARTH_RADIUS_KM, CleaningRules
from taxi_assets.mesh import CELLS_PER_FIRST_MESH, cols_per_degree, rows_per_degree
from taxi_assets.service_area import ServiceArea
from taxi_assets.trips import TripRules

RAW_COLUMNS = ["vehicle_id", "ts", "lat", "lon", "speed_kmh", "heading", "status"]


def _haversine_km(lat1, lon1, lat2, lon2):  # noqa: ANN001, ANN202 - numpy arrays
    half_dlat = np.radians(lat2 - lat1) / 2
    half_dlon = np.radians(lon2 - lon1) / 2
    a = np.sin(half_dlat) ** 2 + np.cos(np.radians(lat1)) * np.cos(np.radians(lat2)) * (
        np.sin(half_dlon) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def _speed(df: pd.DataFrame, a: int, b: int) -> pd.Series:
    """Implied km/h from the ping ``a`` rows away to the one ``b`` rows away (NaN at edges)."""
    lat_a, lat_b = df["lat"].shift(-a), df["lat"].shift(-b)
    lon_a, lon_b = df["lon"].shift(-a), df["lon"].shift(-b)
    hours = (df["us"].shift(-b) - df["us"].shift(-a)) / 3.6e9
    return _haversine_km(lat_a, lon_a, lat_b, lon_b) / hours


def _same(df: pd.DataFrame, offset: int) -> pd.Series:
    return (df["vehicle_id"] == df["vehicle_id"].shift(-offset)).to_numpy()


def _drop_jumps(
    df: pd.DataFrame, limit: float, detour: float, max_step_minutes: float | None
) -> pd.DataFrame:
    """Single spikes (fast both ways, or fast one way and far off the neighbours' track)
    and, with ``max_step_minutes``, runs of displaced pings between two fast moves."""
    has_p, has_n = _same(df, -1), _same(df, 1)
    lat, lon, us = df["lat"], df["lon"], df["us"]
    km_in = _haversine_km(lat.shift(1), lon.shift(1), lat, lon).where(has_p)
    speed_in = km_in / ((us - us.shift(1)) / 3.6e9)
    fast_in = has_p & (speed_in > limit).to_numpy()
    fast_out = has_n & (speed_in.shift(-1) > limit).to_numpy()
    jump = (fast_in & fast_out) | (~has_p & fast_out) | (~has_n & fast_in)
    skip_km = _haversine_km(lat.shift(1), lon.shift(1), lat.shift(-1), lon.shift(-1))
    skip_speed = skip_km / ((us.shift(-1) - us.shift(1)) / 3.6e9)
    off_track = (
        has_p
        & has_n
        & (fast_in | fast_out)
        & (km_in + km_in.shift(-1) > detour * skip_km).to_numpy()
        & (skip_speed <= limit).to_numpy()
    )
    jump |= off_track
    if max_step_minutes is not None:
        segment = np.cumsum(fast_in | ~has_p)
        edges = pd.DataFrame(
            {
                "enters": fast_in,
                "leaves": has_n,
                "lat_b": lat.shift(1),
                "lon_b": lon.shift(1),
                "us_b": us.shift(1),
                "lat_a": lat.shift(-1),
                "lon_a": lon.shift(-1),
                "us_a": us.shift(-1),
                "us": us,
            }
        ).groupby(segment)
        first = edges[["enters", "lat_b", "lon_b", "us_b"]].transform("first")
        last = edges[["leaves", "lat_a", "lon_a", "us_a"]].transform("last")
        span_us = edges["us"].transform("max") - edges["us"].transform("min")
        skip = _haversine_km(first["lat_b"], first["lon_b"], last["lat_a"], last["lon_a"]) / (
            (last["us_a"] - first["us_b"]) / 3.6e9
        )
        step = (
            first["enters"].to_numpy()
            & last["leaves"].to_numpy()
            & (span_us <= max_step_minutes * 6e7).to_numpy()
            & (skip <= limit).to_numpy()
        )
        jump |= step
    return df[~jump].reset_index(drop=True)


def _debounced_occupied(df: pd.DataFrame, trips: TripRules) -> np.ndarray:
    """The meter without its flaps: short vacant gaps bridged, then too-short fares off."""
    has_p, has_n = _same(df, -1), _same(df, 1)
    us = df["us"]

    def runs(flag: np.ndarray):  # noqa: ANN202 - a pandas GroupBy
        new_run = ~has_p | (flag != np.roll(flag, 1))
        frame = pd.DataFrame(
            {
                "flag_before": np.roll(flag, 1) & has_p,
                "flag_after": np.roll(flag, -1) & has_n,
                "has_before": has_p,
                "has_after": has_n,
                "prev_us": us.shift(1),
                "next_us": us.shift(-1),
                "us": us,
            }
        )
        return frame.groupby(np.cumsum(new_run))

    occupied = (df["status"].astype(str) == "occupied").to_numpy()
    g = runs(occupied)
    gap_us = g["next_us"].transform("last") - g["prev_us"].transform("first")
    median_interval_us = us.diff().where(has_p).groupby(df["vehicle_id"]).transform("median")
    bridged = (
        ~occupied
        & (g["us"].transform("size") <= trips.max_vacant_gap_pings).to_numpy()
        & g["flag_before"].transform("first").to_numpy()
        & g["flag_after"].transform("last").to_numpy()
        & (gap_us <= trips.max_vacant_gap_intervals * median_interval_us).to_numpy()
    )
    occupied = occupied | bridged
    g = runs(occupied)
    fare_s = (g["next_us"].transform("last") - g["us"].transform("first")) / 1e6
    too_short = (g["us"].transform("size") < trips.min_fare_pings) | (
        fare_s < trips.min_fare_seconds
    )
    dropped = (
        occupied
        & g["has_before"].transform("first").to_numpy()
        & g["has_after"].transform("last").to_numpy()
        & too_short.to_numpy()
    )
    return occupied & ~dropped


def _mesh_code(lat: np.ndarray, lon: np.ndarray, area: ServiceArea) -> np.ndarray:
    level = area.mesh_level
    n = CELLS_PER_FIRST_MESH[level]
    row = np.floor(lat * rows_per_degree(level)).astype(np.int64)
    col = np.floor((lon - 100.0) * cols_per_degree(level)).astype(np.int64)
    r, c = row % n, col % n
    step2, step3, half = n // 8, n // 80, n // 160
    code = (row // n) * 100 + col // n
    code = code * 100 + (r // step2) * 10 + c // step2
    if level == "second":
        return code
    code = code * 100 + ((r % step2) // step3) * 10 + (c % step2) // step3
    if level == "third":
        return code
    code = code * 10 + 1 + (c % step3) // half + 2 * ((r % step3) // half)
    if level == "half":
        return code
    return code * 10 + 1 + c % 2 + 2 * (r % 2)


def pandas_cell_demand(
    raw: pd.DataFrame,
    day: date,
    area: ServiceArea,
    rules: CleaningRules = CleaningRules(),  # noqa: B008
    bucket_minutes: int = 15,
) -> pd.DataFrame:
    """cell_demand (cell, bucket_start, counts...) from a raw probes frame."""
    validate_bucket_minutes(bucket_minutes)
    start, end = day_window_utc(day)
    start_us, end_us = int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)
    df = raw[~raw.duplicated(RAW_COLUMNS, keep="first")]
    # numpy-backed pandas cannot tell NaN from null: a NaN lat/lon/speed counts as missing
    # here (the row is dropped either way), a NaN speed is kept (the simulator emits none).
    df = df.dropna(subset=["vehicle_id", "ts", "lat", "lon", "status"])
    speed, heading = df["speed_kmh"], df["heading"]
    invalid = (
        ~np.isfinite(df["lat"])
        | ~np.isfinite(df["lon"])
        | (speed < 0)
        | np.isinf(speed)
        | (heading < 0)
        | (heading > 360)
    )
    df = df[~invalid]
    df = df[~((df["lat"] == 0) & (df["lon"] == 0))]
    lat_min, lat_max, lon_min, lon_max = area.snapped_bounds
    inside = (
        (df["lat"] >= lat_min)
        & (df["lat"] < lat_max)
        & (df["lon"] >= lon_min)
        & (df["lon"] < lon_max)
    )
    df = df[inside].copy()
    df["us"] = df["ts"].astype("int64") // (1000 if df["ts"].dt.unit == "ns" else 1)
    outside_day = ~((df["us"] >= start_us) & (df["us"] < end_us))
    skew_share = outside_day.groupby(df["vehicle_id"]).transform("mean")
    df = df[(skew_share < rules.clock_skew_min_share) & ~outside_day]
    df = df[~df.duplicated(["vehicle_id", "us"], keep=False)]
    df = df.sort_values(["vehicle_id", "us"]).reset_index(drop=True)

    limit, detour = rules.max_implied_speed_kmh, rules.spike_detour_ratio
    df = _drop_jumps(df, limit, detour, None)
    df = _drop_jumps(df, limit, detour, rules.max_jump_run_minutes)

    status = df["status"].astype(str)
    new_run = ~_same(df, -1) | (status != status.shift(1)).to_numpy()
    run_id = np.cumsum(new_run)
    run_us = df["us"].groupby(run_id)
    run_minutes = (run_us.transform("max") - run_us.transform("min")) / 6e7
    stuck = ((status == "occupied") & (run_minutes > rules.max_occupied_minutes)) | (
        (status == "dispatched") & (run_minutes > rules.max_dispatched_minutes)
    )
    df = df[~stuck.to_numpy()].reset_index(drop=True)
    status = df["status"].astype(str)

    df["cell"] = _mesh_code(df["lat"].to_numpy(), df["lon"].to_numpy(), area)
    df["bucket"] = (df["us"] - start_us) // (bucket_minutes * 60_000_000)
    has_p = _same(df, -1)
    prev = status.shift(1).where(has_p)
    occupied = pd.Series(_debounced_occupied(df, rules.trips))
    was_occupied = occupied.shift(1, fill_value=False) & has_p
    gap_s = (df["us"] - df["us"].shift(1)) / 1e6
    # A pickup only when seen within the maximum gap after the last non-occupied ping.
    pickup = occupied & has_p & ~was_occupied & (gap_s <= rules.trips.max_pickup_gap_s)
    counts = (
        pd.DataFrame(
            {
                "cell": df["cell"],
                "bucket": df["bucket"],
                "street_hail_pickups": pickup & (prev == "vacant"),
                "app_booking_pickups": pickup & (prev == "dispatched"),
                "pickups": pickup,
                "dropoffs": ~occupied & was_occupied,
            }
        )
        .groupby(["cell", "bucket"])
        .sum()
    )
    supply = (
        df.assign(status=status)[status.isin(["vacant", "occupied"])]
        .groupby(["cell", "bucket", "status"])["vehicle_id"]
        .nunique()
        .unstack("status")
        .reindex(columns=["vacant", "occupied"])
        .rename(columns={"vacant": "vacant_taxis", "occupied": "occupied_taxis"})
    )
    n_buckets = 24 * 60 // bucket_minutes
    grid = pd.MultiIndex.from_product(
        [np.sort(area.cells()["cell"].to_numpy()), np.arange(n_buckets)], names=["cell", "bucket"]
    )
    out = counts.join(supply, how="outer").reindex(grid).fillna(0).astype("int32").reset_index()
    out["bucket_start"] = pd.to_datetime(
        start_us + out["bucket"].to_numpy() * bucket_minutes * 60_000_000, unit="us", utc=True
    )
    return out[
        [
            "cell",
            "bucket_start",
            "street_hail_pickups",
            "app_booking_pickups",
            "pickups",
            "dropoffs",
            "vacant_taxis",
            "occupied_taxis",
        ]
    ]
