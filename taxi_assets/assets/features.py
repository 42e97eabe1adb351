"""Features: what the model learns from, one Tokyo day of target buckets per partition."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from taxi_assets.checks import contract_check_result, contract_check_spec
from taxi_assets.contracts import TrainingFeatures
from taxi_assets.features import FEATURES, HORIZONS, TARGET, build_features, with_horizons
from taxi_assets.metadata import preview
from taxi_assets.partitions import daily_partitions, partition_day
from taxi_assets.settings import PipelineSettings
from taxi_assets.weather import weather_was_used

# The target day and the week before it: lags reach back to the same bucket last week. The
# first days we have lack part of that week; their lags are null, not zero.
TARGET_DAY_AND_WEEK_BEFORE = dg.TimeWindowPartitionMapping(
    start_offset=-7, end_offset=0, allow_nonexistent_upstream_partitions=True
)
TARGET_DAY_AND_DAY_BEFORE = dg.TimeWindowPartitionMapping(
    start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True
)


def _stacked(loaded: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
    return pl.concat(list(loaded.values()))


@dg.asset(
    partitions_def=daily_partitions,
    group_name="features",
    kinds={"polars", "parquet"},
    ins={
        "cell_demand": dg.AssetIn(
            partition_mapping=TARGET_DAY_AND_WEEK_BEFORE,
            metadata={"allow_missing_partitions": True},
        ),
        "weather": dg.AssetIn(
            partition_mapping=TARGET_DAY_AND_DAY_BEFORE,
            metadata={"allow_missing_partitions": True},
        ),
    },
    check_specs=[contract_check_spec("training_features", TrainingFeatures)],
)
def training_features(
    context: dg.AssetExecutionContext,
    cell_demand: dict[str, pl.LazyFrame],
    weather: dict[str, pl.LazyFrame],
    settings: PipelineSettings,
) -> Iterator:
    """For every cell and 15-minute bucket of the day, and each horizon the forecast covers
    (issued in the bucket itself or one or two buckets before), what was known then
    (recent street hails and vacant taxis, the same time yesterday and last week, the
    calendar, the rain) next to what then happened: the examples the model learns from,
    built by the very function the live forecast uses."""
    day = partition_day(context)
    if day.isoformat() not in cell_demand:
        raise dg.Failure(
            description=f"cell_demand has no stored partition for {day}: materialize it first",
            allow_retries=False,
        )
    history = _stacked(cell_demand)
    # Every target bucket at every horizon: the model learns (and is judged) at each.
    targets = with_horizons(cell_demand[day.isoformat()], HORIZONS)
    # A feed without weather stores empty weather days (or none at all): rain is missing.
    rain = _stacked(weather) if weather else None
    features = build_features(history, rain, targets, settings.bucket_minutes)
    used_weather = weather_was_used(features)
    if not used_weather:
        context.log.info(f"{day}: no rain data (weather_source={settings.weather_source})")
    history_days = sorted(key for key in cell_demand if key != day.isoformat())
    null_share = features.select(pl.col(FEATURES[1:]).null_count() / max(features.height, 1))
    context.log.info(
        f"{day}: {features.height:,} feature rows from {len(history_days)} earlier day(s)"
    )
    yield dg.Output(
        features,
        metadata={
            "rows": features.height,
            "features": len(FEATURES),
            "history_days": len(history_days),
            "weather_used": used_weather,
            "weather_source": settings.weather_source,
            "horizons": len(HORIZONS),
            "target_street_hails": int(features.filter(pl.col("horizon") == 0)[TARGET].sum()),
            "rows_with_full_history": int(features["hails_last_week"].is_not_null().sum()),
            **{
                f"null_share_{name}": float(share)
                for name, share in null_share.row(0, named=True).items()
                if share
            },
            "preview": preview(features),
        },
    )
    yield contract_check_result(TrainingFeatures, features, "training_features")
