"""Benchmark the demand model against two baselines and the oracle on a held-out simulated day.

Each of ``--days`` Tokyo days of the simulated city goes through the data path's own
functions (clean_probes -> derive_trip_events -> aggregate_cell_demand), and each day's
features are built from the week before it (build_features), as training_features does.
The model trains on every day but the last (the last training day stops it early) and is
scored on the last day next to last week, the historical average and the simulator's true
rate (the oracle, the floor no model can beat), at every horizon (0 = the bucket in
progress, 1 and 2 = the next two) and pooled. No Dagster: the pure functions only.

    python bench/bench_model.py [--start 2026-04-20 --days 14 --fleet 1000 --seed 42]
    python bench/bench_model.py --compare-params    # also 400 trees at 0.1, for training.py
    python bench/bench_model.py --horizons-per-target 3   # train on every horizon of a bucket
    python bench/bench_model.py --days 29   # the default 28-day window: issue 15's speed goal

Training speed: the script times building the training features and training (wall and
CPU seconds of this process, CatBoost's threads included) and prints their ratio (goal:
training at most 7x the features, under a minute on a quiet machine). It also trains the
settings before issue 15 (``FORMER``: every row, 10 Newton steps a leaf, a 150-tree cap)
on the same rows and compares the held-out RMSE (goal: within 0.5%);
``--no-compare-former`` skips it.

Per-day cell demand, weather and true demand are cached as parquet under ``--cache-dir``,
so reruns skip the simulation: one folder per fleet, seed, bucket and hash of the code that
makes those frames (simulator, cleaning, trips, demand), so a change there starts a new
folder; feature and training code is not cached, it runs every time. Exits 1 when the model
does not beat both baselines on MAE and RMSE, so it can gate.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import catboost
import polars as pl

import taxi_assets
from taxi_assets.cleaning import CleaningRules, clean_probes
from taxi_assets.demand import aggregate_cell_demand
from taxi_assets.features import HISTORY_DAYS, HORIZONS, build_features, with_horizons
from taxi_assets.model.evaluation import BASELINES, horizon_metrics, overall_metrics
from taxi_assets.model.scoring import score_held_out
from taxi_assets.model.training import TrainedModel, TrainingParams, train_model
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets.trips import derive_trip_events

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data_path import machine as data_path_machine  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BUCKET_MINUTES = 15
AREA = CENTRAL_TOKYO
SCORED_PREDICTORS = ("model", *BASELINES, "oracle")
# What training.py's comment about the default trees is measured against.
COMPARE_ITERATIONS, COMPARE_LEARNING_RATE = 400, 0.1
_DEFAULTS = TrainingParams()
# The training settings before issue 15 sped training up: every row of the window,
# CatBoost's own 10 Newton steps a leaf for the Poisson loss, and a fixed cap of 150 trees
# (early stopping only when the validation loss stopped falling for 20 trees).
FORMER = replace(
    _DEFAULTS,
    no_hail_row_share=1.0,
    leaf_estimation_iterations=10,
    iterations=150,
    early_stopping_min_gain=0.0,
)
# The code that shapes the cached frames, relative to the package: a change in any of it
# must not be hidden by a cache written before.
CACHED_CODE = (
    "simulation",
    "sources/simulated.py",
    "cleaning.py",
    "trips.py",
    "demand.py",
    "frames.py",
    "calendar.py",
    "mesh.py",
    "service_area.py",
)


def cached_code_hash() -> str:
    root = Path(taxi_assets.__file__).resolve().parent
    digest = hashlib.sha256()
    for name in CACHED_CODE:
        path = root / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(root).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:10]


def machine() -> str:
    """The machine line of bench_data_path.py, plus the load average and CatBoost."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{data_path_machine()}  load={load}  catboost={catboost.__version__}"


@dataclass(frozen=True)
class DayCache:
    """Cell demand, weather and true demand of simulated days, one parquet file each."""

    folder: Path
    source: SimulatedProbeSource
    rules: CleaningRules = CleaningRules()

    @classmethod
    def at(cls, cache_dir: Path, fleet_size: int, seed: int) -> DayCache:
        name = f"fleet{fleet_size}-seed{seed}-{BUCKET_MINUTES}min-code{cached_code_hash()}"
        folder = cache_dir / name
        return cls(folder, SimulatedProbeSource(fleet_size=fleet_size, seed=seed))

    def _cached(self, kind: str, day: date, make: Callable[[], pl.DataFrame]) -> pl.DataFrame:
        path = self.folder / kind / f"{day.isoformat()}.parquet"
        if path.exists():
            return pl.read_parquet(path)
        frame = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".parquet.tmp")
        frame.write_parquet(tmp)
        tmp.replace(path)
        return frame

    def cell_demand(self, day: date) -> pl.DataFrame:
        def simulate() -> pl.DataFrame:
            started = time.perf_counter()
            raw = self.source.read_probes(day).probes
            clean = clean_probes(raw, day, AREA, self.rules).clean
            demand = aggregate_cell_demand(
                clean, derive_trip_events(clean), day, AREA, BUCKET_MINUTES
            )
            print(
                f"  {day}: simulated {raw.height:,} pings -> {demand.height:,} cell-buckets "
                f"in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            return demand

        return self._cached("cell_demand", day, simulate)

    def weather(self, day: date) -> pl.DataFrame:
        return self._cached("weather", day, lambda: self.source.read_weather(day))

    def true_demand(self, day: date) -> pl.DataFrame:
        return self._cached("true_demand", day, lambda: self.source.true_demand(day))


def day_features(
    day: date, demand: dict[date, pl.DataFrame], weather: dict[date, pl.DataFrame]
) -> pl.DataFrame:
    """Feature rows of ``day`` from the loaded days among it and the week before it (the
    first days of a window lack part of that week: their lags are null, as in Dagster)."""
    week = [day - timedelta(days=d) for d in range(HISTORY_DAYS, -1, -1)]
    history = pl.concat([demand[d] for d in week if d in demand])
    rain = pl.concat([weather[d] for d in (day - timedelta(days=1), day) if d in weather])
    targets = with_horizons(demand[day].select("cell", "bucket_start"), HORIZONS)
    return build_features(history, rain, targets, BUCKET_MINUTES)


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread (CatBoost's and Polars') counted."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Scored:
    """One trained model and the overall metrics of every predictor on the held-out day."""

    model: TrainedModel
    wall_seconds: float  # train_model whole: sampling, pools and both regressors
    cpu_seconds: float
    overall: pl.DataFrame  # overall_metrics: one row per predictor, every horizon pooled
    per_horizon: pl.DataFrame  # horizon_metrics: one row per horizon and predictor

    def metric(self, predictor: str, name: str) -> float:
        row = self.overall.filter(pl.col("predictor") == predictor)
        return float(row[name][0])


def train_and_score(
    training_rows: pl.DataFrame,
    held_out: pl.DataFrame,
    true_demand: pl.DataFrame,
    params: TrainingParams,
) -> Scored:
    def log(message: str) -> None:
        print(f"  {message}", flush=True)

    wall, cpu = time.perf_counter(), cpu_seconds()
    model = train_model(training_rows, params, validation_days=1, log=log)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    scored = score_held_out(
        held_out, model, training_rows, true_demand=true_demand, bucket_minutes=BUCKET_MINUTES
    )
    return Scored(
        model,
        wall,
        cpu,
        overall_metrics(scored, SCORED_PREDICTORS),
        horizon_metrics(scored, SCORED_PREDICTORS),
    )


def relative(value: float, reference: float, decimals: int = 1) -> str:
    return f"{100 * (value / reference - 1):+.{decimals}f}%"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table, columns padded so it also reads as plain text."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [cells[0].ljust(widths[0])]
        padded += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + (":" if i else "-")) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def predictors_table(result: Scored) -> str:
    model = result.model
    rows = []
    for predictor in SCORED_PREDICTORS:
        rmse = result.metric(predictor, "rmse")
        deviance = result.metric(predictor, "poisson_deviance")
        is_oracle, is_model = predictor == "oracle", predictor == "model"
        oracle_rmse, oracle_deviance = (
            result.metric("oracle", name) for name in ("rmse", "poisson_deviance")
        )
        rows.append(
            [
                predictor,
                f"{result.metric(predictor, 'mae'):.4f}",
                f"{rmse:.4f}",
                f"{deviance:.4f}",
                "-" if is_oracle else relative(rmse, oracle_rmse),
                "-" if is_oracle else relative(deviance, oracle_deviance),
                f"{model.training_seconds:.1f}" if is_model else "-",
                f"{model.training_rows:,} + {model.validation_rows:,}" if is_model else "-",
            ]
        )
    header = [
        "predictor",
        "MAE",
        "RMSE",
        "Poisson deviance",
        "RMSE vs oracle",
        "deviance vs oracle",
        "train s",
        "train + early-stop rows",
    ]
    return markdown(header, rows)


def horizons_table(result: Scored) -> str:
    """RMSE and Poisson deviance of every predictor at each horizon, and the model's
    distance to the oracle there."""
    rows = []
    for (horizon,), frame in sorted(
        result.per_horizon.partition_by("horizon", as_dict=True).items()
    ):
        metric = {
            (row["predictor"], name): row[name]
            for row in frame.iter_rows(named=True)
            for name in ("rmse", "poisson_deviance")
        }
        rows.append(
            [
                str(horizon),
                *(f"{metric[(p, 'rmse')]:.4f}" for p in SCORED_PREDICTORS),
                *(f"{metric[(p, 'poisson_deviance')]:.4f}" for p in SCORED_PREDICTORS),
                relative(metric[("model", "rmse")], metric[("oracle", "rmse")]),
                relative(
                    metric[("model", "poisson_deviance")], metric[("oracle", "poisson_deviance")]
                ),
            ]
        )
    header = [
        "horizon",
        *(f"RMSE {p}" for p in SCORED_PREDICTORS),
        *(f"deviance {p}" for p in SCORED_PREDICTORS),
        "RMSE vs oracle",
        "deviance vs oracle",
    ]
    return markdown(header, rows)


def params_table(default: Scored, compared: Scored) -> str:
    reference = compared.metric("model", "rmse")
    rows = []
    for result in (default, compared):
        params = result.model.params
        rmse = result.metric("model", "rmse")
        rows.append(
            [
                f"{params.iterations} trees @ {params.learning_rate:g}",
                str(result.model.best_iteration),
                f"{result.metric('model', 'mae'):.4f}",
                f"{rmse:.4f}",
                f"{result.metric('model', 'poisson_deviance'):.4f}",
                "-" if result is compared else relative(rmse, reference, decimals=2),
                f"{result.model.training_seconds:.1f}",
            ]
        )
    header = [
        "params",
        "best iteration",
        "MAE",
        "RMSE",
        "Poisson deviance",
        f"RMSE vs {COMPARE_ITERATIONS} @ {COMPARE_LEARNING_RATE:g}",
        "train s",
    ]
    return markdown(header, rows)


def speed_table(features_wall: float, features_cpu: float, results: dict[str, Scored]) -> str:
    """Training against the time to build its features, and each model's held-out RMSE
    against the last one's (``FORMER`` when it was trained)."""
    reference = list(results.values())[-1].metric("model", "rmse")
    rows = [["build the features", f"{features_wall:.1f}", f"{features_cpu:.1f}"] + ["-"] * 6]
    for label, result in results.items():
        model, params = result.model, result.model.params
        rows.append(
            [
                f"train ({label})",
                f"{result.wall_seconds:.1f}",
                f"{result.cpu_seconds:.1f}",
                f"{result.wall_seconds / features_wall:.2f}x",
                f"{model.sampled_rows:,} of {model.training_rows:,}",
                f"{model.demand.tree_count_} of {params.iterations}",
                f"{result.metric('model', 'rmse'):.4f}",
                relative(result.metric("model", "rmse"), reference, decimals=2),
                f"{result.metric('model', 'mae'):.4f}",
            ]
        )
    header = [
        "step",
        "wall s",
        "CPU s",
        "wall / features",
        "rows trained",
        "demand trees kept",
        "held-out RMSE",
        "RMSE vs last",
        "held-out MAE",
    ]
    return markdown(header, rows)


def speed_verdict(features_wall: float, result: Scored, former: Scored | None) -> str:
    ratio = result.wall_seconds / features_wall
    lines = [
        f"Training took {result.wall_seconds:.1f} s, {ratio:.2f}x the {features_wall:.1f} s to "
        f"build its features (goal <= 7x: {'met' if ratio <= 7 else 'NOT met'}; under 60 s on "
        f"a quiet machine: {'met' if result.wall_seconds < 60 else 'NOT met'} here)."
    ]
    if former is not None:
        change = result.metric("model", "rmse") / former.metric("model", "rmse") - 1
        lines.append(
            f"Held-out RMSE {100 * change:+.2f}% against the former settings (goal within "
            f"0.5%: {'met' if abs(change) <= 0.005 else 'NOT met'}), trained "
            f"{former.wall_seconds / result.wall_seconds:.1f}x faster in wall time and "
            f"{former.cpu_seconds / result.cpu_seconds:.1f}x in CPU time."
        )
    return " ".join(lines)


def gate_failures(result: Scored) -> list[str]:
    """Why the model does not beat both baselines on MAE and RMSE (empty: it does)."""
    failures = []
    for baseline in BASELINES:
        for metric in ("mae", "rmse"):
            ours, theirs = result.metric("model", metric), result.metric(baseline, metric)
            if not ours < theirs:
                failures.append(f"{metric.upper()} {ours:.4f} >= {baseline} {theirs:.4f}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 4, 20))
    parser.add_argument(
        "--days", type=int, default=14, help="window: train on all but the last, score the last"
    )
    parser.add_argument("--fleet", type=int, default=1000, help="simulated taxis")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--iterations", type=int, default=_DEFAULTS.iterations)
    parser.add_argument("--learning-rate", type=float, default=_DEFAULTS.learning_rate)
    parser.add_argument(
        "--horizons-per-target",
        type=int,
        default=_DEFAULTS.horizons_per_target,
        help=f"horizons each cell and bucket trains at (1..{len(HORIZONS)})",
    )
    parser.add_argument(
        "--compare-params",
        action="store_true",
        help=f"also train {COMPARE_ITERATIONS} trees at {COMPARE_LEARNING_RATE:g} and compare",
    )
    parser.add_argument(
        "--no-compare-former",
        action="store_true",
        help="skip training the settings before issue 15 (every row, 10 Newton steps a leaf)",
    )
    parser.add_argument("--cache-dir", type=Path, default=RESULTS_DIR / "model_cache")
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / "model.md", help="markdown report"
    )
    args = parser.parse_args(argv)
    if args.days < 3:
        parser.error("--days must be at least 3 (one to train, one to stop early, one to score)")

    days = [args.start + timedelta(days=i) for i in range(args.days)]
    held_out_day, training_days = days[-1], days[:-1]
    params = replace(
        _DEFAULTS,
        iterations=args.iterations,
        learning_rate=args.learning_rate,
        horizons_per_target=args.horizons_per_target,
    )
    print(machine(), flush=True)
    print(
        f"fleet={args.fleet}  seed={args.seed}  train {training_days[0]}..{training_days[-1]} "
        f"(early stopping on {training_days[-1]})  held out {held_out_day}",
        flush=True,
    )

    started = time.perf_counter()
    cache = DayCache.at(args.cache_dir, args.fleet, args.seed)
    demand = {day: cache.cell_demand(day) for day in days}
    weather = {day: cache.weather(day) for day in days}
    true_demand = cache.true_demand(held_out_day)
    print(f"cell demand of {len(days)} days ready in {time.perf_counter() - started:.1f} s")
    started, cpu_started = time.perf_counter(), cpu_seconds()
    training_rows = pl.concat([day_features(day, demand, weather) for day in training_days])
    features_wall, features_cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    held_out = day_features(held_out_day, demand, weather)
    print(
        f"features: {training_rows.height:,} training rows in {features_wall:.1f} s "
        f"({features_cpu:.1f} s CPU), {held_out.height:,} held out",
        flush=True,
    )

    result = train_and_score(training_rows, held_out, true_demand, params)
    former = None
    if not args.no_compare_former:
        former_params = replace(FORMER, horizons_per_target=params.horizons_per_target)
        former = train_and_score(training_rows, held_out, true_demand, former_params)
    compared = None
    if args.compare_params:
        compared = train_and_score(
            training_rows,
            held_out,
            true_demand,
            replace(params, iterations=COMPARE_ITERATIONS, learning_rate=COMPARE_LEARNING_RATE),
        )

    scored_rows = result.metric("model", "rows")
    title = (
        f"Held out {held_out_day} ({held_out['day_type'][0]}), {scored_rows:,.0f} cell-buckets "
        f"x horizons; model up to {params.iterations} trees @ {params.learning_rate:g}, "
        f"{params.horizons_per_target} horizon(s) per training bucket "
        f"(best iteration {result.model.best_iteration}); fleet {args.fleet}, seed {args.seed}"
    )
    trained = {"defaults": result} | ({"former settings": former} if former else {})
    speed = speed_table(features_wall, features_cpu, trained)
    sections = [
        title,
        speed,
        speed_verdict(features_wall, result, former),
        predictors_table(result),
        horizons_table(result),
    ]
    if compared is not None:
        default_rmse, compared_rmse = (r.metric("model", "rmse") for r in (result, compared))
        sections += [
            params_table(result, compared),
            f"RMSE of {params.iterations} trees @ {params.learning_rate:g} relative to "
            f"{COMPARE_ITERATIONS} @ {COMPARE_LEARNING_RATE:g}: "
            f"{relative(default_rmse, compared_rmse, decimals=2)}; training "
            f"{result.model.training_seconds:.0f} s instead of "
            f"{compared.model.training_seconds:.0f} s.",
        ]
    failures = gate_failures(result)
    verdict = (
        "Gate: FAIL, " + "; ".join(failures)
        if failures
        else "Gate: pass (the model beats both baselines on MAE and RMSE)"
    )
    report = "\n\n".join([*sections, verdict])
    print("\n" + report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(f"{machine()}\n\n{report}\n")
        print(f"\nwritten to {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
