"""Monitoring: how the live forecasts of a day did against what then happened."""

import dagster as dg
import polars as pl

from taxi_assets.assets.serving import demand_forecast
from taxi_assets.calendar import TOKYO_TZ_NAME, day_type
from taxi_assets.model.evaluation import (
    horizon_metadata,
    horizon_metrics,
    metric_exprs,
    overall_metrics,
    slice_metrics,
    slices_markdown,
)
from taxi_assets.model.registry import ArtifactStore
from taxi_assets.partitions import daily_partitions, partition_day
from taxi_assets.settings import EvaluationSettings

ACCURACY_CHECK = "accuracy_vs_evaluation"


# What the live forecasts are held to: the metrics the gate judges counts by (MAE is reported
# but, as in the gate, alerts on nothing; see blessing.py).
ALERTED_METRICS = ("rmse", "poisson_deviance")


def expected_metrics(scored: pl.DataFrame, report: dict) -> dict[str, float]:
    """RMSE and mean Poisson deviance the model's own evaluation measured on the hours these
    forecasts cover, weighted by how many forecast rows fall in each hour (a night tick and
    a rush-hour tick are not held to the same number). {} when no hour is covered."""
    by_hour = {
        int(row["slice"]): row
        for row in report["slices"]
        if row["slice_kind"] == "hour" and row["predictor"] == "model"
    }
    weights = scored.group_by("hour").len()
    covered = [(by_hour[int(h)], n) for h, n in weights.iter_rows() if int(h) in by_hour]
    total = sum(n for _, n in covered)
    if not total:
        return {}
    return {
        # Mean squared errors add up by rows; RMSE is the root of their weighted mean.
        "rmse": (sum(row["rmse"] ** 2 * n for row, n in covered) / total) ** 0.5,
        "poisson_deviance": sum(row["poisson_deviance"] * n for row, n in covered) / total,
    }


def _metrics(rows: pl.DataFrame) -> dict[str, float]:
    values = rows.select(metric_exprs("actual", "pred_forecast", 10)).row(0, named=True)
    return {metric: float(values[metric]) for metric in ALERTED_METRICS}


@dg.asset(
    partitions_def=daily_partitions,
    group_name="monitoring",
    kinds={"polars"},
    deps=[demand_forecast],
    check_specs=[
        dg.AssetCheckSpec(
            ACCURACY_CHECK,
            asset="forecast_accuracy",
            partitions_def=daily_partitions,
            description="The day's live forecasts were not much worse than the model's own "
            "evaluation on the same hours, in RMSE and Poisson deviance "
            "(EvaluationSettings.forecast_tolerance).",
        )
    ],
)
def forecast_accuracy(
    context: dg.AssetExecutionContext,
    cell_demand: pl.DataFrame,
    artifacts: ArtifactStore,
    evaluation: EvaluationSettings,
) -> dg.MaterializeResult:
    """How far the day's 5-minute forecasts were from the street hails and vacant taxis that
    then appeared: the accuracy riders and drivers actually got, per hour, area and horizon."""
    day = partition_day(context)
    forecasts = artifacts.forecasts_for_day(day)
    if forecasts is None:
        raise dg.Failure(
            description=f"No forecast ticks stored for {day}: nothing to compare with",
            allow_retries=False,
        )
    scored = forecasts.join(
        cell_demand.select("cell", "bucket_start", "street_hail_pickups", "vacant_taxis"),
        on=["cell", "bucket_start"],
        how="inner",
    ).with_columns(
        actual=pl.col("street_hail_pickups").cast(pl.Float64),
        pred_forecast=pl.col("expected_street_hails"),
        hour=pl.col("bucket_start").dt.convert_time_zone(TOKYO_TZ_NAME).dt.hour(),
        day_type=pl.lit(day_type(day)),
    )
    overall = overall_metrics(scored, ["forecast"], evaluation.mape_min_pickups).row(0, named=True)
    # mae_h0, rmse_forecast_h2...: how the forecast fared 0, 15 and 30 minutes ahead.
    per_horizon = {
        key.replace("_forecast", ""): value
        for key, value in horizon_metadata(
            horizon_metrics(scored, ["forecast"], evaluation.mape_min_pickups)
        ).items()
        if not key.startswith("mape")
    }
    slices = slice_metrics(scored, ["forecast"], [], evaluation.mape_min_pickups)
    supply_mae = float((scored["expected_vacant_taxis"] - scored["vacant_taxis"]).abs().mean())

    per_version = []
    for (version,), rows in scored.partition_by("model_version", as_dict=True).items():
        report = artifacts.evaluation(version)
        reference = {} if report is None else expected_metrics(rows, report)
        per_version.append((version, rows.height, _metrics(rows), reference))
    tolerance = evaluation.forecast_tolerance
    degraded = [
        f"{version}: {metric} {measured[metric]:.4f} vs {reference[metric]:.4f} in its "
        f"evaluation (+{measured[metric] / reference[metric] - 1:.0%} > {tolerance:.0%})"
        for version, _, measured, reference in per_version
        for metric in ALERTED_METRICS
        if reference.get(metric) and measured[metric] > reference[metric] * (1 + tolerance)
    ]
    unjudged = [version for version, _, _, reference in per_version if not reference]
    judged = [(n, reference) for _, n, _, reference in per_version if reference]
    in_evaluation = {
        metric: sum(n * reference[metric] for n, reference in judged) / sum(n for n, _ in judged)
        for metric in ALERTED_METRICS
        if judged
    }
    metadata = {
        "ticks": scored["tick"].n_unique(),
        "rows": scored.height,
        "model_versions": ", ".join(v for v, *_ in per_version),
        **{
            m: float(overall[m])
            for m in ("mae", "rmse", "poisson_deviance")
            if overall[m] is not None
        },
        **per_horizon,
        "mae_vacant_taxis": supply_mae,
        "slices": dg.MetadataValue.md(slices_markdown(slices)),
    }
    for metric, reference in in_evaluation.items():
        metadata[f"{metric}_in_evaluation"] = reference
        metadata[f"{metric}_ratio_to_evaluation"] = float(overall[metric]) / reference
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name=ACCURACY_CHECK,
                passed=not degraded,
                metadata={
                    **{metric: float(overall[metric]) for metric in ALERTED_METRICS},
                    **{f"{m}_in_evaluation": value for m, value in in_evaluation.items()},
                    "tolerance": tolerance,
                },
                description="; ".join(degraded)
                or (
                    f"Within {tolerance:.0%} of the evaluation"
                    + (f" (no evaluation for {', '.join(unjudged)})" if unjudged else "")
                ),
            )
        ],
    )
