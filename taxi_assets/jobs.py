"""Jobs: named selections of assets that run together."""

from __future__ import annotations

import dagster as dg

from taxi_assets.partitions import daily_partitions

DATA_PATH_GROUPS = ("ingestion", "cleaning", "demand", "validation")

data_path_job = dg.define_asset_job(
    name="data_path_job",
    selection=dg.AssetSelection.groups(*DATA_PATH_GROUPS),
    partitions_def=daily_partitions,
    description=(
        "One Tokyo day from raw GPS probes to per-cell demand, with every contract, "
        "statistics, schema anomalies and drift against the previous day."
    ),
)
