"""The data path (raw probes -> cell_demand) on DuckDB: the production BigQuery SQL.

No copy of the rules lives here: the query is ``bigquery_sql.CELL_DEMAND_SQL``, the one the
BigQuery source runs (composed from the same stages as clean_probes, rejected_probes and
trip_events), transpiled by sqlglot from BigQuery to DuckDB as the parity tests do, with
the very ``QueryParameter`` values the source builds bound as DuckDB parameters. So the
benchmark measures the production SQL on a local engine, and its equality with Polars
(checked by bench_data_path.py) is one more parity check of that SQL at full size.
"""

from __future__ import annotations

from datetime import date
from functools import cache

import duckdb
import polars as pl
import sqlglot
from google.cloud import bigquery

from taxi_assets.cleaning import CleaningRules
from taxi_assets.service_area import ServiceArea
from taxi_assets.sources.bigquery import cell_demand_parameters, conform_cell_demand
from taxi_assets.sources.bigquery_sql import CELL_DEMAND_SQL, PROBE_TABLE_PLACEHOLDER

# The BigQuery source reads project.dataset.table partitioned by service_day: a view over
# the bench's `probes` table stands in for it (one partition: the bench's day).
_PROJECT = "bench"
_TABLE = f"{_PROJECT}.probes.pings"


@cache
def duckdb_sql(bigquery_sql: str) -> str:
    """BigQuery SQL as DuckDB SQL; ``@name`` parameters become ``$name``."""
    return sqlglot.transpile(bigquery_sql, read="bigquery", write="duckdb")[0]


def _partitioned_view(con: duckdb.DuckDBPyConnection, day: date) -> None:
    """``bench.probes.pings``: the ``probes`` table with its partition column."""
    attached = f"SELECT 1 FROM duckdb_databases() WHERE database_name = '{_PROJECT}'"
    if not con.execute(attached).fetchall():
        con.execute(f"ATTACH ':memory:' AS {_PROJECT}")
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {_PROJECT}.probes")
    (main,) = con.execute("SELECT current_database()").fetchall()[0]
    con.execute(
        f"CREATE OR REPLACE VIEW {_TABLE} AS "
        f"SELECT *, DATE '{day.isoformat()}' AS service_day FROM {main}.main.probes"
    )


def duckdb_cell_demand(
    con: duckdb.DuckDBPyConnection,
    day: date,
    area: ServiceArea,
    bucket_minutes: int = 15,
    rules: CleaningRules = CleaningRules(),  # noqa: B008 - frozen dataclass
) -> pl.DataFrame:
    """CELL_DEMAND_SCHEMA from a connection holding a ``probes`` table (RAW_PROBES_SCHEMA),
    computed by the production ``CELL_DEMAND_SQL``."""
    con.execute("SET TimeZone = 'UTC'")
    _partitioned_view(con, day)
    parameters = cell_demand_parameters(day, area, rules, bucket_minutes)
    values = {
        p.name: p.values if isinstance(p, bigquery.ArrayQueryParameter) else p.value
        for p in parameters
    }
    sql = duckdb_sql(CELL_DEMAND_SQL.replace(PROBE_TABLE_PLACEHOLDER, _TABLE))
    result = pl.from_arrow(con.sql(sql, params=values).to_arrow_table())
    assert isinstance(result, pl.DataFrame)
    return conform_cell_demand(result)
