"""Every probe source reads the live tick's window and look-back as the day sliced would.

``ProbeSource.read_probes_window`` must give the rows :func:`window_with_look_back` keeps of
the whole delivery: BigQuery selects them in SQL (run here on DuckDB through sqlglot, as in
test_bigquery_source.py), the landing folder scans parquet with a predicate on ``ts`` and
reads CSV whole, the simulator slices its day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from unittest import mock

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from taxi_assets.calendar import TOKYO
from taxi_assets.simulation.landing import _write
from taxi_assets.sources.base import LookBack, ProbeSource, window_with_look_back
from taxi_assets.sources.bigquery_sql import READ_PROBES_WINDOW_SQL
from taxi_assets.sources.landing import LandingFolderProbeSource
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets_tests.probe_builders import raw_probes, track
from taxi_assets_tests.test_bigquery_source import (
    PROBES_TABLE,
    DuckDBProbeSource,
    as_bigquery_rows,
    duckdb_source,
    load_table,
)

DAY = date(2026, 4, 21)
START = datetime(2026, 4, 21, 7, 30, tzinfo=TOKYO)
END = datetime(2026, 4, 21, 14, 7, tzinfo=TOKYO)
LOOK_BACK = LookBack(
    margin=timedelta(minutes=40), run_span=timedelta(minutes=210), break_words=("vacant", "free")
)


def hand_made_day() -> pl.DataFrame:
    """Vehicles for every case of the read, one ping a minute (``track``'s minutes after
    Tokyo midnight), nearly still."""

    def pings(vehicle: int, first_minute: int, last_minute: int, status: str = "vacant"):
        n = last_minute - first_minute
        return track(vehicle, DAY, [status] * n, first_minute, 1.0, step_deg=1e-5)

    return raw_probes(
        pings(1, 6 * 60, 14 * 60 + 30)  # pings through the read (and after the end)
        # meter on, silent from 05:00 to 11:10: no run break, so its pings from 03:19 (40
        # minutes before its last ping 210 minutes before the window, 03:59) come along
        + pings(2, 60, 5 * 60, "occupied")
        + pings(2, 11 * 60 + 10, 14 * 60, "occupied")
        + pings(3, 60, 2 * 60)  # gone before the read: not in it
        # silent 06:00 to 07:50: from 05:19, 40 minutes before its last vacant ping
        + pings(4, 5 * 60, 6 * 60)
        + pings(4, 7 * 60 + 50, 9 * 60)
        + pings(5, 15 * 60, 16 * 60)  # only after the end
        # free (the feed's word, in capitals) to 06:29, meter on from 06:30: from 05:49
        + pings(6, 5 * 60, 6 * 60 + 30, " FREE")
        + pings(6, 6 * 60 + 30, 9 * 60, "occupied")
        # meter on from 05:00, no ping before 04:00 nor a break: all its earlier pings
        + pings(7, 5 * 60, 9 * 60, "occupied")
    )


def landing_parquet(tmp_path: Path, day: pl.DataFrame) -> ProbeSource:
    """The day as two parquet files that split it in time, as an uploader's batches do."""
    folder = tmp_path / "landing" / "probes" / DAY.isoformat()
    noon = datetime(2026, 4, 21, 12, tzinfo=TOKYO).astimezone(UTC)
    morning = pl.col("ts").dt.convert_time_zone("UTC") < noon
    _write(day.filter(morning), folder / "a.parquet", "parquet")
    _write(day.filter(~morning), folder / "b.parquet", "parquet")
    return LandingFolderProbeSource(landing_dir=str(tmp_path / "landing"))


def landing_parquet_integer_ids(tmp_path: Path, day: pl.DataFrame) -> ProbeSource:
    """A feed with INT64 ids in Tokyo time: the scan reads them as the text conform gives."""
    as_delivered = day.with_columns(
        pl.col("vehicle_id").cast(pl.Int64), pl.col("ts").dt.convert_time_zone("Asia/Tokyo")
    )
    return landing_parquet(tmp_path, as_delivered)


def landing_csv(tmp_path: Path, day: pl.DataFrame) -> ProbeSource:
    _write(day, tmp_path / "landing" / "probes" / DAY.isoformat() / "day.csv", "csv")
    return LandingFolderProbeSource(landing_dir=str(tmp_path / "landing"))


def on_bigquery(tmp_path: Path, day: pl.DataFrame) -> ProbeSource:
    database = tmp_path / "bigquery.duckdb"
    other_day = as_bigquery_rows(raw_probes(track(1, DAY + timedelta(days=1), ["vacant"])), DAY)
    other_day = other_day.with_columns(service_day=pl.lit(DAY + timedelta(days=1)))
    load_table(database, PROBES_TABLE, pl.concat([as_bigquery_rows(day, DAY), other_day]))
    return duckdb_source(database)


@pytest.mark.parametrize(
    "source", [landing_parquet, landing_parquet_integer_ids, landing_csv, on_bigquery]
)
@pytest.mark.parametrize("look_back", [LOOK_BACK, None], ids=["look_back", "window_only"])
def test_a_source_reads_the_window_and_look_back_of_the_day(
    tmp_path: Path, source, look_back: LookBack | None
) -> None:
    day = hand_made_day()

    read = source(tmp_path, day).read_probes_window(DAY, START, END, look_back).probes

    expected = window_with_look_back(day, START, END, look_back)
    key = ["vehicle_id", "ts"]
    assert_frame_equal(read.sort(key), expected.sort(key))
    by_vehicle = dict(read.group_by("vehicle_id").len().iter_rows())
    # Window 07:30-14:07, then each look-back's pings before 07:30.
    in_window = {"1": 397, "2": 170, "4": 70, "6": 90, "7": 90}
    look_backs = {"1": 41, "2": 101, "4": 41, "6": 101, "7": 150}
    assert by_vehicle == {
        vehicle: pings + (look_backs[vehicle] if look_back else 0)
        for vehicle, pings in in_window.items()
    }


def test_bigquery_selects_the_window_with_parameters(tmp_path: Path) -> None:
    source = on_bigquery(tmp_path, hand_made_day())

    with mock.patch.object(
        DuckDBProbeSource, "_query", autospec=True, side_effect=DuckDBProbeSource._query
    ) as query:
        delivery = source.read_probes_window(DAY, START, END, LOOK_BACK)

    (_, sql, parameters), _ = query.call_args
    assert sql == READ_PROBES_WINDOW_SQL.replace("{probes_table}", PROBES_TABLE)
    assert "ts >= @start" in sql and "2026" not in sql
    kinds = [getattr(p, "type_", None) or f"ARRAY<{p.array_type}>" for p in parameters]
    assert list(zip([p.name for p in parameters], kinds, strict=True)) == [
        ("day", "DATE"),
        ("start", "TIMESTAMP"),
        ("end", "TIMESTAMP"),
        ("with_look_back", "BOOL"),
        ("margin_us", "INT64"),
        ("run_span_us", "INT64"),
        ("break_words", "ARRAY<STRING>"),
    ]
    assert [p.value for p in parameters[:-1]] == [
        DAY,
        START,
        END,
        True,
        40 * 60_000_000,
        210 * 60_000_000,
    ]
    assert parameters[-1].values == ["vacant", "free"]
    assert delivery.origin["window_start"] == "2026-04-20T22:30:00+00:00"


def test_the_simulated_source_slices_its_day() -> None:
    city = SimulatedProbeSource(fleet_size=20, seed=3)
    whole = city.read_probes(DAY).probes

    read = city.read_probes_window(DAY, START, END, LOOK_BACK).probes

    assert_frame_equal(read, window_with_look_back(whole, START, END, LOOK_BACK))
    assert 0 < read.height < whole.height
