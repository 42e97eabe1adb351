"""Training-serving skew: do the live forecast's features look like the training features?

One function builds both (``features.build_features``), yet the inputs differ: live probes
through the live window versus stored days. A feature that the live path computes
differently (a late feed, a window cut short, a unit change in one source) shows as a
distribution the model never saw. Compared like with like: the tick's rows against the
training rows of the same bucket of the day and the same kind of day.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from taxi_assets.features import DAILY_FEATURES, RECENT_FEATURES
from taxi_assets.model.evaluation import day_kind
from taxi_assets.validation.drift import jensen_shannon_divergence

# The numeric features: the categorical ones are fixed by the comparison itself (each tick
# covers every cell once, and the day type chooses the reference rows).
SKEW_FEATURES = RECENT_FEATURES + DAILY_FEATURES
JENSEN_SHANNON = "jensen_shannon"
SKEW_SCHEMA = {
    "feature": pl.String,
    "metric": pl.String,
    "distance": pl.Float64,
    "null_fraction_serving": pl.Float64,
    "null_fraction_training": pl.Float64,
    "threshold": pl.Float64,
    "crossed": pl.Boolean,
}


def same_slot_reference(training: pl.LazyFrame, serving: pl.DataFrame) -> pl.DataFrame:
    """Training rows of the serving rows' bucket of the day and kind of day (weekday vs
    weekend/holiday); all kinds of day at that slot when the window has none of that kind.
    A tick forecasting several horizons is compared horizon by horizon: each with the
    training rows of its own horizon and target slot."""
    if "horizon" in serving.columns and serving["horizon"].n_unique() > 1:
        by_horizon = "horizon" in training.collect_schema().names()
        # One read of the training days for every horizon, cut to the slots they compare.
        slots = serving["bucket_of_day"].unique().implode()
        training = training.filter(pl.col("bucket_of_day").is_in(slots)).collect().lazy()
        return pl.concat(
            [
                same_slot_reference(
                    training.filter(pl.col("horizon") == horizon) if by_horizon else training,
                    rows,
                )
                for (horizon,), rows in sorted(
                    serving.partition_by("horizon", as_dict=True).items()
                )
            ]
        )
    slot = serving["bucket_of_day"][0]
    kind = serving.select(day_kind(pl.col("day_type"))).item(0, 0)
    at_slot = training.filter(pl.col("bucket_of_day") == slot).collect()
    same_kind = at_slot.filter(day_kind(pl.col("day_type")) == kind)
    return same_kind if same_kind.height else at_slot


def _histograms(serving: np.ndarray, training: np.ndarray, bins: int) -> tuple[list, list]:
    """Counts of both on edges at the training values' quantiles (counts are zero-inflated,
    so many quantiles coincide: the unique ones are the edges)."""
    edges = np.unique(np.quantile(training, np.linspace(0, 1, bins + 1)))
    # Bin i holds values in [edges[i-1], edges[i]); below and above the training range too.
    slots = len(edges) + 1
    return (
        np.bincount(np.searchsorted(edges, serving, side="right"), minlength=slots).tolist(),
        np.bincount(np.searchsorted(edges, training, side="right"), minlength=slots).tolist(),
    )


def feature_skew(
    serving: pl.DataFrame,
    training: pl.DataFrame,
    threshold: float,
    features: Sequence[str] = SKEW_FEATURES,
    bins: int = 10,
) -> pl.DataFrame:
    """Per feature: the Jensen-Shannon divergence (base 2) between serving and training
    values, both null fractions, and whether it crossed ``threshold``; worst first.

    A feature without any value on one side scores 1.0 if the other side has values:
    missing history at serving time is skew too.
    """
    records = []
    for name in features:
        live = serving[name].drop_nulls().to_numpy().astype(np.float64)
        past = training[name].drop_nulls().to_numpy().astype(np.float64)
        if len(live) and len(past):
            divergence = jensen_shannon_divergence(*_histograms(live, past, bins))
        else:
            divergence = 0.0 if len(live) == len(past) else 1.0
        records.append(_record(name, JENSEN_SHANNON, divergence, serving, training, threshold))
    return pl.DataFrame(records, schema=SKEW_SCHEMA).sort(["crossed", "distance"], descending=True)


def _record(
    name: str,
    metric: str,
    distance: float,
    serving: pl.DataFrame,
    training: pl.DataFrame,
    threshold: float,
) -> dict[str, object]:
    return {
        "feature": name,
        "metric": metric,
        "distance": distance,
        "null_fraction_serving": serving[name].null_count() / max(serving.height, 1),
        "null_fraction_training": training[name].null_count() / max(training.height, 1),
        "threshold": threshold,
        "crossed": distance > threshold,
    }
