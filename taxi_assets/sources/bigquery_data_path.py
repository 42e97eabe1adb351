"""The data path as BigQuery tables: each run replaces one service-day partition by SQL.

``clean_probes``, ``rejected_probes``, ``trip_events`` and ``cell_demand`` are tables of
one dataset (``dataset``), each partitioned by ``service_day`` (the Tokyo day, as in the
probes table) and written by the stages of ``bigquery_sql`` (the same CTEs the parity
tests compare with the Polars path):

- clean and rejected probes from the day's raw partition, labelled once (a temporary
  table) and split by reason;
- trip events from the day's ``clean_probes`` partition;
- cell demand from the day's ``clean_probes`` and ``trip_events`` partitions.

Each write is one script: ``CREATE TABLE IF NOT EXISTS`` (outside the transaction, as
BigQuery allows no DDL on permanent tables inside one), then ``DELETE`` the day's
partition and ``INSERT`` it again inside one transaction, so re-running a day replaces it
and a failed run leaves the previous version. The checks read SQL aggregates (row counts,
counts per reason) and contracts run on a bounded sample (``sample_rows``: whole
vehicles in the MD5 order of their ids, :func:`whole_vehicles_sample`), so no run pod
pulls a day of pings.

The assets use it when the BigQuery probe source has ``data_path_dataset`` (and its own
``data_path_writer``): ``raw_probes`` counts the day by SQL and stores a bounded sample;
``clean_probes`` / ``rejected_probes`` and ``trip_events`` run these writes, report their
rows from SQL, run their contracts and checks on ``day_counts`` and ``sample``, and store
the sample as their partition (``clean_probes_statistics`` takes its counts, ranges,
moments and value counts from SQL over the day, ``day_statistics``, judges the schema's
value checks on ``day_aggregates``, and takes only the numeric distributions from the
sample);
``cell_demand`` is written here and read back (a small dense grid) for the features and the
forecast. The trip events' write also returns what the trip rules changed (flaps bridged,
short fares dropped, pickups skipped for the gap, boundary re-entries), counted in SQL
over the same stages; given the probes table's arrival column (``arrival_column``), the
clean write also returns ``out_of_order_rows``. Nothing here has run on BigQuery itself
(no network where it was built): the scripts run on DuckDB through sqlglot in the tests.
In production, ``TAXI_ASSETS_BQ_DATA_PATH_DATASET`` and
``TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS`` turn it on (``resources.py``).

Credentials are those of a writer service account on the data path's dataset
(``roles/bigquery.dataEditor`` on it, ``roles/bigquery.dataViewer`` on the probes table,
``roles/bigquery.jobUser`` on the project), given through ``dg.EnvVar`` to the nested
``BigQueryResource``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import dagster as dg
import polars as pl
from dagster_gcp import BigQueryResource
from google.cloud import bigquery
from pydantic import Field, field_validator

from taxi_assets.cleaning import CleaningRules
from taxi_assets.frames import (
    CELL_DEMAND_SCHEMA,
    CLEAN_PROBES_SCHEMA,
    RAW_PROBES_SCHEMA,
    REJECT_REASONS,
    REJECTED_PROBES_SCHEMA,
    TRIP_EVENTS_SCHEMA,
)
from taxi_assets.service_area import ServiceArea
from taxi_assets.sources.bigquery import (
    QueryParameter,
    cell_demand_parameters,
    conform,
    conform_cell_demand,
    conform_stage,
    parameters_used_by,
    run_query,
    validate_arrival_column,
    validate_table_name,
)
from taxi_assets.sources.bigquery_sql import (
    ARRIVAL_COLUMN_PLACEHOLDER,
    CLEAN_CTES,
    CLEAN_PROBES_COLUMNS,
    DEMAND_CTES,
    DEMAND_SELECT,
    LABEL_CTES,
    LABELLED_CTE,
    OUT_OF_ORDER_CTES,
    OUT_OF_ORDER_SELECT,
    PROBE_TABLE_PLACEHOLDER,
    TRIP_EVENTS_COLUMNS,
    TRIP_EVENTS_CTE,
    TRIP_RULE_COUNTS_SELECT,
    TRIP_STATE_CTES,
    compose,
)
from taxi_assets.validation.schema import (
    DataSchema,
    TableAggregates,
    dtype_name,
    value_checked,
)
from taxi_assets.validation.statistics import (
    CATEGORICAL,
    NUMERIC,
    SAMPLE_FIGURES,
    STATISTICS_SCHEMA,
    TIMESTAMP,
    top_value_counts,
)

STAGE_SCHEMAS = {
    "clean_probes": CLEAN_PROBES_SCHEMA,
    "rejected_probes": REJECTED_PROBES_SCHEMA,
    "trip_events": TRIP_EVENTS_SCHEMA,
    "cell_demand": CELL_DEMAND_SCHEMA,
}
# How each table is read: a vehicle's track, the quarantine by reason, a cell's demand.
_CLUSTER_BY = {
    "clean_probes": "vehicle_id",
    "rejected_probes": "reason",
    "trip_events": "cell",
    "cell_demand": "cell",
}
# The order a bounded sample's rows come back in (cell_demand's sample: its first cells).
_SAMPLE_ORDER = {
    "clean_probes": "vehicle_id, ts",
    "rejected_probes": "vehicle_id, ts, reason",
    "trip_events": "vehicle_id, ts",
    "cell_demand": "cell, bucket_start",
}
_PLACEHOLDERS = {stage: "{" + stage + "_table}" for stage in STAGE_SCHEMAS}


def bigquery_type(dtype: pl.DataType) -> str:
    """The BigQuery column type a Polars column is stored as (enums as their text)."""
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP"
    if isinstance(dtype, pl.Enum) or dtype == pl.String:
        return "STRING"
    if dtype.is_integer():
        return "INT64"
    if dtype.is_float():
        return "FLOAT64"
    raise ValueError(f"no BigQuery type for {dtype}")


def create_table_sql(stage: str) -> str:
    """DDL of a stage's table (a placeholder for its name), day-partitioned."""
    columns = ", ".join(
        f"{name} {bigquery_type(dtype)}" for name, dtype in STAGE_SCHEMAS[stage].items()
    )
    return (
        f"CREATE TABLE IF NOT EXISTS `{_PLACEHOLDERS[stage]}` ({columns}, service_day DATE)\n"
        f"PARTITION BY service_day CLUSTER BY {_CLUSTER_BY[stage]}\n"
        "OPTIONS (require_partition_filter = TRUE);\n"
    )


def _replace_partition(stage: str, query: str) -> str:
    """DELETE + INSERT of the day's partition of ``stage`` (inside a transaction)."""
    table = _PLACEHOLDERS[stage]
    columns = ", ".join(STAGE_SCHEMAS[stage])
    return (
        f"DELETE FROM `{table}` WHERE service_day = @day;\n"
        f"INSERT INTO `{table}` ({columns}, service_day)\n"
        f"SELECT {columns}, @day FROM (\n{query});\n"
    )


def _day_of(stage: str, columns: str) -> str:
    return f"SELECT {columns} FROM `{_PLACEHOLDERS[stage]}` WHERE service_day = @day"


# The labelling runs once: both tables are written from its temporary result (which ends
# with the script, as a script's temporary tables do).
_DAY_JUDGED_PINGS = "\njudged_pings AS (SELECT * FROM day_judged_pings)"
CLEAN_AND_REJECTED_SCRIPT = (
    create_table_sql("clean_probes")
    + create_table_sql("rejected_probes")
    + "CREATE TEMP TABLE day_judged_pings AS\n"
    + compose([LABEL_CTES], "SELECT * FROM judged_pings")
    + ";\n"
    + "BEGIN TRANSACTION;\n"
    + _replace_partition(
        "clean_probes",
        compose(
            [_DAY_JUDGED_PINGS, CLEAN_CTES],
            f"SELECT {CLEAN_PROBES_COLUMNS} FROM clean_probes\n",
        ),
    )
    + _replace_partition(
        "rejected_probes",
        compose(
            [_DAY_JUDGED_PINGS, LABELLED_CTE],
            "SELECT vehicle_id, ts, lat, lon, speed_kmh, heading, delivered_status AS status, "
            "reason\nFROM labelled_probes WHERE reason IS NOT NULL\n",
        ),
    )
    + "COMMIT TRANSACTION;\n"
)
# With the raw table's arrival column, the script's last statement counts the kept pings
# that arrived out of order (clean_probes' out_of_order_rows, as in Polars).
CLEAN_AND_REJECTED_COUNTING_OUT_OF_ORDER_SCRIPT = (
    CLEAN_AND_REJECTED_SCRIPT
    + compose([_DAY_JUDGED_PINGS, OUT_OF_ORDER_CTES], OUT_OF_ORDER_SELECT)
    + ";\n"
)

# The trip rules run once over the day's clean pings (a temporary table): the events are
# written from it, and the script's last statement returns what the rules changed
# (TRIP_RULE_COUNTS_SELECT), so the asset shows the Polars path's metadata.
_DAY_TRIP_STARTS = "\ntrip_starts AS (SELECT * FROM day_trip_starts)"
TRIP_EVENTS_SCRIPT = (
    create_table_sql("trip_events")
    + "CREATE TEMP TABLE day_trip_starts AS\n"
    + compose(
        [
            f"\nclean_probes AS ({_day_of('clean_probes', CLEAN_PROBES_COLUMNS)})",
            TRIP_STATE_CTES,
        ],
        "SELECT * FROM trip_starts",
    )
    + ";\n"
    + "BEGIN TRANSACTION;\n"
    + _replace_partition(
        "trip_events",
        compose(
            [_DAY_TRIP_STARTS, TRIP_EVENTS_CTE],
            f"SELECT {TRIP_EVENTS_COLUMNS} FROM trip_events\n",
        ),
    )
    + "COMMIT TRANSACTION;\n"
    + compose([_DAY_TRIP_STARTS], TRIP_RULE_COUNTS_SELECT)
    + ";\n"
)

CELL_DEMAND_SCRIPT = (
    create_table_sql("cell_demand")
    + "BEGIN TRANSACTION;\n"
    + _replace_partition(
        "cell_demand",
        compose(
            [
                f"\nclean_probes AS ({_day_of('clean_probes', CLEAN_PROBES_COLUMNS)})",
                f"\ntrip_events AS ({_day_of('trip_events', TRIP_EVENTS_COLUMNS)})",
                DEMAND_CTES,
            ],
            DEMAND_SELECT,
        ),
    )
    + "COMMIT TRANSACTION;\n"
)

# What the checks need, as aggregates of the day's partitions.
DAY_COUNTS_SQL = f"""
SELECT 'raw' AS part, CAST(NULL AS STRING) AS reason, COUNT(*) AS n
FROM `{PROBE_TABLE_PLACEHOLDER}` WHERE service_day = @day
UNION ALL
SELECT 'clean', NULL, COUNT(*) FROM `{_PLACEHOLDERS["clean_probes"]}` WHERE service_day = @day
UNION ALL
SELECT 'rejected', reason, COUNT(*) FROM `{_PLACEHOLDERS["rejected_probes"]}`
WHERE service_day = @day GROUP BY reason
"""


RAW_ROWS_SQL = f"""
SELECT COUNT(*) AS n FROM `{PROBE_TABLE_PLACEHOLDER}` WHERE service_day = @day
"""


def whole_vehicles_sample(day_rows: str, columns: str, order: str) -> str:
    """A bounded sample of whole vehicles: vehicles in the order of the MD5 of their id,
    taken while their rows fit in ``@sample_rows`` (the first one always, cut at the
    limit if it alone is larger). Deterministic, spread over the fleet rather than the
    lowest ids, and a vehicle's track is whole, so the sample shows real tracks. MD5 as
    hex, because sqlglot carries ``TO_HEX(MD5(..))`` to DuckDB's ``md5`` (the same hex)
    while DuckDB has no ``FARM_FINGERPRINT``. ``day_rows`` is a query of the day's rows
    with a ``sample_key`` column (the id as text, '' for a missing one)."""
    return f"""
WITH day_rows AS ({day_rows}),
vehicles AS (
  SELECT sample_key, COUNT(*) AS n, TO_HEX(MD5(sample_key)) AS vehicle_hash
  FROM day_rows GROUP BY sample_key
),
chosen AS (
  SELECT sample_key FROM (
    SELECT sample_key, n, SUM(n) OVER (ORDER BY vehicle_hash, sample_key
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
    FROM vehicles
  )
  WHERE running <= @sample_rows OR running = n
)
SELECT {columns} FROM day_rows
WHERE sample_key IN (SELECT sample_key FROM chosen)
ORDER BY {order}
LIMIT @sample_rows
"""


RAW_SAMPLE_SQL = whole_vehicles_sample(
    f"SELECT *, COALESCE(CAST(vehicle_id AS STRING), '') AS sample_key "
    f"FROM `{PROBE_TABLE_PLACEHOLDER}` WHERE service_day = @day",
    "* EXCEPT (service_day, sample_key)",
    "vehicle_id, ts",
)

TRIP_COUNTS_SQL = f"""
SELECT event, booking, COUNT(*) AS n
FROM `{_PLACEHOLDERS["trip_events"]}`
WHERE service_day = @day
GROUP BY event, booking
"""


def summary_sql(stage: str) -> str:
    """Vehicles, cells and the time range of the day's partition of ``stage``: what the
    Polars path's metadata reports of the whole frame."""
    return (
        "SELECT COUNT(DISTINCT vehicle_id) AS vehicles, COUNT(DISTINCT cell) AS cells, "
        f"MIN(ts) AS ts_min, MAX(ts) AS ts_max\n"
        f"FROM `{_PLACEHOLDERS[stage]}` WHERE service_day = @day\n"
    )


def sample_sql(stage: str) -> str:
    """A bounded, deterministic sample of the day's partition of ``stage``: whole
    vehicles (:func:`whole_vehicles_sample`), or for cell_demand its first cells."""
    columns = ", ".join(STAGE_SCHEMAS[stage])
    if "vehicle_id" not in STAGE_SCHEMAS[stage]:
        return f"{_day_of(stage, columns)}\nORDER BY {_SAMPLE_ORDER[stage]}\nLIMIT @sample_rows\n"
    keyed = _day_of(stage, f"{columns}, COALESCE(vehicle_id, '') AS sample_key")
    return whole_vehicles_sample(keyed, columns, _SAMPLE_ORDER[stage])


def _statistic_value(column: str, kind: str, dtype: str) -> str:
    """SQL of the value ``validation.statistics`` aggregates: numbers as FLOAT64 with NaN
    as NULL, timestamps in epoch seconds, categories as they are (counted)."""
    if kind == NUMERIC:
        value = f"CAST(`{column}` AS FLOAT64)"
        return f"IF(IS_NAN({value}), NULL, {value})" if dtype.startswith("Float") else value
    if kind == TIMESTAMP:
        return f"UNIX_MICROS(`{column}`) / 1000000"
    return f"`{column}`"


def day_statistics_sql(stage: str, features: Sequence[tuple[str, str, str]]) -> str:
    """One row of whole-day aggregates of ``stage``'s partition: its rows and, per
    (feature, kind, dtype) numbered i, ``count_i`` and for numbers and timestamps
    ``min_i``, ``max_i`` (numbers also ``mean_i``, ``std_i``, the sample deviation)."""
    columns = ["COUNT(*) AS n_rows"]
    for i, (column, kind, dtype) in enumerate(features):
        value = _statistic_value(column, kind, dtype)
        columns.append(f"COUNT({value}) AS count_{i}")
        if kind in (NUMERIC, TIMESTAMP):
            columns += [f"MIN({value}) AS min_{i}", f"MAX({value}) AS max_{i}"]
        if kind == NUMERIC:
            columns += [f"AVG({value}) AS mean_{i}", f"STDDEV_SAMP({value}) AS std_{i}"]
    return f"SELECT {', '.join(columns)}\nFROM `{_PLACEHOLDERS[stage]}` WHERE service_day = @day\n"


def day_value_counts_sql(stage: str, features: Sequence[str]) -> str:
    """(feature, value, n) of every categorical feature's values over the day, as text."""
    counts = [
        f"SELECT '{column}' AS feature, value, COUNT(*) AS n FROM (\n"
        f"  SELECT CAST(`{column}` AS STRING) AS value FROM `{_PLACEHOLDERS[stage]}`\n"
        f"  WHERE service_day = @day AND `{column}` IS NOT NULL\n"
        ") GROUP BY value\n"
        for column in features
    ]
    return "UNION ALL\n".join(counts)


def _missing_sql(column: str, is_float: bool) -> str:
    """validation.schema's missing value: NULL, or NaN for a float column."""
    return f"(`{column}` IS NULL OR IS_NAN(`{column}`))" if is_float else f"`{column}` IS NULL"


def day_anomaly_sql(stage: str, features: Sequence[tuple[str, bool, bool]]) -> str:
    """One row of what the schema's value checks need of the day's partition of ``stage``:
    its rows and, per (column, is_float, ranged) numbered i, ``missing_i``, and for a
    ranged one the values ``below_i`` @min_i and ``above_i`` @max_i and the extremes
    seen ``min_i``, ``max_i`` (NaN left out, as validation.schema does)."""
    columns = ["COUNT(*) AS n_rows"]
    for i, (column, is_float, ranged) in enumerate(features):
        columns.append(f"COUNTIF({_missing_sql(column, is_float)}) AS missing_{i}")
        if ranged:
            value = _statistic_value(column, NUMERIC, "Float64" if is_float else "Int64")
            columns += [
                f"COUNTIF({value} < @min_{i}) AS below_{i}",
                f"COUNTIF({value} > @max_{i}) AS above_{i}",
                f"MIN({value}) AS min_{i}",
                f"MAX({value}) AS max_{i}",
            ]
    return f"SELECT {', '.join(columns)}\nFROM `{_PLACEHOLDERS[stage]}` WHERE service_day = @day\n"


def trip_rule_parameters(
    day: date, area: ServiceArea, rules: CleaningRules
) -> list[QueryParameter]:
    """The data path's parameters and the edge distance of a boundary re-entry."""
    return [
        *cell_demand_parameters(day, area, rules, 15),
        bigquery.ScalarQueryParameter("boundary_km", "FLOAT64", rules.trips.boundary_km),
    ]


@dataclass(frozen=True)
class StageSummary:
    """Distinct vehicles and cells of a day's partition, and its first and last ``ts``."""

    vehicles: int
    cells: int
    times: pl.DataFrame  # one ``ts`` column: the first and the last (nulls when empty)


@dataclass(frozen=True)
class DayCounts:
    """Rows of the day in each table, from SQL aggregates."""

    raw_rows: int
    kept_rows: int
    rejected: dict[str, int]  # every reason of REJECT_REASONS, zeros included

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())


class BigQueryDataPath(dg.ConfigurableResource):
    """Writes the data path's tables in BigQuery, one service-day partition per call."""

    bigquery: BigQueryResource = Field(
        description="Project, location and the data path writer's credentials (dg.EnvVar)."
    )
    probes_table: str = Field(description="project.dataset.table of the raw pings.")
    dataset: str = Field(description="project.dataset that holds the data path's tables.")
    sample_rows: int = Field(
        default=50_000, description="At most this many rows are read back for a contract."
    )
    arrival_column: str | None = Field(
        default=None,
        description="The probes table's arrival column (BigQueryProbeSource.arrival_column); "
        "without it out_of_order_rows cannot be counted.",
    )

    @field_validator("probes_table")
    @classmethod
    def _plain_table_name(cls, value: str) -> str:
        return validate_table_name(value)

    @field_validator("dataset")
    @classmethod
    def _plain_dataset_name(cls, value: str) -> str:
        validate_table_name(f"{value}.table")
        return value

    @field_validator("arrival_column")
    @classmethod
    def _plain_column_name(cls, value: str | None) -> str | None:
        return validate_arrival_column(value)

    def table(self, stage: str) -> str:
        """project.dataset.table of a stage."""
        return validate_table_name(f"{self.dataset}.{stage}")

    def _sql(self, template: str) -> str:
        sql = template.replace(PROBE_TABLE_PLACEHOLDER, validate_table_name(self.probes_table))
        if self.arrival_column is not None:
            sql = sql.replace(
                ARRIVAL_COLUMN_PLACEHOLDER, validate_arrival_column(self.arrival_column)
            )
        for stage, placeholder in _PLACEHOLDERS.items():
            sql = sql.replace(placeholder, self.table(stage))
        return sql

    def _run(self, sql: str, parameters: Sequence[QueryParameter]) -> pl.DataFrame:
        """Run one query or script and return the rows of its last statement: the only
        place that talks to BigQuery, so tests can run the same SQL on DuckDB."""
        return run_query(self.bigquery, sql, parameters)

    def _execute(self, template: str, parameters: Sequence[QueryParameter]) -> pl.DataFrame:
        sql = self._sql(template)
        return self._run(sql, parameters_used_by(sql, parameters))

    def write_clean_and_rejected(
        self, day: date, area: ServiceArea, rules: CleaningRules
    ) -> int | None:
        """Writes the day's clean and rejected pings; returns the kept pings that arrived
        after a later-stamped ping of their vehicle, or None without an arrival column."""
        parameters = cell_demand_parameters(day, area, rules, 15)
        if self.arrival_column is None:
            self._execute(CLEAN_AND_REJECTED_SCRIPT, parameters)
            return None
        rows = self._execute(CLEAN_AND_REJECTED_COUNTING_OUT_OF_ORDER_SCRIPT, parameters)
        return int(rows["out_of_order_rows"].item())

    def write_trip_events(
        self, day: date, area: ServiceArea, rules: CleaningRules
    ) -> dict[str, int]:
        """Writes the day's trip events; returns what the trip rules changed, under the
        keys of ``trips.TripDerivation.metadata``."""
        rows = self._execute(TRIP_EVENTS_SCRIPT, trip_rule_parameters(day, area, rules))
        return {name: int(rows[name].item()) for name in rows.columns}

    def write_cell_demand(
        self, day: date, area: ServiceArea, rules: CleaningRules, bucket_minutes: int
    ) -> None:
        parameters = cell_demand_parameters(day, area, rules, bucket_minutes)
        self._execute(CELL_DEMAND_SCRIPT, parameters)

    def day_counts(self, day: date) -> DayCounts:
        rows = self._execute(DAY_COUNTS_SQL, [bigquery.ScalarQueryParameter("day", "DATE", day)])
        by_part = {part: 0 for part in ("raw", "clean")}
        rejected = dict.fromkeys(REJECT_REASONS, 0)
        for part, reason, n in rows.iter_rows():
            if part == "rejected":
                rejected[reason] = int(n)
            else:
                by_part[part] = int(n)
        return DayCounts(raw_rows=by_part["raw"], kept_rows=by_part["clean"], rejected=rejected)

    def summary(self, stage: str, day: date) -> StageSummary:
        """The day's distinct vehicles and cells and time range of ``stage``, from SQL."""
        rows = self._execute(
            summary_sql(stage), [bigquery.ScalarQueryParameter("day", "DATE", day)]
        )
        times = pl.DataFrame({"ts": [rows["ts_min"].item(), rows["ts_max"].item()]})
        times = times.cast({"ts": rows.schema["ts_min"]}) if times["ts"].dtype == pl.Null else times
        return StageSummary(
            vehicles=int(rows["vehicles"].item()),
            cells=int(rows["cells"].item()),
            times=conform_stage(times, pl.Schema({"ts": pl.Datetime("us", "UTC")})),
        )

    def sample(self, stage: str, day: date) -> pl.DataFrame:
        """At most ``sample_rows`` rows of the day's partition, in the stage's schema."""
        rows = self._execute(sample_sql(stage), self._sample_parameters(day))
        return conform_stage(rows, STAGE_SCHEMAS[stage])

    def _sample_parameters(self, day: date) -> list[QueryParameter]:
        return [
            bigquery.ScalarQueryParameter("day", "DATE", day),
            bigquery.ScalarQueryParameter("sample_rows", "INT64", self.sample_rows),
        ]

    def day_statistics(self, stage: str, day: date, sampled: pl.DataFrame) -> pl.DataFrame:
        """``validation.statistics`` figures of the day's whole partition of ``stage`` for
        the features ``sampled`` (statistics of its sample) describes, in
        STATISTICS_SCHEMA: rows, counts, null fractions, ranges, moments and categorical
        value counts from SQL aggregates; SAMPLE_FIGURES (the distributions) left null."""
        features = [
            (row["feature"], row["kind"], row["dtype"]) for row in sampled.iter_rows(named=True)
        ]
        for column, _, _ in features:
            if column not in STAGE_SCHEMAS[stage]:
                raise ValueError(f"{stage} has no column {column!r} to describe")
        parameters = [bigquery.ScalarQueryParameter("day", "DATE", day)]
        figures = self._execute(day_statistics_sql(stage, features), parameters).row(0, named=True)
        categorical = [column for column, kind, _ in features if kind == CATEGORICAL]
        values = (
            top_value_counts(self._execute(day_value_counts_sql(stage, categorical), parameters))
            if categorical
            else {}
        )
        rows = int(figures["n_rows"])
        records = []
        for i, (column, kind, dtype) in enumerate(features):
            count = int(figures[f"count_{i}"])
            record = {
                "feature": column,
                "kind": kind,
                "dtype": dtype,
                "rows": rows,
                "count": count,
                "null_fraction": (rows - count) / rows if rows else None,
                **dict.fromkeys(SAMPLE_FIGURES),
            }
            for figure in ("min", "max", "mean", "std"):
                record[figure] = figures.get(f"{figure}_{i}")
            if kind == CATEGORICAL:
                record["values"], record["value_counts"] = values.get(column, ([], []))
            records.append(record)
        return pl.DataFrame(records, schema=STATISTICS_SCHEMA)

    def day_aggregates(self, stage: str, day: date, schema: DataSchema) -> TableAggregates:
        """What ``validation.schema.find_anomalies`` needs to judge the values of the day's
        whole partition of ``stage`` against ``schema``, from SQL aggregates."""
        columns = STAGE_SCHEMAS[stage]
        # The features find_anomalies value-checks: present with the schema's type.
        features = [
            feature
            for name, feature in schema.features.items()
            if name in columns and dtype_name(columns[name]) == feature.dtype
        ]
        checks = [
            (feature.name, columns[feature.name].is_float(), value_checked(feature)[0])
            for feature in features
        ]
        parameters = [bigquery.ScalarQueryParameter("day", "DATE", day)]
        for i, feature in enumerate(features):
            if checks[i][2]:
                parameters += [
                    bigquery.ScalarQueryParameter(f"min_{i}", "FLOAT64", feature.min),
                    bigquery.ScalarQueryParameter(f"max_{i}", "FLOAT64", feature.max),
                ]
        figures = self._execute(day_anomaly_sql(stage, checks), parameters).row(0, named=True)
        counted = [
            feature.name
            for feature in features
            if value_checked(feature)[1] or feature.name in schema.service_area_cells
        ]
        value_counts: dict[str, dict[str, int]] = {name: {} for name in counted}
        if counted:
            rows = self._execute(day_value_counts_sql(stage, counted), parameters[:1])
            for feature, value, n in rows.iter_rows():
                value_counts[feature][value] = int(n)
        ranged = [i for i, check in enumerate(checks) if check[2]]
        return TableAggregates(
            rows=int(figures["n_rows"]),
            missing={name: int(figures[f"missing_{i}"]) for i, (name, _, _) in enumerate(checks)},
            below={checks[i][0]: int(figures[f"below_{i}"]) for i in ranged},
            above={checks[i][0]: int(figures[f"above_{i}"]) for i in ranged},
            minimum={checks[i][0]: figures[f"min_{i}"] for i in ranged},
            maximum={checks[i][0]: figures[f"max_{i}"] for i in ranged},
            value_counts=value_counts,
        )

    def raw_rows(self, day: date) -> int:
        """Rows the feed delivered for the day (before the data path's tables exist)."""
        rows = self._execute(RAW_ROWS_SQL, [bigquery.ScalarQueryParameter("day", "DATE", day)])
        return int(rows.item())

    def raw_sample(self, day: date) -> pl.DataFrame:
        """At most ``sample_rows`` delivered rows of the day (whole vehicles), in
        RAW_PROBES_SCHEMA; a column the table lacks or mistypes fails as ``read_probes``."""
        rows = self._execute(RAW_SAMPLE_SQL, self._sample_parameters(day))
        return conform(rows, RAW_PROBES_SCHEMA, self.probes_table)

    def trip_counts(self, day: date) -> dict[tuple[str, str | None], int]:
        """The day's trip events per (event, booking), from SQL."""
        rows = self._execute(TRIP_COUNTS_SQL, [bigquery.ScalarQueryParameter("day", "DATE", day)])
        return {(event, booking): int(n) for event, booking, n in rows.iter_rows()}

    def read_cell_demand(self, day: date) -> pl.DataFrame:
        """The day's cell demand (a dense grid of ~150 k small rows: the model reads it)."""
        columns = ", ".join(CELL_DEMAND_SCHEMA)
        sql = f"{_day_of('cell_demand', columns)}\nORDER BY cell, bucket_start\n"
        rows = self._execute(sql, [bigquery.ScalarQueryParameter("day", "DATE", day)])
        return conform_cell_demand(rows)
