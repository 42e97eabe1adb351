"""The code location loads, and its lineage only changes on purpose."""

from __future__ import annotations

import dagster as dg
import pytest

from taxi_assets.definitions import build_definitions, defs, executor_for_environment
from taxi_assets.resources import SettingsError, local_resources, resources_for_environment
from taxi_assets.settings import PipelineSettings
from taxi_assets.sources.simulated import SimulatedProbeSource

# Snapshot of every asset: group, upstream assets and checks. Update it deliberately when
# the graph changes; a failing test here means the lineage changed.
EXPECTED_ASSETS = {
    "raw_probes": ("ingestion", set(), {"contract"}),
    "weather": ("ingestion", set(), {"contract"}),
    "clean_probes": (
        "cleaning",
        {"raw_probes"},
        {"contract", "rows_conserved", "quarantine_share"},
    ),
    "rejected_probes": ("cleaning", {"raw_probes"}, {"contract"}),
    "trip_events": ("demand", {"clean_probes"}, {"contract"}),
    "cell_demand": ("demand", {"clean_probes", "trip_events"}, {"contract"}),
    "clean_probes_statistics": (
        "validation",
        {"clean_probes"},
        {"schema_anomalies", "drift_vs_previous_day"},
    ),
    "cell_demand_statistics": (
        "validation",
        {"cell_demand"},
        {"schema_anomalies", "drift_vs_previous_day"},
    ),
    "training_features": ("features", {"cell_demand", "weather"}, {"contract"}),
    "training_features_statistics": (
        "validation",
        {"training_features"},
        {"schema_anomalies", "drift_vs_previous_day"},
    ),
    "demand_model": (
        "model",
        {
            "training_features",
            "clean_probes_statistics",
            "cell_demand_statistics",
            "training_features_statistics",
        },
        set(),
    ),
    "model_evaluation": ("model", {"training_features", "demand_model"}, {"blessed"}),
    "production_model": ("model", {"model_evaluation"}, set()),
    "demand_forecast": ("serving", {"production_model", "cell_demand"}, set()),
    "cruising_guidance": ("serving", {"demand_forecast"}, set()),
    "serving_skew": (
        "serving",
        {"demand_forecast", "training_features"},
        {"no_training_serving_skew"},
    ),
    "forecast_accuracy": (
        "monitoring",
        {"demand_forecast", "cell_demand"},
        {"accuracy_vs_evaluation"},
    ),
    "guidance_accuracy": (
        "monitoring",
        {"demand_forecast", "cell_demand"},
        {"following_beats_staying"},
    ),
}
# Not partitioned: a pointer, and the 5-minute forecast (a partition per tick would be 105k
# a year); every other asset is one partition per Tokyo day.
UNPARTITIONED = {"production_model", "demand_forecast", "cruising_guidance", "serving_skew"}
# Monitoring reports on what already happened: nothing downstream to block.
NON_BLOCKING_CHECKS = {
    "forecast_accuracy:accuracy_vs_evaluation",
    "guidance_accuracy:following_beats_staying",
    "serving_skew:no_training_serving_skew",
}


def test_definitions_load_and_validate() -> None:
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("data_path_job").partitions_def is not None


def test_asset_graph_snapshot() -> None:
    graph = defs.resolve_asset_graph()
    found = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        checks = {check.name for check in graph.get_check_keys_for_assets([key])}
        found[key.to_user_string()] = (
            node.group_name,
            {parent.to_user_string() for parent in node.parent_keys},
            checks,
        )
        if key.to_user_string() in UNPARTITIONED:
            assert node.partitions_def is None, f"{key} should not be partitioned"
        else:
            assert node.partitions_def is not None, f"{key} should be daily-partitioned"
            assert node.partitions_def.timezone == "Asia/Tokyo"
    assert found == EXPECTED_ASSETS


def test_every_asset_explains_itself() -> None:
    for spec in defs.resolve_all_asset_specs():
        assert spec.description and len(spec.description) > 40, spec.key
        assert spec.kinds, spec.key


def test_every_contract_check_blocks_downstream() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        for check_key in graph.get_check_keys_for_assets([key]):
            name = f"{key.to_user_string()}:{check_key.name}"
            assert graph.get_check_spec(check_key).blocking == (name not in NON_BLOCKING_CHECKS)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TAXI_ASSETS_PROBE_SOURCE": "kafka"}, "TAXI_ASSETS_PROBE_SOURCE='kafka' is unknown"),
        ({"TAXI_ASSETS_PROBE_SOURCE": "landing"}, "needs TAXI_ASSETS_LANDING_DIR"),
        ({"TAXI_ASSETS_SIM_FLEET_SIZE": "many"}, "TAXI_ASSETS_SIM_FLEET_SIZE='many'"),
        ({"TAXI_ASSETS_ENV": "mars"}, "TAXI_ASSETS_ENV='mars' is unknown"),
    ],
)
def test_bad_environment_settings_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        resources_for_environment(env)


def test_the_executor_setting_chooses_how_jobs_without_their_own_run_their_steps(
    tmp_path,
) -> None:
    """Unset: a process per step (Dagster's default executor); ``in_process``: every step
    in the run worker; the forecast tick runs in process either way; a typo names the
    setting."""
    resources = local_resources(str(tmp_path), str(tmp_path / "a"), SimulatedProbeSource())

    def executors(env: dict[str, str]) -> dict[str, str]:
        built = build_definitions(resources, executor_for_environment(env))
        return {
            job: built.resolve_job_def(job).executor_def.name
            for job in ("data_path_job", "training_job", "forecast_job")
        }

    assert executors({}) == {
        "data_path_job": "multi_or_in_process_executor",  # Dagster's default: run config
        "training_job": "multi_or_in_process_executor",  # may still choose in_process
        "forecast_job": "in_process",
    }
    assert set(executors({"TAXI_ASSETS_EXECUTOR": "in_process"}).values()) == {"in_process"}
    with pytest.raises(SettingsError, match="TAXI_ASSETS_EXECUTOR='threads' is unknown"):
        executor_for_environment({"TAXI_ASSETS_EXECUTOR": "threads"})


@pytest.mark.parametrize("minutes", [0, 7, -15, 2000])
def test_impossible_bucket_size_is_refused(minutes: int) -> None:
    with pytest.raises(Exception, match="bucket_minutes"):
        PipelineSettings(bucket_minutes=minutes)


def test_unknown_mesh_level_is_refused() -> None:
    with pytest.raises(Exception, match="mesh_level"):
        PipelineSettings(mesh_level="block")


def test_dagster_definitions_validate_passes_on_the_workspace(tmp_path) -> None:
    """The command the README names, run as a user runs it."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=repo,
        env={"PATH": str(dagster.parent), "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr


# Snapshot of the automation: name -> (default status, job). Alerts must never be silently
# off; schedules and the landing sensor are switched on deliberately (README, "Operations"),
# and the forecast's freshness sensor with the forecast schedule (an instance that does not
# forecast would otherwise be told so every minute).
EXPECTED_SCHEDULES = {
    "daily_training_schedule": ("STOPPED", "daily_job"),
    "forecast_every_5_minutes": ("STOPPED", "forecast_job"),
}
EXPECTED_SENSORS = {
    "landing_files_sensor": ("STOPPED", "data_path_job"),
    "asset_check_alert_sensor": ("RUNNING", None),
    "run_failure_alert_sensor": ("RUNNING", None),
    "forecast_freshness_sensor": ("STOPPED", None),
}


def test_schedules_and_sensors_snapshot() -> None:
    schedules = {
        s.name: (s.default_status.value, s.job_name)
        for s in (defs.resolve_schedule_def(name) for name in EXPECTED_SCHEDULES)
    }
    sensors = {}
    for name in EXPECTED_SENSORS:
        sensor = defs.resolve_sensor_def(name)
        sensors[name] = (sensor.default_status.value, sensor.job_name if sensor.targets else None)
    repository = defs.get_repository_def()
    assert {s.name for s in repository.schedule_defs} == set(EXPECTED_SCHEDULES)
    assert {s.name for s in repository.sensor_defs} == set(EXPECTED_SENSORS)
    assert schedules == EXPECTED_SCHEDULES
    assert sensors == EXPECTED_SENSORS
