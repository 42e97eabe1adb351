"""The BigQuery probe source, run on DuckDB: same SQL text, same parameters, same results.

BigQuery is not reachable from tests, so the source's one query method is overridden to
transpile its BigQuery SQL with sqlglot (read="bigquery", write="duckdb") and bind the
very ``ScalarQueryParameter``/``ArrayQueryParameter`` objects it built as DuckDB named
parameters. Tables live in a DuckDB file attached under the BigQuery project's name, so
``project.dataset.table`` resolves as it would in BigQuery.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from unittest import mock

import dagster as dg
import duckdb
import polars as pl
import pytest
import sqlglot
from dagster_gcp import BigQueryResource
from google.cloud import bigquery
from polars.testing import assert_frame_equal
from pydantic import ValidationError
from sqlglot import exp
from sqlglot.tokens import TokenType

from taxi_assets.cleaning import CleaningRules, clean_probes, rejected_counts
from taxi_assets.definitions import ASSET_MODULES
from taxi_assets.demand import aggregate_cell_demand
from taxi_assets.frames import RAW_PROBES_SCHEMA, REJECT_REASONS, WEATHER_SCHEMA
from taxi_assets.resources import local_resources
from taxi_assets.service_area import CENTRAL_TOKYO, ServiceArea
from taxi_assets.sources.base import ProbeSourceError
from taxi_assets.sources.bigquery import BigQueryProbeSource, QueryParameter
from taxi_assets.sources.bigquery_sql import CELL_DEMAND_SQL, READ_PROBES_SQL
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets.trips import TripRules, derive_trip_events
from taxi_assets_tests.probe_builders import at_minute, raw_probes, track

DAY = date(2026, 4, 21)
PROJECT = "taxi-feed-test"  # a hyphen, as real project ids have: the name must be quoted
PROBES_TABLE = f"{PROJECT}.probes.pings"
WEATHER_TABLE = f"{PROJECT}.probes.weather"
SMALL_AREA = ServiceArea(lat_min=35.67, lat_max=35.69, lon_min=139.75, lon_max=139.78)
HOSTILE_VEHICLES = 900_000  # ids of hand-made vehicles, far above the simulated fleet's


@functools.cache
def bigquery_parameter_names(sql: str) -> set[str]:
    return {p.name for p in sqlglot.parse_one(sql, read="bigquery").find_all(exp.Parameter)}


@functools.cache
def as_duckdb(sql: str) -> str:
    """The DuckDB text of BigQuery SQL (cached: the data path's queries are long)."""
    return sqlglot.transpile(sql, read="bigquery", write="duckdb")[0]


def run_on_duckdb(
    database: Path, project: str, sql: str, parameters: Sequence[QueryParameter]
) -> pl.DataFrame:
    """Run BigQuery SQL on DuckDB: sqlglot turns ``@name`` into ``$name``; values are bound
    by DuckDB, never pasted into the text."""
    used = bigquery_parameter_names(sql)
    given = {
        p.name: p.values if isinstance(p, bigquery.ArrayQueryParameter) else p.value
        for p in parameters
    }
    # A parameter built but not used (or used but not built) is a bug in the source.
    assert used == set(given), used ^ set(given)
    statement = as_duckdb(sql)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"ATTACH '{database}' AS \"{project}\" (READ_ONLY)")
        return pl.from_arrow(con.sql(statement, params=given).to_arrow_table())


class DuckDBProbeSource(BigQueryProbeSource):
    """The BigQuery source with its one query method running on a DuckDB file."""

    duckdb_file: str

    def _query(self, sql: str, parameters: Sequence[QueryParameter]) -> pl.DataFrame:
        return run_on_duckdb(Path(self.duckdb_file), PROJECT, sql, parameters)


def duckdb_source(database: Path, probes_table: str = PROBES_TABLE) -> DuckDBProbeSource:
    return DuckDBProbeSource(
        bigquery=BigQueryResource(project=PROJECT),
        probes_table=probes_table,
        weather_table=WEATHER_TABLE,
        duckdb_file=str(database),
    )


def load_table(database: Path, table: str, frame: pl.DataFrame) -> None:
    """Create ``project.dataset.table`` in the DuckDB file, replacing it."""
    project, dataset, name = table.split(".")
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"ATTACH '{database}' AS \"{project}\"")
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{project}"."{dataset}"')
        con.register("frame", frame.to_arrow())
        con.execute(f'CREATE OR REPLACE TABLE "{project}"."{dataset}"."{name}" AS FROM frame')


def as_bigquery_rows(
    probes: pl.DataFrame, service_day: date, integer_ids: bool = True
) -> pl.DataFrame:
    """Probes in the table's BigQuery types (INT64 or STRING ids, FLOAT64, STRING) with
    their partition."""
    return probes.with_columns(
        pl.col("vehicle_id").cast(pl.Int64 if integer_ids else pl.String),
        pl.col("speed_kmh", "heading").cast(pl.Float64),
        pl.col("status").cast(pl.String),
        service_day=pl.lit(service_day),
    )


def polars_cell_demand(
    raw: pl.DataFrame, day: date, area: ServiceArea, rules: CleaningRules, bucket_minutes: int
) -> tuple[pl.DataFrame, dict[str, int]]:
    result = clean_probes(raw, day, area, rules)
    trips = derive_trip_events(result.clean, rules.trips)
    demand = aggregate_cell_demand(result.clean, trips, day, area, bucket_minutes)
    return demand, rejected_counts(result.rejected)


def hostile_rows(day: date) -> pl.DataFrame:
    """Pings for the rules a simulated day does not exercise: missing and invalid values,
    pings outside the day, conflicting copies and a two-ping GPS spike."""
    v = HOSTILE_VEHICLES
    minute = 300.0
    rows = [
        (v + 1, at_minute(day, minute), None, 139.7671),  # missing_value
        (v + 1, at_minute(day, minute + 1), 35.68, 139.77, 20.0, 90.0, None),
        (v + 2, at_minute(day, minute), 35.68, float("nan")),  # invalid_value
        (v + 2, at_minute(day, minute + 1), float("inf"), 139.77),
        (v + 2, at_minute(day, minute + 2), 35.68, 139.77, -5.0),
        (v + 2, at_minute(day, minute + 3), 35.68, 139.77, 20.0, 400.0),
        (v + 2, at_minute(day, minute + 4), 35.68, 139.77, float("nan")),
        (v + 2, at_minute(day, minute + 5), 35.68, 139.77, 250.0),  # above max_speed_kmh
        (v + 1, at_minute(day, minute + 2), 35.68, 139.77, None),  # null speed: missing
        (v + 1, at_minute(day, minute + 3), 35.68, 139.77, 20.0, None),  # null heading
        ("-1", at_minute(day, minute), 35.68, 139.77),  # an integer feed's placeholder id
        # unknown_status, and the feed's own spelling of known ones (case-insensitive)
        ("T-0043", at_minute(day, minute), 35.68, 139.77, 20.0, 90.0, "hired"),
        ("T-0043", at_minute(day, minute + 1), 35.68, 139.77, 20.0, 90.0, " VACANT "),
        ("T-0043", at_minute(day, minute + 2), 35.681, 139.77, 20.0, 90.0, "Occupied"),
    ]
    # One ping before midnight among 60 of the day: below the clock-skew share.
    rows += track(v + 3, day, ["vacant"] * 60, start_minute=minute)
    rows.append((v + 3, at_minute(day, -30), 35.68, 139.77))
    # Two pings of one vehicle at one instant with different positions.
    conflicting = track(v + 4, day, ["vacant"] * 10, start_minute=minute)
    rows += conflicting + [(v + 4, conflicting[5][1], 35.7, 139.8)]
    # Two consecutive pings 5 km off: only the pair rule of the second pass sees them.
    spiked = track(v + 5, day, ["vacant"] * 10 + ["occupied"] * 10, start_minute=minute)
    for i in (8, 9):
        vehicle, ts, lat, lon, *rest = spiked[i]
        spiked[i] = (vehicle, ts, lat + 0.05, lon, *rest)
    rows += spiked
    # Boundaries: exactly the clock-skew share (1 ping in 20 outside the day is skew) ...
    rows += track(v + 6, day, ["vacant"] * 19, start_minute=minute)
    rows.append((v + 6, at_minute(day, 24 * 60), 35.68, 139.77))
    # ... a ping on the north edge, then one on the east edge, of the area (outside: were
    # they kept, the pickups after them would be street hails, not app bookings) ...
    lat_min, lat_max, lon_min, lon_max = CENTRAL_TOKYO.snapped_bounds
    north, east = (lat_max - 1e-3, 139.77), (35.68, lon_max - 1e-3)
    for k, (inside, edge) in enumerate([(north, (lat_max, 139.77)), (east, (35.68, lon_max))]):
        stops = [(inside, "dispatched"), (edge, "vacant"), (inside, "occupied")]
        stops.append((inside, "occupied"))  # two pings: a fare, not a meter flap
        for j, (point, status) in enumerate(stops):
            rows.append((v + 7, at_minute(day, minute + 10 * k + j), *point, 20.0, 90.0, status))
    rows.append((v + 7, at_minute(day, minute + 60), lat_min, lon_min))  # the corner is inside
    # ... and two 5 km moves in a row: no spike, as skipping the pair is too fast as well.
    moving = track(v + 8, day, ["vacant"] * 8, origin=(35.62, 139.7), step_deg=1e-4)
    rows += [
        (vehicle, ts, lat + (0, 0, 0, 0.05, 0.05, 0.1, 0.1, 0.1)[i], lon, *rest)
        for i, (vehicle, ts, lat, lon, *rest) in enumerate(moving)
    ]
    # Real-feed physics: a GPS step of four displaced pings, a flapping meter (a one-ping
    # vacant gap inside a fare, a one-ping fare), and a taxi back in the area occupied
    # 40 minutes after its last vacant ping.
    stepped = track(v + 9, day, ["vacant"] * 12, start_minute=minute, origin=(35.65, 139.7))
    rows += [
        (vehicle, ts, lat, lon + (0.12 if 4 <= i < 8 else 0.0), *rest)
        for i, (vehicle, ts, lat, lon, *rest) in enumerate(stepped)
    ]
    flapping = ["vacant"] * 3 + ["occupied"] * 3 + ["vacant"] + ["occupied"] * 3
    flapping += ["vacant"] * 2 + ["occupied"] + ["vacant"] * 3
    rows += track(v + 10, day, flapping, start_minute=minute, origin=(35.66, 139.71))
    rows += track(v + 11, day, ["vacant"] * 3, start_minute=minute, origin=(35.67, 139.72))
    back = ["occupied"] * 3 + ["vacant"] * 2
    rows += track(v + 11, day, back, start_minute=minute + 43, origin=(35.61, 139.72))
    return raw_probes(rows)


@pytest.fixture(scope="module")
def simulated_day() -> pl.DataFrame:
    """A 200-taxi simulated day (about 565 k pings) with the hand-made hostile pings."""
    simulated = SimulatedProbeSource(fleet_size=200, seed=3).read_probes(DAY).probes
    return pl.concat([simulated, hostile_rows(DAY)])


def test_pushed_down_sql_equals_the_polars_path_on_a_simulated_day(
    simulated_day: pl.DataFrame, tmp_path: Path
) -> None:
    database = tmp_path / "bigquery.duckdb"
    load_table(database, PROBES_TABLE, as_bigquery_rows(simulated_day, DAY, integer_ids=False))
    rules = CleaningRules()
    expected, rejected = polars_cell_demand(simulated_day, DAY, CENTRAL_TOKYO, rules, 15)
    # Every cleaning rule removes pings on this day, so every rule of the SQL is exercised.
    assert all(rejected[reason] > 0 for reason in REJECT_REASONS), rejected
    pair = clean_probes(simulated_day, DAY, CENTRAL_TOKYO).rejected.filter(
        pl.col("vehicle_id") == str(HOSTILE_VEHICLES + 5)
    )
    assert pair["reason"].cast(pl.String).to_list() == ["gps_jump", "gps_jump"]

    pushed_down = duckdb_source(database).cell_demand(DAY, CENTRAL_TOKYO, rules, 15)

    assert_frame_equal(pushed_down, expected)
    assert expected["pickups"].sum() > 1000 and expected["vacant_taxis"].sum() > 1000


# The feed's words: canonical, other spellings, an occupancy flag mapped by the rules of the
# random days, and a word no mapping knows (unknown_status).
STATUS_WORDS = ["vacant", "occupied", "dispatched", "off_duty", "VACANT", " Occupied", "1", "??"]
STATUS_MAPPING = {"1": "occupied", "0": "vacant"}


def hostile_day_rules(seed: int) -> CleaningRules:
    """Cleaning and trip thresholds that vary with the random hostile day's seed, so the
    parity tests reach the SQL with many parameter values."""
    return CleaningRules(
        max_implied_speed_kmh=(150.0, 90.0)[seed % 2],
        max_occupied_minutes=20.0,
        max_dispatched_minutes=10.0,
        clock_skew_min_share=(0.05, 0.3)[seed % 3 == 0],
        max_jump_run_minutes=(10.0, 3.0)[seed % 2],
        trips=TripRules(
            max_vacant_gap_pings=(1, 0, 2)[seed % 3],
            max_vacant_gap_intervals=(2.5, 10.0, 1.5)[seed % 4 % 3],
            min_fare_pings=(2, 1, 3)[seed % 3],
            min_fare_seconds=(0.0, 120.0)[seed % 2],
            max_pickup_gap_s=(300.0, 90.0)[seed % 2],
        ),
        max_speed_kmh=(200.0, 100.0)[seed % 2],
        status_mapping=STATUS_MAPPING,
    )


def random_hostile_day(seed: int, day: date, area: ServiceArea) -> pl.DataFrame:
    """A few taxis with short pings, sticky statuses and every kind of fault at high rates."""
    rng = random.Random(seed)
    lat_min, lat_max, lon_min, lon_max = area.snapped_bounds
    rows: list[tuple] = []
    for vehicle in range(1, 9):
        minute = rng.uniform(-15, 1300)
        skew = 540 if rng.random() < 0.15 else 0  # Tokyo wall time stamped as UTC
        lat, lon = rng.uniform(lat_min, lat_max), rng.uniform(lon_min, lon_max)
        status = rng.choice(STATUS_WORDS)
        spike_left = 0
        for _ in range(rng.randint(20, 120)):
            minute += rng.choice([0.25, 0.25, 0.5, 1.0, 4.0])
            lat = min(max(lat + rng.uniform(-8e-4, 8e-4), lat_min), lat_max - 1e-6)
            lon = min(max(lon + rng.uniform(-8e-4, 8e-4), lon_min), lon_max - 1e-6)
            if rng.random() < 0.15:
                status = rng.choice(STATUS_WORDS)
            if spike_left == 0 and rng.random() < 0.08:
                spike_left = rng.choice([1, 2, 3, 4])  # spikes and GPS steps
            ping_lat = lat + (0.012 if spike_left else 0.0)
            spike_left = max(spike_left - 1, 0)
            ping = [vehicle, at_minute(day, minute + skew), ping_lat, lon, 20.0, 90.0, status]
            fault = rng.random()
            if fault < 0.02:
                ping[2] = None
            elif fault < 0.04:
                ping[rng.choice([3, 4, 5])] = rng.choice([float("nan"), -1.0, 400.0])
            elif fault < 0.05:
                ping[2], ping[3] = 0.0, 0.0
            elif fault < 0.06:
                ping[2] = lat_max + 0.01
            elif fault < 0.07:
                ping[rng.choice([4, 5])] = None
            elif fault < 0.08:
                ping[4] = rng.choice([250.0, 120.0])
            elif fault < 0.085:
                ping[0] = -vehicle
            rows.append(tuple(ping))
            if rng.random() < 0.05:
                rows.append(tuple(ping))
            if rng.random() < 0.03:
                rows.append((*ping[:3], ping[3] + 1e-4, *ping[4:]))
    rng.shuffle(rows)
    return raw_probes(rows)


def test_pushed_down_sql_equals_the_polars_path_on_random_hostile_days(tmp_path: Path) -> None:
    """Many small days full of faults, over every mesh level, several bucket widths and
    thresholds: the parameters reach the SQL and every rule agrees pings by ping."""
    database = tmp_path / "bigquery.duckdb"
    levels = ("half", "quarter", "third", "second")
    reasons: Counter[str] = Counter()
    for seed in range(16):
        day = DAY + timedelta(days=seed)
        area = ServiceArea(35.67, 35.69, 139.75, 139.78, mesh_level=levels[seed % 4])
        rules = hostile_day_rules(seed)
        bucket_minutes = (15, 5, 60, 30)[seed % 4]
        raw = random_hostile_day(seed, day, area)
        table = f"{PROJECT}.probes.pings_{seed}"
        load_table(database, table, as_bigquery_rows(raw, day, integer_ids=seed % 2 == 0))

        expected, rejected = polars_cell_demand(raw, day, area, rules, bucket_minutes)
        pushed_down = duckdb_source(database, table).cell_demand(day, area, rules, bucket_minutes)

        assert_frame_equal(pushed_down, expected, check_exact=True)
        reasons.update(rejected)
    assert all(reasons[reason] > 0 for reason in REJECT_REASONS), reasons


def test_read_probes_reads_one_partition_with_the_day_as_a_parameter(tmp_path: Path) -> None:
    database = tmp_path / "bigquery.duckdb"
    today = raw_probes(track(1, DAY, ["vacant", "occupied"] * 5))
    # A skewed clock's ping stamped in the next Tokyo day still belongs to DAY's delivery.
    today = pl.concat([today, raw_probes([(2, at_minute(DAY, 1500), 35.68, 139.77)])])
    other_days = [
        as_bigquery_rows(raw_probes(track(10 + i, d, ["vacant"] * 3)), d)
        for i, d in enumerate((DAY - timedelta(days=1), DAY + timedelta(days=1)))
    ]
    load_table(database, PROBES_TABLE, pl.concat([*other_days, as_bigquery_rows(today, DAY)]))
    source = duckdb_source(database)

    with mock.patch.object(
        DuckDBProbeSource, "_query", autospec=True, side_effect=DuckDBProbeSource._query
    ) as query:
        delivery = source.read_probes(DAY)

    assert delivery.probes.schema == RAW_PROBES_SCHEMA
    assert_frame_equal(delivery.probes.sort("vehicle_id", "ts"), today.sort("vehicle_id", "ts"))
    assert delivery.origin == {
        "source": "bigquery",
        "table": PROBES_TABLE,
        "partition": f"service_day={DAY}",
    }
    (_, sql, parameters), _ = query.call_args
    assert sql == READ_PROBES_SQL.replace("{probes_table}", PROBES_TABLE)
    assert "@day" in sql and DAY.isoformat() not in sql and "2026" not in sql
    assert parameters == [bigquery.ScalarQueryParameter("day", "DATE", DAY)]


def test_the_pushed_down_sql_pastes_no_value() -> None:
    """The only text spliced into the SQL is the table name; every value is a parameter."""
    sql = BigQueryProbeSource(
        bigquery=BigQueryResource(project=PROJECT),
        probes_table=PROBES_TABLE,
        weather_table=WEATHER_TABLE,
    )._sql(CELL_DEMAND_SQL)
    literals = {
        token.text
        for token in sqlglot.tokenize(sql, read="bigquery")
        if token.token_type in (TokenType.NUMBER, TokenType.STRING)
    }
    # Constants of the formulas only: no date, bound, threshold or cell code of the area.
    assert literals <= {
        "0",
        "1",
        "2",
        "10",
        "100",
        "100.0",
        "360",
        "3600000000",
        "60000000",
        "1000000",
        "0.5",
        "0.017453292519943295",
        "12742.0176",
        "occupied",
        "vacant",
        "dispatched",
        "off_duty",
        " ",
        "second",
        "third",
        "half",
        # the names of reasons, events and bookings the stages write
        *REJECT_REASONS,
        "pickup",
        "dropoff",
        "street_hail",
        "app_booking",
        "other",
    }, literals
    assert {"day", "day_start", "area_cells", "max_implied_speed_kmh"} <= (
        bigquery_parameter_names(sql)
    )


@pytest.mark.parametrize(
    "table",
    [
        "taxi-feed.probes.pings; DROP TABLE x",
        "probes.pings",
        "taxi-feed.probes.pings`",
        "taxi-feed.probes.pings -- comment",
        "a.b.c.d",
        "",
    ],
)
def test_a_table_name_that_is_not_plain_is_refused(table: str) -> None:
    with pytest.raises(ValidationError, match="not a fully qualified project.dataset.table"):
        BigQueryProbeSource(
            bigquery=BigQueryResource(project=PROJECT),
            probes_table=table,
            weather_table=WEATHER_TABLE,
        )


def test_pull_mode_reads_the_day_in_the_tables_arrival_order(tmp_path: Path) -> None:
    """A table has no row order: with the loader's arrival column, read_probes delivers the
    day in that order, the one the Polars path counts out-of-order pings against."""
    probes = SimulatedProbeSource(fleet_size=5, seed=3).read_probes(DAY).probes
    rows = as_bigquery_rows(probes, DAY, integer_ids=False)
    rows = rows.with_columns(arrival=pl.int_range(pl.len(), dtype=pl.Int64))
    database = tmp_path / "bigquery.duckdb"
    load_table(database, PROBES_TABLE, rows.sample(fraction=1.0, shuffle=True, seed=1))
    source = duckdb_source(database).model_copy(update={"arrival_column": "arrival"})

    delivered = source.read_probes(DAY).probes

    assert_frame_equal(delivered, probes)
    assert clean_probes(delivered, DAY, CENTRAL_TOKYO).out_of_order_rows > 0


@pytest.mark.parametrize("column", ["ts", "Service_Day", "arrival; DROP TABLE x", "a`b", ""])
def test_an_arrival_column_that_is_not_plain_is_refused(column: str) -> None:
    with pytest.raises(ValidationError, match="is not a plain column name"):
        BigQueryProbeSource(
            bigquery=BigQueryResource(project=PROJECT),
            probes_table=PROBES_TABLE,
            weather_table=WEATHER_TABLE,
            arrival_column=column,
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda f: f.drop("heading"),
            r"missing column\(s\) heading; expected vehicle_id STRING or INT64",
        ),
        (
            lambda f: f.with_columns(pl.col("speed_kmh").cast(pl.String)),
            "column 'speed_kmh' has type String; expected FLOAT64",
        ),
        (
            lambda f: f.with_columns(pl.col("ts").dt.replace_time_zone(None)),
            "column 'ts' holds timestamps without a time zone",
        ),
        (
            lambda f: f.with_columns(pl.col("vehicle_id").cast(pl.Float64)),
            "column 'vehicle_id' has type Float64; expected STRING or INT64",
        ),
        (
            lambda f: f.with_columns(pl.Series("vehicle_id", [" T-1", "T-2", "", "T-4"])),
            r"column 'vehicle_id' has 2 value\(s\) that are not clean vehicle ids, "
            r"e.g. \[' T-1', ''\]",
        ),
    ],
)
def test_a_table_with_a_wrong_layout_is_refused_naming_table_and_column(
    tmp_path: Path, change, message: str
) -> None:
    database = tmp_path / "bigquery.duckdb"
    probes = as_bigquery_rows(raw_probes(track(1, DAY, ["vacant"] * 4)), DAY)
    load_table(database, PROBES_TABLE, change(probes))
    with pytest.raises(ProbeSourceError, match=f"^{PROBES_TABLE}: {message}"):
        duckdb_source(database).read_probes(DAY)


def test_read_weather_reads_the_tokyo_day(tmp_path: Path) -> None:
    database = tmp_path / "bigquery.duckdb"
    hours = pl.datetime_range(
        at_minute(DAY, -24 * 60),
        at_minute(DAY, 48 * 60),
        "1h",
        closed="left",
        time_unit="us",
        eager=True,
        time_zone="UTC",
    )
    weather = pl.DataFrame({"hour_start": hours, "rain_mm_per_h": [i / 10 for i in range(72)]})
    load_table(database, WEATHER_TABLE, weather)

    day_weather = duckdb_source(database).read_weather(DAY)

    assert day_weather.schema == WEATHER_SCHEMA
    assert_frame_equal(day_weather, weather.slice(24, 24))
    with pytest.raises(ProbeSourceError, match=f"{WEATHER_TABLE}: no weather rows for"):
        duckdb_source(database).read_weather(DAY + timedelta(days=5))


ALL_ASSETS = dg.load_assets_from_modules(list(ASSET_MODULES))
TO_CELL_DEMAND = dg.AssetSelection.assets(
    "raw_probes", "clean_probes", "rejected_probes", "trip_events", "cell_demand"
)


def materialize_cell_demand(
    source: object, data_dir: Path, instance: dg.DagsterInstance
) -> tuple[pl.DataFrame, dict]:
    result = dg.materialize(
        ALL_ASSETS,
        selection=TO_CELL_DEMAND,
        partition_key=DAY.isoformat(),
        resources=local_resources(str(data_dir), str(data_dir / "artifacts"), source),
        instance=instance,
    )
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    (event,) = result.asset_materializations_for_node("cell_demand")
    return pl.read_parquet(data_dir / "cell_demand" / f"{DAY}.parquet"), event.metadata


def test_the_cell_demand_asset_uses_the_pushed_down_sql(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    simulator = SimulatedProbeSource(fleet_size=60, seed=7)
    database = tmp_path / "bigquery.duckdb"
    load_table(database, PROBES_TABLE, as_bigquery_rows(simulator.read_probes(DAY).probes, DAY))

    in_polars, polars_metadata = materialize_cell_demand(simulator, tmp_path / "p", instance)
    with mock.patch.object(
        DuckDBProbeSource, "_query", autospec=True, side_effect=DuckDBProbeSource._query
    ) as query:
        in_bigquery, bigquery_metadata = materialize_cell_demand(
            duckdb_source(database), tmp_path / "bq", instance
        )

    assert polars_metadata.pop("computed_in").value == "polars"
    assert bigquery_metadata.pop("computed_in").value == "bigquery"
    # Each run stores under its own folder; every other entry must be the same.
    assert bigquery_metadata.pop("path") != polars_metadata.pop("path")
    assert bigquery_metadata == polars_metadata
    assert_frame_equal(in_bigquery, in_polars)
    assert in_polars["pickups"].sum() > 100
    # raw_probes read the partition, and cell_demand ran the pushed-down query.
    queries = [call.args[1] for call in query.call_args_list]
    assert queries == [
        READ_PROBES_SQL.replace("{probes_table}", PROBES_TABLE),
        CELL_DEMAND_SQL.replace("{probes_table}", PROBES_TABLE),
    ]
