"""One switch picks the environment; every missing or invalid setting is named at once."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import dagster as dg
import pytest

from taxi_assets.resources import PRODUCTION_SETTINGS, SettingsError, resources_for_environment


def service_account_key(email: str, secret: str = "-----BEGIN PRIVATE KEY-----") -> str:
    key = {"type": "service_account", "client_email": email, "private_key": secret}
    return base64.b64encode(json.dumps(key).encode()).decode()


def production_env(**overrides: str) -> dict[str, str]:
    env = {
        "TAXI_ASSETS_ENV": "production",
        "TAXI_ASSETS_GCP_PROJECT": "tokyo-taxi",
        "TAXI_ASSETS_BQ_PROBES_TABLE": "tokyo-taxi.probes.gps_pings",
        "TAXI_ASSETS_BQ_WEATHER_TABLE": "tokyo-taxi.probes.weather_hourly",
        "TAXI_ASSETS_BQ_READER_CREDENTIALS": service_account_key("reader@tokyo-taxi.iam"),
        "TAXI_ASSETS_GCS_BUCKET": "tokyo-taxi-artifacts",
        "TAXI_ASSETS_GCS_WRITER_CREDENTIALS": service_account_key("writer@tokyo-taxi.iam"),
    }
    env.update(overrides)
    return env


def test_production_with_nothing_set_lists_every_required_setting_in_one_message() -> None:
    with pytest.raises(SettingsError) as raised:
        resources_for_environment({"TAXI_ASSETS_ENV": "production"})
    message = str(raised.value)
    for setting in PRODUCTION_SETTINGS:
        assert (f"{setting.name} is missing" in message) == setting.required, setting.name


def test_invalid_production_settings_are_named_together_without_echoing_secrets() -> None:
    env = production_env(
        TAXI_ASSETS_BQ_PROBES_TABLE="probes; DROP TABLE x",
        TAXI_ASSETS_GCS_BUCKET="gs://tokyo-taxi-artifacts",
        TAXI_ASSETS_BQ_READER_CREDENTIALS="s3cr3t-not-base64!",
    )
    with pytest.raises(SettingsError) as raised:
        resources_for_environment(env)
    message = str(raised.value)
    assert (
        "TAXI_ASSETS_BQ_PROBES_TABLE='probes; DROP TABLE x' is not a BigQuery table id" in message
    )
    assert "TAXI_ASSETS_GCS_BUCKET='gs://tokyo-taxi-artifacts' is not a bucket name" in message
    assert "TAXI_ASSETS_BQ_READER_CREDENTIALS is not a base64-encoded JSON" in message
    assert "s3cr3t" not in message


def test_one_service_account_for_reading_and_writing_is_refused() -> None:
    same = service_account_key("everything@tokyo-taxi.iam")
    env = production_env(
        TAXI_ASSETS_BQ_READER_CREDENTIALS=same, TAXI_ASSETS_GCS_WRITER_CREDENTIALS=same
    )
    with pytest.raises(SettingsError, match="same service account"):
        resources_for_environment(env)


def test_a_process_wide_google_key_is_refused_with_the_rest() -> None:
    env = production_env(
        GOOGLE_APPLICATION_CREDENTIALS="/var/secrets/key.json", TAXI_ASSETS_GCS_BUCKET=""
    )
    with pytest.raises(SettingsError) as raised:
        resources_for_environment(env)
    assert "GOOGLE_APPLICATION_CREDENTIALS is set: unset it" in str(raised.value)
    assert "TAXI_ASSETS_GCS_BUCKET is missing" in str(raised.value)


def test_local_problems_are_also_reported_together() -> None:
    with pytest.raises(SettingsError) as raised:
        resources_for_environment(
            {
                "TAXI_ASSETS_PROBE_SOURCE": "simulator",
                "TAXI_ASSETS_SIM_FLEET_SIZE": "x",
                "TAXI_ASSETS_SIM_SEED": "y",
            }
        )
    assert "TAXI_ASSETS_SIM_FLEET_SIZE='x'" in str(raised.value)
    assert "TAXI_ASSETS_SIM_SEED='y'" in str(raised.value)


def test_the_feeds_settings_come_from_the_given_variables_in_both_environments(
    tmp_path: Path,
) -> None:
    feed = {
        "TAXI_ASSETS_WEATHER_SOURCE": "none",
        "TAXI_ASSETS_STATUS_MAPPING": '{"0": "vacant", "1": "occupied", "GEISHA": "off_duty"}',
        "TAXI_ASSETS_VALIDATION_DIR": str(tmp_path),
        "TAXI_ASSETS_DRIFT_LOOKBACK_DAYS": "3",
        "TAXI_ASSETS_VEHICLE_SHARDS": "5",
    }
    for env in ({"TAXI_ASSETS_SIM_PROFILE": "real_60s", **feed}, production_env(**feed)):
        resources = resources_for_environment(env)
        settings, validation = resources["settings"], resources["validation"]
        assert settings.weather_source == "none"
        assert dict(settings.cleaning_rules().status_mapping)["geisha"] == "off_duty"
        assert validation.folder() == tmp_path and validation.drift_lookback_days == 3
        assert settings.vehicle_shards == 5
    assert (
        resources_for_environment({"TAXI_ASSETS_SIM_PROFILE": "real_60s"})[
            "probe_source"
        ].feed_profile
        == "real_60s"
    )


def test_invalid_feed_settings_are_named_together() -> None:
    with pytest.raises(SettingsError) as raised:
        resources_for_environment(
            {
                "TAXI_ASSETS_WEATHER_SOURCE": "rain gauge",
                "TAXI_ASSETS_STATUS_MAPPING": '{"0": "empty"}',
                "TAXI_ASSETS_DRIFT_LOOKBACK_DAYS": "0",
                "TAXI_ASSETS_SIM_PROFILE": "paris",
                "TAXI_ASSETS_VEHICLE_SHARDS": "-2",
            }
        )
    message = str(raised.value)
    assert "TAXI_ASSETS_WEATHER_SOURCE='rain gauge' is unknown" in message
    assert "TAXI_ASSETS_STATUS_MAPPING: status_mapping: '0' maps to 'empty'" in message
    assert "TAXI_ASSETS_DRIFT_LOOKBACK_DAYS=0 must be at least 1" in message
    assert "TAXI_ASSETS_SIM_PROFILE='paris' is unknown" in message
    assert "TAXI_ASSETS_VEHICLE_SHARDS=-2 must be 0 (automatic) or more" in message
    with pytest.raises(SettingsError, match="TAXI_ASSETS_STATUS_MAPPING is not JSON"):
        resources_for_environment({"TAXI_ASSETS_STATUS_MAPPING": "0=vacant"})


def test_production_with_the_data_path_settings_builds_the_bigquery_mode() -> None:
    env = production_env(
        TAXI_ASSETS_BQ_DATA_PATH_DATASET="tokyo-taxi.data_path",
        TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS=service_account_key("path@tokyo-taxi.iam"),
    )
    source = resources_for_environment(env)["probe_source"]
    assert source.data_path_dataset == "tokyo-taxi.data_path"
    # Its own key, as a reference Dagster resolves in the run: never the value.
    assert source.data_path_writer.gcp_credentials == dg.EnvVar(
        "TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS"
    )
    assert source.bigquery.gcp_credentials == dg.EnvVar("TAXI_ASSETS_BQ_READER_CREDENTIALS")
    path = source.warehouse_data_path()
    assert path.bigquery is source.data_path_writer
    assert path.table("clean_probes") == "tokyo-taxi.data_path.clean_probes"
    assert path.probes_table == "tokyo-taxi.probes.gps_pings"
    # Without the settings, the assets pull the day and compute it in Polars.
    assert resources_for_environment(production_env())["probe_source"].warehouse_data_path() is None


def test_a_half_configured_data_path_names_the_missing_setting() -> None:
    writer_key = service_account_key("path@tokyo-taxi.iam")
    cases = {
        "TAXI_ASSETS_BQ_DATA_PATH_DATASET is set but "
        "TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS is missing": {
            "TAXI_ASSETS_BQ_DATA_PATH_DATASET": "tokyo-taxi.data_path"
        },
        "TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS is set but "
        "TAXI_ASSETS_BQ_DATA_PATH_DATASET is missing": {
            "TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS": writer_key
        },
        "TAXI_ASSETS_BQ_DATA_PATH_DATASET='tokyo-taxi.data_path.clean' is not a BigQuery "
        "dataset id": {
            "TAXI_ASSETS_BQ_DATA_PATH_DATASET": "tokyo-taxi.data_path.clean",
            "TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS": writer_key,
        },
        "TAXI_ASSETS_BQ_READER_CREDENTIALS and TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS "
        "are the same service account": {
            "TAXI_ASSETS_BQ_DATA_PATH_DATASET": "tokyo-taxi.data_path",
            "TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS": service_account_key(
                "reader@tokyo-taxi.iam", secret="another-private-key"
            ),
        },
    }
    for expected, overrides in cases.items():
        with pytest.raises(SettingsError) as raised:
            resources_for_environment(production_env(**overrides))
        assert expected in str(raised.value), str(raised.value)
        assert "PRIVATE KEY" not in str(raised.value) and "another-private" not in str(raised.value)
