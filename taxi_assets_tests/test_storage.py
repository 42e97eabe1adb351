"""Partitions are written atomically: a failed write leaves the previous version intact."""

from __future__ import annotations

import datetime
import logging
import os
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from upath import UPath

from taxi_assets.storage import (
    ORPHAN_TEMP_AGE_SECONDS,
    STORED_PER_RUN,
    CorruptPartitionError,
    PartitionedParquetIOManager,
    StoredPartitions,
    create_exclusively,
    write_atomically,
    write_parquet_atomically,
)


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


def test_orphan_temp_files_of_dead_writers_are_swept_on_the_next_write(tmp_path: Path) -> None:
    folder = tmp_path / "asset"
    folder.mkdir()
    orphan = folder / f".2026-04-30.parquet.{'a' * 32}.tmp"  # a writer killed mid-write
    in_flight = folder / f".2026-04-29.parquet.{'b' * 32}.tmp"  # a writer still going
    not_ours = folder / ".notes.tmp"
    for path in (orphan, in_flight, not_ours):
        path.write_bytes(b"PAR1 half")
    an_hour_ago = time.time() - ORPHAN_TEMP_AGE_SECONDS - 1
    os.utime(orphan, (an_hour_ago, an_hour_ago))
    os.utime(not_ours, (an_hour_ago, an_hour_ago))

    write_parquet_atomically(pl.DataFrame({"x": [1]}), UPath(folder / "2026-05-01.parquet"))
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["2026-05-01.parquet", in_flight.name, not_ours.name]
    )


def test_the_folder_is_fsynced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def record(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", record)
    path = tmp_path / "asset" / "2026-05-01.parquet"
    write_parquet_atomically(pl.DataFrame({"x": [1]}), UPath(path))
    # The temporary file's data first, then the folder holding the new name.
    assert synced[-1] == str(path.parent) and len(synced) == 2


def test_create_exclusively_never_replaces(tmp_path: Path) -> None:
    path = UPath(tmp_path / "models" / "v1" / "manifest.json")
    create_exclusively(path, b"first")
    with pytest.raises(FileExistsError):
        create_exclusively(path, b"second")
    assert Path(path).read_bytes() == b"first"
    assert [p.name for p in Path(path).parent.iterdir()] == ["manifest.json"]


def test_a_truncated_partition_fails_naming_asset_partition_and_file(tmp_path: Path) -> None:
    import dagster as dg

    days = dg.StaticPartitionsDefinition(["2026-04-30", "2026-05-01"])

    @dg.asset(partitions_def=days)
    def counts() -> pl.DataFrame:
        return pl.DataFrame({"x": [1, 2, 3] * 1000})

    @dg.asset(
        partitions_def=days,
        ins={"counts": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    )
    def window(counts: dict[str, pl.LazyFrame]) -> pl.DataFrame:
        return pl.concat([frame.collect() for frame in counts.values()])

    resources = {"io_manager": PartitionedParquetIOManager(base_dir=str(tmp_path))}
    for day in days.get_partition_keys():
        dg.materialize([counts], partition_key=day, resources=resources)
    stored = tmp_path / "counts" / "2026-04-30.parquet"
    stored.write_bytes(stored.read_bytes()[:-100])  # a crash of a non-atomic copy, say

    result = dg.materialize(
        [counts, window],
        selection=[window],
        partition_key="2026-05-01",
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    text = error.message + (error.cause.message if error.cause else "")
    assert "counts partition 2026-04-30" in text
    assert str(stored) in text and "re-materialize that partition" in text

    stored_partitions = StoredPartitions(base_dir=str(tmp_path))
    with pytest.raises(CorruptPartitionError, match="counts partition 2026-04-30: the stored"):
        stored_partitions.read("counts", "2026-04-30")
    with pytest.raises(CorruptPartitionError, match=str(stored)):
        stored_partitions.scan("counts", "2026-04-30")


def test_a_per_run_asset_is_read_from_the_run_that_made_it(tmp_path: Path) -> None:
    """Two overlapping forecast ticks: the second overwrites the latest copy, but the first
    tick's downstream step (in its run, or re-executed later) still reads the first tick's
    frame: inputs come from the copy of the run that produced them."""
    import dagster as dg

    store = PartitionedParquetIOManager(base_dir=str(tmp_path)).create_io_manager(
        dg.build_init_resource_context()
    )
    per_run = {STORED_PER_RUN: True}
    key = dg.AssetKey("demand_forecast")
    for run_id, tick in (("run-of-tick-1", 1), ("run-of-tick-2", 2)):
        output = dg.build_output_context(asset_key=key, run_id=run_id, definition_metadata=per_run)
        store.handle_output(output, pl.DataFrame({"tick": [tick]}))

    assert pl.read_parquet(tmp_path / "demand_forecast.parquet")["tick"].to_list() == [2]
    for run_id, tick in (("run-of-tick-1", 1), ("run-of-tick-2", 2)):
        upstream = dg.build_output_context(
            asset_key=key, run_id=run_id, definition_metadata=per_run
        )
        loaded = store.load_input(
            dg.build_input_context(
                asset_key=key,
                upstream_output=upstream,
                dagster_type=dg.DagsterType(
                    lambda _, __: True, name="frame", typing_type=pl.DataFrame
                ),
            )
        )
        assert loaded["tick"].to_list() == [tick]
    assert sorted(p.name for p in (tmp_path / "demand_forecast" / "runs").iterdir()) == [
        "run-of-tick-1.parquet",
        "run-of-tick-2.parquet",
    ]


def test_a_run_whose_worker_died_is_failed_and_retried(tmp_path: Path) -> None:
    """dagster.yaml: a run left STARTED by a dead worker (a machine restart) is failed by
    run monitoring once past its maximum runtime, and marked for a retry from failure."""
    import dagster as dg
    import yaml
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.test_utils import create_run_for_test, freeze_time
    from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

    config = yaml.safe_load((Path(__file__).parents[1] / "dagster.yaml").read_text())
    settings = {key: config[key] for key in ("run_monitoring", "run_retries")}

    class Daemon:  # what the monitoring iteration reads of the daemon's workspace
        def __init__(self, instance: dg.DagsterInstance) -> None:
            self.instance = instance

        def create_request_context(self) -> None:
            return None

    started = datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC)
    with dg.instance_for_test(overrides=settings) as instance:
        run = create_run_for_test(instance, job_name="daily_job")
        with freeze_time(started):
            instance.report_dagster_event(
                DagsterEvent(DagsterEventType.RUN_START.value, job_name="daily_job"),
                run_id=run.run_id,
            )
        limit = instance.run_monitoring_max_runtime_seconds
        with freeze_time(started + datetime.timedelta(seconds=limit - 60)):
            list(execute_run_monitoring_iteration(Daemon(instance), logging.getLogger()))
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        with freeze_time(started + datetime.timedelta(seconds=limit + 60)):
            list(execute_run_monitoring_iteration(Daemon(instance), logging.getLogger()))
        failed = instance.get_run_by_id(run.run_id)
        assert failed.status == dg.DagsterRunStatus.FAILURE
        assert failed.tags.get("dagster/will_retry") == "true"
