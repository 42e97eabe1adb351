"""The data path (raw probes -> cell_demand) as ONE SQL query, run here on DuckDB.

Written with plain window functions (LAG/LEAD, COUNT/AVG/MIN/MAX OVER, ROW_NUMBER) so it
ports to BigQuery; the few dialect-specific spellings are marked ``-- BigQuery:`` (sqlglot
can transpile them). The query applies the same rules, in the same order, as
``taxi_assets.cleaning.clean_probes`` + ``trips.derive_trips`` +
``demand.aggregate_cell_demand``. Only kept pings matter for cell_demand, so rejected rows
are simply filtered out here instead of being labelled.
"""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from taxi_assets.calendar import day_window_utc, validate_bucket_minutes
from taxi_assets.cleaning import EARTH_RADIUS_KM, CleaningRules
from taxi_assets.frames import CELL_DEMAND_SCHEMA
from taxi_assets.mesh import CELLS_PER_FIRST_MESH, cols_per_degree, rows_per_degree
from taxi_assets.service_area import ServiceArea


def _div(a: str, b: int) -> str:
    return f"(({a}) // {b})"  # BigQuery: DIV(a, b); operands are non-negative here


def mesh_code_sql(lat: str, lon: str, area: ServiceArea) -> str:
    """JIS X 0410 code of a point at the area's level, as SQL (mirrors mesh.mesh_code)."""
    level = area.mesh_level
    n = CELLS_PER_FIRST_MESH[level]
    row = f"CAST(FLOOR({lat} * {rows_per_degree(level)}) AS BIGINT)"
    col = f"CAST(FLOOR(({lon} - 100.0) * {cols_per_degree(level)}) AS BIGINT)"
    r, c = f"({row} % {n})", f"({col} % {n})"  # BigQuery: MOD(x, n)
    step2, step3, half = n // 8, n // 80, n // 160
    code = f"({_div(row, n)} * 100 + {_div(col, n)})"
    code = f"({code} * 100 + {_div(r, step2)} * 10 + {_div(c, step2)})"
    if level == "second":
        return code
    r2, c2 = f"({r} % {step2})", f"({c} % {step2})"
    code = f"({code} * 100 + {_div(r2, step3)} * 10 + {_div(c2, step3)})"
    if level == "third":
        return code
    r3, c3 = f"({r} % {step3})", f"({c} % {step3})"
    code = f"({code} * 10 + 1 + {_div(c3, half)} + 2 * {_div(r3, half)})"
    if level == "half":
        return code
    return f"({code} * 10 + 1 + ({c} % 2) + 2 * ({r} % 2))"


def _haversine_km(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    return (
        f"(2 * {EARTH_RADIUS_KM} * ASIN(SQRT("
        f"POWER(SIN(RADIANS({lat2} - {lat1}) / 2), 2) + COS(RADIANS({lat1})) * "
        f"COS(RADIANS({lat2})) * POWER(SIN(RADIANS({lon2} - {lon1}) / 2), 2))))"
    )


def _speed(a: str, b: str) -> str:
    """Implied km/h between the pings whose columns carry suffixes ``a`` and ``b``."""
    km = _haversine_km(f"lat{a}", f"lon{a}", f"lat{b}", f"lon{b}")
    return f"({km} / ((us{b} - us{a}) / 3600000000.0))"


def data_path_sql(
    day: date,
    area: ServiceArea,
    rules: CleaningRules = CleaningRules(),  # noqa: B008 - frozen dataclass
    bucket_minutes: int = 15,
) -> str:
    """The query: reads table ``probes`` (RAW_PROBES_SCHEMA) and ``cells`` (column ``cell``)."""
    validate_bucket_minutes(bucket_minutes)
    start, end = day_window_utc(day)
    start_us, end_us = int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000
    width_us = bucket_minutes * 60 * 1_000_000
    n_buckets = 24 * 60 // bucket_minutes
    lat_min, lat_max, lon_min, lon_max = area.snapped_bounds
    limit = rules.max_implied_speed_kmh
    cols = "vehicle_id, ts, us, lat, lon, status"
    trips, detour = rules.trips, rules.spike_detour_ratio
    neighbours = (
        "LAG(lat) OVER w AS lat_p, LAG(lon) OVER w AS lon_p, LAG(us) OVER w AS us_p, "
        "LEAD(lat) OVER w AS lat_n, LEAD(lon) OVER w AS lon_n, LEAD(us) OVER w AS us_n"
    )
    distances = (
        f"us_p IS NOT NULL AS has_p, us_n IS NOT NULL AS has_n, "
        f"{_haversine_km('lat_p', 'lon_p', 'lat', 'lon')} AS km_in, "
        f"{_speed('_p', '')} AS speed_in, "
        f"{_haversine_km('lat_p', 'lon_p', 'lat_n', 'lon_n')} AS skip_km, "
        f"{_speed('_p', '_n')} AS skip_speed"
    )
    single = "((fast_in AND fast_out) OR (NOT has_p AND fast_out) OR (NOT has_n AND fast_in))"
    off_track = (
        f"COALESCE(has_p AND has_n AND (fast_in OR fast_out) AND km_in + km_out > "
        f"{detour!r} * skip_km AND skip_speed <= {limit}, FALSE)"
    )
    w = "WINDOW w AS (PARTITION BY vehicle_id ORDER BY us)"
    return f"""
WITH
numbered AS (
  SELECT *,
    epoch_us(ts) AS us,  -- BigQuery: UNIX_MICROS(ts)
    ROW_NUMBER() OVER (
      PARTITION BY vehicle_id, ts, lat, lon, speed_kmh, heading, status) AS copy_no
  FROM probes
),
row_ok AS (  -- duplicate, missing_value, invalid_value, zero_coordinates, outside_service_area
  SELECT {cols} FROM numbered
  WHERE copy_no = 1
    AND vehicle_id IS NOT NULL AND ts IS NOT NULL AND lat IS NOT NULL AND lon IS NOT NULL
    AND status IS NOT NULL
    -- BigQuery: IS_NAN / IS_INF
    AND isfinite(lat) AND isfinite(lon)
    AND NOT COALESCE(speed_kmh < 0 OR isnan(speed_kmh) OR isinf(speed_kmh), FALSE)
    AND NOT COALESCE(isnan(heading) OR heading < 0 OR heading > 360, FALSE)
    AND NOT (lat = 0 AND lon = 0)
    AND lat >= {lat_min!r} AND lat < {lat_max!r} AND lon >= {lon_min!r} AND lon < {lon_max!r}
),
vehicle_day AS (
  SELECT {cols},
    AVG(CASE WHEN us >= {start_us} AND us < {end_us} THEN 0.0 ELSE 1.0 END)
      OVER (PARTITION BY vehicle_id) AS outside_share,
    COUNT(*) OVER (PARTITION BY vehicle_id, us) AS same_ts
  FROM row_ok
),
day_ok AS (  -- clock_skew, outside_day, conflicting_duplicate
  SELECT {cols} FROM vehicle_day
  WHERE outside_share < {rules.clock_skew_min_share!r}
    AND us >= {start_us} AND us < {end_us} AND same_ts = 1
),
jump1_n AS (
  SELECT {cols}, {neighbours}
  FROM day_ok {w}
),
jump1_v AS (
  SELECT {cols}, {distances}
  FROM jump1_n
),
jump1_f AS (
  SELECT {cols}, has_p, has_n, km_in, skip_km, skip_speed,
    COALESCE(speed_in > {limit}, FALSE) AS fast_in,
    COALESCE(LEAD(speed_in) OVER w > {limit}, FALSE) AS fast_out,
    LEAD(km_in) OVER w AS km_out
  FROM jump1_v {w}
),
jump1_ok AS (  -- gps_jump, first pass: single-ping spikes
  SELECT {cols} FROM jump1_f WHERE NOT ({single} OR {off_track})
),
jump2_n AS (
  SELECT {cols}, {neighbours}
  FROM jump1_ok {w}
),
jump2_v AS (
  SELECT {cols}, lat_p, lon_p, us_p, lat_n, lon_n, us_n, {distances}
  FROM jump2_n
),
jump2_f AS (
  SELECT *,
    COALESCE(speed_in > {limit}, FALSE) AS fast_in,
    COALESCE(LEAD(speed_in) OVER w > {limit}, FALSE) AS fast_out,
    LEAD(km_in) OVER w AS km_out
  FROM jump2_v {w}
),
jump2_seg AS (  -- fast moves cut each track into segments (GPS steps)
  SELECT *, SUM(CASE WHEN fast_in OR NOT has_p THEN 1 ELSE 0 END)
    OVER (PARTITION BY vehicle_id ORDER BY us ROWS UNBOUNDED PRECEDING) AS segment
  FROM jump2_f
),
jump2_step AS (
  SELECT *,
    FIRST_VALUE(fast_in) OVER seg AS enters_fast, LAST_VALUE(has_n) OVER seg AS leaves_fast,
    FIRST_VALUE(lat_p) OVER seg AS lat_b, FIRST_VALUE(lon_p) OVER seg AS lon_b,
    FIRST_VALUE(us_p) OVER seg AS us_b, LAST_VALUE(lat_n) OVER seg AS lat_a,
    LAST_VALUE(lon_n) OVER seg AS lon_a, LAST_VALUE(us_n) OVER seg AS us_a,
    MAX(us) OVER seg - MIN(us) OVER seg AS span_us
  FROM jump2_seg
  WINDOW seg AS (PARTITION BY vehicle_id, segment ORDER BY us
    ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
),
jump2_ok AS (  -- gps_jump, second pass: single spikes again, and GPS steps
  SELECT {cols} FROM jump2_step
  WHERE NOT ({single} OR {off_track} OR COALESCE(enters_fast AND leaves_fast
    AND span_us <= {rules.max_jump_run_minutes * 60_000_000!r}
    AND {_speed("_b", "_a")} <= {limit}, FALSE))
),
run_starts AS (
  SELECT {cols},
    CASE WHEN LAG(status) OVER w = status THEN 0 ELSE 1 END AS new_run
  FROM jump2_ok {w}
),
runs AS (
  SELECT {cols},
    SUM(new_run) OVER (PARTITION BY vehicle_id ORDER BY us ROWS UNBOUNDED PRECEDING) AS run_id
  FROM run_starts
),
run_spans AS (
  SELECT {cols},
    (MAX(us) OVER (PARTITION BY vehicle_id, run_id)
      - MIN(us) OVER (PARTITION BY vehicle_id, run_id)) / 60000000.0 AS run_minutes
  FROM runs
),
clean AS (  -- stuck_status; then the mesh cell and the bucket of every kept ping
  SELECT vehicle_id, us, status,
    {mesh_code_sql("lat", "lon", area)} AS cell,
    (us - {start_us}) // {width_us} AS bucket  -- BigQuery: DIV(...)
  FROM run_spans
  WHERE NOT ((status = 'occupied' AND run_minutes > {rules.max_occupied_minutes!r})
    OR (status = 'dispatched' AND run_minutes > {rules.max_dispatched_minutes!r}))
),
flags AS (  -- trips.debounce_meter: the meter as read, with its neighbours
  SELECT vehicle_id, us, status, cell, bucket, status = 'occupied' AS raw_occ,
    LAG(us) OVER w IS NULL AS first_ping, LEAD(us) OVER w AS next_us, LAG(us) OVER w AS prev_us,
    COALESCE(LAG(status) OVER w = 'occupied', FALSE) AS occ_before,
    COALESCE(LEAD(status) OVER w = 'occupied', FALSE) AS occ_after
  FROM clean {w}
),
gap_runs AS (
  SELECT *, SUM(CASE WHEN first_ping OR raw_occ <> occ_before THEN 1 ELSE 0 END)
    OVER (PARTITION BY vehicle_id ORDER BY us ROWS UNBOUNDED PRECEDING) AS gap_run,
    QUANTILE_CONT(us - prev_us, 0.5) OVER (PARTITION BY vehicle_id) AS median_interval_us
  FROM flags
),
bridged AS (  -- a short vacant run between occupied pings is the meter flapping
  SELECT vehicle_id, us, status, cell, bucket, first_ping, next_us,
    raw_occ OR COALESCE(COUNT(*) OVER g <= {trips.max_vacant_gap_pings}
      AND FIRST_VALUE(occ_before) OVER g AND LAST_VALUE(occ_after) OVER g
      AND LAST_VALUE(next_us) OVER g - FIRST_VALUE(prev_us) OVER g
        <= {trips.max_vacant_gap_intervals!r} * median_interval_us, FALSE) AS b_occ
  FROM gap_runs
  WINDOW g AS (PARTITION BY vehicle_id, gap_run ORDER BY us
    ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
),
fare_runs AS (
  SELECT *, SUM(CASE WHEN first_ping OR b_occ <> b_occ_before THEN 1 ELSE 0 END)
    OVER (PARTITION BY vehicle_id ORDER BY us ROWS UNBOUNDED PRECEDING) AS fare_run
  FROM (SELECT *, COALESCE(LAG(b_occ) OVER w, FALSE) AS b_occ_before FROM bridged {w})
),
debounced AS (  -- an occupied run too short to be a fare is the meter flapping
  SELECT vehicle_id, us, status, cell, bucket,
    b_occ AND NOT COALESCE(LAST_VALUE(next_us) OVER f IS NOT NULL
      AND MAX(CASE WHEN first_ping THEN 1 ELSE 0 END) OVER f = 0
      AND (COUNT(*) OVER f < {trips.min_fare_pings}
        OR (LAST_VALUE(next_us) OVER f - MIN(us) OVER f) / 1000000
          < {trips.min_fare_seconds!r}), FALSE) AS occ
  FROM fare_runs
  WINDOW f AS (PARTITION BY vehicle_id, fare_run ORDER BY us
    ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
),
transitions AS (  -- a pickup only when seen within the maximum gap
  SELECT cell, bucket, LAG(status) OVER w AS prev_status,
    occ AND NOT COALESCE(LAG(occ) OVER w, FALSE) AND LAG(us) OVER w IS NOT NULL
      AND (us - LAG(us) OVER w) / 1000000 <= {trips.max_pickup_gap_s!r} AS pickup,
    NOT occ AND COALESCE(LAG(occ) OVER w, FALSE) AS dropoff
  FROM debounced {w}
),
events AS (
  SELECT cell, bucket,
    SUM(CASE WHEN pickup AND prev_status = 'vacant' THEN 1 ELSE 0 END) AS street_hail_pickups,
    SUM(CASE WHEN pickup AND prev_status = 'dispatched' THEN 1 ELSE 0 END)
      AS app_booking_pickups,
    SUM(CASE WHEN pickup THEN 1 ELSE 0 END) AS pickups,
    SUM(CASE WHEN dropoff THEN 1 ELSE 0 END) AS dropoffs
  FROM transitions
  GROUP BY cell, bucket
),
supply AS (
  SELECT cell, bucket,
    COUNT(DISTINCT CASE WHEN status = 'vacant' THEN vehicle_id END) AS vacant_taxis,
    COUNT(DISTINCT CASE WHEN status = 'occupied' THEN vehicle_id END) AS occupied_taxis
  FROM clean
  GROUP BY cell, bucket
),
grid AS (
  SELECT cells.cell, buckets.range AS bucket
  FROM cells CROSS JOIN range(0, {n_buckets}) AS buckets  -- BigQuery: UNNEST(GENERATE_ARRAY)
)
SELECT grid.cell,
  make_timestamp({start_us} + grid.bucket * {width_us}) AS bucket_start,  -- UTC
  COALESCE(events.street_hail_pickups, 0) AS street_hail_pickups,
  COALESCE(events.app_booking_pickups, 0) AS app_booking_pickups,
  COALESCE(events.pickups, 0) AS pickups,
  COALESCE(events.dropoffs, 0) AS dropoffs,
  COALESCE(supply.vacant_taxis, 0) AS vacant_taxis,
  COALESCE(supply.occupied_taxis, 0) AS occupied_taxis
FROM grid
LEFT JOIN events ON events.cell = grid.cell AND events.bucket = grid.bucket
LEFT JOIN supply ON supply.cell = grid.cell AND supply.bucket = grid.bucket
ORDER BY grid.cell, bucket_start
"""


def duckdb_cell_demand(
    con: duckdb.DuckDBPyConnection, day: date, area: ServiceArea, bucket_minutes: int = 15
) -> pl.DataFrame:
    """Run the query on a connection holding a ``probes`` table; CELL_DEMAND_SCHEMA out."""
    con.register("cells", area.cells().select("cell").to_arrow())
    result = pl.from_arrow(
        con.sql(data_path_sql(day, area, bucket_minutes=bucket_minutes)).to_arrow_table()
    )
    return result.with_columns(pl.col("bucket_start").dt.replace_time_zone("UTC")).cast(
        dict(CELL_DEMAND_SCHEMA)
    )
