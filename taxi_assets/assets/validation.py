"""Validation: statistics per day, anomalies against the versioned schema, drift between days.

What TensorFlow Data Validation gives a TFX pipeline, on our Polars frames: each day's
statistics are an asset (so days can be compared later), checked against the schema and
drift thresholds of the deployment's validation folder (``ValidationSettings.validation_dir``;
by default the package's ``taxi_assets/validation/schemas/``) and against the previous day,
or the last validated day when the previous one is not stored.
"""

import math
from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg
import polars as pl

from taxi_assets.metadata import markdown_table
from taxi_assets.partitions import daily_partitions, partition_day
from taxi_assets.pictures import drift_picture
from taxi_assets.settings import PipelineSettings, ValidationSettings
from taxi_assets.sources.base import ProbeSource
from taxi_assets.storage import StoredPartitions
from taxi_assets.validation.drift import (
    ROW_COUNT,
    compare_statistics,
    drift_description,
    drift_report_markdown,
)
from taxi_assets.validation.gate import validated_days_before
from taxi_assets.validation.schema import find_anomalies, load_schema, schema_path
from taxi_assets.validation.statistics import (
    SAMPLE_FIGURES,
    compute_statistics,
    statistics_markdown,
    with_whole_day_figures,
)

SCHEMA_CHECK = "schema_anomalies"
DRIFT_CHECK = "drift_vs_previous_day"

# What the BigQuery mode stores of these assets is a bounded sample of the day (the day is
# a table there): their statistics take every figure but the distributions from SQL.
SAMPLED_IN_WAREHOUSE = frozenset({"clean_probes"})

# The day itself and the previous Tokyo day of the upstream asset, in one input: Dagster
# maps one upstream asset to one input, so yesterday comes through the same mapping. The
# previous day may be missing (the first day we have), today may not.
TODAY_AND_PREVIOUS_DAY = dg.TimeWindowPartitionMapping(
    start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True
)


def today_and_previous(
    loaded: dict[str, pl.DataFrame], day: date, source: str
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Split what the IO manager loaded (a dict by partition key, missing days left out)
    into (today, previous day or None)."""
    today = loaded.get(day.isoformat())
    if today is None:
        raise dg.Failure(
            description=f"{source} has no stored partition for {day}: materialize it first",
            allow_retries=False,
        )
    return today, loaded.get((day - timedelta(days=1)).isoformat())


def distance_metadata(comparison: pl.DataFrame) -> dict[str, float]:
    """Every distance as a number, crossed or not, so the UI plots its history."""
    prefix = {"jensen_shannon": "js", "l_infinity": "linf", "row_count_ratio": "row_count"}
    # An infinite ratio (yesterday empty) is not plottable; the check description says it.
    return {
        ("row_count_ratio" if feature == ROW_COUNT else f"{prefix[metric]}_{feature}"): distance
        for feature, metric, distance in comparison.select(
            "feature", "metric", "distance"
        ).iter_rows()
        if math.isfinite(distance)
    }


def statistics_asset(source: str, business_meaning: str) -> dg.AssetsDefinition:
    """Daily statistics of ``source`` with its schema and drift checks."""

    @dg.asset(
        name=f"{source}_statistics",
        partitions_def=daily_partitions,
        group_name="validation",
        kinds={"polars", "parquet"},
        ins={
            "days": dg.AssetIn(
                source,
                partition_mapping=TODAY_AND_PREVIOUS_DAY,
                metadata={"allow_missing_partitions": True},
            )
        },
        check_specs=[
            dg.AssetCheckSpec(
                SCHEMA_CHECK,
                asset=f"{source}_statistics",
                blocking=True,
                partitions_def=daily_partitions,
                description=f"{source} matches its versioned schema: columns, types, ranges, "
                "categories and null fractions.",
            ),
            dg.AssetCheckSpec(
                DRIFT_CHECK,
                asset=f"{source}_statistics",
                blocking=True,
                partitions_def=daily_partitions,
                description=f"No feature of {source} moved beyond its threshold since the "
                "previous day (Jensen-Shannon for numbers, L-infinity for categories, row "
                "count ratio).",
            ),
        ],
        description=business_meaning,
    )
    def _statistics(
        context: dg.AssetExecutionContext,
        days: dict[str, pl.DataFrame],
        validation: ValidationSettings,
        settings: PipelineSettings,
        stored: StoredPartitions,
        probe_source: ProbeSource,
    ) -> Iterator:
        day = partition_day(context)
        current, previous = today_and_previous(days, day, source)
        folder = validation.folder()
        schema = load_schema(source, schema_path(source, folder))
        edges = schema.bin_edges()
        warehouse = probe_source.warehouse_data_path() if source in SAMPLED_IN_WAREHOUSE else None

        def describe(frame: pl.DataFrame, key: date) -> pl.DataFrame:
            """The day's statistics: of the frame, or with a warehouse, of the whole
            partition in SQL but for the distributions, which come from the frame."""
            sampled = compute_statistics(
                frame, edges, categorical=schema.categorical, exclude=schema.excluded
            )
            if warehouse is None:
                return sampled
            whole_day = warehouse.day_statistics(source, key, sampled)
            if whole_day.height and whole_day["rows"][0] == 0 and frame.height:
                # A day the table does not hold was computed before BigQuery mode: what
                # is stored of it is the whole day.
                return sampled
            return with_whole_day_figures(sampled, whole_day)

        statistics = describe(current, day)
        # With a warehouse the stored day is a sample: its values are judged from SQL
        # aggregates of the whole partition (its columns and types from the sample).
        whole_table = None if warehouse is None else warehouse.day_aggregates(source, day, schema)
        if whole_table is not None and whole_table.rows == 0 and current.height:
            whole_table = None  # not in the table (computed before BigQuery mode): whole
        anomalies = find_anomalies(current, schema, settings.service_area(), whole_table)

        compared_with = (day - timedelta(days=1)).isoformat()
        if previous is None:
            # A gap in the feed (or a day deleted after it failed): compare with the latest
            # earlier day that passed validation rather than with nothing.
            compared_with = ""
            for key in validated_days_before(
                context.instance, f"{source}_statistics", day, validation.drift_lookback_days
            ):
                previous = stored.read(source, key)
                if previous is not None:
                    compared_with = key
                    break
        against = (
            "previous day"
            if compared_with == (day - timedelta(days=1)).isoformat()
            else f"the last validated day {compared_with}"
        )
        if previous is None:
            context.log.info(
                f"No previous day of {source} stored and no validated day in the "
                f"{validation.drift_lookback_days} days before: drift not computed"
            )
            comparison = None
        else:
            reference = describe(previous, date.fromisoformat(compared_with))
            comparison = compare_statistics(statistics, reference, validation.thresholds())

        metadata: dict = {
            "features": statistics.height,
            "rows": int(statistics["rows"][0]) if statistics.height else current.height,
            "statistics": dg.MetadataValue.md(statistics_markdown(statistics)),
            "schema_reference_days": ", ".join(schema.reference_partitions),
            "validation_dir": dg.MetadataValue.path(str(folder)),
            "anomalies": anomalies.height,
            "compared_with": compared_with,
        }
        if warehouse is not None:
            # The stored partition is a sample: say which figures describe only it.
            metadata["sample_rows"] = current.height
            metadata["from_sample"] = ", ".join(SAMPLE_FIGURES) + " (numeric drift)"
        if comparison is not None:
            metadata |= distance_metadata(comparison)
            metadata["features_drifted"] = int(comparison["crossed"].sum())
            metadata["drift_report"] = dg.MetadataValue.md(
                drift_report_markdown(comparison, f"{source}: {context.partition_key} vs {against}")
            )
            metadata["worst_feature_histogram"] = drift_picture(
                comparison, statistics, reference, f"{source}: {context.partition_key} vs {against}"
            )
        yield dg.Output(statistics, metadata=metadata)

        yield dg.AssetCheckResult(
            check_name=SCHEMA_CHECK,
            passed=anomalies.height == 0,
            metadata={
                "anomalies": anomalies.height,
                "rows_affected": int(anomalies["rows"].sum()),
                "anomaly_table": dg.MetadataValue.md(markdown_table(anomalies, 50)),
            },
            description=(
                "No anomalies against the schema"
                if anomalies.height == 0
                else "; ".join(
                    f"{feature}: {detail}"
                    for feature, detail in anomalies.select("feature", "detail").head(5).iter_rows()
                )
            ),
        )
        if comparison is None:
            yield dg.AssetCheckResult(
                check_name=DRIFT_CHECK,
                passed=True,
                metadata={"compared": False, "compared_with": ""},
                description="No previous day stored and no earlier validated day: nothing to "
                "compare with",
            )
        else:
            yield dg.AssetCheckResult(
                check_name=DRIFT_CHECK,
                passed=not bool(comparison["crossed"].any()),
                metadata={
                    "compared": True,
                    "compared_with": compared_with,
                    "features_drifted": int(comparison["crossed"].sum()),
                    **distance_metadata(comparison),
                },
                description=drift_description(comparison)
                if against == "previous day"
                else f"Against {against}: {drift_description(comparison)}",
            )

    return _statistics


clean_probes_statistics = statistics_asset(
    "clean_probes",
    "How a day of trusted pings is distributed (positions, speeds, statuses, cells) and "
    "whether that changed since yesterday: a broken device firmware or feed shows here "
    "before it reaches a model.",
)
cell_demand_statistics = statistics_asset(
    "cell_demand",
    "How a day of per-cell demand and supply is distributed, and whether it drifted from "
    "the day before: the first warning that training data no longer looks like the past.",
)
training_features_statistics = statistics_asset(
    "training_features",
    "How a day of model features is distributed and whether it drifted from the day before: "
    "a feature computed wrongly, or fed by a broken upstream, shows here before the model "
    "learns from it.",
)
