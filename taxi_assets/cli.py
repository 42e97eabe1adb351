"""``taxi-assets run``: the whole loop over a window of days (data path, training,
evaluation, deployment when blessed, one forecast tick) and a summary of what it made;
``taxi-assets train`` and ``taxi-assets forecast``: one step of that loop, for a chosen
day or tick, on any probe source (``--landing-dir`` for a folder of files);
``taxi-assets models`` lists and compares trained model versions;
``taxi-assets schema infer`` re-infers an asset's data schema for review;
``taxi-assets serve`` runs the guidance API and live map (``taxi_assets.api``).

The runs go into the Dagster instance at ``$DAGSTER_HOME``, so ``dagster dev`` shows them
with their metadata afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

import dagster as dg
import polars as pl

from taxi_assets.api.server import add_serve_parser, serve_command
from taxi_assets.calendar import TOKYO
from taxi_assets.definitions import build_definitions
from taxi_assets.frames import REJECT_REASONS
from taxi_assets.job_runs import run_job
from taxi_assets.jobs import data_path_job, forecast_job, monitoring_job, training_job
from taxi_assets.metadata import latest_materialization_metadata, text_table
from taxi_assets.model.experiments import add_models_parser, models_command
from taxi_assets.onboarding import onboard_feed
from taxi_assets.resources import SettingsError, resources_for_environment
from taxi_assets.simulation.feed import CITY, FEED_PROFILES
from taxi_assets.simulation.landing import write_landing_days
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets.validation.schema import VALIDATION_DIR_ENV
from taxi_assets.validation.schema_cli import SCHEMA_ASSETS, infer_command
from taxi_assets.weather import NO_WEATHER, WEATHER_SOURCE_ENV

# Two weeks ending on Constitution Day (Sun 3 May): the data path's summary shows weekdays,
# Showa Day (29 April) and weekends side by side; the last day is the model's held-out day,
# the 13 before it its training window (a week of them also feed the week-ago lags).
DEFAULT_START = date(2026, 4, 20)
DEFAULT_DAYS = 14
# The forecast tick of the loop: Sunday evening of the held-out day, in Tokyo time.
DEFAULT_TICK = time_of_day(18, 0)
# Training needs a day to fit, a day to stop early on, and the held-out day to evaluate.
MIN_DAYS_FOR_MODEL = 3
EVALUATION_PREDICTORS = ("model", "production", "last_week", "historical_average", "oracle")


def run_data_path(
    instance: dg.DagsterInstance, defs: dg.Definitions, days: Sequence[date]
) -> list[bool]:
    """Materialize the data path for each day, one run per day; return which succeeded."""
    return [run_job(instance, defs, data_path_job.name, str(day), partition=day) for day in days]


def run_model_loop(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    day: date,
    tick: datetime,
    iterations: int | None,
) -> list[bool]:
    """Train on the days before ``day``, evaluate on it, deploy if blessed; then one
    forecast tick and that tick's accuracy against the day's demand."""
    training_config = {} if iterations is None else {"iterations": iterations}
    outcomes = [
        run_job(
            instance,
            defs,
            training_job.name,
            f"train, evaluate, deploy ({day})",
            partition=day,
            ops_config={"demand_model": {"config": training_config}},
        )
    ]
    if latest_materialization_metadata(instance, "production_model"):
        outcomes.append(
            run_job(
                instance,
                defs,
                forecast_job.name,
                f"forecast tick {tick.isoformat()}",
                ops_config={"demand_forecast": {"config": {"tick": tick.isoformat()}}},
            )
        )
        outcomes.append(
            run_job(instance, defs, monitoring_job.name, f"forecast accuracy ({day})", day)
        )
    else:
        print("  no production model (none blessed yet): forecast skipped")
    return outcomes


def latest_metadata(instance: dg.DagsterInstance, asset: str, day: date) -> dict[str, object]:
    return latest_materialization_metadata(instance, asset, day.isoformat())


def summary_table(instance: dg.DagsterInstance, days: Sequence[date]) -> pl.DataFrame:
    """Per day: pings, kept, rejected by reason, cells and pickups, read back from the
    instance (what the UI shows), not from memory."""
    rows = []
    for day in days:
        clean = latest_metadata(instance, "clean_probes", day)
        rejected = latest_metadata(instance, "rejected_probes", day)
        demand = latest_metadata(instance, "cell_demand", day)
        validations = [
            latest_metadata(instance, f"{asset}_statistics", day)
            for asset in ("clean_probes", "cell_demand")
        ]
        rows.append(
            {
                "day": day.isoformat(),
                "weekday": day.strftime("%a"),
                "pings": clean.get("raw_rows"),
                "kept": clean.get("rows"),
                "rejected": rejected.get("rows"),
                **{reason: rejected.get(f"rejected_{reason}") for reason in REJECT_REASONS},
                "cells": demand.get("cells"),
                "cells_with_pickups": demand.get("cells_with_pickups"),
                "street_hails": demand.get("street_hail_pickups"),
                "app_bookings": demand.get("app_booking_pickups"),
                "anomalies": sum(int(v.get("anomalies", 0)) for v in validations),
                "drifted": sum(int(v.get("features_drifted", 0)) for v in validations),
            }
        )
    return pl.DataFrame(rows)


def print_summary(table: pl.DataFrame) -> None:
    totals = table.select(pl.exclude("day", "weekday", "cells").sum())
    days = table.select(
        "day",
        "weekday",
        "pings",
        "kept",
        "rejected",
        "cells",
        "cells_with_pickups",
        "street_hails",
        "app_bookings",
        "anomalies",
        "drifted",
    )
    print(f"\nDays:\n{text_table(days)}")
    by_reason = totals.select(*REJECT_REASONS).transpose(
        include_header=True, header_name="reason", column_names=["rows"]
    )
    print(f"\nRejected pings by reason (all days):\n{text_table(by_reason)}")
    n = table.height
    total = totals.row(0, named=True)
    print(
        f"\n{n} day(s): {total['pings'] or 0:,} pings, {total['kept'] or 0:,} kept, "
        f"{total['rejected'] or 0:,} rejected; {table['cells'].max()} cells; "
        f"{total['street_hails'] or 0:,} street-hail and {total['app_bookings'] or 0:,} "
        f"app-booked pickups; {total['anomalies'] or 0} schema anomalies and "
        f"{total['drifted'] or 0} drifted features"
    )


def evaluation_table(instance: dg.DagsterInstance, day: date) -> pl.DataFrame:
    """Model, production model, baselines and oracle on the held-out day, as the
    evaluation recorded them in the instance."""
    recorded = latest_materialization_metadata(instance, "model_evaluation", day.isoformat())
    rows = []
    for predictor in EVALUATION_PREDICTORS:
        suffix = "" if predictor == "model" else f"_{predictor}"
        if f"mae{suffix}" in recorded:
            rows.append(
                {
                    "predictor": predictor,
                    **{
                        m: recorded.get(f"{m}{suffix}") for m in ("mae", "rmse", "poisson_deviance")
                    },
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "predictor": pl.String,
            "mae": pl.Float64,
            "rmse": pl.Float64,
            "poisson_deviance": pl.Float64,
        },
    )


def horizon_table(recorded: dict) -> pl.DataFrame:
    """RMSE and Poisson deviance of every predictor at each horizon the evaluation recorded
    (``rmse_h1``, ``rmse_last_week_h1``...): one row per horizon."""
    horizons = sorted(
        int(key.removeprefix("rmse_h"))
        for key in recorded
        if key.startswith("rmse_h") and key.removeprefix("rmse_h").isdigit()
    )
    rows = []
    for horizon in horizons:
        row: dict[str, object] = {"horizon": horizon}
        for metric in ("rmse", "poisson_deviance"):
            for predictor in EVALUATION_PREDICTORS:
                suffix = "" if predictor == "model" else f"_{predictor}"
                value = recorded.get(f"{metric}{suffix}_h{horizon}")
                if value is not None:
                    row[f"{metric} {predictor}"] = float(value)
        rows.append(row)
    return pl.DataFrame(rows)


def print_model_summary(instance: dg.DagsterInstance, day: date) -> None:
    model = latest_materialization_metadata(instance, "demand_model", day.isoformat())
    evaluation = latest_materialization_metadata(instance, "model_evaluation", day.isoformat())
    if not model or not evaluation:
        print("\nNo model evaluation recorded for", day)
        return
    table = evaluation_table(instance, day)
    print(
        f"\nModel {model['model_version']}: trained on {model['window_start']}.."
        f"{model['window_end']} ({model['training_rows']:,} rows, best iteration "
        f"{model['best_iteration']}, {model['training_seconds']:.0f}s), evaluated on {day}:"
    )
    print(text_table(table))
    by_name = {row["predictor"]: row for row in table.iter_rows(named=True)}
    if "oracle" in by_name:
        model_row, oracle = by_name["model"], by_name["oracle"]
        rmse_gap = model_row["rmse"] / oracle["rmse"] - 1
        deviance_gap = model_row["poisson_deviance"] / oracle["poisson_deviance"] - 1
        print(
            f"Distance to the oracle (the true rate): RMSE +{rmse_gap:.1%}, "
            f"Poisson deviance +{deviance_gap:.1%}"
        )
    horizons = horizon_table(evaluation)
    if horizons.height:
        print("Per horizon (0 = the bucket in progress, 2 = 30-45 minutes ahead):")
        print(text_table(horizons))
    print(f"Blessed: {evaluation['blessed']} (decided by {evaluation['decided_by']})")
    deployed = latest_materialization_metadata(instance, "production_model")
    if deployed:
        print(
            f"Production model: {deployed['model_version']} ({deployed['action']}, "
            f"by {deployed['triggered_by']})"
        )
    print_forecast_summary(instance, day)


def print_forecast_summary(instance: dg.DagsterInstance, day: date | None) -> None:
    """The latest forecast tick and its guidance, and how ``day``'s ticks and guidance did
    against what happened, when measured."""
    forecast = latest_materialization_metadata(instance, "demand_forecast")
    accuracy, replay = (
        (
            latest_materialization_metadata(instance, "forecast_accuracy", day.isoformat()),
            latest_materialization_metadata(instance, "guidance_accuracy", day.isoformat()),
        )
        if day
        else ({}, {})
    )
    if forecast:
        print(
            f"Forecast tick: {forecast['cells']} cells, {forecast['expected_street_hails']:.0f} "
            f"street hails expected in the next bucket, made in {forecast['seconds']:.2f}s"
            + (f"; its MAE {accuracy['mae']:.4f}" if accuracy else "")
        )
    guidance = latest_materialization_metadata(instance, "cruising_guidance")
    if guidance:
        print(
            f"Cruising guidance: {guidance['cells_sent_elsewhere']} of {guidance['cells']} cells "
            f"send their taxis elsewhere ({guidance['busiest_50_cells_sent_elsewhere']} of the "
            "50 busiest)"
            + (
                f"; replayed on what happened: {replay['hails_per_vacant_taxi_following']:.3f} "
                f"street hails per vacant taxi following it, "
                f"{replay['hails_per_vacant_taxi_staying']:.3f} staying, "
                f"{replay['hails_per_vacant_taxi_best_neighbour']:.3f} best neighbour in hindsight"
                if replay
                else ""
            )
        )


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the probes come from, for every command that runs jobs."""
    parser.add_argument(
        "--landing-dir",
        type=Path,
        default=None,
        help="read probes from this landing folder (probes/<day>/, weather/) instead of "
        "TAXI_ASSETS_PROBE_SOURCE (default: the simulated city)",
    )
    parser.add_argument(
        "--fleet",
        type=int,
        default=None,
        help="simulated fleet size (default: TAXI_ASSETS_SIM_FLEET_SIZE or 1000)",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(FEED_PROFILES),
        default=None,
        help="the simulated city's feed profile (default: TAXI_ASSETS_SIM_PROFILE or city)",
    )
    parser.add_argument(
        "--no-weather",
        action="store_true",
        help=f"the feed has no weather (sets {WEATHER_SOURCE_ENV}={NO_WEATHER})",
    )
    parser.add_argument(
        "--validation-dir",
        type=Path,
        default=None,
        help=f"the feed's schemas and drift thresholds (sets {VALIDATION_DIR_ENV}; default: "
        "that variable, else the package's committed folder for the simulated city)",
    )


def source_environment(args: argparse.Namespace) -> dict[str, str]:
    """The process environment with the feed the command line chose on top."""
    chosen = {}
    if args.fleet is not None:
        chosen["TAXI_ASSETS_SIM_FLEET_SIZE"] = str(args.fleet)
    if args.landing_dir is not None:
        chosen["TAXI_ASSETS_PROBE_SOURCE"] = "landing"
        chosen["TAXI_ASSETS_LANDING_DIR"] = str(args.landing_dir)
    if args.profile is not None:
        chosen["TAXI_ASSETS_SIM_PROFILE"] = args.profile
    if args.no_weather:
        chosen[WEATHER_SOURCE_ENV] = NO_WEATHER
    if args.validation_dir is not None:
        chosen[VALIDATION_DIR_ENV] = str(args.validation_dir.resolve())
    return {**os.environ, **chosen}


def definitions_for(args: argparse.Namespace) -> dg.Definitions | None:
    """The code location as the command line configures it, or None after printing why
    it cannot be built (no DAGSTER_HOME, invalid settings)."""
    if not os.environ.get("DAGSTER_HOME"):
        print(
            "DAGSTER_HOME is not set: set it to the instance folder (make run does: .dagster_home)",
            file=sys.stderr,
        )
        return None
    try:
        return build_definitions(resources_for_environment(source_environment(args)))
    except SettingsError as error:
        print(f"settings: {error}", file=sys.stderr)
        return None


def window(start: date, days: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(days)]


def run_command(args: argparse.Namespace) -> int:
    defs = definitions_for(args)
    if defs is None:
        return 2
    if not args.data_path_only and args.days < MIN_DAYS_FOR_MODEL:
        print(
            f"--days {args.days}: the model loop needs at least {MIN_DAYS_FOR_MODEL} days (train, "
            "stop early, evaluate); pass more days or --data-path-only",
            file=sys.stderr,
        )
        return 2
    days = window(args.start, args.days)
    print(
        f"Materializing data_path_job for {days[0]}..{days[-1]} "
        f"into DAGSTER_HOME={os.environ['DAGSTER_HOME']}"
    )
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        outcomes = run_data_path(instance, defs, days)
        if not args.data_path_only and all(outcomes):
            tick = datetime.combine(days[-1], args.tick, tzinfo=TOKYO)
            outcomes += run_model_loop(instance, defs, days[-1], tick, args.iterations)
        print_summary(summary_table(instance, days))
        if not args.data_path_only:
            print_model_summary(instance, days[-1])
    print(f"Finished in {time.monotonic() - started:.0f}s; open the UI with `make ui`.")
    return 0 if all(outcomes) else 1


def train_command(args: argparse.Namespace) -> int:
    """Train on the days before ``--day``, evaluate on it, deploy when blessed."""
    defs = definitions_for(args)
    if defs is None:
        return 2
    config: dict[str, object] = {}
    if args.window_days is not None:
        config["window_days"] = args.window_days
    if args.iterations is not None:
        config["iterations"] = args.iterations
    with dg.DagsterInstance.get() as instance:
        succeeded = run_job(
            instance,
            defs,
            training_job.name,
            f"train, evaluate, deploy ({args.day})",
            partition=args.day,
            ops_config={"demand_model": {"config": config}},
        )
        print_model_summary(instance, args.day)
    return 0 if succeeded else 1


def forecast_command(args: argparse.Namespace) -> int:
    """One forecast tick (and its guidance) with the production model."""
    defs = definitions_for(args)
    if defs is None:
        return 2
    tick = args.tick if args.tick.tzinfo else args.tick.replace(tzinfo=TOKYO)
    with dg.DagsterInstance.get() as instance:
        if not latest_materialization_metadata(instance, "production_model"):
            print("no production model is deployed: run `taxi-assets train` first", file=sys.stderr)
            return 1
        succeeded = run_job(
            instance,
            defs,
            forecast_job.name,
            f"forecast tick {tick.isoformat()}",
            ops_config={"demand_forecast": {"config": {"tick": tick.isoformat()}}},
        )
        print_forecast_summary(instance, None)
    return 0 if succeeded else 1


def onboard_command(args: argparse.Namespace) -> int:
    """Check the feed's files, run its reference days, calibrate its validation folder."""
    if not source_environment(args).get(VALIDATION_DIR_ENV):
        print(
            f"onboard writes the feed's schemas and thresholds: pass --validation-dir (or set "
            f"{VALIDATION_DIR_ENV}) to a folder of the deployment, not the package's own",
            file=sys.stderr,
        )
        return 2
    if args.days < 2:
        print("--days: onboarding needs at least 2 reference days", file=sys.stderr)
        return 2
    defs = definitions_for(args)
    if defs is None:
        return 2
    resources = defs.resources
    with dg.DagsterInstance.get() as instance:
        return onboard_feed(
            instance,
            defs,
            window(args.start, args.days),
            landing_dir=None if args.landing_dir is None else str(args.landing_dir),
            data_dir=Path(resources["stored"].base_dir),
            validation_dir=resources["validation"].folder(),
            weather_required=resources["settings"].weather_source != NO_WEATHER,
        )


def simulate_command(args: argparse.Namespace) -> int:
    """Write simulated days as a landing folder, as a partner's export would deliver them."""
    source = SimulatedProbeSource(fleet_size=args.fleet, seed=args.seed, feed_profile=args.profile)
    days = window(args.start, args.days)
    written = write_landing_days(source, days, args.out, args.format)
    print(
        f"Wrote {len(written)} file(s) of the {args.profile!r} feed ({args.fleet} taxis, seed "
        f"{args.seed}) for {days[0]}..{days[-1]} under {args.out}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="taxi-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="the whole loop: data path for a window of days, then training, evaluation, "
        "deployment when blessed and one forecast tick on its last day",
    )
    run.add_argument(
        "--start",
        type=date.fromisoformat,
        default=DEFAULT_START,
        help=f"first Tokyo day (default {DEFAULT_START})",
    )
    run.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"number of days (default {DEFAULT_DAYS})"
    )
    add_source_arguments(run)
    run.add_argument(
        "--data-path-only",
        action="store_true",
        help="materialize the data path only (no training, deployment or forecast)",
    )
    run.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="boosting iterations of the demand model (default: the training config's)",
    )
    run.add_argument(
        "--tick",
        type=time_of_day.fromisoformat,
        default=DEFAULT_TICK,
        help=f"Tokyo time of the forecast tick on the last day (default {DEFAULT_TICK:%H:%M})",
    )
    train = sub.add_parser(
        "train",
        help="train a model for one day on the stored days before it, evaluate it on the "
        "day, deploy it when blessed",
        description="Runs training_job for the day (the days before it must have been "
        "through the data path and passed validation; see `taxi-assets run --data-path-only`).",
    )
    train.add_argument("--day", type=date.fromisoformat, required=True, help="held-out day")
    train.add_argument(
        "--window-days", type=int, default=None, help="trailing days to train on (default 28)"
    )
    train.add_argument("--iterations", type=int, default=None, help="boosting iterations")
    add_source_arguments(train)
    forecast = sub.add_parser(
        "forecast", help="one forecast tick and its cruising guidance with the production model"
    )
    forecast.add_argument(
        "--tick",
        type=datetime.fromisoformat,
        required=True,
        help="the instant, ISO 8601 (Tokyo time when it has no offset), e.g. 2026-05-03T18:00",
    )
    add_source_arguments(forecast)
    onboard = sub.add_parser(
        "onboard",
        help="onboard a feed: check its files, run its reference days, infer its schemas "
        "and calibrate its drift thresholds into --validation-dir, validate the days again",
    )
    onboard.add_argument("--start", type=date.fromisoformat, required=True, help="first day")
    onboard.add_argument(
        "--days", type=int, required=True, help="reference days (two weeks or more is best)"
    )
    add_source_arguments(onboard)
    simulate = sub.add_parser(
        "simulate",
        help="write simulated days as a landing folder (a feed profile's traits included)",
    )
    simulate.add_argument("--start", type=date.fromisoformat, required=True, help="first day")
    simulate.add_argument("--days", type=int, required=True, help="number of days")
    simulate.add_argument("--out", type=Path, required=True, help="the landing folder")
    simulate.add_argument("--profile", choices=sorted(FEED_PROFILES), default=CITY.name)
    simulate.add_argument("--fleet", type=int, default=1000, help="simulated taxis")
    simulate.add_argument("--seed", type=int, default=42, help="same seed and day, same data")
    simulate.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    add_models_parser(sub)
    add_serve_parser(sub)
    schema = sub.add_parser("schema", help="the committed data schemas of the assets")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    infer = schema_sub.add_parser(
        "infer",
        help="re-infer an asset's schema from stored partitions and show what would change",
        description=(
            "Infer the schema from <data-dir>/<asset>/<day>.parquet for the window and print "
            "what changes against the committed one. Without --write: a dry run that exits 1 "
            "if the schema would change, 0 if not. With --write: save it, then review "
            "`git diff` and commit."
        ),
    )
    infer.add_argument("--asset", required=True, choices=sorted(SCHEMA_ASSETS))
    infer.add_argument("--start", type=date.fromisoformat, required=True, help="first day")
    infer.add_argument("--days", type=int, required=True, help="number of days")
    infer.add_argument(
        "--data-dir", type=Path, default=None, help="default: TAXI_ASSETS_DATA_DIR or data"
    )
    infer.add_argument("--write", action="store_true", help="save the inferred schema")
    infer.add_argument(
        "--schema-dir",
        type=Path,
        default=None,
        help="the validation folder of <asset>.json (default: TAXI_ASSETS_VALIDATION_DIR, "
        "else the committed taxi_assets/validation/schemas)",
    )
    args = parser.parse_args(argv)
    if args.command == "models":
        return models_command(args)
    if args.command == "schema":
        return infer_command(
            args.asset, args.start, args.days, args.data_dir, args.write, args.schema_dir
        )
    commands = {
        "run": run_command,
        "train": train_command,
        "forecast": forecast_command,
        "onboard": onboard_command,
        "simulate": simulate_command,
        "serve": serve_command,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
