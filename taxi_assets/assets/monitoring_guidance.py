"""Monitoring: whether the day's cruising guidance helped the taxis that would follow it.

Apart from ``monitoring.py`` (the forecast's accuracy) because it judges the guidance, not
the forecast; both are in the ``monitoring`` group and ``monitoring_job``.
"""

import dagster as dg
import polars as pl

from taxi_assets.assets.serving import GuidanceConfig, demand_forecast
from taxi_assets.guidance_replay import replay_by_hour, replay_guidance, replay_summary
from taxi_assets.metadata import markdown_table
from taxi_assets.model.registry import ArtifactStore
from taxi_assets.partitions import daily_partitions, partition_day
from taxi_assets.settings import PipelineSettings

GUIDANCE_CHECK = "following_beats_staying"


@dg.asset(
    partitions_def=daily_partitions,
    group_name="monitoring",
    kinds={"polars"},
    deps=[demand_forecast],
    check_specs=[
        dg.AssetCheckSpec(
            GUIDANCE_CHECK,
            asset="guidance_accuracy",
            partitions_def=daily_partitions,
            description="A vacant taxi following the day's guidance found at least as many "
            "street hails per vacant taxi as one staying put (a warning: the day is over, but "
            "someone should look at the guidance).",
        )
    ],
)
def guidance_accuracy(
    context: dg.AssetExecutionContext,
    config: GuidanceConfig,
    cell_demand: pl.DataFrame,
    artifacts: ArtifactStore,
    settings: PipelineSettings,
) -> dg.MaterializeResult:
    """Whether the day's cruising guidance paid: the street hails a vacant taxi found
    following it, against staying put and against the best neighbour in hindsight, replayed
    on what then happened in every cell."""
    day = partition_day(context)
    forecasts = artifacts.forecasts_for_day(day)
    if forecasts is None:
        raise dg.Failure(
            description=f"No forecast ticks stored for {day}: no guidance to replay",
            allow_retries=False,
        )
    params = config.params(settings.bucket_minutes)
    replay = replay_guidance(forecasts, cell_demand, settings.service_area(), params)
    summary = replay_summary(replay)
    by_hour = replay_by_hour(replay)
    following = summary["hails_per_vacant_taxi_following"]
    staying = summary["hails_per_vacant_taxi_staying"]
    context.log.info(
        f"Guidance of {day} replayed over {int(summary['ticks'])} tick(s): {following:.3f} "
        f"hails per vacant taxi following it, {staying:.3f} staying"
    )
    return dg.MaterializeResult(
        metadata={
            **{name: float(value) for name, value in summary.items()},
            "ticks": int(summary["ticks"]),
            "competitor_prior": params.competitor_prior,
            "by_hour": dg.MetadataValue.md(markdown_table(by_hour, by_hour.height)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=GUIDANCE_CHECK,
                passed=following >= staying,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "hails_per_vacant_taxi_following": following,
                    "hails_per_vacant_taxi_staying": staying,
                    "following_to_staying_ratio": summary["following_to_staying_ratio"],
                },
                description=(
                    f"Following: {following:.3f} street hails per vacant taxi, staying: "
                    f"{staying:.3f} ({summary['following_to_staying_ratio']:.2f}x)"
                ),
            )
        ],
    )
