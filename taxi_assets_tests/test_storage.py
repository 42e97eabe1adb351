"""Partitions are written atomically: a failed write leaves the previous version intact."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from upath import UPath

from taxi_assets.storage import write_atomically, write_parquet_atomically


def test_replacing_a_partition_swaps_the_whole_file(tmp_path: Path) -> None:
    path = UPath(tmp_path / "asset" / "2026-05-01.parquet")
    write_parquet_atomically(pl.DataFrame({"x": [1, 2]}), path)
    write_parquet_atomically(pl.DataFrame({"x": [3]}), path)
    assert_frame_equal(pl.read_parquet(path), pl.DataFrame({"x": [3]}))
    assert [p.name for p in (tmp_path / "asset").iterdir()] == ["2026-05-01.parquet"]


def test_a_crash_mid_write_leaves_the_previous_version_readable(tmp_path: Path) -> None:
    path = UPath(tmp_path / "asset" / "2026-05-01.parquet")
    previous = pl.DataFrame({"x": [1, 2, 3]})
    write_parquet_atomically(previous, path)

    def crash_halfway(handle) -> None:
        handle.write(b"PAR1 half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, crash_halfway)
    assert_frame_equal(pl.read_parquet(path), previous)
    assert [p.name for p in (tmp_path / "asset").iterdir()] == ["2026-05-01.parquet"]


def test_io_manager_round_trips_partitions_and_scans_lazily(tmp_path: Path) -> None:
    import dagster as dg

    from taxi_assets.partitions import daily_partitions
    from taxi_assets.storage import PartitionedParquetIOManager

    @dg.asset(partitions_def=daily_partitions)
    def counts() -> pl.DataFrame:
        return pl.DataFrame({"x": [1, 2, 3]})

    @dg.asset(partitions_def=daily_partitions)
    def doubled(counts: pl.LazyFrame) -> pl.DataFrame:
        assert isinstance(counts, pl.LazyFrame)
        return counts.select(pl.col("x") * 2).collect()

    io_manager = PartitionedParquetIOManager(base_dir=str(tmp_path))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [counts, doubled],
            partition_key="2026-05-01",
            resources={"io_manager": io_manager},
            instance=instance,
        )
    assert result.success
    assert_frame_equal(
        pl.read_parquet(tmp_path / "doubled" / "2026-05-01.parquet"),
        pl.DataFrame({"x": [2, 4, 6]}),
    )
    written = result.asset_materializations_for_node("counts")[0].metadata
    assert written["dagster/row_count"].value == 3


def test_loading_a_missing_partition_says_to_materialize_it(tmp_path: Path) -> None:
    import dagster as dg

    from taxi_assets.partitions import daily_partitions
    from taxi_assets.storage import PartitionedParquetIOManager

    @dg.asset(partitions_def=daily_partitions)
    def counts() -> pl.DataFrame:
        return pl.DataFrame({"x": [1]})

    @dg.asset(partitions_def=daily_partitions)
    def doubled(counts: pl.DataFrame) -> pl.DataFrame:
        return counts

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [counts.to_source_asset(), doubled],
            partition_key="2026-05-01",
            resources={"io_manager": PartitionedParquetIOManager(base_dir=str(tmp_path))},
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    message = result.failure_data_for_node("doubled").error.cause.message
    assert "counts: no stored partition" in message and "materialize it first" in message
