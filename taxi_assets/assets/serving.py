"""Serving: the 5-minute forecast from the production model, and where vacant taxis should go.

Neither asset is partitioned (a partition per 5 minutes would be 105k a year): each tick
is stored under its own timestamp by the artifact store, and the IO manager keeps each
run's forecast apart (``STORED_PER_RUN``), so the guidance and the skew of a tick read that
tick's own forecast even when two ticks overlap; it also keeps the latest for the UI.
"""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
from pydantic import Field

from taxi_assets.assets.demand import cell_demand
from taxi_assets.assets.ingestion import read_from_source
from taxi_assets.assets.model import production_model
from taxi_assets.guidance import (
    DEFAULT_ROAD_SPEED_KMH,
    GuidanceParams,
    arrival_segments,
    forecast_horizons,
    horizon_for_arrival,
)
from taxi_assets.guidance import cruising_guidance as plan_guidance
from taxi_assets.metadata import markdown_table, preview
from taxi_assets.model.registry import ArtifactStore
from taxi_assets.pictures import forecast_picture
from taxi_assets.serving import (
    FORECAST_HORIZONS,
    days_touched,
    forecast_from_features,
    history_days,
    live_cell_demand,
    live_look_back,
    live_read_window,
    live_window,
    tick_features,
)
from taxi_assets.settings import PipelineSettings, ValidationSettings
from taxi_assets.sources.base import ProbeSource
from taxi_assets.storage import STORED_PER_RUN, StoredPartitions
from taxi_assets.validation.skew import feature_skew, same_slot_reference
from taxi_assets.weather import weather_for_day


class ForecastConfig(dg.Config):
    """Which instant the forecast is made at. The schedule passes its tick; by hand, now."""

    tick: str | None = Field(
        default=None,
        description="ISO 8601 instant with a time zone, e.g. 2026-05-03T18:00:00+09:00 "
        "(default: now)",
    )

    def tick_time(self) -> datetime:
        if self.tick is None:
            return datetime.now(UTC)
        try:
            tick = datetime.fromisoformat(self.tick)
        except ValueError:
            raise dg.Failure(
                description=f"tick={self.tick!r} is not an ISO 8601 instant", allow_retries=False
            ) from None
        if tick.tzinfo is None:
            raise dg.Failure(
                description=f"tick={self.tick!r} has no time zone (UTC or Tokyo?): add one",
                allow_retries=False,
            )
        return tick


@dg.asset(
    group_name="serving",
    kinds={"catboost", "polars"},
    deps=[production_model, cell_demand],
    metadata={STORED_PER_RUN: True},
)
def demand_forecast(
    context: dg.AssetExecutionContext,
    config: ForecastConfig,
    probe_source: ProbeSource,
    artifacts: ArtifactStore,
    stored: StoredPartitions,
    settings: PipelineSettings,
) -> dg.Output[pl.DataFrame]:
    """Expected street hails and vacant taxis in every cell for the bucket in progress and
    the next two (up to 45 minutes ahead), and the street hails one more vacant taxi
    arriving could expect to capture, made from the live probes every 5 minutes by the
    production model: what the cruising guidance and the dispatch screens read."""
    started = time.monotonic()
    tick = config.tick_time()
    pointer = artifacts.production_pointer()
    if pointer is None:
        raise dg.Failure(
            description="No production model yet: materialize production_model first",
            allow_retries=False,
        )
    model = artifacts.load_model(pointer["model_version"])
    area = settings.service_area()
    window_start, target = live_window(tick, settings.bucket_minutes)
    rules = settings.cleaning_rules()
    # Only the window and the look-back the per-vehicle rules need, not the day so far.
    read_start, read_end = live_read_window(tick, settings.bucket_minutes)
    look_back = live_look_back(rules)
    raw = {
        day: read_from_source(
            lambda d=day: probe_source.read_probes_window(d, read_start, read_end, look_back)
        ).probes
        for day in days_touched(read_start, read_end)
    }
    live = live_cell_demand(raw, tick, area, rules, settings.bucket_minutes)
    history = [stored.read("cell_demand", day.isoformat()) for day in history_days(tick)]
    found = [frame for frame in history if frame is not None]
    if len(found) < len(history):
        context.log.warning(
            f"{len(history) - len(found)} of the {len(history)} previous days of cell_demand "
            "are not stored: their features are missing (null) in this forecast"
        )
    weather = pl.concat(
        [
            read_from_source(
                lambda d=day: weather_for_day(probe_source, settings.weather_source, d)
            )
            for day in days_touched(window_start - timedelta(hours=1), tick)
        ]
    )
    features = tick_features(
        live, pl.concat(found) if found else None, weather, area, tick, settings.bucket_minutes
    )
    forecast = forecast_from_features(model, pointer["model_version"], features, tick)
    path = artifacts.save_forecast(tick, forecast)
    artifacts.save_forecast_features(tick, features)
    seconds = time.monotonic() - started
    context.log.info(
        f"Forecast for {target:%Y-%m-%d %H:%M} UTC by {pointer['model_version']} in {seconds:.2f}s"
    )
    now = forecast.filter(pl.col("horizon") == 0)
    busiest = now.sort("expected_street_hails", descending=True).head(10)
    # The opportunity stored with the forecast uses the default prior; the guidance asset
    # recomputes it from hails and vacant taxis with its own configuration.
    return dg.Output(
        forecast,
        metadata={
            "tick": dg.MetadataValue.timestamp(tick),
            "target_bucket_start": dg.MetadataValue.timestamp(target),
            "model_version": pointer["model_version"],
            "model_content_hash": pointer["content_hash"],
            "cells": forecast["cell"].n_unique(),
            "rows": forecast.height,
            # The bucket in progress; each horizon also has its own total.
            "expected_street_hails": float(now["expected_street_hails"].sum()),
            **{
                f"expected_street_hails_h{horizon}": float(rows["expected_street_hails"].sum())
                for (horizon,), rows in sorted(
                    forecast.partition_by("horizon", as_dict=True).items()
                )
            },
            "expected_vacant_taxis": float(now["expected_vacant_taxis"].sum()),
            "mean_opportunity": float(now["opportunity"].mean() or 0.0),
            "forecast_horizons": ", ".join(str(h) for h in FORECAST_HORIZONS),
            "live_buckets": live["bucket_start"].n_unique(),
            "pings_read": sum(frame.height for frame in raw.values()),
            "read_start": dg.MetadataValue.timestamp(read_start),
            "history_days_found": len(found),
            "seconds": round(seconds, 3),
            "tick_path": dg.MetadataValue.path(str(path)),
            "busiest_cells": preview(busiest, 10),
        },
    )


class GuidanceConfig(dg.Config):
    """How the guidance values competition, time and distance (``GuidanceParams``)."""

    competitor_prior: float = Field(
        default=GuidanceParams.competitor_prior,
        ge=0,
        description="Pseudo-count of vacant taxis competing in every cell beyond the forecast's.",
    )
    horizon_minutes: int = Field(
        default=GuidanceParams.horizon_minutes, ge=1, description="How far ahead a route plans."
    )
    step_minutes: int = Field(
        default=GuidanceParams.step_minutes,
        ge=1,
        description="A route decides where to cruise every this many minutes.",
    )
    step_radius_cells: int = Field(
        default=GuidanceParams.step_radius_cells, ge=1, description="Cells one route step moves."
    )
    target_radius_cells: int = Field(
        default=GuidanceParams.target_radius_cells,
        ge=1,
        description="Cells each way the best target and the allocation look.",
    )
    road_speed_kmh: list[float] = Field(
        default=list(DEFAULT_ROAD_SPEED_KMH),
        description="Road speed of a cruising taxi per Tokyo hour 0..23 (24 values).",
    )
    detour_factor: float = Field(
        default=GuidanceParams.detour_factor,
        ge=1,
        description="Road distance over straight-line distance between cell centres.",
    )
    vacant_presence: float = Field(
        default=GuidanceParams.vacant_presence,
        gt=0,
        le=1,
        description="Share of a bucket a vacant taxi seen in a cell is there: the forecast's "
        "vacant taxis times this compete at once. The default is the simulator's; set your "
        "feed's, cell_demand's metadata vacant_presence (demand.vacant_presence).",
    )
    hail_reach_km: float = Field(
        default=GuidanceParams.hail_reach_km,
        ge=0,
        le=5,
        description="Road distance within which a cell's hails are shared (0: per cell).",
    )
    move_margin: float = Field(
        default=GuidanceParams.move_margin,
        ge=0,
        description="Share by which a move must beat staying to be taken.",
    )

    def params(self, bucket_minutes: int) -> GuidanceParams:
        try:
            return GuidanceParams(
                competitor_prior=self.competitor_prior,
                horizon_minutes=self.horizon_minutes,
                step_minutes=self.step_minutes,
                step_radius_cells=self.step_radius_cells,
                target_radius_cells=self.target_radius_cells,
                road_speed_kmh=tuple(self.road_speed_kmh),
                detour_factor=self.detour_factor,
                bucket_minutes=bucket_minutes,
                vacant_presence=self.vacant_presence,
                hail_reach_km=self.hail_reach_km,
                move_margin=self.move_margin,
            )
        except ValueError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None


# The evaluation's "busiest cells" slice has the same size.
BUSIEST_CELLS = 50


@dg.asset(group_name="serving", kinds={"polars"})
def cruising_guidance(
    context: dg.AssetExecutionContext,
    config: GuidanceConfig,
    demand_forecast: pl.DataFrame,
    settings: PipelineSettings,
) -> Iterator:
    """For every cell, where a vacant taxi there should head next: the single best target
    and a 20-minute route, ranked by the street hails one more arriving taxi can expect to
    capture there in the bucket it would arrive, and how the cell's vacant taxis are split
    across targets so they do not all chase the same hails."""
    params = config.params(settings.bucket_minutes)
    tick = demand_forecast["tick"][0]
    if "horizon" not in demand_forecast.columns:
        # A tick stored before forecasts carried their horizon: the bucket in progress.
        demand_forecast = demand_forecast.with_columns(horizon=pl.lit(0, pl.Int8))
    guidance = plan_guidance(demand_forecast, settings.service_area(), tick, params)
    moves = guidance.filter(pl.col("target_cell") != pl.col("cell"))
    busiest = demand_forecast.filter(pl.col("horizon") == forecast_horizons(demand_forecast)[0])
    busiest = busiest.sort(["expected_street_hails", "cell"], descending=[True, False]).head(
        BUSIEST_CELLS
    )["cell"]
    allocation = (
        guidance.select("cell", "allocation")
        .explode("allocation")
        .drop_nulls("allocation")
        .unnest("allocation")
    )
    kept = allocation.filter(pl.col("target_cell") == pl.col("cell"))
    horizons = forecast_horizons(demand_forecast)
    stand_ins = {
        bucket: horizon_for_arrival(demand_forecast, bucket)
        for bucket, _, _ in arrival_segments(tick, params)
    }
    context.log.info(
        f"Guidance for the tick {tick}: arrival buckets {sorted(stand_ins)} read forecast "
        f"horizons {[stand_ins[b] for b in sorted(stand_ins)]} (stored: {horizons})"
    )
    yield dg.Output(
        guidance,
        metadata={
            "tick": dg.MetadataValue.timestamp(tick),
            "cells": guidance.height,
            "cells_sent_elsewhere": moves.height,
            "cells_told_to_stay": guidance.height - moves.height,
            f"busiest_{BUSIEST_CELLS}_cells_sent_elsewhere": moves.filter(
                pl.col("cell").is_in(busiest.implode())
            ).height,
            "mean_target_expected_hails": float(guidance["target_expected_hails"].mean() or 0.0),
            "mean_stay_expected_hails": float(guidance["stay_expected_hails"].mean() or 0.0),
            "mean_route_expected_hails": float(guidance["route_expected_hails"].mean() or 0.0),
            "taxis_allocated": int(allocation["taxis"].sum()),
            "taxis_told_to_stay": int(kept["taxis"].sum()),
            "forecast_horizons": ", ".join(str(h) for h in horizons),
            "arrival_buckets": len(stand_ins),
            "arrival_buckets_on_a_shorter_horizon": sum(
                1 for bucket, horizon in stand_ins.items() if horizon != bucket
            ),
            "horizon_note": (
                f"Forecast horizons stored: {horizons}. "
                + "; ".join(
                    f"arrival bucket {bucket} uses horizon {horizon}"
                    for bucket, horizon in sorted(stand_ins.items())
                )
            ),
            "competitor_prior": params.competitor_prior,
            "road_speed_kmh": params.speed_kmh(tick),
            "top_destinations": preview(
                guidance.sort("target_expected_hails", descending=True).select(
                    "cell",
                    "target_cell",
                    "target_expected_hails",
                    "stay_expected_hails",
                    pl.col("route").cast(pl.List(pl.String)).list.join(" > "),
                    "vacant_taxis",
                ),
                10,
            ),
            "forecast_map": forecast_picture(demand_forecast, settings.service_area(), guidance),
        },
    )


SKEW_CHECK = "no_training_serving_skew"


@dg.asset(
    group_name="serving",
    kinds={"polars"},
    deps=[dg.AssetDep("training_features", partition_mapping=dg.AllPartitionMapping())],
    check_specs=[
        dg.AssetCheckSpec(
            SKEW_CHECK,
            asset="serving_skew",
            description="The tick's features are distributed like the production model's "
            "training features at the same time of day (a warning: the forecast is already "
            "out, but someone should look).",
        )
    ],
)
def serving_skew(
    context: dg.AssetExecutionContext,
    demand_forecast: pl.DataFrame,
    artifacts: ArtifactStore,
    stored: StoredPartitions,
    validation: ValidationSettings,
) -> dg.MaterializeResult:
    """Whether the live forecast's inputs look like what its model learned from: the same
    feature code can still be fed differently live than in training, and a model fed
    inputs it never saw forecasts nonsense without failing."""
    tick = demand_forecast["tick"][0]
    version = demand_forecast["model_version"][0]
    serving = artifacts.forecast_features(tick)
    if serving is None:
        raise dg.Failure(
            description=f"No features stored for the tick {tick}: re-run demand_forecast",
            allow_retries=False,
        )
    partitions = artifacts.manifest(version)["partitions_used"]
    scans = [
        scan for day in partitions if (scan := stored.scan("training_features", day)) is not None
    ]
    if not scans:
        raise dg.Failure(
            description=f"None of {version}'s training days ({partitions[0]}..{partitions[-1]}) "
            "has stored training_features to compare with",
            allow_retries=False,
        )
    reference = same_slot_reference(pl.concat(scans), serving)
    skew = feature_skew(serving, reference, validation.skew_js_threshold)
    crossed = skew.filter(pl.col("crossed"))
    context.log.info(
        f"Skew of tick {tick} against {reference.height:,} training rows of {version}: "
        f"{crossed.height} feature(s) above {validation.skew_js_threshold}"
    )
    distances = {
        f"js_{name}": float(distance)
        for name, distance in skew.select("feature", "distance").iter_rows()
    }
    return dg.MaterializeResult(
        metadata={
            "tick": dg.MetadataValue.timestamp(tick),
            "model_version": version,
            "serving_rows": serving.height,
            "training_rows_compared": reference.height,
            "features_skewed": crossed.height,
            **distances,
            "skew_report": dg.MetadataValue.md(markdown_table(skew, skew.height)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=SKEW_CHECK,
                passed=crossed.height == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"features_skewed": crossed.height, **distances},
                description=(
                    "; ".join(
                        f"{name}: {metric} {distance:.3f} > {threshold}"
                        for name, metric, distance, threshold in crossed.select(
                            "feature", "metric", "distance", "threshold"
                        ).iter_rows()
                    )
                    or f"No feature above JS {validation.skew_js_threshold}"
                ),
            )
        ],
    )
