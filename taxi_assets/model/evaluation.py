"""How good a street-hail forecast is on a held-out day, overall and slice by slice.

A *scored* frame has one row per cell, bucket and ``horizon`` (buckets between the one in
progress when the forecast is issued and the target; 0 when absent): ``cell``,
``bucket_start``, ``hour`` (Tokyo, 0-23), ``bucket_of_day``, ``day_type``, the ``actual``
street hails and one ``pred_<predictor>`` column per predictor present (see
:data:`PREDICTORS`). Overall metrics pool every horizon; each horizon also has its own. Counts are
Poisson-like, so next to MAE and RMSE we report the mean Poisson deviance; MAPE only on
busy rows, where a percentage error means something.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta

import polars as pl

from taxi_assets.calendar import validate_bucket_minutes
from taxi_assets.mesh import coarser_mesh_code
from taxi_assets.metadata import markdown_table

PREDICTORS = ("model", "production", "last_week", "historical_average", "oracle")
BASELINES = ("last_week", "historical_average")
METRICS = ("mae", "rmse", "poisson_deviance", "mape")
SLICE_KINDS = ("hour", "day_kind", "area", "busiest")
WEEKDAY, WEEKEND_OR_HOLIDAY = "weekday", "weekend_or_holiday"
# Baselines can predict 0, where the deviance is infinite for any y > 0; 1e-3 hails per
# bucket is far below anything the metric can tell apart, so it only removes the infinity.
DEVIANCE_PREDICTION_FLOOR = 1e-3
# Tokyo is UTC+9 all year (no DST), so Tokyo-midnight buckets are UTC buckets shifted by 9 h.
TOKYO_UTC_OFFSET = timedelta(hours=9)


def day_kind(day_type: pl.Expr) -> pl.Expr:
    """'weekday' or 'weekend_or_holiday': Saturdays and holidays pool their sparse data."""
    return (
        pl.when(day_type == "weekday").then(pl.lit(WEEKDAY)).otherwise(pl.lit(WEEKEND_OR_HOLIDAY))
    )


def metric_exprs(actual: str, predicted: str, mape_min_pickups: float) -> list[pl.Expr]:
    """rows, mae, rmse, poisson_deviance, mape (percent, null if no row qualifies), mape_rows.

    MAPE only counts rows whose actual count is at least ``mape_min_pickups``: on quiet
    cells a miss by one hail is a 100% error and would drown the rest.
    """
    y, mu = pl.col(actual), pl.col(predicted)
    error = mu - y
    mu_floored = mu.clip(lower_bound=DEVIANCE_PREDICTION_FLOOR)
    # y * ln(y / mu) tends to 0 as y -> 0, so rows with no hail contribute 2 * mu.
    y_log_ratio = pl.when(y > 0).then(y * (y / mu_floored).log()).otherwise(0.0)
    mape_row = y >= mape_min_pickups
    return [
        pl.len().cast(pl.Int64).alias("rows"),
        error.abs().mean().alias("mae"),
        (error**2).mean().sqrt().alias("rmse"),
        (2 * (y_log_ratio - (y - mu_floored))).mean().alias("poisson_deviance"),
        (100 * (error.abs() / y).filter(mape_row).mean()).alias("mape"),
        mape_row.sum().cast(pl.Int64).alias("mape_rows"),
    ]


def _present(scored: pl.DataFrame, predictors: Sequence[str]) -> list[str]:
    return [p for p in predictors if f"pred_{p}" in scored.columns]


def overall_metrics(
    scored: pl.DataFrame, predictors: Sequence[str] = PREDICTORS, mape_min_pickups: float = 10
) -> pl.DataFrame:
    """One row per predictor present in ``scored``: its metrics over every row."""
    return pl.concat(
        [
            scored.select(
                pl.lit(p).alias("predictor"), *metric_exprs("actual", f"pred_{p}", mape_min_pickups)
            )
            for p in _present(scored, predictors)
        ]
    )


def slice_metrics(
    scored: pl.DataFrame,
    predictors: Sequence[str],
    busiest_cells: Collection[int],
    mape_min_pickups: float = 10,
) -> pl.DataFrame:
    """Metrics per slice (hour, day kind, second-level mesh area, busiest cells or not).

    Long format, sorted by slice kind (in :data:`SLICE_KINDS` order), slice, then
    predictor (in ``predictors`` order).
    """
    slice_keys = {
        "hour": pl.col("hour").cast(pl.String).str.zfill(2),
        "day_kind": day_kind(pl.col("day_type")),
        "area": coarser_mesh_code(pl.col("cell"), "half", "second").cast(pl.String),
        "busiest": pl.when(pl.col("cell").is_in(list(busiest_cells)))
        .then(pl.lit("busiest"))
        .otherwise(pl.lit("other")),
    }
    keyed = scored.lazy().with_columns(**{f"_slice_{k}": e for k, e in slice_keys.items()})
    parts = [
        keyed.group_by(pl.col(f"_slice_{kind}").alias("slice"))
        .agg(*metric_exprs("actual", f"pred_{p}", mape_min_pickups))
        .with_columns(
            slice_kind=pl.lit(kind),
            predictor=pl.lit(p),
            _kind_rank=pl.lit(kind_rank),
            _predictor_rank=pl.lit(predictor_rank),
        )
        for kind_rank, kind in enumerate(SLICE_KINDS)
        for predictor_rank, p in enumerate(_present(scored, predictors))
    ]
    return (
        pl.concat(parts)
        .sort("_kind_rank", "slice", "_predictor_rank")
        .select("slice_kind", "slice", "predictor", "rows", *METRICS)
        .collect()
    )


def historical_average_table(training: pl.DataFrame) -> pl.DataFrame:
    """Mean street hails per cell, day kind and bucket of day over the training rows."""
    return (
        training.group_by("cell", day_kind(pl.col("day_type")).alias("day_kind"), "bucket_of_day")
        .agg(historical_average=pl.col("street_hail_pickups").cast(pl.Float64).mean())
        .sort("cell", "day_kind", "bucket_of_day")
    )


def historical_average_predictions(rows: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with ``pred_historical_average`` from :func:`historical_average_table`.

    A slot the training never saw falls back to the cell's mean over the table, and a cell
    it never saw to 0.0.
    """
    cell_means = table.group_by("cell").agg(_cell_mean=pl.col("historical_average").mean())
    return (
        rows.with_columns(_day_kind=day_kind(pl.col("day_type")))
        .join(
            table,
            left_on=["cell", "_day_kind", "bucket_of_day"],
            right_on=["cell", "day_kind", "bucket_of_day"],
            how="left",
            maintain_order="left",
        )
        .join(cell_means, on="cell", how="left", maintain_order="left")
        .with_columns(
            pred_historical_average=pl.coalesce("historical_average", "_cell_mean", pl.lit(0.0))
        )
        .drop("_day_kind", "historical_average", "_cell_mean")
    )


def last_week_predictions(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with ``pred_last_week``: the street hails of the same bucket 7 days earlier.

    Where that week is missing (``hails_last_week`` null) it falls back to
    ``pred_historical_average``, which ``rows`` must already have.
    """
    return rows.with_columns(
        pred_last_week=pl.coalesce(
            pl.col("hails_last_week").cast(pl.Float64), "pred_historical_average"
        )
    )


def oracle_predictions(true_demand: pl.DataFrame, bucket_minutes: int) -> pl.DataFrame:
    """The simulator's true expected street hails per cell and bucket: cell, bucket_start,
    pred_oracle (the sum over the 5-minute slices of each bucket)."""
    validate_bucket_minutes(bucket_minutes)
    # Buckets tile the Tokyo day, so flooring the shifted time on the epoch grid aligns them.
    bucket_start = (pl.col("slice_start") + TOKYO_UTC_OFFSET).dt.truncate(
        f"{bucket_minutes}m"
    ) - TOKYO_UTC_OFFSET
    return (
        true_demand.group_by("cell", bucket_start.alias("bucket_start"))
        .agg(pred_oracle=pl.col("expected_street_hails").cast(pl.Float64).sum())
        .sort("cell", "bucket_start")
    )


def slices_markdown(slices: pl.DataFrame) -> str:
    """One row per slice: its rows, then MAE and RMSE of every predictor side by side."""
    predictors = slices.get_column("predictor").unique(maintain_order=True).to_list()
    wide = slices.with_columns(pl.col("mae", "rmse").round(3)).pivot(
        "predictor",
        index=["slice_kind", "slice", "rows"],
        values=["mae", "rmse"],
        separator=" ",
        maintain_order=True,
    )
    metric_columns = [f"{m} {p}" for m in ("mae", "rmse") for p in predictors]
    wide = wide.select("slice_kind", "slice", "rows", *metric_columns)
    return markdown_table(wide, max_rows=wide.height)


def predictor_metadata(overall: pl.DataFrame) -> dict[str, float]:
    """Dagster metadata of :func:`overall_metrics`: ``mae``, ``rmse``... for the model;
    ``<metric>_<predictor>`` for the others."""
    metadata = {}
    for row in overall.iter_rows(named=True):
        suffix = "" if row["predictor"] == "model" else f"_{row['predictor']}"
        for metric in METRICS:
            if row[metric] is not None:
                metadata[f"{metric}{suffix}"] = float(row[metric])
    return metadata


def overall_markdown(overall: pl.DataFrame) -> str:
    """One row per predictor, one column per metric."""
    return markdown_table(overall.with_columns(pl.col(METRICS).round(3)), max_rows=overall.height)


def _with_horizon(scored: pl.DataFrame) -> pl.DataFrame:
    """Rows from before forecasts had horizons (no column, or null when stacked with later
    ticks) forecast the bucket in progress: horizon 0."""
    if "horizon" in scored.columns:
        return scored.with_columns(pl.col("horizon").fill_null(0))
    return scored.with_columns(horizon=pl.lit(0, pl.Int8))


def horizons_of(scored: pl.DataFrame) -> list[int]:
    """The horizons a scored frame holds, ascending."""
    return sorted(int(h) for h in _with_horizon(scored)["horizon"].unique().drop_nulls())


def by_horizon(scored: pl.DataFrame) -> dict[int, pl.DataFrame]:
    """The scored rows of each horizon: every rule and metric is applied to each alone."""
    scored = _with_horizon(scored)
    return {h: scored.filter(pl.col("horizon") == h) for h in horizons_of(scored)}


def horizon_metrics(
    scored: pl.DataFrame, predictors: Sequence[str] = PREDICTORS, mape_min_pickups: float = 10
) -> pl.DataFrame:
    """:func:`overall_metrics` of each horizon, with a ``horizon`` column first."""
    return pl.concat(
        [
            overall_metrics(rows, predictors, mape_min_pickups).select(
                pl.lit(h, pl.Int8).alias("horizon"), pl.all()
            )
            for h, rows in by_horizon(scored).items()
        ]
    )


def horizon_metadata(per_horizon: pl.DataFrame) -> dict[str, float]:
    """Dagster metadata of :func:`horizon_metrics`: :func:`predictor_metadata`'s keys with
    ``_h<horizon>`` appended (``rmse_h1``, ``rmse_last_week_h1``...), so each plots."""
    metadata = {}
    for (horizon,), rows in per_horizon.partition_by("horizon", as_dict=True).items():
        for key, value in predictor_metadata(rows.drop("horizon")).items():
            metadata[f"{key}_h{horizon}"] = value
    return metadata


def horizons_markdown(per_horizon: pl.DataFrame) -> str:
    """One row per horizon: its rows, then RMSE and Poisson deviance of every predictor."""
    predictors = per_horizon.get_column("predictor").unique(maintain_order=True).to_list()
    wide = per_horizon.with_columns(pl.col("rmse", "poisson_deviance").round(4)).pivot(
        "predictor",
        index=["horizon", "rows"],
        values=["rmse", "poisson_deviance"],
        separator=" ",
        maintain_order=True,
    )
    columns = [f"{m} {p}" for m in ("rmse", "poisson_deviance") for p in predictors]
    wide = wide.select("horizon", "rows", *columns).sort("horizon")
    return markdown_table(wide, max_rows=wide.height)
