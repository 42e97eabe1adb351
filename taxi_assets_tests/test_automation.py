"""Schedules and the landing-folder sensor, evaluated as the daemon evaluates them."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from taxi_assets.assets.serving import ForecastConfig
from taxi_assets.automation.landing_sensor import (
    SETTLE_SECONDS_ENV,
    LandingFile,
    plan_landing_runs,
    settle_seconds_from_env,
)
from taxi_assets.calendar import TOKYO
from taxi_assets.definitions import defs
from taxi_assets.sources.landing import LandingFolderProbeSource
from taxi_assets.sources.simulated import SimulatedProbeSource

REPO = Path(__file__).resolve().parents[1]

# --- schedules -----------------------------------------------------------------------------


def schedule_tick(name: str, at: datetime) -> dg.RunRequest:
    schedule = defs.resolve_schedule_def(name)
    with dg.instance_for_test() as instance:
        data = schedule.evaluate_tick(
            dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=at,
                repository_def=defs.get_repository_def(),
            )
        )
    (request,) = data.run_requests
    return request


@pytest.mark.parametrize(
    ("scheduled", "closed_day"),
    [
        # 00:30 Tokyo on 4 May is 15:30 UTC on 3 May: the closed day is 3 May either way.
        (datetime(2026, 5, 4, 0, 30, tzinfo=TOKYO), "2026-05-03"),
        (datetime(2026, 5, 3, 15, 30, tzinfo=UTC), "2026-05-03"),
        (datetime(2026, 1, 1, 0, 30, tzinfo=TOKYO), "2025-12-31"),
    ],
)
def test_daily_schedule_requests_the_tokyo_day_that_just_closed(
    scheduled: datetime, closed_day: str
) -> None:
    request = schedule_tick("daily_training_schedule", scheduled)
    assert request.partition_key == closed_day
    assert request.run_key == f"daily:{closed_day}"
    schedule = defs.resolve_schedule_def("daily_training_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 0 * * *", "Asia/Tokyo")
    assert schedule.job_name == "daily_job"


def job_assets(name: str) -> set[str]:
    keys = defs.resolve_job_def(name).asset_layer.executable_asset_keys
    return {key.to_user_string() for key in keys}


def test_daily_job_goes_from_raw_probes_to_the_deploy_decision() -> None:
    job = defs.resolve_job_def("daily_job")
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    data_path = {
        k.to_user_string()
        for k in defs.resolve_job_def("data_path_job").asset_layer.executable_asset_keys
    }
    assert data_path | {"demand_model", "model_evaluation", "production_model"} == keys
    assert job.partitions_def is not None and job.partitions_def.timezone == "Asia/Tokyo"


def test_forecast_schedule_passes_its_own_tick_to_the_forecast() -> None:
    scheduled = datetime(2026, 5, 3, 9, 5, tzinfo=UTC)
    request = schedule_tick("forecast_every_5_minutes", scheduled)
    tick = request.run_config["ops"]["demand_forecast"]["config"]["tick"]
    assert tick == "2026-05-03T18:05:00+09:00"
    assert ForecastConfig(tick=tick).tick_time() == scheduled
    job = defs.resolve_job_def("forecast_job")
    assert dg.validate_run_config(job, request.run_config)
    assert request.run_key == f"forecast:{tick}"
    schedule = defs.resolve_schedule_def("forecast_every_5_minutes")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("*/5 * * * *", "Asia/Tokyo")


# --- landing sensor --------------------------------------------------------------------------

SETTLED = time.time() - 600  # modified ten minutes ago


def land(path: Path, content: str = "x", modified: float | None = SETTLED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    if modified is not None:
        os.utime(path, (modified, modified))
    return path


def landing_tick(
    landing: Path, cursor: str | None, probe_source: object | None = None
) -> dg.SensorResult:
    sensor = defs.resolve_sensor_def("landing_files_sensor")
    source = probe_source or LandingFolderProbeSource(landing_dir=str(landing))
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"probe_source": source},
            repository_def=defs.get_repository_def(),
        )
        data = sensor.evaluate_tick(context)
    return data


def requested(data) -> dict[str, str]:
    return {request.partition_key: request.run_key for request in data.run_requests}


@pytest.fixture
def settle_60(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SETTLE_SECONDS_ENV, "60")


def test_landing_sensor_runs_each_closed_day_once_per_file_version(
    tmp_path: Path, settle_60: None
) -> None:
    land(tmp_path / "probes/2026-05-01/part-1.parquet")
    land(tmp_path / "probes/2026-05-01/part-2.csv")
    land(tmp_path / "weather/2026-05-02.parquet")
    # Still being written: an in-flight name, and a final name modified a moment ago.
    land(tmp_path / "probes/2026-05-02/.part-3.parquet.tmp")
    land(tmp_path / "probes/2026-05-02/_upload.csv")
    land(tmp_path / "probes/2026-05-03/part-1.parquet", modified=None)
    # Not landing files at all.
    land(tmp_path / "probes/notes/readme.csv")
    land(tmp_path / "probes/2026-05-01/readme.txt")

    first = landing_tick(tmp_path, cursor=None)
    assert set(requested(first)) == {"2026-05-01", "2026-05-02"}
    assert all(r.job_name in (None, "data_path_job") for r in first.run_requests)
    assert defs.resolve_sensor_def("landing_files_sensor").job_name == "data_path_job"

    again = landing_tick(tmp_path, cursor=first.cursor)
    assert requested(again) == {}
    assert "No new or changed landing files" in again.skip_message

    # The fresh file settles: only its day runs.
    settled = tmp_path / "probes/2026-05-03/part-1.parquet"
    os.utime(settled, (SETTLED, SETTLED))
    third = landing_tick(tmp_path, cursor=again.cursor)
    assert set(requested(third)) == {"2026-05-03"}

    # A changed file (re-delivered) runs its day again, under a new run key.
    land(tmp_path / "probes/2026-05-01/part-2.csv", content="corrected", modified=SETTLED + 60)
    fourth = landing_tick(tmp_path, cursor=third.cursor)
    assert set(requested(fourth)) == {"2026-05-01"}
    assert requested(fourth)["2026-05-01"] != requested(first)["2026-05-01"]
    assert requested(landing_tick(tmp_path, cursor=fourth.cursor)) == {}


def test_the_same_file_version_gets_the_same_run_key_after_a_cursor_reset(
    tmp_path: Path, settle_60: None
) -> None:
    """Dagster refuses a run key a sensor already used: a reset cursor re-sends nothing."""
    land(tmp_path / "probes/2026-05-01/part-1.parquet")
    assert requested(landing_tick(tmp_path, None)) == requested(landing_tick(tmp_path, None))


def test_files_of_the_tokyo_day_in_progress_wait_for_the_day_to_close(
    tmp_path: Path, settle_60: None
) -> None:
    today = datetime.now(TOKYO).date()
    land(tmp_path / f"probes/{today}/live.parquet")
    land(tmp_path / f"probes/{today - timedelta(days=1)}/late.parquet")
    data = landing_tick(tmp_path, None)
    assert set(requested(data)) == {str(today - timedelta(days=1))}


def test_landing_sensor_does_nothing_when_the_source_is_the_simulator(tmp_path: Path) -> None:
    land(tmp_path / "probes/2026-05-01/part-1.parquet")
    data = landing_tick(tmp_path, None, probe_source=SimulatedProbeSource(fleet_size=10, seed=1))
    assert requested(data) == {}
    assert "not the landing folder" in data.skip_message


def test_settle_time_is_measured_against_the_files_modification_time() -> None:
    now = datetime(2026, 5, 4, 12, 0, tzinfo=TOKYO)
    files = [
        LandingFile("probes/2026-05-01/a.parquet", date(2026, 5, 1), 10, now.timestamp() - 59),
        LandingFile("probes/2026-05-01/b.parquet", date(2026, 5, 1), 10, now.timestamp() - 61),
    ]
    plan = plan_landing_runs(files, {}, now, settle_seconds=60)
    assert plan.settling == ["probes/2026-05-01/a.parquet"]
    assert [f.relative for f in plan.runs[date(2026, 5, 1)]] == ["probes/2026-05-01/b.parquet"]
    assert set(plan.seen) == {"probes/2026-05-01/b.parquet"}


@pytest.mark.parametrize("raw", ["soon", "-5"])
def test_a_bad_settle_time_names_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match=SETTLE_SECONDS_ENV):
        settle_seconds_from_env({SETTLE_SECONDS_ENV: raw})
    assert settle_seconds_from_env({}) == 60.0


def test_landed_parquet_files_are_real_deliveries(tmp_path: Path, settle_60: None) -> None:
    """The sensor sees the same files the landing source reads."""
    frame = pl.DataFrame({"a": [1, 2]})
    path = tmp_path / "probes/2026-05-01/real.parquet"
    path.parent.mkdir(parents=True)
    frame.write_parquet(path)
    os.utime(path, (SETTLED, SETTLED))
    data = landing_tick(tmp_path, None)
    (request,) = data.run_requests
    assert request.tags["taxi_assets/landing_files"] == "probes/2026-05-01/real.parquet"
    assert request.tags["taxi_assets/trigger"] == "landing_files_sensor"


# --- the instance ----------------------------------------------------------------------------


def test_the_instance_retries_crashed_runs_and_keeps_sqlite_writers_few(tmp_path: Path) -> None:
    """dagster.yaml as `make home` installs it, loaded by Dagster's own instance config."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries == 2
        # Bad data fails the same way twice; step retry policies handle transient errors.
        assert not instance.run_retries_retry_on_asset_or_op_failure
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 2
        assert queue.tag_concurrency_limits == [{"key": "dagster/backfill", "limit": 1}]
    finally:
        instance.dispose()
