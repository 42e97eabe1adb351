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


def _drop_single_jumps(df: pd.DataFrame, limit: float, pairs: bool) -> pd.DataFrame:
    has_p, has_n = _same(df, -1), _same(df, 1)
    fast_in = has_p & (_speed(df, -1, 0) > limit).to_numpy()
    fast_out = has_n & (_speed(df, 0, 1) > limit).to_numpy()
    jump = (fast_in & fast_out) | (~has_p & fast_out) | (~has_n & fast_in)
    if pairs:
        pair_start = (
            has_p
            & _same(df, 2)
            & (_speed(df, -1, 0) > limit).to_numpy()
            & (_speed(df, 1, 2) > limit).to_numpy()
            & (_speed(df, -1, 2) <= limit).to_numpy()
        )
        jump |= pair_start | np.concatenate([[False], pair_start[:-1]])
    return df[~jump].reset_index(drop=True)


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

    limit = rules.max_implied_speed_kmh
    df = _drop_single_jumps(df, limit, pairs=False)
    df = _drop_single_jumps(df, limit, pairs=True)

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
    prev = status.shift(1).where(_same(df, -1))
    occupied = status == "occupied"
    was_occupied = prev == "occupied"
    pickup = occupied & prev.notna() & ~was_occupied
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
