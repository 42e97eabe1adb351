"""The data path's BigQuery tables, written on DuckDB: the same scripts, partition by partition.

``BigQueryDataPath`` runs each write as one BigQuery script (CREATE TABLE IF NOT EXISTS,
then DELETE + INSERT of the day's partition in a transaction). Here its one method that
talks to BigQuery runs the same script on a DuckDB file instead: every statement
transpiled by sqlglot, bound to the very ``QueryParameter`` values it was given.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
import sqlglot
from dagster_gcp import BigQueryResource
from google.cloud import bigquery
from polars.testing import assert_frame_equal

from taxi_assets.assets.cleaning import quarantine_share_result, rows_conserved_result
from taxi_assets.checks import contract_check_result
from taxi_assets.cleaning import CleaningRules, clean_probes, rejected_counts
from taxi_assets.contracts import CleanProbes, RejectedProbes, TripEvents
from taxi_assets.demand import aggregate_cell_demand
from taxi_assets.frames import CELL_DEMAND_SCHEMA
from taxi_assets.metadata import latest_materialization_metadata
from taxi_assets.quarantine import QuarantineLimits
from taxi_assets.resources import local_resources
from taxi_assets.service_area import CENTRAL_TOKYO, ServiceArea
from taxi_assets.sources.base import ProbeSourceError
from taxi_assets.sources.bigquery import (
    BigQueryProbeSource,
    QueryParameter,
    conform_stage,
    parameter_names,
)
from taxi_assets.sources.bigquery_data_path import STAGE_SCHEMAS, BigQueryDataPath
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets.trips import derive_trip_events
from taxi_assets.validation.schema import find_anomalies, load_schema, schema_path
from taxi_assets.validation.statistics import (
    SAMPLE_FIGURES,
    compute_statistics,
    with_whole_day_figures,
)
from taxi_assets_tests.test_bigquery_source import (
    ALL_ASSETS,
    DAY,
    PROJECT,
    DuckDBProbeSource,
    as_bigquery_rows,
    as_duckdb,
    hostile_rows,
    load_table,
    materialize_cell_demand,
)

PROBES_TABLE = f"{PROJECT}.probes.pings"
# The metadata both modes record; in BigQuery mode the Polars path's values come from SQL.
METADATA_COMPARED = ("clean_probes", "trip_events")
# Keys that describe the stored frame (a bounded sample in BigQuery mode), not the day.
STORED_FRAME_KEYS = {"preview", "path", "bytes", "stored_rows", "dagster/row_count"}
# Keys that describe how the run pod computed the day locally (vehicle shards, its memory):
# in BigQuery mode the pod computes nothing of the day.
LOCAL_RUN_KEYS = {"vehicle_shards", "peak_rss_mib"}
# The loader's arrival stamp: the delivered frame's row order, which the Polars path
# counts out-of-order pings against (a table has no row order of its own).
ARRIVAL = "arrival"
DATASET = f"{PROJECT}.data_path"


@functools.cache
def duckdb_script(sql: str) -> list[tuple[str, frozenset[str]]]:
    """Each statement of a BigQuery script as DuckDB SQL, with the parameters it uses."""
    statements = [s.sql(dialect="bigquery") for s in sqlglot.parse(sql, read="bigquery")]
    return [(as_duckdb(text), parameter_names(text)) for text in statements]


class DuckDBDataPath(BigQueryDataPath):
    """The BigQuery data path with its one BigQuery call running on a DuckDB file."""

    duckdb_file: str

    def _run(self, sql: str, parameters: Sequence[QueryParameter]) -> pl.DataFrame:
        given = {
            p.name: p.values if isinstance(p, bigquery.ArrayQueryParameter) else p.value
            for p in parameters
        }
        assert parameter_names(sql) == set(given)
        result = pl.DataFrame()
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            # A table that does not exist must fail, as in BigQuery, not be looked up
            # among the test's Python variables.
            con.execute("SET python_enable_replacements = false")
            con.execute(f"ATTACH '{self.duckdb_file}' AS \"{PROJECT}\"")
            for text, names in duckdb_script(sql):
                relation = con.sql(text, params={name: given[name] for name in names})
                if relation is not None:  # a query, not DDL or DML
                    result = pl.from_arrow(relation.to_arrow_table())
        return result


def table_day(database: Path, table: str, day: date) -> pl.DataFrame:
    """Every row of one partition, read directly (the test may read whole days)."""
    project, dataset, name = table.split(".")
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"ATTACH '{database}' AS \"{project}\" (READ_ONLY)")
        relation = con.sql(
            f'SELECT * EXCLUDE (service_day) FROM "{project}"."{dataset}"."{name}" '
            "WHERE service_day = $day",
            params={"day": day},
        )
        frame = pl.from_arrow(relation.to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def in_order(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(pl.all(), nulls_last=True)


@pytest.fixture(scope="module")
def two_days() -> dict[date, pl.DataFrame]:
    """Two simulated 20-taxi days, the first with the hand-made hostile pings."""
    source = SimulatedProbeSource(fleet_size=20, seed=3)
    return {
        DAY: pl.concat([source.read_probes(DAY).probes, hostile_rows(DAY)]),
        DAY + timedelta(days=1): source.read_probes(DAY + timedelta(days=1)).probes,
    }


def with_arrival(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ARRIVAL))


def write_day(path: BigQueryDataPath, day: date, rules: CleaningRules) -> int | None:
    out_of_order_rows = path.write_clean_and_rejected(day, CENTRAL_TOKYO, rules)
    path.write_trip_events(day, CENTRAL_TOKYO, rules)
    path.write_cell_demand(day, CENTRAL_TOKYO, rules, 15)
    return out_of_order_rows


def test_each_run_replaces_its_day_with_the_polars_path_s_rows(
    two_days: dict[date, pl.DataFrame], tmp_path: Path
) -> None:
    database = tmp_path / "bigquery.duckdb"
    raw = pl.concat(as_bigquery_rows(p, d, integer_ids=False) for d, p in two_days.items())
    load_table(database, PROBES_TABLE, with_arrival(raw))
    with duckdb.connect(str(database)) as con:  # the deployment creates the dataset
        con.execute("CREATE SCHEMA data_path")
    path = DuckDBDataPath(
        bigquery=BigQueryResource(project=PROJECT),
        probes_table=PROBES_TABLE,
        dataset=DATASET,
        sample_rows=500,
        duckdb_file=str(database),
        arrival_column=ARRIVAL,
    )
    rules = CleaningRules()
    next_day = DAY + timedelta(days=1)
    out_of_order = {day: write_day(path, day, rules) for day in (DAY, next_day)}
    # A re-run replaces the day; a table without an arrival column counts nothing (None).
    assert write_day(path.model_copy(update={"arrival_column": None}), DAY, rules) is None

    clean_days = {}
    for day, probes in two_days.items():
        result = clean_probes(probes, day, CENTRAL_TOKYO, rules)
        clean_days[day] = result.clean
        trips = derive_trip_events(result.clean, rules.trips)
        expected = {
            "clean_probes": result.clean,
            "rejected_probes": result.rejected,
            "trip_events": trips,
            "cell_demand": aggregate_cell_demand(result.clean, trips, day, CENTRAL_TOKYO, 15),
        }
        for stage, want in expected.items():
            stored = conform_stage(
                table_day(database, path.table(stage), day), STAGE_SCHEMAS[stage]
            )
            assert_frame_equal(in_order(stored), in_order(want), check_exact=True)

        # The checks come from SQL aggregates, not from the rows.
        assert out_of_order[day] == result.out_of_order_rows
        counts = path.day_counts(day)
        assert counts.raw_rows == probes.height
        assert counts.kept_rows == result.clean.height
        assert counts.rejected == rejected_counts(result.rejected)
        conserved = rows_conserved_result(counts.raw_rows, counts.kept_rows, counts.rejected_rows)
        assert conserved.passed
        share = quarantine_share_result(counts.rejected, counts.raw_rows, QuarantineLimits())
        assert share.metadata["raw_rows"].value == probes.height

    # Contracts run on a bounded sample of the partition.
    for stage, contract in (
        ("clean_probes", CleanProbes),
        ("rejected_probes", RejectedProbes),
        ("trip_events", TripEvents),
    ):
        sample = path.sample(stage, DAY)
        assert 0 < sample.height <= 500
        assert contract_check_result(contract, sample, stage).passed
    # With room for several vehicles, the sample is whole vehicles in the MD5 order of
    # their ids, as many as fit (computed here independently, with hashlib).
    roomy = path.model_copy(update={"sample_rows": 5_000})
    stored = table_day(database, path.table("clean_probes"), DAY)
    per_vehicle = dict(stored.group_by("vehicle_id").len().iter_rows())
    expected_vehicles, rows = [], 0
    for vehicle in sorted(per_vehicle, key=lambda v: (hashlib.md5(v.encode()).hexdigest(), v)):
        if rows + per_vehicle[vehicle] > 5_000 and expected_vehicles:
            break
        expected_vehicles.append(vehicle)
        rows += per_vehicle[vehicle]
    sample = roomy.sample("clean_probes", DAY)
    assert 1 < len(expected_vehicles) < len(per_vehicle)
    assert dict(sample.group_by("vehicle_id").len().iter_rows()) == {
        vehicle: per_vehicle[vehicle] for vehicle in expected_vehicles
    }
    assert_frame_equal(roomy.sample("clean_probes", DAY), sample)  # deterministic
    raw_sample = roomy.raw_sample(DAY)
    assert 0 < raw_sample.height <= 5_000
    raw_per_vehicle = dict(two_days[DAY].group_by("vehicle_id").len().iter_rows())
    assert all(
        raw_per_vehicle[vehicle] == n
        for vehicle, n in raw_sample.group_by("vehicle_id").len().iter_rows()
    )
    # Statistics: every figure but the distributions over the whole day, from SQL, equal
    # to the Polars statistics of the whole day; the distributions are the sample's.
    whole = compute_statistics(clean_days[DAY], categorical=["cell"])
    sampled = compute_statistics(sample, categorical=["cell"])
    described = with_whole_day_figures(sampled, path.day_statistics("clean_probes", DAY, sampled))
    assert described["rows"][0] == clean_days[DAY].height > sample.height
    assert_frame_equal(described.drop(SAMPLE_FIGURES), whole.drop(SAMPLE_FIGURES), rtol=1e-9)
    assert_frame_equal(described.select(SAMPLE_FIGURES), sampled.select(SAMPLE_FIGURES))
    # Schema anomalies: the sample's columns, the whole day's values (from SQL), the same
    # anomalies as the whole day in Polars. A strict schema and a small area make them.
    committed = load_schema("clean_probes", schema_path("clean_probes"))
    strict = dataclasses.replace(
        committed,
        features={
            **committed.features,
            "lat": dataclasses.replace(committed.features["lat"], min=35.68, max=35.7),
            "speed_kmh": dataclasses.replace(committed.features["speed_kmh"], max=30.0),
            "status": dataclasses.replace(committed.features["status"], categories=["vacant"]),
        },
    )
    small = ServiceArea(35.65, 35.72, 139.7, 139.8)
    want = find_anomalies(clean_days[DAY], strict, small)
    assert {"out_of_range", "new_category", "outside_service_area"} <= set(want["anomaly"])
    whole_table = path.day_aggregates("clean_probes", DAY, strict)
    assert_frame_equal(find_anomalies(sample, strict, small, whole_table), want)
    assert not find_anomalies(sample, strict, small).equals(want)  # the sample alone differs
    # cell_demand, a small dense grid, is what the model's features read back.
    stored = conform_stage(table_day(database, path.table("cell_demand"), DAY), CELL_DEMAND_SCHEMA)
    assert_frame_equal(path.read_cell_demand(DAY), stored.sort("cell", "bucket_start"))


class DuckDBWarehouseSource(DuckDBProbeSource):
    """The BigQuery source on DuckDB, with the data path written as tables there too."""

    def warehouse_data_path(self) -> BigQueryDataPath:
        return DuckDBDataPath(
            bigquery=self.bigquery,
            probes_table=self.probes_table,
            dataset=DATASET,
            sample_rows=300,
            duckdb_file=self.duckdb_file,
            arrival_column=self.arrival_column,
        )


def test_the_assets_write_their_day_into_the_bigquery_tables(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """In BigQuery mode the assets keep their names and lineage, write the day by SQL,
    pass their checks from SQL counts and samples, and store only bounded samples."""
    # A real feed's traits (meter flaps, re-entries): the trip rules' counts are not zero.
    simulator = SimulatedProbeSource(fleet_size=30, seed=7, feed_profile="real_60s")
    probes = simulator.read_probes(DAY).probes
    database = tmp_path / "bigquery.duckdb"
    # The next day a quarter of the fleet reports: a row-count drift a sample cannot see.
    next_day = DAY + timedelta(days=1)
    few = probes.filter(pl.col("vehicle_id").is_in(probes["vehicle_id"].unique().sort().head(8)))
    few = few.with_columns(pl.col("ts") + timedelta(days=1))
    raw = pl.concat(
        [
            as_bigquery_rows(probes, DAY, integer_ids=False),
            as_bigquery_rows(few, next_day, integer_ids=False),
        ]
    )
    load_table(database, PROBES_TABLE, with_arrival(raw))
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE SCHEMA data_path")
    source = DuckDBWarehouseSource(
        bigquery=BigQueryResource(project=PROJECT),
        probes_table=PROBES_TABLE,
        weather_table=f"{PROJECT}.probes.weather",
        duckdb_file=str(database),
        arrival_column=ARRIVAL,
    )

    in_polars, _ = materialize_cell_demand(simulator, tmp_path / "p", instance)
    polars_metadata = {
        asset: latest_materialization_metadata(instance, asset, DAY.isoformat())
        for asset in METADATA_COMPARED
    }
    in_bigquery, metadata = materialize_cell_demand(source, tmp_path / "bq", instance)

    assert metadata["computed_in"].value == "bigquery"
    assert_frame_equal(in_bigquery, in_polars)
    expected = clean_probes(probes, DAY, CENTRAL_TOKYO)
    stored = table_day(database, f"{DATASET}.clean_probes", DAY)
    probes_kept = expected.clean.height
    assert stored.height == probes_kept > 300
    # Only bounded samples reach the run's storage: no asset pulled the day.
    for asset in ("raw_probes", "clean_probes", "rejected_probes", "trip_events"):
        assert pl.read_parquet(tmp_path / "bq" / asset / f"{DAY}.parquet").height <= 300
    events = instance.get_latest_materialization_event(dg.AssetKey("clean_probes"))
    assert events is not None
    clean_metadata = events.asset_materialization.metadata
    assert clean_metadata["rows"].value == expected.clean.height
    assert clean_metadata["raw_rows"].value == probes.height
    # The UI shows the same metadata, with the same values, in both modes.
    for asset in METADATA_COMPARED:
        in_sql = latest_materialization_metadata(instance, asset, DAY.isoformat())
        in_polars_run = polars_metadata[asset]
        same = set(in_polars_run) - STORED_FRAME_KEYS - LOCAL_RUN_KEYS
        assert same <= set(in_sql), same - set(in_sql)
        assert {k: in_sql[k] for k in same} == {k: in_polars_run[k] for k in same}, asset
    assert polars_metadata["clean_probes"]["out_of_order_rows"] > 0

    # clean_probes_statistics: the stored partition is a sample, but every figure the
    # statistics table shows (counts, nulls, ranges, means, top values) and the schema
    # anomalies are the whole day's.
    statistics = {
        mode: describe_clean_probes(source_of_mode, tmp_path / mode, instance)
        for mode, source_of_mode in (("p", simulator), ("bq", source))
    }
    assert statistics["bq"]["rows"].value == statistics["p"]["rows"].value == probes_kept
    assert statistics["bq"]["statistics"] == statistics["p"]["statistics"]
    assert statistics["bq"]["anomalies"] == statistics["p"]["anomalies"]
    assert statistics["bq"]["sample_rows"].value <= 300
    assert "histogram" in statistics["bq"]["from_sample"].value
    assert "sample_rows" not in statistics["p"]

    # Drift compares whole days: the sample stays at its bound, the day's rows do not.
    result = dg.materialize(
        ALL_ASSETS,
        selection=["raw_probes", "clean_probes", "rejected_probes", "clean_probes_statistics"],
        partition_key=next_day.isoformat(),
        resources=local_resources(str(tmp_path / "bq"), str(tmp_path / "bq" / "artifacts"), source),
        instance=instance,
        raise_on_error=False,
    )
    (drift,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "drift_vs_previous_day"
    ]
    kept_next_day = clean_probes(few, next_day, CENTRAL_TOKYO).clean.height
    assert not drift.passed
    assert drift.metadata["row_count_ratio"].value == pytest.approx(kept_next_day / probes_kept)
    assert kept_next_day > 300  # both samples are at their bound: only SQL sees the drop
    trip_rules = polars_metadata["trip_events"]
    assert trip_rules["debounced_vacant_gaps"] > 0 and trip_rules["gap_skipped_pickups"] > 0


def describe_clean_probes(
    source: object, data_dir: Path, instance: dg.DagsterInstance
) -> dict[str, dg.MetadataValue]:
    """clean_probes_statistics of DAY (after its clean_probes): its metadata."""
    result = dg.materialize(
        ALL_ASSETS,
        selection="clean_probes_statistics",
        partition_key=DAY.isoformat(),
        resources=local_resources(str(data_dir), str(data_dir / "artifacts"), source),
        instance=instance,
        raise_on_error=False,  # the schema's checks judge the feed; the figures are compared
    )
    (event,) = result.asset_materializations_for_node("clean_probes_statistics")
    return event.metadata


def test_the_data_path_needs_its_own_writer() -> None:
    source = BigQueryProbeSource(
        bigquery=BigQueryResource(project=PROJECT),
        probes_table=PROBES_TABLE,
        weather_table=f"{PROJECT}.probes.weather",
        data_path_dataset=DATASET,
    )
    with pytest.raises(ProbeSourceError, match="needs data_path_writer"):
        source.warehouse_data_path()
    writer = BigQueryResource(project=PROJECT)
    path = source.model_copy(update={"data_path_writer": writer}).warehouse_data_path()
    assert path.table("trip_events") == f"{DATASET}.trip_events"
    assert path.bigquery is writer
