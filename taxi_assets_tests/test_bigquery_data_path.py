"""The data path's BigQuery stages, run on DuckDB, against the Polars path row by row.

``clean_probes``, ``rejected_probes`` and ``trip_events`` each have a query composed from
the stages in ``bigquery_sql`` (the same CTEs ``CELL_DEMAND_SQL`` is made of, whose
parity ``test_bigquery_source`` checks). Here every stage's rows are compared with
``cleaning.clean_probes`` and ``trips.derive_trip_events`` on a simulated day with
hand-made faults and on random hostile days, over every mesh level and many thresholds.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from taxi_assets.cleaning import CleaningRules, clean_probes, rejected_counts
from taxi_assets.frames import (
    CLEAN_PROBES_SCHEMA,
    REJECT_REASONS,
    REJECTED_PROBES_SCHEMA,
    TRIP_EVENTS_SCHEMA,
)
from taxi_assets.service_area import CENTRAL_TOKYO, ServiceArea
from taxi_assets.sources.bigquery import (
    cell_demand_parameters,
    conform_stage,
    parameters_used_by,
)
from taxi_assets.sources.bigquery_data_path import trip_rule_parameters
from taxi_assets.sources.bigquery_sql import (
    ARRIVAL_COLUMN_PLACEHOLDER,
    CLEAN_PROBES_SQL,
    LABELLED_PROBES_SQL,
    OUT_OF_ORDER_SQL,
    PROBE_TABLE_PLACEHOLDER,
    REJECTED_PROBES_SQL,
    TRIP_EVENTS_SQL,
    TRIP_RULE_COUNTS_SQL,
)
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets.trips import derive_trips
from taxi_assets_tests.probe_builders import at_minute, raw_probes, track
from taxi_assets_tests.test_bigquery_source import (
    DAY,
    PROJECT,
    as_bigquery_rows,
    hostile_day_rules,
    hostile_rows,
    load_table,
    random_hostile_day,
    run_on_duckdb,
)

STAGES = {
    "clean_probes": (CLEAN_PROBES_SQL, CLEAN_PROBES_SCHEMA),
    "rejected_probes": (REJECTED_PROBES_SQL, REJECTED_PROBES_SCHEMA),
    "trip_events": (TRIP_EVENTS_SQL, TRIP_EVENTS_SCHEMA),
}


def run_stage(
    database: Path,
    table: str,
    stage: str,
    day: date,
    area: ServiceArea,
    rules: CleaningRules,
) -> pl.DataFrame:
    """One stage's query on the DuckDB stand-in, bound to exactly the parameters it names."""
    template, schema = STAGES[stage]
    sql = template.replace(PROBE_TABLE_PLACEHOLDER, table)
    parameters = parameters_used_by(sql, cell_demand_parameters(day, area, rules, 15))
    return conform_stage(run_on_duckdb(database, PROJECT, sql, parameters), schema)


def polars_stages(
    raw: pl.DataFrame, day: date, area: ServiceArea, rules: CleaningRules
) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    """The Polars path's frames, and its counts: the trip rules' (trip_events' metadata)
    and the kept pings that arrived out of order (clean_probes')."""
    result = clean_probes(raw, day, area, rules)
    trips = derive_trips(result.clean, rules.trips, area)
    frames = {
        "clean_probes": result.clean,
        "rejected_probes": result.rejected,
        "trip_events": trips.events,
    }
    return frames, {**trips.metadata(), "out_of_order_rows": result.out_of_order_rows}


def with_arrival(raw: pl.DataFrame, day: date, integer_ids: bool) -> pl.DataFrame:
    """The table's rows with the loader's arrival column: the delivered frame's order, the
    order the Polars path counts out-of-order pings against."""
    rows = as_bigquery_rows(raw, day, integer_ids=integer_ids)
    return rows.with_columns(arrival=pl.int_range(pl.len(), dtype=pl.Int64))


def trip_rule_counts(
    database: Path, table: str, day: date, area: ServiceArea, rules: CleaningRules
) -> dict[str, int]:
    """TRIP_RULE_COUNTS_SQL (the counts BigQueryDataPath's trip script returns) and
    OUT_OF_ORDER_SQL (what its clean script returns) on DuckDB."""
    sql = TRIP_RULE_COUNTS_SQL.replace(PROBE_TABLE_PLACEHOLDER, table)
    parameters = parameters_used_by(sql, trip_rule_parameters(day, area, rules))
    rows = run_on_duckdb(database, PROJECT, sql, parameters)
    counts = {name: int(rows[name].item()) for name in rows.columns}
    sql = OUT_OF_ORDER_SQL.replace(PROBE_TABLE_PLACEHOLDER, table).replace(
        ARRIVAL_COLUMN_PLACEHOLDER, "arrival"
    )
    parameters = parameters_used_by(sql, cell_demand_parameters(day, area, rules, 15))
    rows = run_on_duckdb(database, PROJECT, sql, parameters)
    return {**counts, "out_of_order_rows": int(rows["out_of_order_rows"].item())}


def in_order(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows in one order whatever the engine's (SQL has no arrival order)."""
    return frame.sort(pl.all(), nulls_last=True)


def assert_stages_equal(
    database: Path, table: str, raw: pl.DataFrame, day: date, area: ServiceArea, rules
) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    expected, trip_counts = polars_stages(raw, day, area, rules)
    for stage, want in expected.items():
        got = run_stage(database, table, stage, day, area, rules)
        try:
            assert_frame_equal(in_order(got), in_order(want), check_exact=True)
        except AssertionError as error:
            raise AssertionError(f"{stage} differs from the Polars path: {error}") from None
    # trip_events' and clean_probes' counts: the same keys and values in both modes.
    assert trip_rule_counts(database, table, day, area, rules) == trip_counts, trip_counts
    return expected, trip_counts


def late_night_taxi(day: date) -> pl.DataFrame:
    """A taxi with one of its 31 pings just before the day (outside_day, below the clock
    skew share): random days rarely cross midnight with few enough pings outside."""
    pings = track(99, day, ["vacant"] * 30, 1380, origin=(35.675, 139.755), step_deg=1e-4)
    pings.append((99, at_minute(day, -1), 35.675, 139.755))
    return raw_probes(pings)


@pytest.fixture(scope="module")
def simulated_day() -> pl.DataFrame:
    """A 60-taxi simulated day with the hand-made hostile pings."""
    simulated = SimulatedProbeSource(fleet_size=60, seed=3).read_probes(DAY).probes
    return pl.concat([simulated, hostile_rows(DAY)])


def test_every_stage_equals_the_polars_path_on_a_simulated_day(
    simulated_day: pl.DataFrame, tmp_path: Path
) -> None:
    database = tmp_path / "bigquery.duckdb"
    table = f"{PROJECT}.probes.pings"
    load_table(database, table, with_arrival(simulated_day, DAY, integer_ids=False))

    expected, trip_counts = assert_stages_equal(
        database, table, simulated_day, DAY, CENTRAL_TOKYO, CleaningRules()
    )
    assert trip_counts["debounced_vacant_gaps"] + trip_counts["debounced_short_fares"] > 0
    assert trip_counts["out_of_order_rows"] > 0

    counts = rejected_counts(expected["rejected_probes"])
    assert all(counts[reason] > 0 for reason in REJECT_REASONS), counts
    events = expected["trip_events"]
    assert events.height > 1000
    assert set(events["booking"].drop_nulls().cast(pl.String)) == {
        "street_hail",
        "app_booking",
        "other",
    }
    # LABELLED_PROBES_SQL is both sides at once: every delivered row once, NULL = kept.
    sql = LABELLED_PROBES_SQL.replace(PROBE_TABLE_PLACEHOLDER, table)
    parameters = parameters_used_by(
        sql, cell_demand_parameters(DAY, CENTRAL_TOKYO, CleaningRules(), 15)
    )
    labelled = run_on_duckdb(database, PROJECT, sql, parameters)
    assert labelled.height == simulated_day.height
    assert labelled["reason"].null_count() == expected["clean_probes"].height
    labels = Counter(labelled["reason"].drop_nulls().to_list())
    assert {reason: labels.get(reason, 0) for reason in REJECT_REASONS} == counts


def test_every_stage_equals_the_polars_path_on_random_hostile_days(tmp_path: Path) -> None:
    """Small days full of faults, over every mesh level and many thresholds: the same
    rows kept, the same rows rejected with the same reason, the same trip events."""
    database = tmp_path / "bigquery.duckdb"
    levels = ("half", "quarter", "third", "second")
    reasons: Counter[str] = Counter()
    events: Counter[str] = Counter()
    rule_counts: Counter[str] = Counter()
    for seed in range(8):
        day = DAY + timedelta(days=seed)
        area = ServiceArea(35.67, 35.69, 139.75, 139.78, mesh_level=levels[seed % 4])
        rules = hostile_day_rules(seed)
        raw = pl.concat([random_hostile_day(seed, day, area), late_night_taxi(day)])
        table = f"{PROJECT}.probes.pings_random"  # one name: one transpiled query per stage
        load_table(database, table, with_arrival(raw, day, integer_ids=seed % 2 == 0))

        expected, trip_counts = assert_stages_equal(database, table, raw, day, area, rules)
        rule_counts.update(trip_counts)

        reasons.update(rejected_counts(expected["rejected_probes"]))
        events.update(expected["trip_events"].select(pl.concat_str("event", "booking")).to_series())
    assert all(reasons[reason] > 0 for reason in REJECT_REASONS), reasons
    assert {"pickupstreet_hail", "dropoffother"} <= set(events), events
    # Every count of the trip rules occurs, and out-of-order arrivals: their SQL is
    # compared on real cases.
    assert all(rule_counts[name] > 0 for name in rule_counts) and len(rule_counts) == 5, rule_counts
