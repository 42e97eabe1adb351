"""Scoring models on held-out days: every predictor on the same rows, and rolling-origin CV."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from taxi_assets.features import HORIZON, TARGET
from taxi_assets.model.evaluation import (
    historical_average_predictions,
    historical_average_table,
    last_week_predictions,
    oracle_predictions,
    overall_metrics,
)
from taxi_assets.model.training import (
    TrainedModel,
    TrainingParams,
    predict_demand,
    rolling_origin_folds,
    tokyo_day,
    train_model,
)

SCORED_KEYS = ("cell", "bucket_start", "horizon", "hour", "bucket_of_day", "day_type")


def score_held_out(
    held_out: pl.DataFrame,
    candidate: TrainedModel,
    training_rows: pl.DataFrame,
    production: TrainedModel | None = None,
    true_demand: pl.DataFrame | None = None,
    bucket_minutes: int = 15,
) -> pl.DataFrame:
    """One row per cell, bucket and horizon of ``held_out`` with ``actual`` and each
    predictor (the baselines and the oracle do not depend on the horizon).

    The baselines come from ``training_rows`` (the candidate's own window), so they know
    exactly what the model knew; the oracle, when the source knows the true rate, is the
    floor no model can beat.
    """
    rows = held_out.drop_nulls(TARGET)
    if HORIZON not in rows.columns:
        rows = rows.with_columns(pl.lit(0, pl.Int8).alias(HORIZON))
    scored = rows.with_columns(
        actual=pl.col(TARGET).cast(pl.Float64),
        pred_model=pl.Series(predict_demand(candidate.demand, candidate.params, rows)),
    )
    if production is not None:
        scored = scored.with_columns(
            pred_production=pl.Series(predict_demand(production.demand, production.params, rows))
        )
    scored = last_week_predictions(
        historical_average_predictions(scored, historical_average_table(training_rows))
    )
    if true_demand is not None:
        scored = scored.join(
            oracle_predictions(true_demand, bucket_minutes),
            on=["cell", "bucket_start"],
            how="left",
            maintain_order="left",
        )
    return scored.select(*SCORED_KEYS, "actual", pl.col("^pred_.*$").cast(pl.Float64))


def busiest_cells(training_rows: pl.DataFrame, n: int) -> list[int]:
    """The ``n`` cells with the most street hails over the training rows."""
    return (
        training_rows.group_by("cell")
        .agg(pl.col(TARGET).sum())
        .sort([TARGET, "cell"], descending=[True, False])
        .head(n)["cell"]
        .to_list()
    )


def cross_validate(
    rows: pl.DataFrame,
    params: TrainingParams,
    folds: int,
    validation_days: int = 1,
    log: Callable[[str], None] = lambda _: None,
) -> pl.DataFrame:
    """Rolling-origin cross-validation over the window's days.

    Fold k trains on every day before its test day (early stopping on the last of them)
    and scores the test day, model and baselines side by side. Returns one row per fold and
    predictor with the metrics; :func:`fold_summary` turns it into means and spreads.
    """
    days = rows.select(tokyo_day().unique()).to_series().sort().to_list()
    test_days = rolling_origin_folds(days, folds, min_train_days=validation_days + 1)
    results = []
    for fold, test_day in enumerate(test_days, start=1):
        before = rows.filter(tokyo_day() < test_day)
        test = rows.filter(tokyo_day() == test_day)
        log(f"Cross-validation fold {fold}/{len(test_days)}: test day {test_day}")
        model = train_model(before, params, validation_days)
        scored = score_held_out(test, model, before)
        results.append(
            overall_metrics(scored, ("model", "last_week", "historical_average")).with_columns(
                fold=pl.lit(fold), test_day=pl.lit(test_day)
            )
        )
    return pl.concat(results)


def fold_summary(folds: pl.DataFrame) -> dict[str, float]:
    """``cv_<metric>_mean`` and ``cv_<metric>_std`` of the model across folds, plus how
    often it beat each baseline on RMSE (``cv_folds_beating_<baseline>``)."""
    model = folds.filter(pl.col("predictor") == "model").sort("fold")
    summary: dict[str, float] = {"cv_folds": float(model.height)}
    for metric in ("mae", "rmse", "poisson_deviance"):
        values = model[metric].to_numpy()
        summary[f"cv_{metric}_mean"] = float(np.mean(values))
        summary[f"cv_{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    for baseline in ("last_week", "historical_average"):
        reference = folds.filter(pl.col("predictor") == baseline).sort("fold")["rmse"].to_numpy()
        summary[f"cv_folds_beating_{baseline}"] = float(
            np.sum(model["rmse"].to_numpy() < reference)
        )
    return summary
