"""Monitoring: how the live forecasts of a day did against what then happened."""

import dagster as dg
import polars as pl

from taxi_assets.assets.serving import demand_forecast
from taxi_assets.calendar import TOKYO_TZ_NAME, day_type
from taxi_assets.evaluation import overall_metrics, slice_metrics, slices_markdown
from taxi_assets.partitions import daily_partitions, partition_day
from taxi_assets.registry import ArtifactStore
from taxi_assets.settings import EvaluationSettings

ACCURACY_CHECK = "accuracy_vs_evaluation"


def expected_mae(scored: pl.DataFrame, report: dict) -> float | None:
    """The MAE the model's own evaluation measured on the hours these forecasts cover,
    weighted by how many forecast rows fall in each hour (a night tick and a rush-hour tick
    are not held to the same number)."""
    by_hour = {
        int(row["slice"]): row["mae"]
        for row in report["slices"]
        if row["slice_kind"] == "hour" and row["predictor"] == "model"
    }
    weights = scored.group_by("hour").len()
    covered = [(by_hour[int(h)], n) for h, n in weights.iter_rows() if int(h) in by_hour]
    if not covered:
        return None
    return sum(mae * n for mae, n in covered) / sum(n for _, n in covered)


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
            "evaluation on the same hours (EvaluationSettings.forecast_mae_tolerance).",
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
    then appeared: the accuracy riders and drivers actually got, per hour and area."""
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
    slices = slice_metrics(scored, ["forecast"], [], evaluation.mape_min_pickups)
    supply_mae = float((scored["expected_vacant_taxis"] - scored["vacant_taxis"]).abs().mean())

    per_version = []
    for (version,), rows in scored.partition_by("model_version", as_dict=True).items():
        report = artifacts.evaluation(version)
        reference = None if report is None else expected_mae(rows, report)
        mae = float((rows["pred_forecast"] - rows["actual"]).abs().mean())
        per_version.append((version, rows.height, mae, reference))
    tolerance = evaluation.forecast_mae_tolerance
    degraded = [
        f"{version}: MAE {mae:.4f} vs {reference:.4f} in its evaluation "
        f"(+{mae / reference - 1:.0%} > {tolerance:.0%})"
        for version, _, mae, reference in per_version
        if reference and mae > reference * (1 + tolerance)
    ]
    unjudged = [version for version, _, _, reference in per_version if reference is None]
    references = [(n, ref) for _, n, _, ref in per_version if ref is not None]
    weighted_reference = (
        sum(n * ref for n, ref in references) / sum(n for n, _ in references)
        if references
        else None
    )
    metadata = {
        "ticks": scored["tick"].n_unique(),
        "rows": scored.height,
        "model_versions": ", ".join(v for v, *_ in per_version),
        **{
            m: float(overall[m])
            for m in ("mae", "rmse", "poisson_deviance")
            if overall[m] is not None
        },
        "mae_vacant_taxis": supply_mae,
        "slices": dg.MetadataValue.md(slices_markdown(slices)),
    }
    if weighted_reference:
        metadata["mae_in_evaluation"] = weighted_reference
        metadata["mae_ratio_to_evaluation"] = float(overall["mae"]) / weighted_reference
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name=ACCURACY_CHECK,
                passed=not degraded,
                metadata={
                    "mae": float(overall["mae"]),
                    **({"mae_in_evaluation": weighted_reference} if weighted_reference else {}),
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
