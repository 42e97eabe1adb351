"""The landing-folder source: parquet and CSV in, clear errors for files it cannot use."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from taxi_assets.definitions import ASSET_MODULES
from taxi_assets.frames import RAW_PROBES_SCHEMA
from taxi_assets.sources.base import ProbeSourceError
from taxi_assets.sources.landing import LandingFolderProbeSource
from taxi_assets_tests.probe_builders import raw_probes, track

DAY = date(2026, 5, 1)


@pytest.fixture
def probes() -> pl.DataFrame:
    return raw_probes(
        track(1, DAY, ["vacant", "vacant", "occupied", "occupied", "vacant"])
        + track(2, DAY, ["dispatched", "occupied", "occupied", "vacant"], start_minute=300)
    )


def day_folder(landing: Path) -> Path:
    folder = landing / "probes" / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def as_csv_text(frame: pl.DataFrame) -> pl.DataFrame:
    """What a partner's CSV export looks like: ISO timestamps with a Tokyo offset."""
    return frame.with_columns(
        pl.col("ts").dt.convert_time_zone("Asia/Tokyo").dt.strftime("%Y-%m-%dT%H:%M:%S%.f%:z"),
        pl.col("status").cast(pl.String),
    )


def test_reads_parquet_and_csv_files_of_one_day(tmp_path: Path, probes: pl.DataFrame) -> None:
    folder = day_folder(tmp_path)
    probes.head(4).write_parquet(folder / "part-1.parquet")
    as_csv_text(probes.slice(4)).write_csv(folder / "part-2.csv")
    (folder / ".part-3.csv.tmp").write_text("still uploading")

    delivery = LandingFolderProbeSource(landing_dir=str(tmp_path)).read_probes(DAY)

    assert delivery.probes.schema == RAW_PROBES_SCHEMA
    assert_frame_equal(delivery.probes, probes)
    assert delivery.origin["files"] == 2


def test_mixed_utc_offsets_in_one_csv_are_read_as_the_same_instants(
    tmp_path: Path, probes: pl.DataFrame
) -> None:
    text = as_csv_text(probes).with_columns(
        pl.when(pl.int_range(pl.len()) % 2 == 0)
        .then(pl.col("ts"))
        .otherwise(probes["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"))
        .alias("ts")
    )
    text.write_csv(day_folder(tmp_path) / "mixed.csv")
    delivery = LandingFolderProbeSource(landing_dir=str(tmp_path)).read_probes(DAY)
    assert_frame_equal(delivery.probes, probes)


def test_extra_columns_are_dropped(tmp_path: Path, probes: pl.DataFrame) -> None:
    probes.with_columns(driver_note=pl.lit("x")).write_parquet(day_folder(tmp_path) / "a.parquet")
    delivery = LandingFolderProbeSource(landing_dir=str(tmp_path)).read_probes(DAY)
    assert delivery.probes.columns == list(RAW_PROBES_SCHEMA)


def write_bad_file(folder: Path, kind: str, probes: pl.DataFrame) -> Path:
    if kind == "truncated_parquet":
        path = folder / "broken.parquet"
        probes.write_parquet(path)
        path.write_bytes(path.read_bytes()[:50])
    elif kind == "empty_parquet":
        path = folder / "empty.parquet"
        path.write_bytes(b"")
    elif kind == "semicolons":
        path = folder / "semicolons.csv"
        as_csv_text(probes).write_csv(path, separator=";")
    elif kind == "latin1":
        path = folder / "latin1.csv"
        path.write_bytes("vehicle_id,ts\n1,caf\xe9\n".encode("latin-1"))
    elif kind == "missing_column":
        path = folder / "no_status.parquet"
        probes.drop("status").write_parquet(path)
    elif kind == "bad_number":
        path = folder / "bad_speed.csv"
        as_csv_text(probes).with_columns(pl.lit("fast").alias("speed_kmh")).write_csv(path)
    elif kind == "naive_ts":
        path = folder / "naive.parquet"
        probes.with_columns(pl.col("ts").dt.replace_time_zone(None)).write_parquet(path)
    elif kind == "naive_csv":
        path = folder / "naive.csv"
        as_csv_text(probes).with_columns(
            pl.col("ts").str.slice(0, 19).str.replace("T", " ")
        ).write_csv(path)
    elif kind == "mixed_naive_csv":
        path = folder / "mixed.csv"
        text = as_csv_text(probes)
        text.with_columns(
            pl.when(pl.int_range(pl.len()) == 0)
            .then(pl.col("ts").str.slice(0, 19))
            .otherwise(pl.col("ts"))
            .alias("ts")
        ).write_csv(path)
    elif kind == "fractional_id":
        path = folder / "fractional_ids.parquet"
        ids = [46.5, 46.0, 7.25, None, 8.0, 9.5, 10.5, 11.5, 12.5]
        probes.with_columns(pl.Series("vehicle_id", ids)).write_parquet(path)
    elif kind == "padded_id":
        path = folder / "padded_ids.csv"
        ids = [" T-1", "T-2", "T-3\t", "", "T-5", "T-6", "T-7", "T-8", "x" * 65]
        as_csv_text(probes).with_columns(pl.Series("vehicle_id", ids)).write_csv(path)
    elif kind == "control_character_id":
        path = folder / "control_ids.parquet"
        probes.with_columns(pl.lit("T\x00042").alias("vehicle_id")).write_parquet(path)
    elif kind == "date_id":
        path = folder / "date_ids.parquet"
        probes.with_columns(pl.lit(DAY).alias("vehicle_id")).write_parquet(path)
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("truncated_parquet", "cannot be read as parquet"),
        ("empty_parquet", "cannot be read as parquet"),
        ("semicolons", "is the delimiter not a comma"),
        ("latin1", "cannot be read as UTF-8 CSV"),
        ("missing_column", "missing column\\(s\\) status"),
        ("bad_number", "column 'speed_kmh' cannot be read as Float32"),
        ("naive_ts", "column 'ts' holds naive timestamps"),
        ("naive_csv", "column 'ts' has \\d+ timestamp\\(s\\) without a time zone"),
        ("mixed_naive_csv", "column 'ts' has 1 timestamp\\(s\\) without a time zone"),
        (
            "fractional_id",
            r"column 'vehicle_id' has 6 value\(s\) that are not clean vehicle ids, "
            r"e.g. \['46.5', '7.25', '9.5', '10.5', '11.5'\]",
        ),
        ("padded_id", r"column 'vehicle_id' has 4 value\(s\) .*e.g. \[' T-1', 'T-3\\t', ''"),
        ("control_character_id", r"column 'vehicle_id' has 9 value\(s\)"),
        ("date_id", r"column 'vehicle_id' has type Date; expected text or integers"),
    ],
)
def test_malformed_file_gives_an_error_naming_the_file(
    tmp_path: Path, probes: pl.DataFrame, kind: str, message: str
) -> None:
    path = write_bad_file(day_folder(tmp_path), kind, probes)
    with pytest.raises(ProbeSourceError, match=message) as error:
        LandingFolderProbeSource(landing_dir=str(tmp_path)).read_probes(DAY)
    assert str(path) in str(error.value)


def test_text_integer_and_integral_float_ids_all_arrive_as_text(
    tmp_path: Path, probes: pl.DataFrame
) -> None:
    folder = day_folder(tmp_path)
    as_integers = probes.head(3).with_columns(pl.Series("vehicle_id", [46, -1, None]))
    as_floats = probes.slice(3, 3).with_columns(pl.Series("vehicle_id", [46.0, 1e6, None]))
    as_text = probes.slice(6).with_columns(pl.lit("abboip").alias("vehicle_id"))
    as_integers.write_parquet(folder / "a.parquet")
    as_floats.write_parquet(folder / "b.parquet")
    as_csv_text(as_text).write_csv(folder / "c.csv")

    delivered = LandingFolderProbeSource(landing_dir=str(tmp_path)).read_probes(DAY).probes

    assert delivered.schema == RAW_PROBES_SCHEMA
    # A null id stays a row: cleaning quarantines it as missing_value.
    assert delivered["vehicle_id"].to_list() == ["46", "-1", None, "46", "1000000", None] + [
        "abboip"
    ] * (probes.height - 6)


def test_statuses_arrive_as_delivered_words_or_flags(tmp_path: Path, probes: pl.DataFrame) -> None:
    folder = day_folder(tmp_path)
    words = ["VACANT", "hired", " Vacant ", None]
    probes.head(4).with_columns(pl.Series("status", words)).write_parquet(folder / "a.parquet")
    flags = probes.slice(4).with_columns(pl.int_range(pl.len()).mod(2).alias("status"))
    flags.write_parquet(folder / "b.parquet")

    delivered = LandingFolderProbeSource(landing_dir=str(tmp_path)).read_probes(DAY).probes

    assert delivered["status"].to_list() == words + ["0", "1"] * 2 + ["0"]


def test_a_day_without_files_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ProbeSourceError, match=f"no probe files for {DAY}"):
        LandingFolderProbeSource(landing_dir=str(tmp_path)).read_probes(DAY)


def materialize_raw_probes_from(
    landing: Path, resources: dict, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        dg.load_assets_from_modules(list(ASSET_MODULES)),
        partition_key=DAY.isoformat(),
        resources={
            **resources,
            "probe_source": LandingFolderProbeSource(landing_dir=str(landing)),
        },
        instance=instance,
        selection="raw_probes",
        raise_on_error=False,
    )


def test_malformed_file_fails_the_asset_with_the_file_name_and_no_retry(
    tmp_path: Path,
    probes: pl.DataFrame,
    small_city_resources: dict,
    instance: dg.DagsterInstance,
) -> None:
    path = write_bad_file(day_folder(tmp_path), "missing_column", probes)
    result = materialize_raw_probes_from(tmp_path, small_city_resources, instance)
    assert not result.success
    failure = result.failure_data_for_node("raw_probes")
    assert str(path) in failure.error.message
    # The retry policy for transient source errors must not retry a broken file.
    retries = [
        e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    ]
    assert retries == []


def test_a_day_of_empty_files_fails_raw_probes_rather_than_reporting_no_demand(
    tmp_path: Path,
    probes: pl.DataFrame,
    small_city_resources: dict,
    instance: dg.DagsterInstance,
) -> None:
    as_csv_text(probes).head(0).write_csv(day_folder(tmp_path) / "header_only.csv")
    result = materialize_raw_probes_from(tmp_path, small_city_resources, instance)
    assert not result.success
    failure = result.failure_data_for_node("raw_probes")
    assert f"LandingFolderProbeSource delivered no pings for {DAY}" in failure.error.message
