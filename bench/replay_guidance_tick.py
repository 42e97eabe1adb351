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

from taxi_assets.guidance import GuidanceParams, cruising_guidance, moves_within  # noqa: E402
from taxi_assets.guidance_replay import (  # noqa: E402
    arrival_buckets,
    replay_summary,
    score_guidance,
)
from taxi_assets.model.training import TrainingParams, train_model  # noqa: E402
from taxi_assets.serving import forecast_tick, history_days, target_bucket  # noqa: E402

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
    # The guidance reads every horizon; the former rule and the figures, the bucket in progress.
    now = forecast.filter(pl.col("horizon") == 0)
    params = GuidanceParams(competitor_prior=args.competitor_prior)

    area_cells = AREA.cells()
    targets = {
        "before (hails - vacant)": former_guidance(now).join(
            moves_within(area_cells, AREA, 1, params.speed_kmh(tick), params).select(
                "cell", "target_cell", target_arrival_minutes="travel_minutes"
            ),
            on=["cell", "target_cell"],
        ),
        "after (hails one more taxi captures)": cruising_guidance(forecast, AREA, tick, params),
    }
    now_hails = demand[day].filter(pl.col("bucket_start") == target)["street_hail_pickups"].sum()
    print(
        f"tick {tick.isoformat()}  fleet {args.fleet}  seed {args.seed}  "
        f"model {args.iterations} trees  competitor_prior {params.competitor_prior}"
    )
    print(
        f"forecast: {now['expected_street_hails'].sum():.1f} street hails expected in the "
        f"bucket, {now_hails} happened"
    )
    busiest = now.sort(["expected_street_hails", "cell"], descending=[True, False]).head(BUSIEST)[
        "cell"
    ]
    hails = now.select(target_cell="cell", target_hails="expected_street_hails")
    for name, chosen in targets.items():
        replay = score_guidance(
            arrival_buckets(chosen, tick, target, BUCKET_MINUTES), demand[day], AREA
        )
        top = chosen.filter(pl.col("cell").is_in(busiest.implode()))
        moved = top.filter(pl.col("target_cell") != pl.col("cell"))
        quiet = moved.join(hails, on="target_cell").filter(pl.col("target_hails") < QUIET_HAILS)
        print(f"\n{name}:")
        print(
            f"  busiest {BUSIEST} cells sending their taxis elsewhere: {moved.height} "
            f"({quiet.height} to cells expecting < {QUIET_HAILS} hails); all cells: "
            f"{chosen.filter(pl.col('target_cell') != pl.col('cell')).height} of {chosen.height}"
        )
        for scope, rows in (
            (f"busiest {BUSIEST}", replay.filter(pl.col("cell").is_in(busiest.implode()))),
            ("all cells", replay),
        ):
            summary = replay_summary(rows)
            print(
                f"  {scope}: street hails per vacant taxi following "
                f"{summary['hails_per_vacant_taxi_following']:.3f}, staying "
                f"{summary['hails_per_vacant_taxi_staying']:.3f} "
                f"(ratio {summary['following_to_staying_ratio']:.2f}), best neighbour in "
                f"hindsight {summary['hails_per_vacant_taxi_best_neighbour']:.3f}"
            )

    # The allocation: each cell's forecast vacant taxis split across targets.
    split = (
        targets["after (hails one more taxi captures)"]
        .select("cell", "allocation")
        .explode("allocation")
        .drop_nulls("allocation")
        .unnest("allocation")
        .join(
            moves_within(
                area_cells, AREA, params.target_radius_cells, params.speed_kmh(tick), params
            ).select("cell", "target_cell", target_arrival_minutes="travel_minutes"),
            on=["cell", "target_cell"],
        )
    )
    judged = score_guidance(
        arrival_buckets(split, tick, target, BUCKET_MINUTES).with_columns(taxis=split["taxis"]),
        demand[day],
        AREA,
    )
    allocated = split.join(
        judged.select("cell", "target_cell", "following", "staying"), on=["cell", "target_cell"]
    )
    following = (allocated["following"] * allocated["taxis"]).sum() / allocated["taxis"].sum()
    staying = (allocated["staying"] * allocated["taxis"]).sum() / allocated["taxis"].sum()
    kept = allocated.filter(pl.col("target_cell") == pl.col("cell"))["taxis"].sum()
    print(
        f"\nafter, each cell's forecast vacant taxis split across targets: "
        f"{allocated['taxis'].sum()} taxis in cells that had vacant taxis, {kept} told to stay, "
        f"{allocated.group_by('cell').agg(pl.len() > 1).to_series(1).sum()} cells split over "
        f"several targets; street hails per vacant taxi {following:.3f} vs staying "
        f"{staying:.3f} (ratio {following / staying:.2f})"
    )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
