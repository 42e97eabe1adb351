"""Replaying a day's cruising guidance against what happened: did following it pay?

Works on any feed (no simulator): the stored forecast ticks of a day are put through the
guidance again (it is a pure function of the forecast and the tick), and the day's
``cell_demand`` says what each choice would have found. A vacant taxi in cell c at a tick
is compared three ways, in street hails per vacant taxi:

- *following*: the guidance's target, in the bucket the taxi would arrive in; a taxi
  arriving from elsewhere is one more vacant taxi there, ``hails / (vacant + 1)``;
- *staying*: its own cell in the tick's bucket, where it was already counted,
  ``hails / max(vacant, 1)``;
- *best neighbour in hindsight*: the best of its own cell and its 8 neighbours in the tick's
  bucket, knowing what happened (an upper bound no forecast reaches).

Every cell and tick is weighted by the vacant taxis actually in the cell in the tick's
bucket, so the figures are per vacant taxi, not per cell.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from taxi_assets.calendar import TOKYO_TZ_NAME
from taxi_assets.guidance import DEFAULT_GUIDANCE, GuidanceParams, best_targets
from taxi_assets.service_area import ServiceArea

REPLAY_COLUMNS = (
    "tick",
    "cell",
    "bucket_start",
    "target_cell",
    "arrival_bucket_start",
    "vacant_taxis",
    "following",
    "staying",
    "best_neighbour",
)


def realised_hails_per_vacant_taxi(cell_demand: pl.DataFrame) -> pl.DataFrame:
    """Per cell and bucket: the vacant taxis seen and the street hails per vacant taxi for
    one already there (``staying``) and for one more arriving (``arriving``)."""
    hails = pl.col("street_hail_pickups").cast(pl.Float64)
    vacant = pl.col("vacant_taxis").cast(pl.Float64)
    return cell_demand.select(
        pl.col("cell").cast(pl.Int64),
        "bucket_start",
        vacant_taxis=vacant,
        staying=hails / pl.max_horizontal(vacant, 1.0),
        arriving=hails / (vacant + 1.0),
    )


def best_neighbour_in_hindsight(realised: pl.DataFrame, area: ServiceArea) -> pl.DataFrame:
    """Per cell and bucket, the best realised hails per vacant taxi among the cell (staying)
    and its 8 neighbours (arriving)."""
    cells = area.cells()
    steps = pl.DataFrame({"d": [-1, 0, 1]})
    offsets = steps.select(d_row="d").join(steps.select(d_col="d"), how="cross")
    located = realised.join(cells, on="cell")
    return (
        cells.join(offsets, how="cross")
        .select(
            "cell",
            row=pl.col("row") + pl.col("d_row"),
            col=pl.col("col") + pl.col("d_col"),
            stays=(pl.col("d_row") == 0) & (pl.col("d_col") == 0),
        )
        .join(located.drop("cell"), on=["row", "col"])
        .group_by("cell", "bucket_start")
        .agg(
            best_neighbour=pl.when(pl.col("stays"))
            .then(pl.col("staying"))
            .otherwise(pl.col("arriving"))
            .max()
        )
    )


def arrival_buckets(
    targets: pl.DataFrame, tick: datetime, bucket_start: datetime, bucket_minutes: int
) -> pl.DataFrame:
    """``targets`` (cell, target_cell, target_arrival_minutes) stamped with the tick, its
    bucket and the start of the bucket a taxi following the target arrives in."""
    into_bucket_minutes = (tick - bucket_start).total_seconds() / 60.0
    start = pl.lit(bucket_start).dt.cast_time_unit("us").dt.convert_time_zone("UTC")
    return targets.select(
        tick=pl.lit(tick).dt.cast_time_unit("us").dt.convert_time_zone("UTC"),
        cell=pl.col("cell"),
        bucket_start=start,
        target_cell=pl.col("target_cell"),
        arrival_bucket_start=start
        + pl.duration(
            minutes=(
                (into_bucket_minutes + pl.col("target_arrival_minutes"))
                // bucket_minutes
                * bucket_minutes
            ).cast(pl.Int64)
        ),
    )


def replay_tick(
    forecast: pl.DataFrame,
    area: ServiceArea,
    tick: datetime,
    params: GuidanceParams,
) -> pl.DataFrame:
    """The guidance one tick gave: per cell its target and the start of the bucket a taxi
    following it arrives in."""
    bucket_start = forecast.filter(pl.col("horizon") == 0)["bucket_start"][0]
    targets = best_targets(forecast, area, tick, params)
    return arrival_buckets(targets, tick, bucket_start, params.bucket_minutes)


def score_guidance(
    given: pl.DataFrame, cell_demand: pl.DataFrame, area: ServiceArea
) -> pl.DataFrame:
    """REPLAY_COLUMNS for guidance ``given`` as :func:`arrival_buckets` stamps it, judged on
    ``cell_demand``; cells without vacant taxis in the tick's bucket drop out."""
    realised = realised_hails_per_vacant_taxi(cell_demand)
    return (
        given.join(
            realised.select("cell", "bucket_start", "vacant_taxis", "staying"),
            on=["cell", "bucket_start"],
        )
        .filter(pl.col("vacant_taxis") > 0)
        .join(
            realised.select(
                target_cell="cell",
                arrival_bucket_start="bucket_start",
                arrived_staying="staying",
                arrived_arriving="arriving",
            ),
            on=["target_cell", "arrival_bucket_start"],
            how="left",
        )
        .join(best_neighbour_in_hindsight(realised, area), on=["cell", "bucket_start"], how="left")
        .with_columns(
            # An arrival bucket past the end of the day's data is unknown: judged as staying.
            following=pl.when(pl.col("target_cell") == pl.col("cell"))
            .then(pl.col("arrived_staying"))
            .otherwise(pl.col("arrived_arriving"))
            .fill_null(pl.col("staying"))
        )
        .select(REPLAY_COLUMNS)
        .sort("tick", "cell")
    )


def replay_guidance(
    forecasts: pl.DataFrame,
    cell_demand: pl.DataFrame,
    area: ServiceArea,
    params: GuidanceParams = DEFAULT_GUIDANCE,
) -> pl.DataFrame:
    """REPLAY_COLUMNS per tick of ``forecasts`` (ticks stacked, each with its ``tick``) and
    cell with vacant taxis in the tick's bucket."""
    if "horizon" not in forecasts.columns:
        forecasts = forecasts.with_columns(horizon=pl.lit(0, pl.Int8))
    given = pl.concat(
        [
            replay_tick(rows, area, rows["tick"][0], params)
            for _, rows in sorted(forecasts.partition_by("tick", as_dict=True).items())
        ]
    )
    return score_guidance(given, cell_demand, area)


def replay_summary(replay: pl.DataFrame) -> dict[str, float]:
    """Street hails per vacant taxi following the guidance, staying and moving to the best
    neighbour in hindsight, weighted by vacant taxis; and their ratios."""
    weight = pl.col("vacant_taxis")
    totals = replay.select(
        vacant_taxis=weight.sum(),
        following=(pl.col("following") * weight).sum() / weight.sum(),
        staying=(pl.col("staying") * weight).sum() / weight.sum(),
        best_neighbour=(pl.col("best_neighbour") * weight).sum() / weight.sum(),
        sent_elsewhere_share=((pl.col("target_cell") != pl.col("cell")) * weight).sum()
        / weight.sum(),
    ).row(0, named=True)
    summary = {
        "ticks": float(replay["tick"].n_unique()),
        "vacant_taxis": float(totals["vacant_taxis"] or 0.0),
        "hails_per_vacant_taxi_following": float(totals["following"] or 0.0),
        "hails_per_vacant_taxi_staying": float(totals["staying"] or 0.0),
        "hails_per_vacant_taxi_best_neighbour": float(totals["best_neighbour"] or 0.0),
        "share_of_vacant_taxis_sent_elsewhere": float(totals["sent_elsewhere_share"] or 0.0),
    }
    staying = summary["hails_per_vacant_taxi_staying"]
    best = summary["hails_per_vacant_taxi_best_neighbour"]
    following = summary["hails_per_vacant_taxi_following"]
    summary["following_to_staying_ratio"] = following / staying if staying > 0 else 1.0
    # Share of the hindsight gain over staying that following the guidance captured.
    summary["hindsight_gain_captured"] = (
        (following - staying) / (best - staying) if best > staying else 0.0
    )
    return summary


def replay_by_hour(replay: pl.DataFrame) -> pl.DataFrame:
    """The same weighted figures per Tokyo hour of the tick."""
    weight = pl.col("vacant_taxis")
    return (
        replay.group_by(hour=pl.col("tick").dt.convert_time_zone(TOKYO_TZ_NAME).dt.hour())
        .agg(
            ticks=pl.col("tick").n_unique(),
            vacant_taxis=weight.sum(),
            following=(pl.col("following") * weight).sum() / weight.sum(),
            staying=(pl.col("staying") * weight).sum() / weight.sum(),
            best_neighbour=(pl.col("best_neighbour") * weight).sum() / weight.sum(),
        )
        .sort("hour")
    )
