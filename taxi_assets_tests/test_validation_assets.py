"""Statistics assets through Dagster: anomalies against the committed schema, drift against
the previous day, every distance recorded, and failures that block."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from taxi_assets.assets import cleaning as cleaning_assets
from taxi_assets.definitions import ASSET_MODULES
from taxi_assets.jobs import DATA_PATH_GROUPS
from taxi_assets.resources import local_resources
from taxi_assets.settings import PipelineSettings, ValidationSettings
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets.validation.schema import SCHEMA_DIR
from taxi_assets_tests.conftest import SMALL_FLEET

ALL_ASSETS = dg.load_assets_from_modules(list(ASSET_MODULES))
DATA_PATH = dg.AssetSelection.groups(*DATA_PATH_GROUPS)
YESTERDAY, TODAY = "2026-05-05", "2026-05-06"


def materialize(resources: dict, instance: dg.DagsterInstance, day: str):
    return dg.materialize(
        ALL_ASSETS,
        selection=DATA_PATH,
        partition_key=day,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def checks_of(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == asset
    }


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    ]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


@pytest.fixture(scope="module")
def first_day(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, dg.ExecuteInProcessResult]]:
    """YESTERDAY through the data path with the default settings, once for the module: its
    result, and its data folder, which the tests that bring TODAY copy into their own (the
    drift check reads the previous day from the stored files)."""
    data_dir = tmp_path_factory.mktemp("first_day") / "data"
    data_dir.mkdir()
    source = SimulatedProbeSource(fleet_size=SMALL_FLEET, seed=7)
    resources = local_resources(str(data_dir), str(data_dir / "artifacts"), source)
    with dg.instance_for_test() as instance:
        yield data_dir, materialize(resources, instance, YESTERDAY)


def test_first_day_has_statistics_and_nothing_to_drift_from(
    first_day: tuple[Path, dg.ExecuteInProcessResult],
) -> None:
    _, result = first_day
    assert result.success
    for asset in ("clean_probes_statistics", "cell_demand_statistics"):
        checks = checks_of(result, asset)
        assert checks["schema_anomalies"].passed
        assert checks["drift_vs_previous_day"].passed
        assert checks["drift_vs_previous_day"].metadata["compared"].value is False
        assert metadata_of(result, asset)["anomalies"] == 0
    stats = metadata_of(result, "clean_probes_statistics")
    assert stats["rows"] > 0 and "| speed_kmh |" in stats["statistics"]


def test_every_distance_is_recorded_whether_or_not_it_crosses(
    first_day: tuple[Path, dg.ExecuteInProcessResult],
    data_dir: Path,
    small_city_resources: dict,
    instance: dg.DagsterInstance,
) -> None:
    shutil.copytree(first_day[0], data_dir, dirs_exist_ok=True)
    # Thresholds out of reach: the distances must be recorded all the same.
    lenient = ValidationSettings(
        numeric_js_threshold=1.0, categorical_linf_threshold=1.0, use_calibrated_per_feature=False
    )
    result = materialize({**small_city_resources, "validation": lenient}, instance, TODAY)
    assert result.success

    probes = metadata_of(result, "clean_probes_statistics")
    for key in (
        "js_lat",
        "js_lon",
        "js_speed_kmh",
        "js_heading",
        "linf_status",
        "linf_cell",
        "row_count_ratio",
    ):
        assert isinstance(probes[key], float), key
    assert "js_vehicle_id" not in probes  # an identifier is never compared
    demand = metadata_of(result, "cell_demand_statistics")
    for key in ("js_pickups", "js_street_hail_pickups", "js_vacant_taxis", "row_count_ratio"):
        assert isinstance(demand[key], float), key
    drift = checks_of(result, "clean_probes_statistics")["drift_vs_previous_day"]
    assert drift.passed and drift.metadata["compared"].value is True
    assert drift.metadata["js_speed_kmh"].value == probes["js_speed_kmh"]
    assert "vs previous day" in probes["drift_report"]


def test_a_feed_switching_to_mph_fails_the_drift_check_naming_the_feature(
    first_day: tuple[Path, dg.ExecuteInProcessResult],
    data_dir: Path,
    small_city_resources: dict,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shutil.copytree(first_day[0], data_dir, dirs_exist_ok=True)
    real_clean = cleaning_assets.combine_shards

    def clean_in_mph(*args, **kwargs):
        result = real_clean(*args, **kwargs)
        in_mph = result.clean.with_columns(pl.col("speed_kmh") / 1.609)
        return type(result)(in_mph, result.rejected, result.out_of_order_rows)

    monkeypatch.setattr(cleaning_assets, "combine_shards", clean_in_mph)
    result = materialize(small_city_resources, instance, TODAY)

    drift = checks_of(result, "clean_probes_statistics")["drift_vs_previous_day"]
    assert not drift.passed
    # The worst feature comes first. (With this 60-taxi fleet, positions also wander more
    # between days than the thresholds calibrated for 1,000 taxis allow.)
    assert drift.description.split(": ", 1)[1].startswith("speed_kmh JS")
    assert "> 0.015" in drift.description
    assert drift.metadata["features_drifted"].value >= 1
    assert not result.success  # blocking: the run fails, so alerts and re-execution see it


def test_values_outside_the_schema_fail_the_anomaly_check(
    small_city_resources: dict, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_clean = cleaning_assets.combine_shards

    def clean_with_racing_taxis(*args, **kwargs):
        result = real_clean(*args, **kwargs)
        # Within the contract (<= 300 km/h) but far outside anything the schema has seen.
        racing = result.clean.with_columns(
            pl.when(pl.col("vehicle_id") == "1")
            .then(250.0)
            .otherwise(pl.col("speed_kmh"))
            .cast(pl.Float32)
            .alias("speed_kmh")
        )
        return type(result)(racing, result.rejected, result.out_of_order_rows)

    monkeypatch.setattr(cleaning_assets, "combine_shards", clean_with_racing_taxis)
    result = materialize(small_city_resources, instance, YESTERDAY)

    anomalies = checks_of(result, "clean_probes_statistics")["schema_anomalies"]
    assert not anomalies.passed
    assert anomalies.description.startswith("speed_kmh: ")
    assert anomalies.metadata["rows_affected"].value > 0
    assert "out_of_range" in anomalies.metadata["anomaly_table"].value
    assert checks_of(result, "clean_probes")["contract"].passed
    assert not result.success


def test_drift_compares_with_the_last_validated_day_when_the_previous_one_is_missing(
    small_city_resources: dict, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    # The deployment's own folder (a copy of the committed one), with thresholds loose
    # enough for a 60-taxi city, and one day that fails them all.
    folder = tmp_path / "validation"
    shutil.copytree(SCHEMA_DIR, folder)
    loose = {
        "numeric_js_threshold": 1.0,
        "categorical_linf_threshold": 1.0,
        "use_calibrated_per_feature": False,
    }
    lenient = ValidationSettings(validation_dir=str(folder), **loose)
    strict = ValidationSettings(validation_dir=str(folder), **{**loose, "numeric_js_threshold": 0})
    assert materialize(
        {**small_city_resources, "validation": lenient}, instance, "2026-05-03"
    ).success
    failed = materialize({**small_city_resources, "validation": strict}, instance, "2026-05-04")
    assert not checks_of(failed, "clean_probes_statistics")["drift_vs_previous_day"].passed

    # 2026-05-05 never arrived: 05-06 compares with 05-03, the last day that passed.
    result = materialize({**small_city_resources, "validation": lenient}, instance, "2026-05-06")
    assert result.success
    drift = checks_of(result, "clean_probes_statistics")["drift_vs_previous_day"]
    assert drift.metadata["compared"].value is True
    assert drift.metadata["compared_with"].value == "2026-05-03"
    assert drift.description.startswith("Against the last validated day 2026-05-03: ")
    statistics = metadata_of(result, "cell_demand_statistics")
    assert statistics["compared_with"] == "2026-05-03"
    assert statistics["validation_dir"] == str(folder)
    assert "vs the last validated day 2026-05-03" in statistics["drift_report"]


class _SourceWithoutWeather(SimulatedProbeSource):
    """A feed that has no weather: asking it for some is a bug."""

    def read_weather(self, day: date) -> pl.DataFrame:
        raise AssertionError(f"weather read for {day} although weather_source is none")


def test_a_feed_without_weather_runs_the_data_path(
    small_city_resources: dict, instance: dg.DagsterInstance
) -> None:
    resources = {
        **small_city_resources,
        "probe_source": _SourceWithoutWeather(fleet_size=SMALL_FLEET, seed=7),
        "settings": PipelineSettings(weather_source="none"),
    }
    result = materialize(resources, instance, YESTERDAY)
    assert result.success

    weather = metadata_of(result, "weather")
    assert weather["hours"] == 0 and weather["weather_configured"] is False
    assert "no weather source is configured" in weather["note"]
    assert checks_of(result, "weather")["contract"].passed
    features = metadata_of(result, "training_features")
    assert features["weather_used"] is False and features["weather_source"] == "none"
    assert features["null_share_rain_mm_per_h"] == 1.0
    assert checks_of(result, "training_features_statistics")["schema_anomalies"].passed
