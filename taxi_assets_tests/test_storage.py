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
