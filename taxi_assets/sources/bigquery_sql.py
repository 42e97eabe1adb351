"""The BigQuery Standard SQL of the BigQuery probe source, as text with ``@name`` parameters.

``CELL_DEMAND_SQL`` is the whole data path from one day of raw probes to cell demand,
pushed down into BigQuery: the cleaning rules of ``taxi_assets.cleaning.clean_probes`` in
the same order and with the same "later rules see only the pings earlier rules kept"
semantics, the debounced pickups and drop-offs of ``taxi_assets.trips.derive_trips`` and the
dense grid of ``taxi_assets.demand.aggregate_cell_demand``. Only kept pings matter for
cell demand, so a rule's rejected pings are filtered out here rather than labelled.

Every value (the day, the day's UTC window, the service area, the thresholds, the bucket
width, the area's cells) is a query parameter. The only text spliced in is the table
name, which BigQuery cannot take as a parameter; ``BigQueryProbeSource`` validates it
first. The SQL lives in a module rather than a ``.sql`` file because package data is
declared per file pattern in pyproject.toml, and a module ships with the package as is.

Two spellings are deliberate. ``DIV(a, b)`` is always wrapped in parentheses with plain
column or parameter arguments: sqlglot 30 transpiles it to DuckDB's ``a // b`` without
parentheses, which would bind wrongly inside a larger expression (``2 * DIV(a, b)``
becomes ``2 * a // b``). And the haversine is written term by term as in
``cleaning.haversine_km`` (degrees times the float64 pi/180, the squares, the products in
the same order), so both paths round alike and agree at the 150 km/h threshold.
"""

from __future__ import annotations

from taxi_assets.cleaning import EARTH_RADIUS_KM, CleaningRules

# The float64 nearest pi/180, the factor Polars' radians() (Rust's to_radians) multiplies
# by; BigQuery has no RADIANS function.
RADIANS_PER_DEGREE = "0.017453292519943295"
_US_PER_HOUR = 3_600_000_000
_US_PER_MINUTE = 60_000_000

PROBE_TABLE_PLACEHOLDER = "{probes_table}"
WEATHER_TABLE_PLACEHOLDER = "{weather_table}"

# One day of the table as delivered: the partition filter on service_day prunes the scan
# to that day's partition. Every column but the partition column, so that a missing or
# mistyped column is reported by name after the read rather than as a query error.
READ_PROBES_SQL = f"""
SELECT * EXCEPT (service_day)
FROM `{PROBE_TABLE_PLACEHOLDER}`
WHERE service_day = @day
"""

# Weather is an hourly series partitioned by DAY on hour_start (UTC): the range filter on
# the partitioning column prunes to the two UTC dates a Tokyo day spans.
READ_WEATHER_SQL = f"""
SELECT hour_start, rain_mm_per_h
FROM `{WEATHER_TABLE_PLACEHOLDER}`
WHERE hour_start >= @day_start AND hour_start < @day_end
ORDER BY hour_start
"""

# The live tick's read (``ProbeSource.read_probes_window``, ``sources.base.LookBack``): of the
# day's partition, the pings stamped in [@start, @end), and for every vehicle silent at
# @start (its first ping from @start on comes more than @silence_us after it) its earlier
# pings from @margin_us before its last ping before @start. The partition is scanned (a
# time filter does not prune a partition clustered by vehicle), but only those rows are
# pulled: hours of pings, not the day so far.
READ_PROBES_WINDOW_SQL = f"""
WITH seen AS (
  SELECT * EXCEPT (service_day)
  FROM `{PROBE_TABLE_PLACEHOLDER}`
  WHERE service_day = @day AND ts < @end
),
silent AS (
  SELECT
    vehicle_id,
    MAX(IF(ts < @start, UNIX_MICROS(ts), NULL)) - @margin_us AS read_from_us
  FROM seen
  WHERE vehicle_id IS NOT NULL
  GROUP BY vehicle_id
  HAVING MAX(IF(ts < @start, UNIX_MICROS(ts), NULL)) IS NOT NULL
    AND MIN(IF(ts >= @start, UNIX_MICROS(ts), NULL)) - UNIX_MICROS(@start) > @silence_us
)
SELECT seen.*
FROM seen
LEFT JOIN silent ON seen.vehicle_id = silent.vehicle_id
WHERE seen.ts >= @start OR UNIX_MICROS(seen.ts) >= silent.read_from_us
"""


def _haversine_km(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    """SQL of ``cleaning.haversine_km``, operation for operation."""
    half_dlat = f"(({lat2} - {lat1}) * {RADIANS_PER_DEGREE} / 2)"
    half_dlon = f"(({lon2} - {lon1}) * {RADIANS_PER_DEGREE} / 2)"
    a = (
        f"(POW(SIN({half_dlat}), 2) + COS({lat1} * {RADIANS_PER_DEGREE}) "
        f"* COS({lat2} * {RADIANS_PER_DEGREE}) * POW(SIN({half_dlon}), 2))"
    )
    return f"({2 * EARTH_RADIUS_KM!r} * ASIN(SQRT({a})))"


def _implied_speed_kmh(a: str, b: str) -> str:
    """SQL of the speed from the ping whose columns end in ``a`` to the one ending in ``b``."""
    km = _haversine_km(f"lat{a}", f"lon{a}", f"lat{b}", f"lon{b}")
    return f"({km} / ((us{b} - us{a}) / {_US_PER_HOUR}))"


_KEPT = "vehicle_id, us, lat, lon, status"
_BY_VEHICLE = "WINDOW w AS (PARTITION BY vehicle_id ORDER BY us)"
# cleaning._single_jump: too fast in and out, or on the only side at either end of a track.
_SINGLE_JUMP = "(fast_in AND fast_out) OR (NOT has_prev AND fast_out) OR (NOT has_next AND fast_in)"
# cleaning._single_jump's second form: fast on one side, far off its neighbours' track.
_OFF_TRACK = (
    "COALESCE(has_prev AND has_next AND (fast_in OR fast_out) "
    "AND km_in + km_out > @spike_detour_ratio * skip_km "
    "AND skip_speed <= @max_implied_speed_kmh, FALSE)"
)
_NEIGHBOURS = (
    "LAG(lat) OVER w AS lat_p, LAG(lon) OVER w AS lon_p, LAG(us) OVER w AS us_p, "
    "LEAD(lat) OVER w AS lat_n, LEAD(lon) OVER w AS lon_n, LEAD(us) OVER w AS us_n"
)
# cleaning._with_speed_in and the skip of _single_jump, operation for operation.
_DISTANCES = (
    f"us_p IS NOT NULL AS has_prev, us_n IS NOT NULL AS has_next, "
    f"{_haversine_km('lat_p', 'lon_p', 'lat', 'lon')} AS km_in, "
    f"{_implied_speed_kmh('_p', '')} AS speed_in, "
    f"{_haversine_km('lat_p', 'lon_p', 'lat_n', 'lon_n')} AS skip_km, "
    f"{_implied_speed_kmh('_p', '_n')} AS skip_speed"
)
_RUN = "(PARTITION BY vehicle_id, run_id)"
_WHOLE = "ORDER BY us ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING"
_SEGMENT = f"(PARTITION BY vehicle_id, segment {_WHOLE})"
_GAP_RUN = f"(PARTITION BY vehicle_id, gap_run {_WHOLE})"
_FARE_RUN = f"(PARTITION BY vehicle_id, fare_run {_WHOLE})"


def physics_parameter_values(rules: CleaningRules) -> list[tuple[str, str, float | int]]:
    """(name, BigQuery type, value) of the real-feed rules: GPS steps and the trip rules."""
    trips = rules.trips
    return [
        ("max_jump_run_minutes", "FLOAT64", rules.max_jump_run_minutes),
        ("spike_detour_ratio", "FLOAT64", rules.spike_detour_ratio),
        ("max_vacant_gap_pings", "INT64", trips.max_vacant_gap_pings),
        ("max_vacant_gap_intervals", "FLOAT64", trips.max_vacant_gap_intervals),
        ("min_fare_pings", "INT64", trips.min_fare_pings),
        ("min_fare_seconds", "FLOAT64", trips.min_fare_seconds),
        ("max_pickup_gap_s", "FLOAT64", trips.max_pickup_gap_s),
    ]


CELL_DEMAND_SQL = f"""
-- One Tokyo day of raw probes to cell demand: every cell of the service area x every
-- bucket of the day, zeros included. Mirrors clean_probes + derive_trips +
-- aggregate_cell_demand; each CTE keeps the pings the previous rules kept.
WITH
distinct_pings AS (  -- duplicate: exact copies collapse to the one copy cleaning keeps
  SELECT DISTINCT vehicle_id, ts, lat, lon, speed_kmh, heading, status
  FROM `{PROBE_TABLE_PLACEHOLDER}`
  WHERE service_day = @day
),
statuses AS (  -- the status_mapping setting: the feed's words (case-insensitive) mapped
  SELECT *,
    CASE
      WHEN LOWER(TRIM(CAST(status AS STRING), ' ')) IN UNNEST(@vacant_words) THEN 'vacant'
      WHEN LOWER(TRIM(CAST(status AS STRING), ' ')) IN UNNEST(@occupied_words) THEN 'occupied'
      WHEN LOWER(TRIM(CAST(status AS STRING), ' ')) IN UNNEST(@dispatched_words)
        THEN 'dispatched'
      WHEN LOWER(TRIM(CAST(status AS STRING), ' ')) IN UNNEST(@off_duty_words) THEN 'off_duty'
    END AS probe_status
  FROM distinct_pings
),
row_ok AS (  -- missing_value, invalid_value, unknown_status, zero_coordinates,
             -- outside_service_area
  SELECT vehicle_id, UNIX_MICROS(ts) AS us, lat, lon, probe_status AS status
  FROM statuses
  WHERE vehicle_id IS NOT NULL AND ts IS NOT NULL AND lat IS NOT NULL AND lon IS NOT NULL
    AND speed_kmh IS NOT NULL AND heading IS NOT NULL AND status IS NOT NULL
    AND NOT COALESCE(
      IS_NAN(lat) OR IS_INF(lat) OR IS_NAN(lon) OR IS_INF(lon)
      OR speed_kmh < 0 OR IS_NAN(speed_kmh) OR IS_INF(speed_kmh) OR speed_kmh > @max_speed_kmh
      OR heading < 0 OR heading > 360 OR IS_NAN(heading)
      OR CHAR_LENGTH(CAST(vehicle_id AS STRING)) < 1
      OR CHAR_LENGTH(CAST(vehicle_id AS STRING)) > @max_vehicle_id_chars
      OR REGEXP_CONTAINS(CAST(vehicle_id AS STRING), @not_a_clean_vehicle_id)
      OR REGEXP_CONTAINS(CAST(vehicle_id AS STRING), @placeholder_vehicle_id), FALSE)
    AND probe_status IS NOT NULL
    AND NOT (lat = 0 AND lon = 0)
    AND lat >= @area_lat_min AND lat < @area_lat_max
    AND lon >= @area_lon_min AND lon < @area_lon_max
),
day_flags AS (
  SELECT {_KEPT},
    us < UNIX_MICROS(@day_start) OR us >= UNIX_MICROS(@day_end) AS outside_day,
    -- the share among pings still alive: rows already rejected say nothing of the clock
    COUNTIF(us < UNIX_MICROS(@day_start) OR us >= UNIX_MICROS(@day_end))
      OVER (PARTITION BY vehicle_id) / COUNT(*) OVER (PARTITION BY vehicle_id)
      AS outside_day_share,
    COUNT(*) OVER (PARTITION BY vehicle_id, us) AS pings_at_instant
  FROM row_ok
),
day_ok AS (  -- clock_skew, outside_day, conflicting_duplicate
  SELECT {_KEPT} FROM day_flags
  WHERE outside_day_share < @clock_skew_min_share AND NOT outside_day
    AND pings_at_instant = 1
),
jump1_prev AS (
  SELECT {_KEPT}, {_NEIGHBOURS}
  FROM day_ok {_BY_VEHICLE}
),
jump1_speed AS (
  SELECT {_KEPT}, {_DISTANCES}
  FROM jump1_prev
),
jump1_flags AS (
  SELECT {_KEPT}, has_prev, has_next,
    COALESCE(speed_in > @max_implied_speed_kmh, FALSE) AS fast_in,
    COALESCE(LEAD(speed_in) OVER w > @max_implied_speed_kmh, FALSE) AS fast_out,
    LEAD(km_in) OVER w AS km_out, km_in, skip_km, skip_speed
  FROM jump1_speed {_BY_VEHICLE}
),
jump1_ok AS (  -- gps_jump, first pass: single-ping spikes
  SELECT {_KEPT} FROM jump1_flags WHERE NOT ({_SINGLE_JUMP} OR {_OFF_TRACK})
),
jump2_prev AS (
  SELECT {_KEPT}, {_NEIGHBOURS}
  FROM jump1_ok {_BY_VEHICLE}
),
jump2_speed AS (
  SELECT {_KEPT}, lat_p, lon_p, us_p, {_DISTANCES}
  FROM jump2_prev
),
jump2_edges AS (
  SELECT {_KEPT}, lat_p, lon_p, us_p, has_prev, has_next,
    COALESCE(speed_in > @max_implied_speed_kmh, FALSE) AS fast_in,
    COALESCE(LEAD(speed_in) OVER w > @max_implied_speed_kmh, FALSE) AS fast_out,
    LEAD(km_in) OVER w AS km_out, km_in, skip_km, skip_speed,
    LEAD(lat) OVER w AS lat_n, LEAD(lon) OVER w AS lon_n, LEAD(us) OVER w AS us_n
  FROM jump2_speed {_BY_VEHICLE}
),
jump2_segments AS (  -- cleaning._step_jump: fast moves cut a track into segments
  SELECT *, SUM(IF(fast_in OR NOT has_prev, 1, 0)) OVER (PARTITION BY vehicle_id ORDER BY us
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS segment
  FROM jump2_edges
),
jump2_steps AS (
  SELECT {_KEPT}, has_prev, has_next, fast_in, fast_out, km_in, km_out, skip_km, skip_speed,
    FIRST_VALUE(fast_in) OVER {_SEGMENT} AS enters_fast,
    LAST_VALUE(has_next) OVER {_SEGMENT} AS leaves_fast,
    FIRST_VALUE(lat_p) OVER {_SEGMENT} AS lat_b, FIRST_VALUE(lon_p) OVER {_SEGMENT} AS lon_b,
    FIRST_VALUE(us_p) OVER {_SEGMENT} AS us_b,
    LAST_VALUE(lat_n) OVER {_SEGMENT} AS lat_a, LAST_VALUE(lon_n) OVER {_SEGMENT} AS lon_a,
    LAST_VALUE(us_n) OVER {_SEGMENT} AS us_a,
    MAX(us) OVER {_SEGMENT} - MIN(us) OVER {_SEGMENT} AS span_us
  FROM jump2_segments
),
jump2_ok AS (  -- gps_jump, second pass: against the kept neighbours, and GPS steps
  SELECT {_KEPT} FROM jump2_steps
  WHERE NOT ({_SINGLE_JUMP} OR {_OFF_TRACK} OR COALESCE(enters_fast AND leaves_fast
    AND span_us <= @max_jump_run_minutes * {_US_PER_MINUTE}
    AND {_implied_speed_kmh("_b", "_a")} <= @max_implied_speed_kmh, FALSE))
),
run_starts AS (
  SELECT {_KEPT}, COALESCE(LAG(status) OVER w != status, TRUE) AS starts_run
  FROM jump2_ok {_BY_VEHICLE}
),
runs AS (
  SELECT {_KEPT},
    SUM(IF(starts_run, 1, 0)) OVER (PARTITION BY vehicle_id ORDER BY us
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS run_id
  FROM run_starts
),
run_spans AS (
  SELECT {_KEPT},
    (MAX(us) OVER {_RUN} - MIN(us) OVER {_RUN}) / {_US_PER_MINUTE} AS run_minutes
  FROM runs
),
clean AS (  -- stuck_status; what is left are the clean probes
  SELECT vehicle_id, us, status,
    CAST(FLOOR(lat * @mesh_rows_per_degree) AS INT64) AS mesh_row,
    CAST(FLOOR((lon - 100.0) * @mesh_cols_per_degree) AS INT64) AS mesh_col,
    us - UNIX_MICROS(@day_start) AS us_into_day
  FROM run_spans
  WHERE NOT ((status = 'occupied' AND run_minutes > @max_occupied_minutes)
    OR (status = 'dispatched' AND run_minutes > @max_dispatched_minutes))
),
mesh_digits AS (  -- mesh.mesh_code_from_index; the area is north-east of (0, 100), so >= 0
  SELECT vehicle_id, us, status, us_into_day,
    (DIV(mesh_row, @mesh_cells_per_first)) * 100 + (DIV(mesh_col, @mesh_cells_per_first))
      AS first_mesh,
    MOD(mesh_row, @mesh_cells_per_first) AS r, MOD(mesh_col, @mesh_cells_per_first) AS c
  FROM clean
),
mesh_codes AS (
  SELECT vehicle_id, us, status, us_into_day,
    first_mesh * 100 + (DIV(r, @mesh_step_second)) * 10 + (DIV(c, @mesh_step_second))
      AS second_code,
    MOD(r, @mesh_step_second) AS r2, MOD(c, @mesh_step_second) AS c2,
    MOD(r, @mesh_step_third) AS r3, MOD(c, @mesh_step_third) AS c3, r, c
  FROM mesh_digits
),
mesh_levels AS (
  SELECT vehicle_id, us, status, us_into_day, second_code,
    second_code * 100 + (DIV(r2, @mesh_step_third)) * 10 + (DIV(c2, @mesh_step_third))
      AS third_code,
    1 + (DIV(c3, @mesh_step_half)) + (DIV(r3, @mesh_step_half)) * 2 AS half_digit,
    1 + MOD(c, 2) + MOD(r, 2) * 2 AS quarter_digit
  FROM mesh_codes
),
clean_cells AS (
  SELECT vehicle_id, us, status,
    CASE @mesh_level
      WHEN 'second' THEN second_code
      WHEN 'third' THEN third_code
      WHEN 'half' THEN third_code * 10 + half_digit
      ELSE (third_code * 10 + half_digit) * 10 + quarter_digit
    END AS cell,
    (DIV(us_into_day, @bucket_us)) AS bucket
  FROM mesh_levels
),
trip_flags AS (  -- trips.debounce_meter: the meter as read, with its neighbours
  SELECT vehicle_id, us, status, cell, bucket, status = 'occupied' AS raw_occ,
    LAG(us) OVER w IS NULL AS first_ping, LEAD(us) OVER w AS next_us, LAG(us) OVER w AS prev_us,
    COALESCE(LAG(status) OVER w = 'occupied', FALSE) AS raw_occ_before,
    COALESCE(LEAD(status) OVER w = 'occupied', FALSE) AS raw_occ_after
  FROM clean_cells {_BY_VEHICLE}
),
gap_runs AS (
  SELECT *, SUM(IF(first_ping OR raw_occ != raw_occ_before, 1, 0)) OVER (PARTITION BY vehicle_id
    ORDER BY us ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS gap_run,
    -- the vehicle's own clock: the median time between its consecutive pings
    PERCENTILE_CONT(us - prev_us, 0.5) OVER (PARTITION BY vehicle_id) AS median_interval_us
  FROM trip_flags
),
bridged AS (  -- a vacant run this short between occupied runs is the meter flapping
  SELECT vehicle_id, us, status, cell, bucket, first_ping, next_us,
    raw_occ OR COALESCE(COUNT(*) OVER {_GAP_RUN} <= @max_vacant_gap_pings
      AND FIRST_VALUE(raw_occ_before) OVER {_GAP_RUN} AND LAST_VALUE(raw_occ_after) OVER {_GAP_RUN}
      AND LAST_VALUE(next_us) OVER {_GAP_RUN} - FIRST_VALUE(prev_us) OVER {_GAP_RUN}
        <= @max_vacant_gap_intervals * median_interval_us, FALSE) AS bridged_occ
  FROM gap_runs
),
fare_runs AS (
  SELECT *, SUM(IF(first_ping OR bridged_occ != bridged_occ_before, 1, 0)) OVER (
    PARTITION BY vehicle_id ORDER BY us ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    AS fare_run
  FROM (SELECT *, COALESCE(LAG(bridged_occ) OVER w, FALSE) AS bridged_occ_before
    FROM bridged {_BY_VEHICLE})
),
fare_spans AS (
  SELECT vehicle_id, us, status, cell, bucket, bridged_occ,
    COUNT(*) OVER {_FARE_RUN} AS fare_pings, MIN(us) OVER {_FARE_RUN} AS fare_first_us,
    LAST_VALUE(next_us) OVER {_FARE_RUN} AS fare_next_us,
    MAX(IF(first_ping, 1, 0)) OVER {_FARE_RUN} = 1 AS starts_vehicle
  FROM fare_runs
),
debounced AS (  -- an occupied run too short to be a fare is the meter flapping
  SELECT vehicle_id, us, status, cell, bucket,
    bridged_occ AND NOT COALESCE(fare_next_us IS NOT NULL AND NOT starts_vehicle
      AND (fare_pings < @min_fare_pings
        OR (fare_next_us - fare_first_us) / 1000000 < @min_fare_seconds), FALSE) AS occ
  FROM fare_spans
),
transitions AS (  -- derive_trips: a pickup only when seen within the maximum gap
  SELECT cell, bucket, LAG(status) OVER w AS prev_status,
    occ AND NOT COALESCE(LAG(occ) OVER w, FALSE) AND LAG(us) OVER w IS NOT NULL
      AND (us - LAG(us) OVER w) / 1000000 <= @max_pickup_gap_s AS pickup,
    NOT occ AND COALESCE(LAG(occ) OVER w, FALSE) AS dropoff
  FROM debounced {_BY_VEHICLE}
),
events AS (
  SELECT cell, bucket,
    COUNTIF(pickup AND prev_status = 'vacant') AS street_hail_pickups,
    COUNTIF(pickup AND prev_status = 'dispatched') AS app_booking_pickups,
    COUNTIF(pickup) AS pickups,
    COUNTIF(dropoff) AS dropoffs
  FROM transitions
  GROUP BY cell, bucket
),
supply AS (
  SELECT cell, bucket,
    COUNT(DISTINCT IF(status = 'vacant', vehicle_id, NULL)) AS vacant_taxis,
    COUNT(DISTINCT IF(status = 'occupied', vehicle_id, NULL)) AS occupied_taxis
  FROM clean_cells
  GROUP BY cell, bucket
),
grid AS (
  SELECT cell, bucket
  FROM UNNEST(@area_cells) AS cell
  CROSS JOIN UNNEST(GENERATE_ARRAY(0, @buckets_per_day - 1)) AS bucket
)
SELECT grid.cell,
  TIMESTAMP_MICROS(UNIX_MICROS(@day_start) + grid.bucket * @bucket_us) AS bucket_start,
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
