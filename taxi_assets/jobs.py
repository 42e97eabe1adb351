"""Jobs: named selections of assets that run together."""

from __future__ import annotations

import dagster as dg

from taxi_assets.partitions import daily_partitions

DATA_PATH_GROUPS = ("ingestion", "cleaning", "demand", "validation", "features")

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

forecast_job = dg.define_asset_job(
    name="forecast_job",
    selection=dg.AssetSelection.groups("serving"),
    description="One forecast tick: expected street hails and vacant taxis per cell for the "
    "bucket in progress, and the cruising guidance built on it.",
)

monitoring_job = dg.define_asset_job(
    name="monitoring_job",
    selection=dg.AssetSelection.groups("monitoring"),
    partitions_def=daily_partitions,
    description="Yesterday's live forecasts against what happened.",
)

JOBS = (data_path_job, training_job, forecast_job, monitoring_job)
