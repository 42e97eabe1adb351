"""Replay one forecast tick's cruising guidance against what then happened (issue 12).

On the default simulated city (fleet 1000, seed 42) at the 18:00 tick of ``make run``'s last
day: a small model (few trees) is trained with the pure functions on the three days before,
the tick is forecast as ``demand_forecast`` does (live buckets of the day, stored days before
it), and two guidance rules are compared on the same forecast:

- *before*: the former rule, the neighbour (radius 1, or staying) of highest expected hails
  minus expected vacant taxis;
- *after*: ``taxi_assets.guidance.cruising_guidance`` (hails one more taxi can capture,
  travel time, routes, allocation).

Printed: how many of the 62 busiest cells (by forecast hails) send their taxis elsewhere,
how many to cells expecting under 0.1 hails, and the realised street hails per vacant taxi
of a taxi following each rule's target (in the bucket it would arrive in) vs staying put vs
the best neighbour in hindsight, weighted by the vacant taxis actually in each cell in the
tick's bucket. Realised hails per vacant taxi are ``street_hail_pickups / vacant_taxis``
of the day's ``cell_demand``; a taxi arriving from elsewhere is one more vacant taxi there
(``/ (vacant_taxis + 1)``), one staying is already counted (``/ max(vacant_taxis, 1)``).

    python bench/replay_guidance_tick.py [--tick 2026-05-03T18:00:00+09:00 --fleet 1000]

Simulated days are cached as in bench_model.py (``bench/results/model_cache``).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import AREA, BUCKET_MINUTES, RESULTS_DIR, DayCache, day_features  # noqa: E402

from taxi_assets.guidance import GuidanceParams, cruising_guidance  # noqa: E402
from taxi_assets.serving import forecast_tick, history_days, target_bucket  # noqa: E402
from taxi_assets.training import TrainingParams, train_model  # noqa: E402

BUSIEST = 62
QUIET_HAILS = 0.1


def former_guidance(forecast: pl.DataFrame) -> pl.DataFrame:
    """The rule this issue replaced: best of the cell and its 8 neighbours by hails minus
    vacant taxis (ties to staying, then the smaller code)."""
    cells = AREA.cells()
    scored = cells.join(
        forecast.select("cell", "expected_street_hails", "expected_vacant_taxis"),
        on="cell",
        how="left",
    ).with_columns(pl.col("expected_street_hails", "expected_vacant_taxis").fill_null(0.0))
    steps = pl.DataFrame({"d": [-1, 0, 1]})
    offsets = steps.select(d_row="d").join(steps.select(d_col="d"), how="cross")
    return (
        cells.join(offsets, how="cross")
        .with_columns(row=pl.col("row") + pl.col("d_row"), col=pl.col("col") + pl.col("d_col"))
        .rename({"cell": "origin"})
        .join(scored, on=["row", "col"])
        .with_columns(
            value=pl.col("expected_street_hails") - pl.col("expected_vacant_taxis"),
            distance=pl.max_horizontal(pl.col("d_row").abs(), pl.col("d_col").abs()),
        )
        .sort(["origin", "value", "distance", "cell"], descending=[False, True, False, False])
        .unique("origin", keep="first", maintain_order=True)
        .select(cell="origin", target_cell="cell")
    )


def realised(day_demand: pl.DataFrame) -> pl.DataFrame:
    return day_demand.select(
        "cell",
        "bucket_start",
        "vacant_taxis",
        staying=pl.col("street_hail_pickups") / pl.max_horizontal(pl.col("vacant_taxis"), 1),
        arriving=pl.col("street_hail_pickups") / (pl.col("vacant_taxis") + 1),
    )


def follow(
    moves: pl.DataFrame, actual: pl.DataFrame, tick: datetime, params: GuidanceParams
) -> pl.DataFrame:
    """Realised hails per vacant taxi for each (cell, target_cell[, taxis]) row, in the bucket
    the taxi arrives in (travel at the hour's road speed)."""
    start = target_bucket(tick, BUCKET_MINUTES)
    cells = AREA.cells()
    speed = params.speed_kmh(tick)
    centres = cells.select("cell", "row", "col")
    # Half-mesh cells: 463 m north-south, 565 m east-west at this latitude.
    with_travel = (
        moves.join(centres, on="cell")
        .join(
            centres.rename({"cell": "target_cell", "row": "t_row", "col": "t_col"}),
            on="target_cell",
        )
        .with_columns(
            minutes=params.detour_factor
            * (
                ((pl.col("t_row") - pl.col("row")) * 0.4638) ** 2
                + ((pl.col("t_col") - pl.col("col")) * 0.5649) ** 2
            ).sqrt()
            / speed
            * 60
        )
        .with_columns(
            bucket_start=pl.lit(start).dt.cast_time_unit("us").dt.convert_time_zone("UTC")
            + pl.duration(
                minutes=(pl.col("minutes") // BUCKET_MINUTES * BUCKET_MINUTES).cast(pl.Int64)
            )
        )
    )
    return with_travel.join(
        actual.select(
            target_cell="cell", bucket_start="bucket_start", staying="staying", arriving="arriving"
        ),
        on=["target_cell", "bucket_start"],
        how="left",
    ).with_columns(
        hails_per_taxi=pl.when(pl.col("target_cell") == pl.col("cell"))
        .then("staying")
        .otherwise("arriving")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tick",
        type=datetime.fromisoformat,
        default=datetime.fromisoformat("2026-05-03T18:00:00+09:00"),
    )
    parser.add_argument("--fleet", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--competitor-prior", type=float, default=GuidanceParams.competitor_prior)
    args = parser.parse_args()
    started = time.perf_counter()
    tick: datetime = args.tick
    day = tick.date()
    cache = DayCache.at(RESULTS_DIR / "model_cache", args.fleet, args.seed)
    window = [day - timedelta(days=d) for d in range(10, -1, -1)]
    demand = {d: cache.cell_demand(d) for d in window}
    weather = {d: cache.weather(d) for d in window}
    training_days = window[-4:-1]
    rows = pl.concat([day_features(d, demand, weather) for d in training_days])
    model = train_model(rows, TrainingParams(iterations=args.iterations, supply_iterations=20))
    target = target_bucket(tick, BUCKET_MINUTES)
    live = demand[day].filter(pl.col("bucket_start") < target)
    stored = pl.concat([demand[d] for d in history_days(tick)])
    rain = pl.concat([weather[day - timedelta(days=1)], weather[day]])
    forecast = forecast_tick(model, "bench", live, stored, rain, AREA, tick, BUCKET_MINUTES)
    params = GuidanceParams(competitor_prior=args.competitor_prior)

    actual = realised(demand[day])
    now = actual.filter(pl.col("bucket_start") == target).select("cell", "vacant_taxis", "staying")
    busiest = forecast.sort(["expected_street_hails", "cell"], descending=[True, False]).head(
        BUSIEST
    )["cell"]
    hails = forecast.select("cell", target_hails="expected_street_hails")

    before = follow(former_guidance(forecast), actual, tick, params)
    after_frame = cruising_guidance(forecast, AREA, tick, params)
    after = follow(after_frame.select("cell", "target_cell"), actual, tick, params)
    allocated = follow(
        after_frame.select("cell", "allocation")
        .explode("allocation")
        .drop_nulls("allocation")
        .unnest("allocation")
        .select("cell", "target_cell", "taxis"),
        actual,
        tick,
        params,
    )
    # Best neighbour in hindsight (radius 1, staying included) in the tick's bucket.
    steps = pl.DataFrame({"d": [-1, 0, 1]})
    offsets = steps.select(d_row="d").join(steps.select(d_col="d"), how="cross")
    cells = AREA.cells()
    ratios = now.join(cells, on="cell").select("row", "col", best="staying")
    hindsight = (
        cells.join(offsets, how="cross")
        .with_columns(row=pl.col("row") + pl.col("d_row"), col=pl.col("col") + pl.col("d_col"))
        .join(ratios, on=["row", "col"])
        .group_by("cell")
        .agg(pl.col("best").max())
    )

    def weighted(
        frame: pl.DataFrame, column: str, only: pl.Series | None, weight: str = "vacant_taxis"
    ) -> float:
        rows_ = (
            frame.join(now.select("cell", "vacant_taxis"), on="cell", how="left")
            if weight == "vacant_taxis" and "vacant_taxis" not in frame.columns
            else frame
        )
        if only is not None:
            rows_ = rows_.filter(pl.col("cell").is_in(only.implode()))
        w = rows_[weight].cast(pl.Float64).fill_null(0.0)
        return float((rows_[column].fill_null(0.0) * w).sum() / w.sum())

    print(
        f"tick {tick.isoformat()}  fleet {args.fleet}  seed {args.seed}  "
        f"model {args.iterations} trees  competitor_prior {params.competitor_prior}"
    )
    now_hails = demand[day].filter(pl.col("bucket_start") == target)["street_hail_pickups"].sum()
    print(
        f"forecast: {forecast['expected_street_hails'].sum():.1f} hails expected in the bucket, "
        f"{now_hails} happened"
    )
    for name, frame in (
        ("before (hails - vacant)", before),
        ("after (hails one more taxi captures)", after),
    ):
        top = frame.filter(pl.col("cell").is_in(busiest.implode()))
        moved = top.filter(pl.col("target_cell") != pl.col("cell"))
        quiet = moved.join(hails, left_on="target_cell", right_on="cell").filter(
            pl.col("target_hails") < QUIET_HAILS
        )
        print(f"\n{name}:")
        print(
            f"  busiest {BUSIEST} cells sending their taxis elsewhere: {moved.height} "
            f"({quiet.height} to cells expecting < {QUIET_HAILS} hails)"
        )
        print(
            f"  all cells sending their taxis elsewhere: "
            f"{frame.filter(pl.col('target_cell') != pl.col('cell')).height} of {frame.height}"
        )
        for scope, only in (("busiest 62", busiest), ("all cells", None)):
            follow_ = weighted(frame, "hails_per_taxi", only)
            stay = weighted(now, "staying", only)
            best = weighted(
                hindsight.join(now.select("cell", "vacant_taxis"), on="cell"), "best", only
            )
            print(
                f"  {scope}: realised hails per vacant taxi following {follow_:.3f}, "
                f"staying {stay:.3f} "
                f"(ratio {follow_ / stay:.2f}), best neighbour in hindsight {best:.3f}"
            )
    alloc_all = float(
        (allocated["hails_per_taxi"].fill_null(0.0) * allocated["taxis"]).sum()
        / allocated["taxis"].sum()
    )
    stay_all = weighted(now, "staying", None)
    kept = allocated.filter(pl.col("target_cell") == pl.col("cell"))["taxis"].sum()
    print(
        f"\nafter, allocation of each cell's forecast vacant taxis across targets: "
        f"{allocated['taxis'].sum()} taxis, {kept} told to stay; realised hails per vacant "
        f"taxi {alloc_all:.3f} vs staying {stay_all:.3f} "
        f"(ratio {alloc_all / stay_all:.2f})"
    )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
