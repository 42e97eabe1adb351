"""Jobs: named selections of assets that run together."""

from __future__ import annotations

import dagster as dg

from taxi_assets.partitions import daily_partitions

VALIDATION_GROUP = "validation"
DATA_PATH_GROUPS = ("ingestion", "cleaning", "demand", VALIDATION_GROUP, "features")

data_path_job = dg.define_asset_job(
    name="data_path_job",
    selection=dg.AssetSelection.groups(*DATA_PATH_GROUPS),
    partitions_def=daily_partitions,
    description=(
        "One Tokyo day from raw GPS probes to per-cell demand, with every contract, "
        "statistics, schema anomalies and drift against the previous day, and the day's "
        "training features."
    ),
)

training_job = dg.define_asset_job(
    name="training_job",
    selection=dg.AssetSelection.groups("model"),
    partitions_def=daily_partitions,
    description=(
        "Train the day's model on the trailing window, evaluate it on the day, and move "
        "production_model to it if (and only if) it is blessed."
    ),
)

validation_job = dg.define_asset_job(
    name="validation_job",
    selection=dg.AssetSelection.groups(VALIDATION_GROUP),
    partitions_def=daily_partitions,
    description=(
        "Re-validate stored days against the deployment's validation folder: statistics, "
        "schema anomalies and drift, e.g. after onboarding a feed or reviewing a schema. "
        "Training reads the latest result of each day's checks."
    ),
)

forecast_job = dg.define_asset_job(
    name="forecast_job",
    selection=dg.AssetSelection.groups("serving"),
    # A tick takes seconds; one whose worker died is failed (and retried) by run monitoring
    # within 10 minutes instead of the instance's default of hours.
    tags={"dagster/max_runtime": "600"},
    # Its three steps run in the run worker's process: under the default multiprocess
    # executor each step is a new process that loads the whole code location first (12.6 s
    # on the shared 2-core machine at load 11), more than the steps take, every 5 minutes
    # (bench/bench_forecast.py: a launched tick took 46.9 s, 11.0 s in-process). Nothing is
    # lost: the steps pass their outputs through the IO manager's files either way, so run
    # retries and "re-execute from failure" still rerun only the failed steps; guidance and
    # skew no longer run side by side, but on 2 cores they barely did. (The other jobs keep
    # the default: their steps are long and parallel.)
    executor_def=dg.in_process_executor,
    description="One forecast tick: expected street hails and vacant taxis per cell for the "
    "bucket in progress, and the cruising guidance built on it.",
)

monitoring_job = dg.define_asset_job(
    name="monitoring_job",
    selection=dg.AssetSelection.groups("monitoring"),
    partitions_def=daily_partitions,
    description="Yesterday's live forecasts against what happened.",
)

# The nightly schedule's job: one run per closed Tokyo day from raw probes to the deploy
# decision. One run rather than data_path_job then training_job so a failed contract stops
# training in the same run (blocking checks), the day is one line in the Runs list, and
# "re-execute from failure" resumes the whole night where it broke.
daily_job = dg.define_asset_job(
    name="daily_job",
    selection=dg.AssetSelection.groups(*DATA_PATH_GROUPS, "model"),
    partitions_def=daily_partitions,
    description=(
        "One closed Tokyo day end to end: raw probes through every contract to the day's "
        "training features, then train on the trailing window, evaluate on the day and "
        "deploy if blessed."
    ),
)

JOBS = (data_path_job, validation_job, training_job, forecast_job, monitoring_job, daily_job)
