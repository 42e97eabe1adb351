"""Probes from a BigQuery table, with the heavy aggregation pushed down into BigQuery SQL.

Table layout the source expects (``probes_table``, ``project.dataset.table``)::

    vehicle_id STRING or INT64, ts TIMESTAMP, lat FLOAT64, lon FLOAT64,
    speed_kmh FLOAT64, heading FLOAT64, status STRING or INT64, service_day DATE

Vehicle ids are opaque: INT64 ids arrive as their decimal text, STRING ids as they are
(a value that is not a clean id fails the read, naming the table and examples). Status is
the feed's own word or 0/1 flag; the ``status_mapping`` setting maps it, in Polars and in
SQL alike, and unmapped values are quarantined as ``unknown_status``.
    PARTITION BY service_day  (require_partition_filter = TRUE recommended)
    CLUSTER BY vehicle_id

``service_day`` is the Tokyo day the feed delivered the ping for, not the date of ``ts``:
a device whose clock is off stamps some of its pings outside the day, and those pings
must still arrive with the day they belong to so that cleaning can see the skew and
quarantine them (``clock_skew``, ``outside_day``) instead of scattering them over other
partitions, where they would look like normal pings of another day. Partitioning on
``DATE(ts)`` would also make a Tokyo day straddle two UTC dates. Every query filters on
``service_day = @day``, so BigQuery scans one partition.

The live 5-minute tick does not pull the day: ``read_probes_window`` runs
``READ_PROBES_WINDOW_SQL`` (``ts >= @start AND ts < @end`` on the day's partition, plus
each vehicle's look-back before @start), so it pulls the hours its window and look-back
hold (``taxi_assets.serving``).

The weather table (``weather_table``) holds ``hour_start TIMESTAMP, rain_mm_per_h
FLOAT64``, partitioned by DAY on ``hour_start``.

``cell_demand`` runs the whole data path (cleaning, trip derivation, aggregation) as one
parameterized query (``taxi_assets.sources.bigquery_sql.CELL_DEMAND_SQL``, composed from
the same stages as the clean, rejected and trip-event queries), so a day's demand comes
back as ~150 k small rows instead of ~3 M pings. What still runs in Polars: ``raw_probes``
still pulls the day (``read_probes``), and ``clean_probes``, ``rejected_probes`` and
``trip_events`` are still computed from it by the assets. The graph stays honest:
``cell_demand`` still depends on ``clean_probes`` and ``trip_events``, so their blocking
checks still gate it, and it is computed from the same partition with the same rules
(the equality of both paths is tested on DuckDB). With ``data_path_dataset`` (and
``data_path_writer``) set, the pull is gone: ``BigQueryDataPath`` (``bigquery_data_path.py``)
writes all four as day-partitioned tables by SQL, and the assets read only SQL counts and
bounded samples.

Credentials are those of a read-only reader service account (``roles/bigquery.dataViewer``
on the dataset, ``roles/bigquery.jobUser`` on the project; ``roles/bigquery.readSessionUser``
when the Storage Read API is installed), passed by the deployment through
``dg.EnvVar`` into the nested ``BigQueryResource`` and never logged here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import polars as pl
import sqlglot
from dagster_gcp import BigQueryResource
from google.cloud import bigquery
from pydantic import Field, field_validator
from sqlglot import exp

from taxi_assets.calendar import MINUTES_PER_DAY, day_window_utc, validate_bucket_minutes
from taxi_assets.cleaning import CleaningRules
from taxi_assets.frames import (
    CELL_DEMAND_SCHEMA,
    MAX_VEHICLE_ID_CHARS,
    NOT_A_CLEAN_VEHICLE_ID,
    PLACEHOLDER_VEHICLE_ID,
    PROBE_STATUSES,
    RAW_PROBES_SCHEMA,
    WEATHER_SCHEMA,
)
from taxi_assets.mesh import CELLS_PER_FIRST_MESH, cols_per_degree, rows_per_degree
from taxi_assets.service_area import ServiceArea
from taxi_assets.sources.base import (
    LookBack,
    ProbeDelivery,
    ProbeSource,
    ProbeSourceError,
    cast_keeping_track,
    examples,
    refused_ids_message,
    vehicle_ids_as_text,
    window_origin,
)
from taxi_assets.sources.bigquery_sql import (
    CELL_DEMAND_SQL,
    PROBE_TABLE_PLACEHOLDER,
    READ_PROBES_SQL,
    READ_PROBES_WINDOW_SQL,
    READ_WEATHER_SQL,
    WEATHER_TABLE_PLACEHOLDER,
    physics_parameter_values,
)

QueryParameter = bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter

# A table name cannot be a query parameter, so it is spliced into the SQL text: only
# letters, digits, '_', '-' and the two dots of project.dataset.table get that far.
TABLE_NAME = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# The same for a column name (BigQuery's rule for an unquoted one).
COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")

# The BigQuery type each column of the delivered frames must have, for error messages.
BIGQUERY_TYPES = {
    "vehicle_id": "STRING or INT64",
    "ts": "TIMESTAMP",
    "lat": "FLOAT64",
    "lon": "FLOAT64",
    "speed_kmh": "FLOAT64",
    "heading": "FLOAT64",
    "status": "STRING or INT64",
    "hour_start": "TIMESTAMP",
    "rain_mm_per_h": "FLOAT64",
}


def run_query(
    resource: BigQueryResource, sql: str, parameters: Sequence[QueryParameter]
) -> pl.DataFrame:
    """Run one parameterized query or script on BigQuery; the rows of its last statement."""
    config = bigquery.QueryJobConfig(query_parameters=list(parameters))
    with resource.get_client() as client:
        # The Storage Read API is used when google-cloud-bigquery-storage is installed;
        # otherwise the client falls back to paging over REST (slower, same rows).
        arrow = client.query(sql, job_config=config).result().to_arrow()
    result = pl.from_arrow(arrow)
    assert isinstance(result, pl.DataFrame)
    return result


def validate_table_name(name: str) -> str:
    """``name`` if it is a plain ``project.dataset.table``, else ValueError naming it."""
    if not TABLE_NAME.fullmatch(name):
        raise ValueError(
            f"BigQuery table {name!r} is not a fully qualified project.dataset.table made of "
            "letters, digits, '_' and '-'"
        )
    return name


def validate_arrival_column(name: str | None) -> str | None:
    """``name`` if it is a plain column other than the ones the data path reads, else
    ValueError naming it."""
    if name is None:
        return None
    if not COLUMN_NAME.fullmatch(name) or name.lower() in {*RAW_PROBES_SCHEMA, "service_day"}:
        raise ValueError(
            f"arrival_column {name!r} is not a plain column name (letters, digits, '_') of "
            "its own: it must be the loader's arrival stamp, not a ping column"
        )
    return name


def probe_day_parameters(day: date) -> list[QueryParameter]:
    """Parameters of ``READ_PROBES_SQL``: the partition to read."""
    return [bigquery.ScalarQueryParameter("day", "DATE", day)]


def probe_window_parameters(
    day: date, start: datetime, end: datetime, look_back: LookBack | None
) -> list[QueryParameter]:
    """Parameters of ``READ_PROBES_WINDOW_SQL``: the partition, the window and the look-back
    (:func:`look_back_parameters`)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError(f"window {start} .. {end} needs aware datetimes (UTC or an offset)")
    return [
        *probe_day_parameters(day),
        bigquery.ScalarQueryParameter("start", "TIMESTAMP", start.astimezone(UTC)),
        bigquery.ScalarQueryParameter("end", "TIMESTAMP", end.astimezone(UTC)),
        *look_back_parameters(look_back),
    ]


def look_back_parameters(look_back: LookBack | None) -> list[QueryParameter]:
    """The look-back's parameters of ``READ_PROBES_WINDOW_SQL``; without one, the SQL reads
    the window alone (``@with_look_back`` false, the others unused)."""
    chosen = look_back or LookBack(timedelta(0), timedelta(0), ())
    return [
        bigquery.ScalarQueryParameter("with_look_back", "BOOL", look_back is not None),
        bigquery.ScalarQueryParameter("margin_us", "INT64", chosen.margin // _MICROSECOND),
        bigquery.ScalarQueryParameter("run_span_us", "INT64", chosen.run_span // _MICROSECOND),
        bigquery.ArrayQueryParameter("break_words", "STRING", list(chosen.break_words)),
    ]


_MICROSECOND = timedelta(microseconds=1)


def weather_day_parameters(day: date) -> list[QueryParameter]:
    day_start, day_end = day_window_utc(day)
    return [
        bigquery.ScalarQueryParameter("day_start", "TIMESTAMP", day_start),
        bigquery.ScalarQueryParameter("day_end", "TIMESTAMP", day_end),
    ]


def cell_demand_parameters(
    day: date, area: ServiceArea, rules: CleaningRules, bucket_minutes: int
) -> list[QueryParameter]:
    """Parameters of ``CELL_DEMAND_SQL``: the same numbers the Polars path uses."""
    validate_bucket_minutes(bucket_minutes)
    lat_min, lat_max, lon_min, lon_max = area.snapped_bounds
    level = area.mesh_level
    n = CELLS_PER_FIRST_MESH[level]
    cells = [int(cell) for cell in area.cells()["cell"]]

    def scalar(name: str, kind: str, value: object) -> QueryParameter:
        return bigquery.ScalarQueryParameter(name, kind, value)

    return [
        *probe_day_parameters(day),
        *weather_day_parameters(day),
        scalar("area_lat_min", "FLOAT64", lat_min),
        scalar("area_lat_max", "FLOAT64", lat_max),
        scalar("area_lon_min", "FLOAT64", lon_min),
        scalar("area_lon_max", "FLOAT64", lon_max),
        scalar("mesh_level", "STRING", level),
        scalar("mesh_rows_per_degree", "FLOAT64", rows_per_degree(level)),
        scalar("mesh_cols_per_degree", "FLOAT64", cols_per_degree(level)),
        scalar("mesh_cells_per_first", "INT64", n),
        # Sub-cell steps of mesh.mesh_code_from_index; a level coarser than a step never
        # uses it, and 1 keeps BigQuery's DIV from dividing by zero on the unused branch.
        scalar("mesh_step_second", "INT64", max(n // 8, 1)),
        scalar("mesh_step_third", "INT64", max(n // 80, 1)),
        scalar("mesh_step_half", "INT64", max(n // 160, 1)),
        bigquery.ArrayQueryParameter("area_cells", "INT64", cells),
        scalar("max_implied_speed_kmh", "FLOAT64", rules.max_implied_speed_kmh),
        scalar("max_speed_kmh", "FLOAT64", rules.max_speed_kmh),
        scalar("max_vehicle_id_chars", "INT64", MAX_VEHICLE_ID_CHARS),
        # The same RE2-compatible patterns as frames' clean-id rule (both engines use RE2).
        scalar("not_a_clean_vehicle_id", "STRING", NOT_A_CLEAN_VEHICLE_ID),
        scalar("placeholder_vehicle_id", "STRING", PLACEHOLDER_VEHICLE_ID),
        *(
            bigquery.ArrayQueryParameter(
                f"{status}_words",
                "STRING",
                [word for word, target in rules.status_mapping if target == status],
            )
            for status in PROBE_STATUSES
        ),
        scalar("max_occupied_minutes", "FLOAT64", rules.max_occupied_minutes),
        scalar("max_dispatched_minutes", "FLOAT64", rules.max_dispatched_minutes),
        scalar("clock_skew_min_share", "FLOAT64", rules.clock_skew_min_share),
        *(scalar(*value) for value in physics_parameter_values(rules)),
        scalar("bucket_us", "INT64", bucket_minutes * 60 * 1_000_000),
        scalar("buckets_per_day", "INT64", MINUTES_PER_DAY // bucket_minutes),
    ]


def parameters_used_by(sql: str, parameters: Sequence[QueryParameter]) -> list[QueryParameter]:
    """The ``parameters`` that ``sql`` names: each stage of the data path uses a subset
    of :func:`cell_demand_parameters` (cleaning needs no bucket width, trips no area)."""
    return [p for p in parameters if p.name in parameter_names(sql)]


@functools.cache
def parameter_names(sql: str) -> frozenset[str]:
    """The ``@name`` parameters a query or script (several statements) uses (cached: the
    data path's SQL is long to parse and the same for every day)."""
    return frozenset(
        parameter.name
        for statement in sqlglot.parse(sql, read="bigquery")
        if statement is not None
        for parameter in statement.find_all(exp.Parameter)
    )


def conform_stage(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """A stage's query result in its Polars schema: UTC microsecond timestamps (an engine
    that returns them naive means UTC), text statuses, reasons and events as enums."""
    timestamps = [name for name, dtype in schema.items() if isinstance(dtype, pl.Datetime)]
    naive = [name for name in timestamps if frame.schema[name].time_zone is None]
    return (
        frame.with_columns(pl.col(naive).dt.replace_time_zone("UTC"))
        .with_columns(pl.col(timestamps).dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
        .select(schema.names())
        .cast(dict(schema))
    )


def _utc(column: pl.Series, table: str) -> pl.Series:
    if not isinstance(column.dtype, pl.Datetime):
        raise ProbeSourceError(
            f"{table}: column {column.name!r} has type {column.dtype}; expected "
            f"{BIGQUERY_TYPES[column.name]}"
        )
    if column.dtype.time_zone is None:
        # BigQuery DATETIME has no time zone: is it UTC or Tokyo wall time? Refuse to guess.
        raise ProbeSourceError(
            f"{table}: column {column.name!r} holds timestamps without a time zone "
            "(a DATETIME column?); expected TIMESTAMP, so pings are not shifted by 9 hours"
        )
    return column.dt.convert_time_zone("UTC").dt.cast_time_unit("us")


def _conform_column(column: pl.Series, dtype: pl.DataType, table: str) -> pl.Series:
    name = column.name
    if isinstance(dtype, pl.Datetime):
        return _utc(column, table)
    if name in ("vehicle_id", "status"):
        if not (column.dtype == pl.String or column.dtype.is_integer()):
            raise ProbeSourceError(
                f"{table}: column {name!r} has type {column.dtype}; expected {BIGQUERY_TYPES[name]}"
            )
        if name == "status":
            return column.cast(pl.String)
        text, refused = vehicle_ids_as_text(column) or (column, column.clear())
        if refused.len():
            raise ProbeSourceError(refused_ids_message(table, name, refused))
        return text
    wanted_integer = dtype.is_integer()
    if not (column.dtype.is_integer() if wanted_integer else column.dtype.is_numeric()):
        raise ProbeSourceError(
            f"{table}: column {name!r} has type {column.dtype}; expected {BIGQUERY_TYPES[name]}"
        )
    cast, overflow = cast_keeping_track(column, dtype)
    if overflow.len():
        raise ProbeSourceError(
            f"{table}: column {name!r} has {overflow.len()} value(s) out of range for "
            f"{dtype}, e.g. {examples(overflow)}"
        )
    return cast


def conform(frame: pl.DataFrame, schema: pl.Schema, table: str) -> pl.DataFrame:
    """Cast a query result to ``schema``, or raise naming the table and column at fault.

    Extra columns are dropped (the table may carry more than we use).
    """
    missing = [name for name in schema if name not in frame.columns]
    if missing:
        raise ProbeSourceError(
            f"{table}: missing column(s) {', '.join(missing)}; expected "
            + ", ".join(f"{name} {BIGQUERY_TYPES[name]}" for name in schema)
        )
    return frame.select(
        _conform_column(frame[name], dtype, table) for name, dtype in schema.items()
    )


def conform_cell_demand(frame: pl.DataFrame) -> pl.DataFrame:
    """CELL_DEMAND_SCHEMA from the query's INT64 counts and UTC bucket starts."""
    bucket_start = frame["bucket_start"]
    if isinstance(bucket_start.dtype, pl.Datetime) and bucket_start.dtype.time_zone is None:
        # TIMESTAMP_MICROS is UTC by definition; an engine that returns it naive means UTC.
        frame = frame.with_columns(pl.col("bucket_start").dt.replace_time_zone("UTC"))
    return frame.with_columns(
        pl.col("bucket_start").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    ).cast(dict(CELL_DEMAND_SCHEMA))


class BigQueryProbeSource(ProbeSource):
    """Probes and weather from BigQuery tables, one ``service_day`` partition at a time;
    cell demand computed inside BigQuery."""

    cell_demand_engine: ClassVar[str] = "bigquery"

    bigquery: BigQueryResource = Field(
        description="Project, location and the read-only reader's credentials (dg.EnvVar)."
    )
    probes_table: str = Field(
        description="project.dataset.table of the pings, partitioned by service_day (DATE)."
    )
    weather_table: str = Field(
        description="project.dataset.table of hourly rain, partitioned by DAY on hour_start."
    )

    data_path_dataset: str | None = Field(
        default=None,
        description="project.dataset where clean_probes, rejected_probes, trip_events and "
        "cell_demand are written as day-partitioned tables by SQL; unset: the assets "
        "compute them in Polars from the pulled day.",
    )
    data_path_writer: BigQueryResource | None = Field(
        default=None,
        description="The data path writer's BigQuery resource (its own service account, "
        "dataEditor on data_path_dataset); required with data_path_dataset.",
    )
    arrival_column: str | None = Field(
        default=None,
        description="Column of the probes table that orders the rows as they arrived (a "
        "sequence number or receive time the loader stamps, INT64 or TIMESTAMP). A table "
        "has no row order: with it, the day is pulled in arrival order and BigQuery mode "
        "counts out_of_order_rows; without it, out_of_order_rows is null in BigQuery mode.",
    )

    @field_validator("probes_table", "weather_table")
    @classmethod
    def _plain_table_name(cls, value: str) -> str:
        return validate_table_name(value)

    @field_validator("arrival_column")
    @classmethod
    def _plain_column_name(cls, value: str | None) -> str | None:
        return validate_arrival_column(value)

    def warehouse_data_path(self) -> Any:
        if self.data_path_dataset is None:
            return None
        if self.data_path_writer is None:
            raise ProbeSourceError(
                f"BigQueryProbeSource.data_path_dataset={self.data_path_dataset!r} needs "
                "data_path_writer: the probe reader may not write tables"
            )
        from taxi_assets.sources.bigquery_data_path import BigQueryDataPath

        return BigQueryDataPath(
            bigquery=self.data_path_writer,
            probes_table=self.probes_table,
            dataset=self.data_path_dataset,
            arrival_column=self.arrival_column,
        )

    def _query(self, sql: str, parameters: Sequence[QueryParameter]) -> pl.DataFrame:
        """Run one parameterized query and return its rows; the only place that talks to
        BigQuery, so tests can run the same SQL and parameters on another engine."""
        return run_query(self.bigquery, sql, parameters)

    def _sql(self, template: str) -> str:
        return template.replace(
            PROBE_TABLE_PLACEHOLDER, validate_table_name(self.probes_table)
        ).replace(WEATHER_TABLE_PLACEHOLDER, validate_table_name(self.weather_table))

    def _in_arrival_order(self, sql: str) -> str:
        """``sql`` ordered by the arrival column, if the table has one: the Polars path
        counts out-of-order pings against the delivered frame's row order."""
        if self.arrival_column is None:
            return sql
        return f"{sql}ORDER BY `{validate_arrival_column(self.arrival_column)}`\n"

    def read_probes(self, day: date) -> ProbeDelivery:
        sql = self._in_arrival_order(self._sql(READ_PROBES_SQL))
        raw = self._query(sql, probe_day_parameters(day))
        probes = conform(raw, RAW_PROBES_SCHEMA, self.probes_table)
        origin = {
            "source": "bigquery",
            "table": self.probes_table,
            "partition": f"service_day={day.isoformat()}",
        }
        return ProbeDelivery(probes, origin)

    def read_probes_window(
        self, day: date, start: datetime, end: datetime, look_back: LookBack | None = None
    ) -> ProbeDelivery:
        """The day's pings of the window and look-back, selected in BigQuery
        (``READ_PROBES_WINDOW_SQL``, ``ts >= @start``): the tick pulls hours, not the day."""
        parameters = probe_window_parameters(day, start, end, look_back)
        raw = self._query(self._in_arrival_order(self._sql(READ_PROBES_WINDOW_SQL)), parameters)
        probes = conform(raw, RAW_PROBES_SCHEMA, self.probes_table)
        origin = {
            "source": "bigquery",
            "table": self.probes_table,
            "partition": f"service_day={day.isoformat()}",
        }
        return ProbeDelivery(probes, window_origin(origin, start, end))

    def read_weather(self, day: date) -> pl.DataFrame:
        raw = self._query(self._sql(READ_WEATHER_SQL), weather_day_parameters(day))
        if raw.height == 0:
            raise ProbeSourceError(f"{self.weather_table}: no weather rows for {day}")
        return conform(raw, WEATHER_SCHEMA, self.weather_table)

    def cell_demand(
        self, day: date, area: ServiceArea, rules: CleaningRules, bucket_minutes: int
    ) -> pl.DataFrame:
        """The day's cell demand, computed in BigQuery from the same partition
        ``read_probes`` delivers, with the same rules as the Polars path."""
        parameters = cell_demand_parameters(day, area, rules, bucket_minutes)
        return conform_cell_demand(self._query(self._sql(CELL_DEMAND_SQL), parameters))
