"""Resources per environment, chosen in one place by ``TAXI_ASSETS_ENV``.

Settings come from environment variables so that ``dagster dev``, the CLI, the tests and
a Kubernetes pod pick the same code path with different backends. Every setting of the
chosen environment is checked when the code location loads; all the problems are reported
together, in one message, so a deployment is fixed in one round rather than one error at a
time.

``local`` (the embedded default):

- ``TAXI_ASSETS_DATA_DIR``: folder of asset partitions (default ``data``).
- ``TAXI_ASSETS_ARTIFACTS_DIR``: models, evaluations, the production pointer and forecast
  ticks (default ``<data dir>/artifacts``).
- ``TAXI_ASSETS_PROBE_SOURCE``: ``simulator`` (default) or ``landing``, with
  ``TAXI_ASSETS_LANDING_DIR`` for the landing folder.
- ``TAXI_ASSETS_SIM_FLEET_SIZE``, ``TAXI_ASSETS_SIM_SEED``, ``TAXI_ASSETS_SIM_PROFILE``: the
  simulated city and the feed profile it is seen through (``city``, ``real_60s``, ...).

Both environments: the feed's ``TAXI_ASSETS_WEATHER_SOURCE`` (``probe_source`` or
``none``), ``TAXI_ASSETS_STATUS_MAPPING`` (JSON: its status words to probe statuses),
``TAXI_ASSETS_VALIDATION_DIR`` (its schemas and drift thresholds),
``TAXI_ASSETS_DRIFT_LOOKBACK_DAYS`` (how far back drift may look for a validated day) and
``TAXI_ASSETS_VEHICLE_SHARDS`` (shards of vehicles the cleaning runs in; 0: automatic).

``production`` (see :data:`PRODUCTION_SETTINGS` and docs/deployment.md): probes from
BigQuery, partitions and artifacts in a GCS bucket, each through its own service account.
With ``TAXI_ASSETS_BQ_DATA_PATH_DATASET`` and ``TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS``
(both or neither) the data path runs in BigQuery mode: its tables are written by SQL in
that dataset by their own writer, and no run pod pulls a raw day.
Credentials are handed to the resources as ``dg.EnvVar`` references: Dagster resolves
them inside the run, and the UI, the event log and run configs only ever show the name
of the variable, never its value.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from taxi_assets.cleaning import normalised_status_mapping
from taxi_assets.model.registry import ArtifactStore
from taxi_assets.settings import EvaluationSettings, PipelineSettings, ValidationSettings
from taxi_assets.simulation.feed import CITY, FEED_PROFILES
from taxi_assets.sources.base import ProbeSource
from taxi_assets.sources.landing import LandingFolderProbeSource
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets.storage import PartitionedParquetIOManager, StoredPartitions
from taxi_assets.validation.schema import VALIDATION_DIR_ENV
from taxi_assets.weather import FROM_PROBE_SOURCE, WEATHER_SOURCE_ENV, WEATHER_SOURCES

ENVIRONMENTS = ("local", "production")
PROBE_SOURCES = ("simulator", "landing")
STATUS_MAPPING_ENV = "TAXI_ASSETS_STATUS_MAPPING"
DRIFT_LOOKBACK_ENV = "TAXI_ASSETS_DRIFT_LOOKBACK_DAYS"
VEHICLE_SHARDS_ENV = "TAXI_ASSETS_VEHICLE_SHARDS"


class SettingsError(ValueError):
    """The environment's settings are missing or invalid; the message lists all of them."""


@dataclass(frozen=True)
class Setting:
    name: str
    meaning: str
    required: bool = True
    secret: bool = False


# The production settings, in the order docs/deployment.md explains them. Each credential
# belongs to one service account with one job (least privilege): the probe reader cannot
# write anything, the artifact writer cannot read the probes.
PRODUCTION_SETTINGS = (
    Setting("TAXI_ASSETS_GCP_PROJECT", "the GCP project that runs the BigQuery jobs"),
    Setting("TAXI_ASSETS_BQ_PROBES_TABLE", "probes table, project.dataset.table"),
    Setting("TAXI_ASSETS_BQ_WEATHER_TABLE", "hourly weather table, project.dataset.table"),
    Setting("TAXI_ASSETS_BQ_LOCATION", "BigQuery location (default asia-northeast1)", False),
    Setting(
        "TAXI_ASSETS_BQ_ARRIVAL_COLUMN",
        "column of the probes table that orders rows as they arrived (unset: "
        "out_of_order_rows is null in BigQuery mode)",
        False,
    ),
    Setting(
        "TAXI_ASSETS_BQ_READER_CREDENTIALS",
        "base64 key of the read-only probe reader service account",
        secret=True,
    ),
    Setting("TAXI_ASSETS_GCS_BUCKET", "bucket of asset partitions and model artifacts"),
    Setting("TAXI_ASSETS_GCS_PREFIX", "folder inside the bucket (default taxi_assets)", False),
    Setting(
        "TAXI_ASSETS_GCS_WRITER_CREDENTIALS",
        "base64 key of the service account that may write the artifact bucket only",
        secret=True,
    ),
    Setting(
        "TAXI_ASSETS_BQ_DATA_PATH_DATASET",
        "project.dataset where clean_probes, rejected_probes, trip_events and cell_demand "
        "are written by SQL (BigQuery mode; unset: the run pod pulls the day)",
        False,
    ),
    Setting(
        "TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS",
        "base64 key of the data path writer service account (with the dataset above)",
        False,
        secret=True,
    ),
)
DATA_PATH_DATASET_ENV = "TAXI_ASSETS_BQ_DATA_PATH_DATASET"
ARRIVAL_COLUMN_ENV = "TAXI_ASSETS_BQ_ARRIVAL_COLUMN"
DATA_PATH_WRITER_ENV = "TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS"
DEFAULT_BQ_LOCATION = "asia-northeast1"
DEFAULT_GCS_PREFIX = "taxi_assets"

# BigQuery ids: project (letters, digits, hyphens), dataset and table (letters, digits, _).
_TABLE_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]\.\w{1,1024}\.[\w-]{1,1024}$", re.ASCII)
_DATASET_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]\.\w{1,1024}$", re.ASCII)
_COLUMN_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$", re.ASCII)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9._/-]*$")


class _Problems:
    """Collects every problem with the settings, to raise them together."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.found: list[str] = []

    def add(self, problem: str) -> None:
        self.found.append(problem)

    def text(self, name: str, default: str | None = None) -> str:
        value = self.env.get(name, "").strip()
        return value or (default or "")

    def integer(self, name: str, default: int) -> int:
        raw = self.env.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            self.add(f"{name}={raw!r} is not a whole number")
            return default

    def raise_if_any(self, heading: str) -> None:
        if self.found:
            raise SettingsError("\n  - ".join([heading, *self.found]))


def resources_for_environment(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every resource of the environment ``TAXI_ASSETS_ENV`` names (default ``local``)."""
    env = os.environ if env is None else env
    name = env.get("TAXI_ASSETS_ENV", "local")
    if name == "local":
        return _local_resources_from_env(env)
    if name == "production":
        return production_resources(env)
    raise SettingsError(
        f"TAXI_ASSETS_ENV={name!r} is unknown: choose one of {', '.join(ENVIRONMENTS)}"
    )


def _local_resources_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    problems = _Problems(env)
    probe_source = _local_probe_source(problems)
    settings = _shared_settings(problems)
    problems.raise_if_any("TAXI_ASSETS_ENV=local has invalid settings:")
    data_dir = problems.text("TAXI_ASSETS_DATA_DIR", "data")
    artifacts_dir = problems.text("TAXI_ASSETS_ARTIFACTS_DIR", f"{data_dir}/artifacts")
    return {**local_resources(data_dir, artifacts_dir, probe_source), **settings}


def _local_probe_source(problems: _Problems) -> ProbeSource | None:
    kind = problems.text("TAXI_ASSETS_PROBE_SOURCE", "simulator")
    if kind == "simulator":
        profile = problems.text("TAXI_ASSETS_SIM_PROFILE", CITY.name)
        if profile not in FEED_PROFILES:
            problems.add(
                f"TAXI_ASSETS_SIM_PROFILE={profile!r} is unknown: choose one of "
                f"{', '.join(FEED_PROFILES)}"
            )
            return None
        return SimulatedProbeSource(
            fleet_size=problems.integer("TAXI_ASSETS_SIM_FLEET_SIZE", 1000),
            seed=problems.integer("TAXI_ASSETS_SIM_SEED", 42),
            feed_profile=profile,
        )
    if kind == "landing":
        landing_dir = problems.text("TAXI_ASSETS_LANDING_DIR")
        if landing_dir:
            return LandingFolderProbeSource(landing_dir=landing_dir)
        problems.add(
            "TAXI_ASSETS_PROBE_SOURCE=landing needs TAXI_ASSETS_LANDING_DIR (the folder "
            "holding probes/<day>/ and weather/)"
        )
        return None
    problems.add(
        f"TAXI_ASSETS_PROBE_SOURCE={kind!r} is unknown: choose one of {', '.join(PROBE_SOURCES)}"
    )
    return None


def local_resources(data_dir: str, artifacts_dir: str, probe_source: ProbeSource) -> dict[str, Any]:
    """Every resource of the embedded environment, with files under the given folders and
    the default settings."""
    return {
        "io_manager": PartitionedParquetIOManager(base_dir=data_dir),
        "stored": StoredPartitions(base_dir=data_dir),
        "artifacts": ArtifactStore(base_dir=artifacts_dir),
        "probe_source": probe_source,
        **_shared_settings(),
    }


def _shared_settings(problems: _Problems | None = None) -> dict[str, Any]:
    """The settings resources; with ``problems``, the feed's settings come from its
    variables (weather, status words, validation folder, drift look-back)."""
    if problems is None:
        return {
            "settings": PipelineSettings(),
            "validation": ValidationSettings(),
            "evaluation": EvaluationSettings(),
        }
    pipeline: dict[str, Any] = {}
    weather = problems.text(WEATHER_SOURCE_ENV, FROM_PROBE_SOURCE)
    if weather not in WEATHER_SOURCES:
        problems.add(
            f"{WEATHER_SOURCE_ENV}={weather!r} is unknown: choose one of {WEATHER_SOURCES}"
        )
    else:
        pipeline["weather_source"] = weather
    if problems.text(VEHICLE_SHARDS_ENV):
        shards = problems.integer(VEHICLE_SHARDS_ENV, 0)
        if shards < 0:
            problems.add(f"{VEHICLE_SHARDS_ENV}={shards} must be 0 (automatic) or more")
        pipeline["vehicle_shards"] = max(shards, 0)
    mapping = _status_mapping(problems)
    if mapping is not None:
        pipeline["status_mapping"] = mapping
    validation: dict[str, Any] = {"validation_dir": problems.text(VALIDATION_DIR_ENV)}
    if problems.text(DRIFT_LOOKBACK_ENV):
        lookback = problems.integer(DRIFT_LOOKBACK_ENV, 14)
        if lookback < 1:
            problems.add(f"{DRIFT_LOOKBACK_ENV}={lookback} must be at least 1 (the previous day)")
        validation["drift_lookback_days"] = max(lookback, 1)
    return {
        "settings": PipelineSettings(**pipeline),
        "validation": ValidationSettings(**validation),
        "evaluation": EvaluationSettings(),
    }


def _status_mapping(problems: _Problems) -> dict[str, str] | None:
    """The feed's status words from ``TAXI_ASSETS_STATUS_MAPPING`` (a JSON object), or None."""
    raw = problems.text(STATUS_MAPPING_ENV)
    if not raw:
        return None
    try:
        mapping = json.loads(raw)
    except json.JSONDecodeError as error:
        problems.add(f'{STATUS_MAPPING_ENV} is not JSON ({error}): e.g. \'{{"0": "vacant"}}\'')
        return None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        problems.add(f"{STATUS_MAPPING_ENV} must be a JSON object of word -> status, got {raw!r}")
        return None
    try:
        normalised_status_mapping(mapping)
    except ValueError as error:
        problems.add(f"{STATUS_MAPPING_ENV}: {error}")
        return None
    return {str(word): status for word, status in mapping.items()}


def production_resources(env: Mapping[str, str]) -> dict[str, Any]:
    """BigQuery probes, GCS partitions and artifacts, each with its own credentials."""
    problems = _Problems(env)
    for setting in PRODUCTION_SETTINGS:
        if setting.required and not problems.text(setting.name):
            problems.add(f"{setting.name} is missing: {setting.meaning}")
    for name in ("TAXI_ASSETS_BQ_PROBES_TABLE", "TAXI_ASSETS_BQ_WEATHER_TABLE"):
        value = problems.text(name)
        if value and not _TABLE_ID.match(value):
            problems.add(f"{name}={value!r} is not a BigQuery table id (project.dataset.table)")
    bucket = problems.text("TAXI_ASSETS_GCS_BUCKET")
    if bucket and not _BUCKET.match(bucket):
        problems.add(f"TAXI_ASSETS_GCS_BUCKET={bucket!r} is not a bucket name (no gs://, no /)")
    prefix = problems.text("TAXI_ASSETS_GCS_PREFIX", DEFAULT_GCS_PREFIX).strip("/")
    if not _PREFIX.match(prefix):
        problems.add(f"TAXI_ASSETS_GCS_PREFIX={prefix!r} has characters outside [A-Za-z0-9._/-]")
    accounts = {
        setting.name: _service_account(problems, setting.name)
        for setting in PRODUCTION_SETTINGS
        if setting.secret
    }
    # One service account per job: two settings holding the same account are refused.
    for index, (first, email) in enumerate(accounts.items()):
        for second, other in list(accounts.items())[index + 1 :]:
            if email and email == other:
                problems.add(
                    f"{first} and {second} are the same service account ({email}): give "
                    "each its own, with only its own roles"
                )
    data_path_dataset = _data_path_dataset(problems)
    arrival_column = problems.text(ARRIVAL_COLUMN_ENV) or None
    if arrival_column and not _COLUMN_ID.match(arrival_column):
        problems.add(
            f"{ARRIVAL_COLUMN_ENV}={arrival_column!r} is not a plain column name (letters, "
            "digits, '_')"
        )
    if problems.text("GOOGLE_APPLICATION_CREDENTIALS"):
        # dagster-gcp's BigQuery resource passes its key through that very variable (a
        # temporary file for the length of a query) and refuses to start when it is set;
        # a process-wide key would also blur which resource acts with which account.
        problems.add(
            "GOOGLE_APPLICATION_CREDENTIALS is set: unset it, each resource has its own key "
            "(TAXI_ASSETS_BQ_READER_CREDENTIALS, TAXI_ASSETS_GCS_WRITER_CREDENTIALS, "
            f"{DATA_PATH_WRITER_ENV})"
        )
    settings = _shared_settings(problems)
    problems.raise_if_any(
        "TAXI_ASSETS_ENV=production is missing or has invalid settings "
        "(docs/deployment.md lists them all):"
    )

    # Imported here: a local code location does not need to load the Google clients.
    from dagster_gcp import BigQueryResource

    from taxi_assets.sources.bigquery import BigQueryProbeSource

    root = f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"
    writer = dg.EnvVar("TAXI_ASSETS_GCS_WRITER_CREDENTIALS")
    project = problems.text("TAXI_ASSETS_GCP_PROJECT")
    location = problems.text("TAXI_ASSETS_BQ_LOCATION", DEFAULT_BQ_LOCATION)
    # BigQuery mode: the data path's own writer, so the probe reader stays read-only.
    data_path = (
        {
            "data_path_dataset": data_path_dataset,
            "data_path_writer": BigQueryResource(
                project=project,
                location=location,
                gcp_credentials=dg.EnvVar(DATA_PATH_WRITER_ENV),
            ),
        }
        if data_path_dataset
        else {}
    )
    return {
        "io_manager": PartitionedParquetIOManager(
            base_dir=f"{root}/partitions", gcs_credentials=writer
        ),
        "stored": StoredPartitions(base_dir=f"{root}/partitions", gcs_credentials=writer),
        "artifacts": ArtifactStore(base_dir=f"{root}/artifacts", gcs_credentials=writer),
        "probe_source": BigQueryProbeSource(
            bigquery=BigQueryResource(
                project=project,
                location=location,
                gcp_credentials=dg.EnvVar("TAXI_ASSETS_BQ_READER_CREDENTIALS"),
            ),
            probes_table=problems.text("TAXI_ASSETS_BQ_PROBES_TABLE"),
            weather_table=problems.text("TAXI_ASSETS_BQ_WEATHER_TABLE"),
            arrival_column=arrival_column,
            **data_path,
        ),
        **settings,
    }


def _data_path_dataset(problems: _Problems) -> str:
    """The BigQuery mode's dataset, or "" (off); both of its settings or neither."""
    dataset = problems.text(DATA_PATH_DATASET_ENV)
    writer = problems.text(DATA_PATH_WRITER_ENV)
    if dataset and not writer:
        problems.add(
            f"{DATA_PATH_DATASET_ENV} is set but {DATA_PATH_WRITER_ENV} is missing: the data "
            "path's tables need their own writer (the probe reader may not write)"
        )
    if writer and not dataset:
        problems.add(
            f"{DATA_PATH_WRITER_ENV} is set but {DATA_PATH_DATASET_ENV} is missing: name the "
            "project.dataset the data path writes, or unset the key"
        )
    if dataset and not _DATASET_ID.match(dataset):
        problems.add(
            f"{DATA_PATH_DATASET_ENV}={dataset!r} is not a BigQuery dataset id (project.dataset)"
        )
    return dataset


def _service_account(problems: _Problems, name: str) -> str | None:
    """The client e-mail of a base64 service-account key, or None (problem noted).

    The value itself never goes into a message: it is a secret.
    """
    raw = problems.text(name)
    if not raw:
        return None
    try:
        key = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        problems.add(f"{name} is not a base64-encoded JSON service-account key")
        return None
    if not isinstance(key, dict) or key.get("type") != "service_account":
        problems.add(f'{name} is not a service-account key (no "type": "service_account")')
        return None
    email = key.get("client_email")
    if not email:
        problems.add(f"{name} has no client_email")
        return None
    return str(email)
