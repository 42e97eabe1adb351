"""Benchmark one 5-minute forecast tick for the simulated city: pure functions, then Dagster.

The tick reads only its window and look-back (``serving.live_read_window``,
``ProbeSource.read_probes_window``). Its probes come from a landing folder holding the
simulator's day as one parquet file per Tokyo day (``taxi-assets simulate``), the way a
feed lands, so that the read is a read: the simulator's own ``read_probes_window`` first
simulates the whole day, which says nothing about a feed (one row below measures it).

(a) The pure path, stage by stage, as demand_forecast runs it: read the window's probes from
the landing folder, ``live_cell_demand``, read the 7 stored days of ``cell_demand``, read the
weather, ``forecast_tick`` (the prediction step: features and both models); plus loading the
production model and saving the tick, which the asset also does every tick. (b)
``forecast_job.execute_in_process`` end to end, with the same landing folder, a temporary
data folder, artifact store and Dagster instance; next to it each step's time from the run's
event log (demand_forecast, cruising_guidance, serving_skew) and the time demand_forecast
reports for its own body. (c) forecast_job as a launched run executes it
(``dg.execute_job`` on a reconstructable job, the run worker being this process): with the
job's own executor (in-process), and once with the multiprocess executor every other job
uses, whose step processes each load the code location. Last, the tick's cost over its
prediction step (median over median): the goal of issue 15 is at most 5x.

    python bench/bench_forecast.py [--tick 2026-05-03T18:00:00+09:00 --fleet 1000 --repeats 3]

What the tick needs is prepared first, in the temporary folder: ``cell_demand`` of the 7 days
before it at ``<data_dir>/cell_demand/<day>.parquet`` (taken from bench_model.py's cache
when there, simulated into it otherwise), and a production model trained with the pure
functions on the last ``--model-days`` of those days, registered in the artifact store with
a production pointer, its ``training_features`` stored beside (serving_skew compares with
them).
Dagster's console logger is set to WARNING so the table stays readable; the event log still
records every event.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_model import (  # noqa: E402
    AREA,
    BUCKET_MINUTES,
    RESULTS_DIR,
    DayCache,
    day_features,
    machine,
    markdown,
)

from taxi_assets.calendar import TOKYO  # noqa: E402
from taxi_assets.definitions import build_definitions  # noqa: E402
from taxi_assets.features import FEATURES, TARGET  # noqa: E402
from taxi_assets.model.registry import ArtifactStore  # noqa: E402
from taxi_assets.model.training import CODE_VERSION, TrainingParams, train_model  # noqa: E402
from taxi_assets.resources import local_resources  # noqa: E402
from taxi_assets.serving import (  # noqa: E402
    days_touched,
    forecast_tick,
    history_days,
    live_cell_demand,
    live_look_back,
    live_read_window,
    live_window,
)
from taxi_assets.simulation.landing import write_landing_days  # noqa: E402
from taxi_assets.sources.base import ProbeSource  # noqa: E402
from taxi_assets.sources.landing import LandingFolderProbeSource  # noqa: E402
from taxi_assets.storage import StoredPartitions  # noqa: E402

MODEL_VERSION = "bench-forecast"


def prepare_history(cache: DayCache, tick: datetime, data_dir: Path) -> list[date]:
    """Put cell_demand of the 7 days before ``tick`` where the IO manager keeps it."""
    days = history_days(tick)
    for day in days:
        cache.cell_demand(day)  # simulates the day into the cache when it is not there yet
        target = data_dir / "cell_demand" / f"{day.isoformat()}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache.folder / "cell_demand" / f"{day.isoformat()}.parquet", target)
    return days


def register_model(
    cache: DayCache, tick: datetime, model_days: int, artifacts: ArtifactStore, data_dir: Path
) -> dict[str, Any]:
    """Train a small model on the last ``model_days`` days before the tick (the last of them
    stops it early), store it and its training features, point production at it; return
    the pointer."""
    days = history_days(tick)
    demand = {day: cache.cell_demand(day) for day in days}
    weather = {day: cache.weather(day) for day in days}
    by_day = {day: day_features(day, demand, weather) for day in days[-model_days:]}
    for day, features in by_day.items():
        path = data_dir / "training_features" / f"{day.isoformat()}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        features.write_parquet(path)
    rows = pl.concat(by_day.values())
    params = TrainingParams()
    model = train_model(rows, params, validation_days=1, log=lambda m: print(f"  {m}"))
    manifest = {
        "params": params.as_dict(),
        "features": list(FEATURES),
        "target": TARGET,
        "partitions_used": [day.isoformat() for day in days[-model_days:]],
        "training_rows": model.training_rows,
        "best_iteration": model.best_iteration,
        "code_version": CODE_VERSION,
        "trained_at": datetime.now(UTC).isoformat(),
    }
    digest = artifacts.save_model(MODEL_VERSION, model, manifest)
    # The fields production_model writes; demand_forecast reads model_version and content_hash.
    pointer = {
        "model_version": MODEL_VERSION,
        "content_hash": digest,
        "blessed": False,
        "metrics": {},
        "action": "override",
        "override_reason": "bench/bench_forecast.py latency benchmark",
        "triggered_by": "bench_forecast.py",
        "run_id": "",
        "deployed_at": datetime.now(UTC).isoformat(),
        "history": [],
    }
    _, generation = artifacts.read_production_pointer()
    artifacts.swap_production_pointer(pointer, generation)
    return pointer


def pure_tick(
    cache: DayCache,
    source: ProbeSource,
    tick: datetime,
    stored: StoredPartitions,
    artifacts: ArtifactStore,
) -> dict[str, float]:
    """One tick through the pure functions; seconds per stage, and the total."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def timed(stage: str, work: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        result = work()
        seconds[stage] = time.perf_counter() - t0
        return result

    window_start, _ = live_window(tick, BUCKET_MINUTES)
    read_start, read_end = live_read_window(tick, BUCKET_MINUTES)
    look_back = live_look_back(cache.rules)
    days = days_touched(read_start, read_end)
    pointer = artifacts.production_pointer()
    assert pointer is not None
    model = timed(
        "load production model (ArtifactStore)",
        lambda: artifacts.load_model(pointer["model_version"]),
    )
    raw = timed(
        f"read the window's probes from the landing folder ({len(days)} day)",
        lambda: {
            day: source.read_probes_window(day, read_start, read_end, look_back).probes
            for day in days
        },
    )
    live = timed(
        "live_cell_demand",
        lambda: live_cell_demand(raw, tick, AREA, cache.rules, BUCKET_MINUTES),
    )
    stored_days = timed(
        "read 7 stored days of cell_demand",
        lambda: pl.concat([stored.read("cell_demand", d.isoformat()) for d in history_days(tick)]),
    )
    weather_days = days_touched(window_start - timedelta(hours=1), tick)
    weather = timed(
        "read weather from the landing folder",
        lambda: pl.concat([source.read_weather(day) for day in weather_days]),
    )
    forecast = timed(
        PREDICTION_STEP,
        lambda: forecast_tick(
            model,
            pointer["model_version"],
            live,
            stored_days,
            weather,
            AREA,
            tick,
            BUCKET_MINUTES,
        ),
    )
    timed("save the forecast (ArtifactStore)", lambda: artifacts.save_forecast(tick, forecast))
    seconds["total"] = time.perf_counter() - started
    seconds["pings read"] = float(sum(frame.height for frame in raw.values()))
    return seconds


PREDICTION_STEP = "forecast_tick (the prediction step)"


def pings_before_tick(source: ProbeSource, tick: datetime) -> int:
    """The pings a whole-day read would have pulled at the tick (the days touched so far)."""
    read_start, read_end = live_read_window(tick, BUCKET_MINUTES)
    return sum(
        source.read_probes(day).probes.filter(pl.col("ts") < read_end).height
        for day in days_touched(read_start, read_end)
    )


def simulator_window_seconds(cache: DayCache, tick: datetime) -> float:
    """The simulated source's own window read: it simulates the whole day, then slices."""
    read_start, read_end = live_read_window(tick, BUCKET_MINUTES)
    t0 = time.perf_counter()
    for day in days_touched(read_start, read_end):
        cache.source.read_probes_window(day, read_start, read_end, live_look_back(cache.rules))
    return time.perf_counter() - t0


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds from each step's start to its end, from the run's event log."""
    starts: dict[str, float] = {}
    seconds: dict[str, float] = {}
    ends = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[entry.step_key] = entry.timestamp
        elif event.event_type in ends:
            seconds[entry.step_key] = entry.timestamp - starts[entry.step_key]
    return seconds


def dagster_tick(
    job: dg.JobDefinition, instance: dg.DagsterInstance, tick: str
) -> dict[str, float]:
    """One forecast_job run: its wall time, each step's time, and demand_forecast's own
    ``seconds`` metadata (its body, without Dagster's input and output handling)."""
    run_config = {
        "ops": {"demand_forecast": {"config": {"tick": tick}}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    started = time.perf_counter()
    result = job.execute_in_process(run_config=run_config, instance=instance)
    wall = time.perf_counter() - started
    if not result.success:
        raise SystemExit("forecast_job failed")
    forecast_event = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "demand_forecast"
    )
    asset_seconds = forecast_event.materialization.metadata["seconds"].value
    steps = step_seconds(instance, result.run_id)
    return {
        "end to end": wall,
        **{f"step {key}": value for key, value in steps.items()},
        "demand_forecast body (its `seconds` metadata)": float(asset_seconds),
        "outside the steps (end to end - steps)": wall - sum(steps.values()),
    }


# The folders and executor of a launched run, for the step processes that rebuild its job.
LAUNCHED_ENV = "TAXI_ASSETS_BENCH_FORECAST_RUN"


def launched_job() -> dg.JobDefinition:
    """forecast_job as a launched run rebuilds it from a pointer (step processes import this
    module): over the bench's folders, with the job's own executor or the multiprocess one."""
    env = json.loads(os.environ[LAUNCHED_ENV])
    source = LandingFolderProbeSource(landing_dir=env["landing_dir"])
    defs = build_definitions(local_resources(env["data_dir"], env["artifacts_dir"], source))
    if env["executor"] == "own":
        return defs.resolve_job_def("forecast_job")
    multiprocess = dg.define_asset_job(
        "forecast_job_multiprocess",
        selection=dg.AssetSelection.groups("serving"),
        executor_def=dg.multiprocess_executor,
    )
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[multiprocess])).resolve_job_def(
        multiprocess.name
    )


def launched_tick(
    instance: dg.DagsterInstance, tick: str, folders: dict[str, str], executor: str
) -> dict[str, float]:
    """One forecast_job run through ``dg.execute_job``: its wall time and each step's."""
    os.environ[LAUNCHED_ENV] = json.dumps({**folders, "executor": executor})
    run_config = {
        "ops": {"demand_forecast": {"config": {"tick": tick}}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    started = time.perf_counter()
    with dg.execute_job(
        dg.reconstructable(launched_job), instance=instance, run_config=run_config
    ) as result:
        wall = time.perf_counter() - started
        if not result.success:
            raise SystemExit(f"forecast_job ({executor} executor) failed")
        steps = step_seconds(instance, result.run_id)
    return {"end to end": wall, **{f"step {key}": value for key, value in steps.items()}}


def summarize(runs: list[dict[str, float]], prefix: str) -> list[list[str]]:
    rows = []
    for stage in runs[0]:
        values = [run[stage] for run in runs]
        rows.append(
            [
                f"{prefix}{stage}",
                f"{statistics.median(values):.3f}",
                f"{min(values):.3f}",
                f"{max(values):.3f}",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tick", default="2026-05-03T18:00:00+09:00", help="ISO 8601, with zone")
    parser.add_argument("--fleet", type=int, default=1000, help="simulated taxis")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3, help="ticks timed per path (median)")
    parser.add_argument(
        "--model-days",
        type=int,
        default=2,
        help="days the production model is trained on, early-stopping day included",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=RESULTS_DIR / "model_cache",
        help="bench_model.py's day cache, shared",
    )
    parser.add_argument("--output", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    tick = datetime.fromisoformat(args.tick)
    if tick.tzinfo is None:
        parser.error(f"--tick {args.tick} has no time zone")
    if not 2 <= args.model_days <= 7:
        parser.error("--model-days must be 2..7 (one to train, one to stop early)")

    print(machine(), flush=True)
    print(
        f"tick={tick.isoformat()} ({tick.astimezone(TOKYO):%Y-%m-%d %H:%M} Tokyo)  "
        f"fleet={args.fleet}  seed={args.seed}  repeats={args.repeats}",
        flush=True,
    )
    cache = DayCache.at(args.cache_dir, args.fleet, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_forecast_") as tmp:
        data_dir, artifacts_dir = Path(tmp) / "data", Path(tmp) / "artifacts"
        started = time.perf_counter()
        days = prepare_history(cache, tick, data_dir)
        artifacts = ArtifactStore(base_dir=str(artifacts_dir))
        pointer = register_model(cache, tick, args.model_days, artifacts, data_dir)
        print(
            f"prepared cell_demand {days[0]}..{days[-1]} and model {pointer['model_version']} "
            f"({pointer['content_hash'][:12]}) in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        landing_dir = Path(tmp) / "landing"
        read_start, read_end = live_read_window(tick, BUCKET_MINUTES)
        write_landing_days(cache.source, days_touched(read_start, read_end), landing_dir)
        source = LandingFolderProbeSource(landing_dir=str(landing_dir))
        whole_day_pings = pings_before_tick(source, tick)
        simulator_seconds = simulator_window_seconds(cache, tick)

        stored = StoredPartitions(base_dir=str(data_dir))
        pure_runs = []
        for i in range(args.repeats):
            pure_runs.append(pure_tick(cache, source, tick, stored, artifacts))
            print(f"  pure path {i + 1}/{args.repeats}: {pure_runs[-1]['total']:.2f} s", flush=True)

        dagster_runs = []
        with dg.instance_for_test() as instance:
            t0 = time.perf_counter()
            resources = local_resources(str(data_dir), str(artifacts_dir), source)
            job = build_definitions(resources).resolve_job_def("forecast_job")
            build_seconds = time.perf_counter() - t0
            for i in range(args.repeats):
                dagster_runs.append(dagster_tick(job, instance, args.tick))
                wall = dagster_runs[-1]["end to end"]
                print(f"  dagster {i + 1}/{args.repeats}: {wall:.2f} s", flush=True)

        folders = {
            "data_dir": str(data_dir),
            "artifacts_dir": str(artifacts_dir),
            "landing_dir": str(landing_dir),
        }
        launched_runs, multiprocess_runs = [], []
        with dg.instance_for_test() as instance:
            for i in range(args.repeats):
                launched_runs.append(launched_tick(instance, args.tick, folders, "own"))
                wall = launched_runs[-1]["end to end"]
                print(f"  launched {i + 1}/{args.repeats}: {wall:.2f} s", flush=True)
            multiprocess_runs.append(launched_tick(instance, args.tick, folders, "multiprocess"))
            wall = multiprocess_runs[-1]["end to end"]
            print(f"  launched, multiprocess executor: {wall:.2f} s", flush=True)

    pings = pure_runs[0].pop("pings read")
    for run in pure_runs[1:]:
        run.pop("pings read")
    rows = summarize(pure_runs, "(a) ")
    rows.append(["(b) build_definitions + resolve forecast_job (once)", f"{build_seconds:.3f}"])
    rows[-1] += ["-", "-"]
    rows += summarize(dagster_runs, "(b) forecast_job ")
    rows += summarize(launched_runs, "(c) launched forecast_job (own executor) ")
    rows += summarize(multiprocess_runs, "(c) launched, multiprocess executor (once) ")
    rows.append(
        [
            "simulated source's read_probes_window (simulates the whole day; once)",
            f"{simulator_seconds:.3f}",
            "-",
            "-",
        ]
    )
    table = markdown(["stage", "median s", "min s", "max s"], rows)
    predict = statistics.median(run[PREDICTION_STEP] for run in pure_runs)
    functions = statistics.median(run["total"] for run in pure_runs)
    dagster_run = statistics.median(run["end to end"] for run in dagster_runs)
    launched = statistics.median(run["end to end"] for run in launched_runs)
    summary = (
        f"pings read: {pings:,.0f} (window from {read_start:%H:%M} UTC and each vehicle's "
        f"look-back), against {whole_day_pings:,} in the day(s) so far\n"
        f"prediction step (forecast_tick): {predict:.3f} s\n"
        f"whole tick as functions: {functions:.3f} s = {functions / predict:.1f}x the "
        f"prediction step (goal <= 5x, < 1 s on a quiet machine)\n"
        f"whole tick as a Dagster run: {dagster_run:.3f} s = {dagster_run / predict:.1f}x "
        f"the prediction step (goal < 5 s on a quiet machine)\n"
        f"as a launched run (own executor): {launched:.3f} s; with the multiprocess "
        f"executor: {multiprocess_runs[0]['end to end']:.3f} s"
    )
    print("\n" + table + "\n\n" + summary)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(f"{machine()}\n\ntick {tick.isoformat()}\n\n{table}\n\n{summary}\n")
        print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
