"""Closed-loop A/B of the cruising guidance in the simulator (issue 12 part 6).

A model with the production training settings (``TrainingParams()``; ``--param
iterations=40`` and the like override them) is trained with the project's pure functions on the
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

Cell demand of the training window is cached as in bench_model.py. For quick experiments,
``--runs 0,o20`` simulates only some runs (0, m20, m100, o20, o100), ``--forecast-cache``
keeps the model's day forecasts next to that cache, and the guidance's knobs
(``--vacant-presence``, ``--target-radius``, ``--guidance-reach-km``, ``--move-margin``,
``--competitor-prior``) override its defaults, e.g.

    python bench/bench_guidance.py --days 1 --forecast-cache --runs 0,o20,o100
"""

from __future__ import annotations

import argparse
import dataclasses
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
# Short names for --runs (quick experiments run only some of them).
RUN_KEYS = {"0": "adoption 0%", "m20": "model 20%", "m100": "model 100%", "o20": "oracle 20%"}
RUN_KEYS["o100"] = "oracle 100%"
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


def cached_forecasts(model, day: date, demand: dict, weather: dict, folder: Path | None) -> dict:
    """``day_forecasts``, stored in ``folder`` and read back from there when given."""
    path = folder / f"{day}.parquet" if folder is not None else None
    if path is not None and path.exists():
        frame = pl.read_parquet(path)
        return {
            key[0]: part.drop("bucket_start")
            for key, part in frame.partition_by("bucket_start", as_dict=True).items()
        }
    forecasts = day_forecasts(model, day, demand, weather)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pl.concat(
            frame.with_columns(bucket_start=pl.lit(key)) for key, frame in forecasts.items()
        ).write_parquet(path)
    return forecasts


def spread(values: list[float | None], fmt: str) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    mean = sum(known) / len(known)
    return f"{fmt.format(mean)} [{fmt.format(min(known))}, {fmt.format(max(known))}]"


def training_params(parser: argparse.ArgumentParser, overrides: list[str]) -> TrainingParams:
    """TrainingParams with ``NAME=VALUE`` overrides, each value of its field's type."""
    defaults = TrainingParams()
    values = {}
    for item in overrides:
        name, _, value = item.partition("=")
        if not hasattr(defaults, name) or not value:
            parser.error(f"--param {item}: expected NAME=VALUE with a TrainingParams field")
        values[name] = type(getattr(defaults, name))(value)
    return dataclasses.replace(defaults, **values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 5, 12))
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--training-days", type=int, default=3)
    parser.add_argument("--fleet", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a TrainingParams field of the model (repeatable), e.g. iterations=40",
    )
    parser.add_argument("--competitor-prior", type=float, default=GuidanceParams.competitor_prior)
    parser.add_argument("--target-radius", type=int, default=GuidanceParams.target_radius_cells)
    parser.add_argument(
        "--hail-reach-km",
        type=float,
        default=1.0,
        help="CityConfig.street_hail_reach_km of every run (the city default is 3 km)",
    )
    parser.add_argument(
        "--guidance-reach-km",
        type=float,
        default=GuidanceParams.hail_reach_km,
        help="GuidanceParams.hail_reach_km (0: per cell; the simulator's is --hail-reach-km)",
    )
    parser.add_argument("--move-margin", type=float, default=GuidanceParams.move_margin)
    parser.add_argument("--vacant-presence", type=float, default=GuidanceParams.vacant_presence)
    parser.add_argument(
        "--runs",
        default=",".join(RUN_KEYS),
        help=f"comma-separated runs to simulate, of {','.join(RUN_KEYS)} (default: all)",
    )
    parser.add_argument(
        "--forecast-cache",
        action="store_true",
        help="store the model's day forecasts under bench/results and reuse them (experiments)",
    )
    args = parser.parse_args()
    training = training_params(parser, args.param)
    unknown = set(args.runs.split(",")) - set(RUN_KEYS)
    if unknown:
        parser.error(f"--runs: unknown {sorted(unknown)}, expected some of {sorted(RUN_KEYS)}")
    chosen = {RUN_KEYS[key] for key in args.runs.split(",")}
    runs = [run for run in RUNS if run[0] in chosen]
    started = time.perf_counter()
    print(machine())
    days = [args.start + timedelta(days=i) for i in range(args.days)]
    training_days = [args.start - timedelta(days=i) for i in range(args.training_days, 0, -1)]
    print(
        f"fleet {args.fleet}  seed {args.seed}  days {days[0]}..{days[-1]}  training days "
        f"{training_days[0]}..{training_days[-1]}  model {' '.join(args.param) or 'defaults'}  "
        f"ticks every 5 min  street hail reach {args.hail_reach_km} km"
    )
    params = GuidanceParams(
        competitor_prior=args.competitor_prior,
        target_radius_cells=args.target_radius,
        hail_reach_km=args.guidance_reach_km,
        move_margin=args.move_margin,
        vacant_presence=args.vacant_presence,
    )
    print(
        f"guidance: competitor_prior {params.competitor_prior}  target radius "
        f"{params.target_radius_cells} cells  hail reach {params.hail_reach_km} km  "
        f"move margin {params.move_margin}  vacant presence {params.vacant_presence}"
    )
    cache = DayCache.at(RESULTS_DIR / "model_cache", args.fleet, args.seed)
    first = training_days[0] - timedelta(days=HISTORY_DAYS)
    window = [first + timedelta(days=i) for i in range((days[-1] - first).days + 1)]
    demand = {d: cache.cell_demand(d) for d in window}
    weather = {d: cache.weather(d) for d in window}
    forecast_dir = cache.folder / (
        f"forecasts-{training_days[0]}-{len(training_days)}d-"
        + ("-".join(sorted(args.param)) or "defaults").replace("=", "")
    )
    model = None
    if not (args.forecast_cache and all((forecast_dir / f"{d}.parquet").exists() for d in days)):
        rows = pl.concat([day_features(d, demand, weather) for d in training_days])
        model = train_model(rows, training)
        print(
            f"model trained: {time.perf_counter() - started:.0f} s, "
            f"best iteration {model.best_iteration}",
            flush=True,
        )

    results: dict[str, list[dict]] = {name: [] for name, _, _ in runs}
    for day in days:
        t0 = time.perf_counter()
        forecasts = cached_forecasts(
            model, day, demand, weather, forecast_dir if args.forecast_cache else None
        )
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
        for name, adoption, kind in runs:
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
    for name, _, _ in runs:
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

    print()
    served = {name: sum(d["served"] for d in per_day) for name, per_day in results.items()}
    if "model 20%" in results:
        model_lift = lift("model 20%")
        mean = sum(model_lift) / len(model_lift)
        print(
            f"guided vs unguided hails per vacant hour at 20%: model {mean:+.1%} "
            f"[{min(model_lift):+.1%}, {max(model_lift):+.1%}]  (goal >= +15%: "
            f"{'met' if mean >= 0.15 else 'NOT met'})"
        )
    if "oracle 20%" in results:
        oracle_lift = lift("oracle 20%")
        oracle_mean = sum(oracle_lift) / len(oracle_lift)
        line = (
            f"oracle policy lift at 20%: {oracle_mean:+.1%} [{min(oracle_lift):+.1%}, "
            f"{max(oracle_lift):+.1%}]"
        )
        if "model 20%" in results:
            share = mean / oracle_mean if oracle_mean > 0 else float("nan")
            line += (
                f"; model / oracle lift {share:.2f}  (goal >= 0.80: "
                f"{'met' if oracle_mean > 0 and share >= 0.8 else 'NOT met'})"
            )
        print(line)
    if "adoption 0%" in served:
        for name in ("model 100%", "oracle 100%"):
            if name in served:
                goal = "met" if served[name] >= served["adoption 0%"] else "NOT met"
                note = f"  (goal no fewer: {goal})" if name == "model 100%" else ""
                print(
                    f"served requests, {len(days)} days: adoption 0% {served['adoption 0%']}, "
                    f"{name} {served[name]}{note}"
                )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
