"""Where training time goes: the demand regressor alone, fitted with variants on the same rows.

Reads the per-day cell demand that bench_model.py caches (run it once with the same
``--days`` first), builds the features of every day but the last as bench_model does (kept
as parquet next to the cache, so the next run skips it), draws one horizon per cell and
bucket and holds out the last training day for early stopping, as train_model does, then
fits the demand regressor once per variant and prints its wall and CPU seconds, the trees
kept and the RMSE and MAE on the held-out day (every horizon).

A variant is a JSON object of CatBoost parameters over the former settings (150 trees at
0.15, CatBoost's own 10 Newton steps a leaf, every row), plus two keys of this script:
``row_share`` (a uniform random share of the training rows) and ``no_hail_row_share`` (every
row with a street hail and that share of the others, weighted, as train_model samples).

    python bench/bench_training_variants.py --days 29 '{}' '{"leaf_estimation_iterations": 1}' \\
        '{"leaf_estimation_iterations": 1, "no_hail_row_share": 0.1}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from catboost import CatBoostRegressor

from taxi_assets.features import SUPPLY_TARGET, TARGET
from taxi_assets.model.training import (
    ROW_WEIGHT,
    _pool,
    sample_horizons,
    sample_no_hail_rows,
    split_by_time,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_model  # noqa: E402

FORMER = {
    "loss_function": "Poisson",
    "eval_metric": "Poisson",
    "iterations": 150,
    "learning_rate": 0.15,
    "depth": 6,
    "l2_leaf_reg": 3.0,
    "border_count": 64,
    "max_ctr_complexity": 1,
    "random_seed": 0,
    "od_type": "Iter",
    "od_wait": 20,
    "use_best_model": True,
    "allow_writing_files": False,
    "verbose": False,
}


def feature_rows(
    days: list[date], cache: bench_model.DayCache
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(training feature rows of every day but the last, the last day's rows)."""
    path = cache.folder / f"features-{days[0]}-{len(days)}days.parquet"
    held_path = path.with_suffix(".held.parquet")
    if not path.exists():
        demand = {day: cache.cell_demand(day) for day in days}
        weather = {day: cache.weather(day) for day in days}
        started = time.perf_counter()
        rows = pl.concat([bench_model.day_features(d, demand, weather) for d in days[:-1]])
        print(f"features built in {time.perf_counter() - started:.1f} s", flush=True)
        rows.write_parquet(path)
        bench_model.day_features(days[-1], demand, weather).write_parquet(held_path)
    return pl.read_parquet(path), pl.read_parquet(held_path)


def fit(
    variant: dict[str, object], train: pl.DataFrame, valid: pl.DataFrame, held: pl.DataFrame
) -> str:
    settings = dict(FORMER)
    settings.update({k: v for k, v in variant.items() if not k.endswith("row_share")})
    rows, weight = train, None
    if "row_share" in variant:
        rows = train.sample(fraction=float(variant["row_share"]), seed=0)
    if "no_hail_row_share" in variant:
        rows, weight = (
            sample_no_hail_rows(train, float(variant["no_hail_row_share"]), 0),
            ROW_WEIGHT,
        )
    pools = _pool(rows, TARGET, weight=weight), _pool(valid, TARGET)
    model = CatBoostRegressor(**settings, thread_count=-1)
    wall, cpu = time.perf_counter(), bench_model.cpu_seconds()
    model.fit(pools[0], eval_set=pools[1])
    wall, cpu = time.perf_counter() - wall, bench_model.cpu_seconds() - cpu
    predicted = model.predict(_pool(held, None), prediction_type="Exponent")
    error = predicted - held[TARGET].to_numpy()
    rmse, mae = float(np.sqrt(np.mean(error**2))), float(np.mean(np.abs(error)))
    return (
        f"| {json.dumps(variant)} | {rows.height:,} | {wall:.1f} | {cpu:.1f} | "
        f"{model.tree_count_} | {rmse:.5f} | {mae:.5f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", type=json.loads, help="JSON objects")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 4, 20))
    parser.add_argument("--days", type=int, default=29)
    parser.add_argument("--fleet", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    print(bench_model.machine(), flush=True)
    days = [args.start + timedelta(days=i) for i in range(args.days)]
    cache = bench_model.DayCache.at(bench_model.RESULTS_DIR / "model_cache", args.fleet, args.seed)
    rows, held = feature_rows(days, cache)
    labelled = sample_horizons(rows.drop_nulls([TARGET, SUPPLY_TARGET]), 1, 0)
    train, valid = split_by_time(labelled, 1)
    held = held.drop_nulls(TARGET)
    print(f"{train.height:,} training rows, {valid.height:,} early-stopping rows", flush=True)
    print("| variant | rows trained | wall s | CPU s | trees | held-out RMSE | held-out MAE |")
    print("|---|---:|---:|---:|---:|---:|---:|", flush=True)
    for variant in args.variants:
        print(fit(variant, train, valid, held), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
