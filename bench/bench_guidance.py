"""Closed-loop A/B of the cruising guidance in the simulator (issue 12 part 6).

A small model (``--iterations`` trees) is trained with the project's pure functions on the
``--training-days`` simulated days before ``--start`` (features from the week before each,
as ``training_features`` does). For each of ``--days`` days from ``--start``, the model
forecasts every 15-minute bucket of the day from the features ``demand_forecast`` builds
(the buckets before it, the days before); those buckets are the open-loop feed's
(adoption 0) of that day, see the README. Then the
day's fleet is simulated (dispatch only, no pings) with:

- adoption 0% (nobody guided),
- 20% and 100% of the taxis following ``cruising_guidance`` on the model's forecast,
- 20% and 100% following the oracle policy: the same guidance on the simulator's true
  street-hail rate (with the model's expected vacant taxis).

Printed per run and group of taxis (guided, unguided): street hails per vacant hour,
occupancy (occupied / on-duty time), empty km per street hail, and the served and unserved
requests of the whole fleet; the mean over days and the [min, max] across days. Then the
goals: guided vs unguided hails per vacant hour at 20% adoption (>= +15%), the model
policy's lift over the oracle policy's (>= 80%), served requests at 100% vs 0% (no fewer).

Every run limits street hails to taxis within ``--hail-reach-km`` (1 km;
``CityConfig.street_hail_reach_km``): with the city's 3 km dispatch reach a hail goes to
any vacant taxi within 3 km and where a taxi cruises hardly matters (README).

    python bench/bench_guidance.py [--start 2026-05-12 --days 3 --fleet 1000]

Cell demand of the training window is cached as in bench_model.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import (  # noqa: E402
    AREA,
    BUCKET_MINUTES,
    RESULTS_DIR,
    DayCache,
    day_features,
    machine,
)

from taxi_assets.calendar import day_window_utc  # noqa: E402
from taxi_assets.closed_loop import (  # noqa: E402
    bucket_forecasts,
    guidance_policy,
    oracle_forecasts,
)
from taxi_assets.features import HISTORY_DAYS  # noqa: E402
from taxi_assets.guidance import GuidanceParams  # noqa: E402
from taxi_assets.model.training import TrainingParams, train_model  # noqa: E402
from taxi_assets.serving import forecast_from_features  # noqa: E402
from taxi_assets.simulation import CityConfig  # noqa: E402
from taxi_assets.simulation.cruising import fleet_outcomes  # noqa: E402
from taxi_assets.simulation.simulator import simulate_fleet  # noqa: E402

RUNS = (
    ("adoption 0%", 0.0, None),
    ("model 20%", 0.2, "model"),
    ("model 100%", 1.0, "model"),
    ("oracle 20%", 0.2, "oracle"),
    ("oracle 100%", 1.0, "oracle"),
)
METRICS = (
    ("street_hails_per_vacant_hour", "hails/vac h", "{:.3f}"),
    ("occupancy_rate", "occupancy", "{:.3f}"),
    ("empty_km_per_street_hail", "empty km/hail", "{:.2f}"),
)


def day_forecasts(model, day: date, demand: dict, weather: dict) -> dict:
    """The model's forecast of every 15-minute bucket of ``day``, keyed by bucket start.

    One prediction over the day's feature rows (``day_features``, the training features'
    function): a bucket's features read only buckets before it, so this equals
    ``serving.forecast_tick`` at each bucket (the project's tick/training parity) at a
    hundredth of the cost."""
    tick = day_window_utc(day)[0]
    features = day_features(day, demand, weather)
    forecast = forecast_from_features(model, "bench", features, tick)
    return {
        key[0]: frame.drop("bucket_start")
        for key, frame in forecast.partition_by("bucket_start", as_dict=True).items()
    }


def spread(values: list[float | None], fmt: str) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    mean = sum(known) / len(known)
    return f"{fmt.format(mean)} [{fmt.format(min(known))}, {fmt.format(max(known))}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 5, 12))
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--training-days", type=int, default=3)
    parser.add_argument("--fleet", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--competitor-prior", type=float, default=GuidanceParams.competitor_prior)
    parser.add_argument("--target-radius", type=int, default=GuidanceParams.target_radius_cells)
    parser.add_argument(
        "--hail-reach-km",
        type=float,
        default=1.0,
        help="CityConfig.street_hail_reach_km of every run (the city default is 3 km)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    print(machine())
    days = [args.start + timedelta(days=i) for i in range(args.days)]
    training_days = [args.start - timedelta(days=i) for i in range(args.training_days, 0, -1)]
    print(
        f"fleet {args.fleet}  seed {args.seed}  days {days[0]}..{days[-1]}  training days "
        f"{training_days[0]}..{training_days[-1]}  model {args.iterations} trees  "
        f"ticks every 5 min  street hail reach {args.hail_reach_km} km"
    )
    params = GuidanceParams(
        competitor_prior=args.competitor_prior, target_radius_cells=args.target_radius
    )
    print(
        f"guidance: competitor_prior {params.competitor_prior}  target radius "
        f"{params.target_radius_cells} cells"
    )
    cache = DayCache.at(RESULTS_DIR / "model_cache", args.fleet, args.seed)
    first = training_days[0] - timedelta(days=HISTORY_DAYS)
    window = [first + timedelta(days=i) for i in range((days[-1] - first).days + 1)]
    demand = {d: cache.cell_demand(d) for d in window}
    weather = {d: cache.weather(d) for d in window}
    rows = pl.concat([day_features(d, demand, weather) for d in training_days])
    model = train_model(rows, TrainingParams(iterations=args.iterations, supply_iterations=20))
    print(f"model trained: {time.perf_counter() - started:.0f} s", flush=True)

    results: dict[str, list[dict]] = {name: [] for name, _, _ in RUNS}
    for day in days:
        t0 = time.perf_counter()
        forecasts = day_forecasts(model, day, demand, weather)
        truth = cache.true_demand(day)
        sources = {
            "model": forecasts,
            "oracle": oracle_forecasts(truth, forecasts, BUCKET_MINUTES),
        }
        policies = {
            kind: guidance_policy(bucket_forecasts(frames, BUCKET_MINUTES), AREA, params)
            for kind, frames in sources.items()
        }
        print(f"{day}: forecasts in {time.perf_counter() - t0:.0f} s", flush=True)
        for name, adoption, kind in RUNS:
            t1 = time.perf_counter()
            config = CityConfig(
                fleet_size=args.fleet,
                seed=args.seed,
                guidance_adoption=adoption,
                street_hail_reach_km=args.hail_reach_km,
            )
            fleet = simulate_fleet(config, day, policies[kind] if kind else None)
            r = fleet.result
            outcomes = fleet_outcomes(
                r.segments, r.trip_taxi, r.trip_is_app, r.trip_pickup_s, fleet.guided
            )
            results[name].append(
                {
                    "groups": {row["group"]: row for row in outcomes.iter_rows(named=True)},
                    "served": len(r.trip_taxi),
                    "unserved": r.unserved_requests,
                }
            )
            print(f"  {name}: {time.perf_counter() - t1:.0f} s", flush=True)

    print()
    header = f"{'run':<13} {'group':<9}" + "".join(f" {label:>24}" for _, label, _ in METRICS)
    print(header + f" {'served':>22} {'unserved':>18}")
    for name, _, _ in RUNS:
        per_day = results[name]
        for group in ("guided", "unguided"):
            if per_day[0]["groups"][group]["taxis"] == 0:
                continue
            cells = [
                spread([d["groups"][group][key] for d in per_day], fmt) for key, _, fmt in METRICS
            ]
            fleet_cols = (
                f" {spread([d['served'] for d in per_day], '{:.0f}'):>22}"
                f" {spread([d['unserved'] for d in per_day], '{:.0f}'):>18}"
            )
            print(f"{name:<13} {group:<9}" + "".join(f" {c:>24}" for c in cells) + fleet_cols)

    def lift(run: str) -> list[float]:
        return [
            d["groups"]["guided"]["street_hails_per_vacant_hour"]
            / d["groups"]["unguided"]["street_hails_per_vacant_hour"]
            - 1
            for d in results[run]
        ]

    model_lift, oracle_lift = lift("model 20%"), lift("oracle 20%")
    mean = sum(model_lift) / len(model_lift)
    oracle_mean = sum(oracle_lift) / len(oracle_lift)
    served_0 = sum(d["served"] for d in results["adoption 0%"])
    served_100 = sum(d["served"] for d in results["model 100%"])
    share = mean / oracle_mean if oracle_mean > 0 else float("nan")
    print()
    print(
        f"guided vs unguided hails per vacant hour at 20%: model {mean:+.1%} "
        f"[{min(model_lift):+.1%}, {max(model_lift):+.1%}]  (goal >= +15%: "
        f"{'met' if mean >= 0.15 else 'NOT met'})"
    )
    print(
        f"oracle policy lift at 20%: {oracle_mean:+.1%} [{min(oracle_lift):+.1%}, "
        f"{max(oracle_lift):+.1%}]; model / oracle lift {share:.2f}  (goal >= 0.80: "
        f"{'met' if oracle_mean > 0 and share >= 0.8 else 'NOT met'})"
    )
    print(
        f"served requests, {len(days)} days: adoption 0% {served_0}, model 100% {served_100}  "
        f"(goal no fewer: {'met' if served_100 >= served_0 else 'NOT met'})"
    )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
