"""The BigQuery Standard SQL of the data path, as text with ``@name`` parameters.

The data path from one day of raw probes to cell demand is written once, in stages of
CTEs (see "The data path in stages" below), and every query is a composition of them:

- ``LABELLED_PROBES_SQL``: every delivered row of the day with its reject reason (NULL =
  kept), the rules of ``taxi_assets.cleaning.clean_probes`` in the same order with the
  same "later rules see only the pings earlier rules kept, first reason wins" semantics;
- ``CLEAN_PROBES_SQL`` / ``REJECTED_PROBES_SQL``: the two sides of that labelling, in
  ``CLEAN_PROBES_SCHEMA`` (with the mesh cell) and ``REJECTED_PROBES_SCHEMA``;
- ``TRIP_EVENTS_SQL``: the debounced pickups and drop-offs of ``taxi_assets.trips``;
- ``OUT_OF_ORDER_SQL``: the kept pings that arrived after a later-stamped ping of their
  vehicle (``CleaningResult.out_of_order_rows``), against the raw table's arrival column
  (the loader's stamp; a table has no row order of its own);
- ``CELL_DEMAND_SQL``: the dense grid of ``taxi_assets.demand.aggregate_cell_demand``,
  the whole path in one query (what ``BigQueryProbeSource.cell_demand`` runs).

Every value (the day, the day's UTC window, the service area, the thresholds, the bucket
width, the area's cells) is a query parameter. The only text spliced in is the table
name (and the arrival column's), which BigQuery cannot take as a parameter;
``BigQueryProbeSource`` validates it first. The SQL lives in a module rather than a
``.sql`` file because package data is declared per file pattern in pyproject.toml, and a
module ships with the package as is.

Two spellings are deliberate. ``DIV(a, b)`` is always wrapped in parentheses with plain
column or parameter arguments: sqlglot 30 transpiles it to DuckDB's ``a // b`` without
parentheses, which would bind wrongly inside a larger expression (``2 * DIV(a, b)``
becomes ``2 * a // b``). And the haversine is written term by term as in
``cleaning.haversine_km`` (degrees times the float64 pi/180, the squares, the products in
the same order), so both paths round alike and agree at the 150 km/h threshold.
"""

from __future__ import annotations

from taxi_assets.cleaning import EARTH_RADIUS_KM, CleaningRules
from taxi_assets.trips import KM_PER_DEG_LAT as _KM_PER_DEG_LAT

# The float64 nearest pi/180, the factor Polars' radians() (Rust's to_radians) multiplies
# by; BigQuery has no RADIANS function.
RADIANS_PER_DEGREE = "0.017453292519943295"
_US_PER_HOUR = 3_600_000_000
_US_PER_MINUTE = 60_000_000

PROBE_TABLE_PLACEHOLDER = "{probes_table}"
# The raw table's optional arrival column (BigQueryProbeSource.arrival_column), validated
# as a plain column name before it is spliced in, as the table name is.
ARRIVAL_COLUMN_PLACEHOLDER = "{arrival_column}"
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
# day's partition, the pings stamped in [@start, @end), and for every vehicle pinging there
# its earlier pings from @margin_us before its anchor: the later of its last ping before
# @start whose status is one of @break_words, and its last ping @run_span_us before @start
# (no anchor: all its earlier pings); with @with_look_back false, the window alone. The
# partition is scanned (a time filter does not prune a partition clustered by vehicle), but
# only those rows are pulled: hours of pings, not the day so far.
READ_PROBES_WINDOW_SQL = f"""
WITH seen AS (
  SELECT * EXCEPT (service_day)
  FROM `{PROBE_TABLE_PLACEHOLDER}`
  WHERE service_day = @day AND ts < @end
),
anchors AS (
  SELECT
    vehicle_id,
    MAX(IF(ts < @start AND LOWER(TRIM(CAST(status AS STRING), ' ')) IN UNNEST(@break_words),
      UNIX_MICROS(ts), NULL)) AS last_break_us,
    MAX(IF(UNIX_MICROS(ts) < UNIX_MICROS(@start) - @run_span_us, UNIX_MICROS(ts), NULL))
      AS last_before_span_us
  FROM seen
  WHERE vehicle_id IS NOT NULL
  GROUP BY vehicle_id
  HAVING COUNTIF(ts >= @start) > 0
),
look_back AS (
  -- GREATEST is null when either is: the later of the two that exist.
  SELECT
    vehicle_id,
    GREATEST(COALESCE(last_break_us, last_before_span_us),
      COALESCE(last_before_span_us, last_break_us)) - @margin_us AS read_from_us
  FROM anchors
)
SELECT seen.*
FROM seen
LEFT JOIN look_back ON seen.vehicle_id = look_back.vehicle_id
WHERE seen.ts >= @start
  OR (@with_look_back AND look_back.vehicle_id IS NOT NULL
    AND (look_back.read_from_us IS NULL OR UNIX_MICROS(seen.ts) >= look_back.read_from_us))
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


_BY_VEHICLE = "WINDOW w AS (PARTITION BY vehicle_id ORDER BY us)"
# cleaning._single_jump: too fast in and out, or on the only side at either end of a track.
_SINGLE_JUMP = "(fast_in AND fast_out) OR (NOT has_prev AND fast_out) OR (NOT has_next AND fast_in)"
# cleaning._single_jump's second form: fast on one side, far off its neighbours' track.
_OFF_TRACK = (
    "COALESCE(has_prev AND has_next AND (fast_in OR fast_out) "
    "AND km_in + km_out > @spike_detour_ratio * skip_km "
    "AND skip_speed <= @max_implied_speed_kmh, FALSE)"
)
# cleaning._with_speed_in and the skip of _single_jump, operation for operation.
_DISTANCES = (
    f"us_p IS NOT NULL AS has_prev, us_n IS NOT NULL AS has_next, "
    f"{_haversine_km('lat_p', 'lon_p', 'lat', 'lon')} AS km_in, "
    f"{_implied_speed_kmh('_p', '')} AS speed_in, "
    f"{_haversine_km('lat_p', 'lon_p', 'lat_n', 'lon_n')} AS skip_km, "
    f"{_implied_speed_kmh('_p', '_n')} AS skip_speed"
)
_WHOLE = "ORDER BY us ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING"
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


# ---------------------------------------------------------------------------------------
# The data path in stages. Each stage is a list of CTEs (text without WITH); the queries
# below are compositions of these pieces, so every rule is written once:
#
#   LABEL_CTES        raw day -> judged_pings / labelled_probes (reason, NULL = kept)
#   CLEAN_CTES        judged_pings -> clean_probes (CLEAN_PROBES_SCHEMA, with the cell)
#   TRIP_CTES         clean_probes -> trip_events (TRIP_EVENTS_SCHEMA)
#   DEMAND_CTES       clean_probes + trip_events -> cell_demand (dense grid)
#
# Labelling carries every distinct ping through every rule with its reason, as
# cleaning.clean_probes does: a rule only looks at the pings no earlier rule rejected
# (windows run over PARTITION BY vehicle_id, alive) and a ping keeps the first reason
# that applied (COALESCE(reason, ...)). One pass, no UNION of stages, so BigQuery never
# evaluates the chain twice. Neighbours of rejected pings are NULL, so no distance is
# computed on their (possibly NaN, NULL or equal-time) values.
# ---------------------------------------------------------------------------------------

# What a ping carries from stage to stage: vehicle_id is text (INT64 ids as their decimal
# text), delivered_status the feed's word (for the quarantine), status the mapped one.
_PING = "vehicle_id, ts, us, lat, lon, speed_kmh, heading, delivered_status, status, copies"
_ALIVE_WINDOW = "WINDOW w AS (PARTITION BY vehicle_id, alive ORDER BY us)"
_ALIVE_NEIGHBOURS = ", ".join(
    f"IF(alive, {fn}({col}) OVER w, NULL) AS {col}_{side}"
    for fn, side in (("LAG", "p"), ("LEAD", "n"))
    for col in ("lat", "lon", "us")
)
_RUNNING = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"


def _alive(cte: str) -> str:
    """The pings of ``cte`` with ``alive``: no earlier rule rejected them."""
    return f"(SELECT *, reason IS NULL AS alive FROM {cte})"


def _word_is(words: str) -> str:
    return f"LOWER(TRIM(delivered_status, ' ')) IN UNNEST(@{words})"


LABEL_CTES = f"""
delivered AS (  -- duplicate: exact copies are one ping; its later copies are quarantined
  SELECT vehicle_id, ts, lat, lon, speed_kmh, heading, delivered_status, COUNT(*) AS copies
  FROM (
    SELECT CAST(vehicle_id AS STRING) AS vehicle_id, ts, lat, lon, speed_kmh, heading,
      CAST(status AS STRING) AS delivered_status
    FROM `{PROBE_TABLE_PLACEHOLDER}`
    WHERE service_day = @day
  )
  GROUP BY vehicle_id, ts, lat, lon, speed_kmh, heading, delivered_status
),
statuses AS (  -- the status_mapping setting: the feed's words (case-insensitive) mapped
  SELECT vehicle_id, ts, UNIX_MICROS(ts) AS us, lat, lon, speed_kmh, heading,
    delivered_status,
    CASE
      WHEN {_word_is("vacant_words")} THEN 'vacant'
      WHEN {_word_is("occupied_words")} THEN 'occupied'
      WHEN {_word_is("dispatched_words")} THEN 'dispatched'
      WHEN {_word_is("off_duty_words")} THEN 'off_duty'
    END AS status,
    copies
  FROM delivered
),
row_rules AS (  -- what one ping shows by itself; the first reason that applies wins
  SELECT {_PING},
    CASE
      WHEN vehicle_id IS NULL OR ts IS NULL OR lat IS NULL OR lon IS NULL
        OR speed_kmh IS NULL OR heading IS NULL OR delivered_status IS NULL
        THEN 'missing_value'
      WHEN COALESCE(
        IS_NAN(lat) OR IS_INF(lat) OR IS_NAN(lon) OR IS_INF(lon)
        OR speed_kmh < 0 OR IS_NAN(speed_kmh) OR IS_INF(speed_kmh)
        OR speed_kmh > @max_speed_kmh
        OR heading < 0 OR heading > 360 OR IS_NAN(heading)
        OR CHAR_LENGTH(vehicle_id) < 1 OR CHAR_LENGTH(vehicle_id) > @max_vehicle_id_chars
        OR REGEXP_CONTAINS(vehicle_id, @not_a_clean_vehicle_id)
        OR REGEXP_CONTAINS(vehicle_id, @placeholder_vehicle_id), FALSE)
        THEN 'invalid_value'
      WHEN status IS NULL THEN 'unknown_status'
      WHEN lat = 0 AND lon = 0 THEN 'zero_coordinates'
      WHEN NOT (lat >= @area_lat_min AND lat < @area_lat_max
        AND lon >= @area_lon_min AND lon < @area_lon_max) THEN 'outside_service_area'
    END AS reason
  FROM statuses
),
day_flags AS (
  SELECT *, us < UNIX_MICROS(@day_start) OR us >= UNIX_MICROS(@day_end) AS outside_day
  FROM {_alive("row_rules")}
),
day_rules AS (  -- clock_skew, outside_day, conflicting_duplicate
  SELECT {_PING}, COALESCE(reason, CASE
      -- the share among pings still alive: rows already rejected say nothing of the clock
      WHEN COUNTIF(outside_day) OVER v / COUNT(*) OVER v >= @clock_skew_min_share
        THEN 'clock_skew'
      WHEN outside_day THEN 'outside_day'
      WHEN COUNT(*) OVER (PARTITION BY vehicle_id, alive, us) > 1 THEN 'conflicting_duplicate'
    END) AS reason
  FROM day_flags
  WINDOW v AS (PARTITION BY vehicle_id, alive)
),
jump1_neighbours AS (
  SELECT {_PING}, reason, alive, {_ALIVE_NEIGHBOURS}
  FROM {_alive("day_rules")} {_ALIVE_WINDOW}
),
jump1_speed AS (
  SELECT {_PING}, reason, alive, {_DISTANCES}
  FROM jump1_neighbours
),
jump1_flags AS (
  SELECT {_PING}, reason, has_prev, has_next,
    COALESCE(speed_in > @max_implied_speed_kmh, FALSE) AS fast_in,
    COALESCE(LEAD(speed_in) OVER w > @max_implied_speed_kmh, FALSE) AS fast_out,
    LEAD(km_in) OVER w AS km_out, km_in, skip_km, skip_speed
  FROM jump1_speed {_ALIVE_WINDOW}
),
jump1_rules AS (  -- gps_jump, first pass: single-ping spikes
  SELECT {_PING},
    COALESCE(reason, IF({_SINGLE_JUMP} OR {_OFF_TRACK}, 'gps_jump', NULL)) AS reason
  FROM jump1_flags
),
jump2_neighbours AS (
  SELECT {_PING}, reason, alive, {_ALIVE_NEIGHBOURS}
  FROM {_alive("jump1_rules")} {_ALIVE_WINDOW}
),
jump2_speed AS (
  SELECT {_PING}, reason, alive, lat_p, lon_p, us_p, lat_n, lon_n, us_n, {_DISTANCES}
  FROM jump2_neighbours
),
jump2_edges AS (
  SELECT *,
    COALESCE(speed_in > @max_implied_speed_kmh, FALSE) AS fast_in,
    COALESCE(LEAD(speed_in) OVER w > @max_implied_speed_kmh, FALSE) AS fast_out,
    LEAD(km_in) OVER w AS km_out
  FROM jump2_speed {_ALIVE_WINDOW}
),
jump2_segments AS (  -- cleaning._step_jump: fast moves cut a track into segments
  SELECT *, SUM(IF(fast_in OR NOT has_prev, 1, 0)) OVER (PARTITION BY vehicle_id, alive
    ORDER BY us {_RUNNING}) AS segment
  FROM jump2_edges
),
jump2_steps AS (
  SELECT {_PING}, reason, has_prev, has_next, fast_in, fast_out, km_in, km_out, skip_km,
    skip_speed,
    FIRST_VALUE(fast_in) OVER s AS enters_fast, LAST_VALUE(has_next) OVER s AS leaves_fast,
    FIRST_VALUE(lat_p) OVER s AS lat_b, FIRST_VALUE(lon_p) OVER s AS lon_b,
    FIRST_VALUE(us_p) OVER s AS us_b,
    LAST_VALUE(lat_n) OVER s AS lat_a, LAST_VALUE(lon_n) OVER s AS lon_a,
    LAST_VALUE(us_n) OVER s AS us_a,
    MAX(us) OVER s - MIN(us) OVER s AS span_us
  FROM jump2_segments
  WINDOW s AS (PARTITION BY vehicle_id, alive, segment {_WHOLE})
),
jump2_rules AS (  -- gps_jump, second pass: against the kept neighbours, and GPS steps
  SELECT {_PING}, COALESCE(reason, IF({_SINGLE_JUMP} OR {_OFF_TRACK}
    OR COALESCE(enters_fast AND leaves_fast
      AND span_us <= @max_jump_run_minutes * {_US_PER_MINUTE}
      AND {_implied_speed_kmh("_b", "_a")} <= @max_implied_speed_kmh, FALSE),
    'gps_jump', NULL)) AS reason
  FROM jump2_steps
),
run_starts AS (
  SELECT {_PING}, reason, alive, COALESCE(LAG(status) OVER w != status, TRUE) AS starts_run
  FROM {_alive("jump2_rules")} {_ALIVE_WINDOW}
),
runs AS (
  SELECT *, SUM(IF(starts_run, 1, 0)) OVER (PARTITION BY vehicle_id, alive ORDER BY us
    {_RUNNING}) AS run_id
  FROM run_starts
),
judged_pings AS (  -- stuck_status; one row per distinct ping, reason NULL = kept
  SELECT {_PING}, COALESCE(reason, IF(
    (status = 'occupied' AND run_minutes > @max_occupied_minutes)
    OR (status = 'dispatched' AND run_minutes > @max_dispatched_minutes),
    'stuck_status', NULL)) AS reason
  FROM (
    SELECT *, (MAX(us) OVER r - MIN(us) OVER r) / {_US_PER_MINUTE} AS run_minutes
    FROM runs
    WINDOW r AS (PARTITION BY vehicle_id, alive, run_id)
  )
)"""

# Every delivered row, as delivered: the later copies of a ping are its duplicates.
LABELLED_CTE = """
labelled_probes AS (  -- every delivered row, as delivered, with its reason
  SELECT vehicle_id, ts, lat, lon, speed_kmh, heading, delivered_status, status,
    IF(copy_no > 1, 'duplicate', reason) AS reason
  FROM judged_pings CROSS JOIN UNNEST(GENERATE_ARRAY(1, copies)) AS copy_no
)"""

CLEAN_CTES = """
clean_rows AS (
  SELECT vehicle_id, ts, lat, lon, speed_kmh, heading, status,
    CAST(FLOOR(lat * @mesh_rows_per_degree) AS INT64) AS mesh_row,
    CAST(FLOOR((lon - 100.0) * @mesh_cols_per_degree) AS INT64) AS mesh_col
  FROM judged_pings
  WHERE reason IS NULL
),
mesh_digits AS (  -- mesh.mesh_code_from_index; the area is north-east of (0, 100), so >= 0
  SELECT *,
    (DIV(mesh_row, @mesh_cells_per_first)) * 100 + (DIV(mesh_col, @mesh_cells_per_first))
      AS first_mesh,
    MOD(mesh_row, @mesh_cells_per_first) AS r, MOD(mesh_col, @mesh_cells_per_first) AS c
  FROM clean_rows
),
mesh_codes AS (
  SELECT *,
    first_mesh * 100 + (DIV(r, @mesh_step_second)) * 10 + (DIV(c, @mesh_step_second))
      AS second_code,
    MOD(r, @mesh_step_second) AS r2, MOD(c, @mesh_step_second) AS c2,
    MOD(r, @mesh_step_third) AS r3, MOD(c, @mesh_step_third) AS c3
  FROM mesh_digits
),
mesh_levels AS (
  SELECT *,
    second_code * 100 + (DIV(r2, @mesh_step_third)) * 10 + (DIV(c2, @mesh_step_third))
      AS third_code,
    1 + (DIV(c3, @mesh_step_half)) + (DIV(r3, @mesh_step_half)) * 2 AS half_digit,
    1 + MOD(c, 2) + MOD(r, 2) * 2 AS quarter_digit
  FROM mesh_codes
),
clean_probes AS (  -- CLEAN_PROBES_SCHEMA
  SELECT vehicle_id, ts, lat, lon, speed_kmh, heading, status,
    CASE @mesh_level
      WHEN 'second' THEN second_code
      WHEN 'third' THEN third_code
      WHEN 'half' THEN third_code * 10 + half_digit
      ELSE (third_code * 10 + half_digit) * 10 + quarter_digit
    END AS cell
  FROM mesh_levels
)"""

TRIP_STATE_CTES = f"""
trip_pings AS (  -- trips.debounce_meter: the meter as read, with its neighbours
  SELECT vehicle_id, ts, us, lat, lon, status, cell, status = 'occupied' AS raw_occ,
    LAG(us) OVER w IS NULL AS first_ping, LEAD(us) OVER w AS next_us, LAG(us) OVER w AS prev_us,
    COALESCE(LAG(status) OVER w = 'occupied', FALSE) AS raw_occ_before,
    COALESCE(LEAD(status) OVER w = 'occupied', FALSE) AS raw_occ_after
  FROM (SELECT vehicle_id, ts, UNIX_MICROS(ts) AS us, lat, lon, status, cell FROM clean_probes)
  {_BY_VEHICLE}
),
gap_runs AS (
  SELECT *, SUM(IF(first_ping OR raw_occ != raw_occ_before, 1, 0)) OVER (PARTITION BY vehicle_id
    ORDER BY us {_RUNNING}) AS gap_run,
    NOT raw_occ AND (first_ping OR raw_occ_before) AS starts_vacant_run,
    -- the vehicle's own clock: the median time between its consecutive pings
    PERCENTILE_CONT(us - prev_us, 0.5) OVER (PARTITION BY vehicle_id) AS median_interval_us
  FROM trip_pings
),
bridged AS (  -- a vacant run this short between occupied runs is the meter flapping
  SELECT vehicle_id, ts, us, lat, lon, status, cell, first_ping, next_us, starts_vacant_run,
    raw_occ OR COALESCE(COUNT(*) OVER {_GAP_RUN} <= @max_vacant_gap_pings
      AND FIRST_VALUE(raw_occ_before) OVER {_GAP_RUN} AND LAST_VALUE(raw_occ_after) OVER {_GAP_RUN}
      AND LAST_VALUE(next_us) OVER {_GAP_RUN} - FIRST_VALUE(prev_us) OVER {_GAP_RUN}
        <= @max_vacant_gap_intervals * median_interval_us, FALSE) AS bridged_occ
  FROM gap_runs
),
fare_runs AS (
  SELECT *, SUM(IF(first_ping OR bridged_occ != bridged_occ_before, 1, 0)) OVER (
    PARTITION BY vehicle_id ORDER BY us {_RUNNING}) AS fare_run
  FROM (SELECT *, COALESCE(LAG(bridged_occ) OVER w, FALSE) AS bridged_occ_before
    FROM bridged {_BY_VEHICLE})
),
fare_spans AS (
  SELECT vehicle_id, ts, us, lat, lon, status, cell, bridged_occ,
    -- what trips.TripDerivation counts: the first ping of each bridged vacant run
    starts_vacant_run AND bridged_occ AS starts_bridged_run,
    COUNT(*) OVER {_FARE_RUN} AS fare_pings, MIN(us) OVER {_FARE_RUN} AS fare_first_us,
    LAST_VALUE(next_us) OVER {_FARE_RUN} AS fare_next_us,
    MAX(IF(first_ping, 1, 0)) OVER {_FARE_RUN} = 1 AS starts_vehicle
  FROM fare_runs
),
debounced AS (  -- an occupied run too short to be a fare is the meter flapping
  SELECT vehicle_id, ts, us, lat, lon, status, cell, starts_bridged_run,
    bridged_occ AND NOT short_fare AS occ, short_fare AND us = fare_first_us AS starts_short_fare
  FROM (
    SELECT *, bridged_occ AND COALESCE(fare_next_us IS NOT NULL AND NOT starts_vehicle
      AND (fare_pings < @min_fare_pings
        OR (fare_next_us - fare_first_us) / 1000000 < @min_fare_seconds), FALSE) AS short_fare
    FROM fare_spans
  )
),
transitions AS (  -- trips.derive_trips: a pickup only when seen within the maximum gap
  SELECT vehicle_id, ts, us, lat, lon, cell, occ, starts_bridged_run, starts_short_fare,
    COALESCE(LAG(occ) OVER w, FALSE) AS was_occ,
    occ AND NOT COALESCE(LAG(occ) OVER w, FALSE) AND LAG(us) OVER w IS NOT NULL
      AND (us - LAG(us) OVER w) / 1000000 <= @max_pickup_gap_s AS pickup,
    -- a change to occupied not seen within the gap: a trip already under way
    occ AND NOT COALESCE(LAG(occ) OVER w, FALSE) AND LAG(us) OVER w IS NOT NULL
      AND (us - LAG(us) OVER w) / 1000000 > @max_pickup_gap_s AS gap_skipped,
    NOT occ AND COALESCE(LAG(occ) OVER w, FALSE) AS dropoff,
    -- trips.BOOKING_BY_PREVIOUS_STATUS
    CASE LAG(status) OVER w
      WHEN 'vacant' THEN 'street_hail'
      WHEN 'dispatched' THEN 'app_booking'
      WHEN 'off_duty' THEN 'other'
    END AS pickup_booking
  FROM debounced {_BY_VEHICLE}
),
trip_starts AS (  -- every occupied run starts with a pickup or a trip already under way
  SELECT *, IF(occ AND NOT was_occ, IF(pickup, pickup_booking, 'other'), NULL) AS start_booking,
    SUM(IF(occ AND NOT was_occ, 1, 0)) OVER (PARTITION BY vehicle_id ORDER BY us {_RUNNING})
      AS trip_no
  FROM transitions
)"""

TRIP_EVENTS_CTE = f"""
trip_events AS (  -- TRIP_EVENTS_SCHEMA; a drop-off carries the booking of its trip
  SELECT vehicle_id, ts, IF(pickup, 'pickup', 'dropoff') AS event,
    IF(pickup, pickup_booking, trip_booking) AS booking, lat, lon, cell
  FROM (
    SELECT *, FIRST_VALUE(start_booking) OVER (
      PARTITION BY vehicle_id, trip_no ORDER BY us {_RUNNING}) AS trip_booking
    FROM trip_starts
  )
  WHERE pickup OR dropoff
)"""
TRIP_CTES = TRIP_STATE_CTES + "," + TRIP_EVENTS_CTE

# trips.TripDerivation's counts, from trip_starts (every clean ping with the rules' flags):
# bridged vacant runs, dropped short fares, and pickups not seen within the gap, those
# near the area's edge (trips._km_to_edge, operation for operation) being re-entries.
_KM_TO_EDGE = (
    f"LEAST((lat - @area_lat_min) * {_KM_PER_DEG_LAT!r}, (@area_lat_max - lat) * "
    f"{_KM_PER_DEG_LAT!r}, (lon - @area_lon_min) * ({_KM_PER_DEG_LAT!r} * COS(lat * "
    f"{RADIANS_PER_DEGREE})), (@area_lon_max - lon) * ({_KM_PER_DEG_LAT!r} * COS(lat * "
    f"{RADIANS_PER_DEGREE})))"
)
TRIP_RULE_COUNTS_SELECT = f"""
SELECT COUNTIF(starts_bridged_run) AS debounced_vacant_gaps,
  COUNTIF(starts_short_fare) AS debounced_short_fares,
  COUNTIF(gap_skipped AND {_KM_TO_EDGE} <= @boundary_km) AS boundary_reentries,
  COUNTIF(gap_skipped) AS gap_skipped_pickups
FROM trip_starts
"""

DEMAND_CTES = """
event_times AS (
  SELECT cell, event, booking, UNIX_MICROS(ts) - UNIX_MICROS(@day_start) AS us_into_day
  FROM trip_events
),
events AS (
  SELECT cell, (DIV(us_into_day, @bucket_us)) AS bucket,
    COUNTIF(event = 'pickup' AND booking = 'street_hail') AS street_hail_pickups,
    COUNTIF(event = 'pickup' AND booking = 'app_booking') AS app_booking_pickups,
    COUNTIF(event = 'pickup') AS pickups,
    COUNTIF(event = 'dropoff') AS dropoffs
  FROM event_times
  GROUP BY 1, 2
),
ping_times AS (
  SELECT cell, vehicle_id, status, UNIX_MICROS(ts) - UNIX_MICROS(@day_start) AS us_into_day
  FROM clean_probes
),
supply AS (
  SELECT cell, (DIV(us_into_day, @bucket_us)) AS bucket,
    COUNT(DISTINCT IF(status = 'vacant', vehicle_id, NULL)) AS vacant_taxis,
    COUNT(DISTINCT IF(status = 'occupied', vehicle_id, NULL)) AS occupied_taxis
  FROM ping_times
  GROUP BY 1, 2
),
grid AS (
  SELECT cell, bucket
  FROM UNNEST(@area_cells) AS cell
  CROSS JOIN UNNEST(GENERATE_ARRAY(0, @buckets_per_day - 1)) AS bucket
)"""

DEMAND_SELECT = """
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

# cleaning.CleaningResult.out_of_order_rows: kept pings that arrived after a later-stamped
# ping of their vehicle. A table has no arrival order of its own, so this needs the raw
# table's arrival column (a sequence number or receive time the loader stamps); without
# one the count is not computed. A kept ping arrived with its first copy (the later ones
# are duplicates): judged_pings has one row per distinct delivered row, grouped as in
# `delivered`, so joining on that key finds exactly its copies (kept pings hold no NULL or
# NaN, so `=` matches them). Pings with equal arrival stamps count as in order; a ping
# with a NULL stamp is not counted.
OUT_OF_ORDER_CTES = f"""
arrivals AS (
  SELECT vehicle_id, ts, lat, lon, speed_kmh, heading, delivered_status,
    MIN(arrival) AS arrival
  FROM (
    SELECT CAST(vehicle_id AS STRING) AS vehicle_id, ts, lat, lon, speed_kmh, heading,
      CAST(status AS STRING) AS delivered_status, `{ARRIVAL_COLUMN_PLACEHOLDER}` AS arrival
    FROM `{PROBE_TABLE_PLACEHOLDER}`
    WHERE service_day = @day
  )
  GROUP BY vehicle_id, ts, lat, lon, speed_kmh, heading, delivered_status
),
kept_arrivals AS (
  SELECT judged.vehicle_id, judged.us, arrivals.arrival,
    MIN(arrivals.arrival) OVER (PARTITION BY judged.vehicle_id ORDER BY judged.us
      ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS later_first_arrival
  FROM judged_pings AS judged
  JOIN arrivals
    ON arrivals.vehicle_id = judged.vehicle_id AND arrivals.ts = judged.ts
    AND arrivals.lat = judged.lat AND arrivals.lon = judged.lon
    AND arrivals.speed_kmh = judged.speed_kmh AND arrivals.heading = judged.heading
    AND arrivals.delivered_status = judged.delivered_status
  WHERE judged.reason IS NULL
)"""
OUT_OF_ORDER_SELECT = """
SELECT COUNTIF(arrival > later_first_arrival) AS out_of_order_rows
FROM kept_arrivals
"""

CLEAN_PROBES_COLUMNS = "vehicle_id, ts, lat, lon, speed_kmh, heading, status, cell"
TRIP_EVENTS_COLUMNS = "vehicle_id, ts, event, booking, lat, lon, cell"
REJECTED_PROBES_SELECT = """
SELECT vehicle_id, ts, lat, lon, speed_kmh, heading, delivered_status AS status, reason
FROM labelled_probes
WHERE reason IS NOT NULL
"""


def compose(ctes: list[str], select: str) -> str:
    """One query from stages of CTEs and the final SELECT."""
    return "WITH" + ",".join(ctes) + "\n" + select


# The day's partition of each table, from the raw pings of the day.
LABELLED_PROBES_SQL = compose(
    [LABEL_CTES, LABELLED_CTE],
    "SELECT vehicle_id, ts, lat, lon, speed_kmh, heading, delivered_status, status, reason\n"
    "FROM labelled_probes\n",
)
CLEAN_PROBES_SQL = compose(
    [LABEL_CTES, CLEAN_CTES], f"SELECT {CLEAN_PROBES_COLUMNS} FROM clean_probes\n"
)
REJECTED_PROBES_SQL = compose([LABEL_CTES, LABELLED_CTE], REJECTED_PROBES_SELECT)
TRIP_EVENTS_SQL = compose(
    [LABEL_CTES, CLEAN_CTES, TRIP_CTES], f"SELECT {TRIP_EVENTS_COLUMNS} FROM trip_events\n"
)
OUT_OF_ORDER_SQL = compose([LABEL_CTES, OUT_OF_ORDER_CTES], OUT_OF_ORDER_SELECT)
TRIP_RULE_COUNTS_SQL = compose([LABEL_CTES, CLEAN_CTES, TRIP_STATE_CTES], TRIP_RULE_COUNTS_SELECT)
# The whole path in one query: what BigQueryProbeSource.cell_demand runs.
CELL_DEMAND_SQL = compose([LABEL_CTES, CLEAN_CTES, TRIP_CTES, DEMAND_CTES], DEMAND_SELECT)
