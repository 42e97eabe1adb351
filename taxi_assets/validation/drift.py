"""Drift between two days' statistics, after TFDV's drift comparators.

Numeric features are compared by Jensen-Shannon divergence of their histograms (only when
both days were binned with the same edges), categorical features by the L-infinity
distance of their value frequencies, and the row count by its ratio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from taxi_assets.validation.statistics import CATEGORICAL, NUMERIC

ROW_COUNT = "__row_count__"
JENSEN_SHANNON = "jensen_shannon"
L_INFINITY = "l_infinity"
ROW_COUNT_RATIO = "row_count_ratio"
_SHORT_METRIC = {JENSEN_SHANNON: "JS", L_INFINITY: "L-inf", ROW_COUNT_RATIO: "ratio"}

COMPARISON_SCHEMA = pl.Schema(
    {
        "feature": pl.String,
        "metric": pl.String,
        "distance": pl.Float64,
        "threshold": pl.Float64,
        "threshold_min": pl.Float64,
        "crossed": pl.Boolean,
    }
)


def _histogram(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must be a flat sequence of finite, non-negative numbers")
    return array


def jensen_shannon_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """Base-2 Jensen-Shannon divergence of two histograms (counts or shares), in [0, 1].

    0 for the same shape; 0.0 when both are all zeros and 1.0 when only one is (an empty
    day against a busy one is as different as it gets). Equals
    ``scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2``.
    """
    p_counts, q_counts = _histogram(p, "p"), _histogram(q, "q")
    if p_counts.shape != q_counts.shape:
        raise ValueError(f"histograms differ in length: {len(p_counts)} != {len(q_counts)}")
    p_total, q_total = p_counts.sum(), q_counts.sum()
    if p_total == 0 or q_total == 0:
        return 0.0 if p_total == q_total else 1.0
    p_share, q_share = p_counts / p_total, q_counts / q_total
    middle = (p_share + q_share) / 2

    def kl_to_middle(share: np.ndarray) -> float:
        # Empty bins contribute nothing (0 log 0 = 0); middle > 0 wherever share > 0.
        present = share > 0
        return float(np.sum(share[present] * np.log2(share[present] / middle[present])))

    divergence = (kl_to_middle(p_share) + kl_to_middle(q_share)) / 2
    # Rounding can leave a hair below 0 or above 1.
    return min(max(divergence, 0.0), 1.0)


def l_infinity_distance(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Largest gap in frequency of any category between two value counts (TFDV's L-inf).

    Each side is normalized to frequencies first; categories missing on a side count 0.
    Empty (or all-zero) against empty is 0, against non-empty 1.
    """
    for name, counts in (("p", p), ("q", q)):
        if any(not math.isfinite(n) or n < 0 for n in counts.values()):
            raise ValueError(f"{name} counts must be finite and non-negative")
    p_total, q_total = sum(p.values()), sum(q.values())
    if p_total == 0 or q_total == 0:
        return 0.0 if p_total == q_total else 1.0
    return max(abs(p.get(key, 0) / p_total - q.get(key, 0) / q_total) for key in p.keys() | q)


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"DriftThresholds.{name} must be in [0, 1], got {value!r}")


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted: distance > threshold (TFDV's convention).

    Distances are in [0, 1], so a threshold of 1 never fires. The row count crosses when
    current / reference rows falls outside [row_count_ratio_min, row_count_ratio_max].
    """

    numeric_js: float = 0.1
    categorical_linf: float = 0.1
    row_count_ratio_min: float = 0.5
    row_count_ratio_max: float = 2.0
    # Excluded from hashing: a dict is unhashable, and thresholds are never dict keys.
    per_feature: Mapping[str, float] = field(default_factory=dict, hash=False)
    ignore: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _check_unit("numeric_js", self.numeric_js)
        _check_unit("categorical_linf", self.categorical_linf)
        for feature, threshold in self.per_feature.items():
            _check_unit(f"per_feature[{feature!r}]", threshold)
        if not 0.0 <= self.row_count_ratio_min <= 1.0:
            raise ValueError(
                "DriftThresholds.row_count_ratio_min must be in [0, 1], "
                f"got {self.row_count_ratio_min!r}"
            )
        if not self.row_count_ratio_max >= 1.0:  # written so that NaN fails too
            raise ValueError(
                "DriftThresholds.row_count_ratio_max must be >= 1, "
                f"got {self.row_count_ratio_max!r}"
            )
        if isinstance(self.ignore, str):
            raise ValueError(
                f"DriftThresholds.ignore must be a set of feature names, got {self.ignore!r}"
            )
        # A frozen dataclass can only normalize its fields through object.__setattr__.
        object.__setattr__(self, "ignore", frozenset(self.ignore))
        object.__setattr__(self, "per_feature", dict(self.per_feature))

    def threshold(self, feature: str, metric: str) -> float:
        """The threshold of ``feature`` under ``metric``: its override or the default."""
        default = self.numeric_js if metric == JENSEN_SHANNON else self.categorical_linf
        return self.per_feature.get(feature, default)


def _rows(stats: pl.DataFrame) -> int:
    return int(stats["rows"][0]) if stats.height else 0


def _row_count_ratio(current_rows: int, reference_rows: int) -> float:
    if reference_rows == 0:
        return 1.0 if current_rows == 0 else math.inf
    return current_rows / reference_rows


def _severity(value: float, bound: float) -> float:
    """value / bound: above 1 exactly when value exceeds bound; 0 / 0 counts as 0."""
    if bound:
        return value / bound
    return math.inf if value > 0 else 0.0


def _edges(edges: list[float] | None) -> str:
    if edges is None:
        return "none"
    return f"{len(edges)} edges {edges[0]:.6g}..{edges[-1]:.6g}"


def _feature_distance(feature: str, kind: str, current: dict, reference: dict) -> float:
    if kind == NUMERIC:
        if current["bin_edges"] is None or current["bin_edges"] != reference["bin_edges"]:
            raise ValueError(
                f"feature {feature!r}: histograms have different bin edges "
                f"({_edges(current['bin_edges'])} vs {_edges(reference['bin_edges'])}); compute "
                "both statistics with the same bin_edges= (self-binned histograms do not compare)"
            )
        return jensen_shannon_divergence(current["histogram"], reference["histogram"])
    return l_infinity_distance(
        dict(zip(current["values"], current["value_counts"], strict=True)),
        dict(zip(reference["values"], reference["value_counts"], strict=True)),
    )


def compare_statistics(
    current: pl.DataFrame,
    reference: pl.DataFrame,
    thresholds: DriftThresholds = DriftThresholds(),  # noqa: B008 - frozen, so sharing is safe
) -> pl.DataFrame:
    """COMPARISON_SCHEMA: drift of ``current`` against ``reference`` statistics, worst first.

    One row per feature compared plus one ``__row_count__`` row (distance = current /
    reference rows, threshold = the max ratio, threshold_min = the min ratio). Numeric
    features compare by Jensen-Shannon divergence of histograms binned with the same
    edges (a ValueError names a feature whose edges differ), categorical ones by
    L-infinity distance of value frequencies. Skipped: timestamps, ``thresholds.ignore``,
    features on one side only, whose kind changed, or all null on a day that has rows
    (schema anomalies report those: missing columns, types, null fractions).
    Sorted crossed first, then by distance / threshold, descending.
    """
    by_feature = {row["feature"]: row for row in reference.iter_rows(named=True)}
    current_rows, reference_rows = _rows(current), _rows(reference)
    records = []
    for row in current.iter_rows(named=True):
        feature, kind = row["feature"], row["kind"]
        reference_row = by_feature.get(feature)
        if (
            feature in thresholds.ignore
            or kind not in (NUMERIC, CATEGORICAL)
            or reference_row is None
            or reference_row["kind"] != kind
            # All null on a day with rows (history not yet reaching back that far): the
            # null fraction is the schema check's to judge, not a distribution to compare.
            or (current_rows and not row["count"])
            or (reference_rows and not reference_row["count"])
        ):
            continue
        metric = JENSEN_SHANNON if kind == NUMERIC else L_INFINITY
        distance = _feature_distance(feature, kind, row, reference_row)
        threshold = thresholds.threshold(feature, metric)
        records.append(
            {
                "feature": feature,
                "metric": metric,
                "distance": distance,
                "threshold": threshold,
                "threshold_min": None,
                "crossed": distance > threshold,
                "severity": _severity(distance, threshold),
            }
        )
    ratio = _row_count_ratio(current_rows, reference_rows)
    low, high = thresholds.row_count_ratio_min, thresholds.row_count_ratio_max
    records.append(
        {
            "feature": ROW_COUNT,
            "metric": ROW_COUNT_RATIO,
            "distance": ratio,
            "threshold": high,
            "threshold_min": low,
            "crossed": not low <= ratio <= high,
            # How far outside (> 1) or inside (< 1) the band the ratio is, either side.
            "severity": max(_severity(ratio, high), _severity(low, ratio)),
        }
    )
    return (
        pl.DataFrame(records, schema={**COMPARISON_SCHEMA, "severity": pl.Float64})
        .sort(["crossed", "severity", "feature"], descending=[True, True, False])
        .drop("severity")
    )


def _format(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}g}"


def _crossed_features(comparison: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict | None]:
    """(feature rows, crossed feature rows, the row-count row or None)."""
    features = comparison.filter(pl.col("feature") != ROW_COUNT)
    row_count = comparison.filter(pl.col("feature") == ROW_COUNT)
    return (
        features,
        features.filter(pl.col("crossed")),
        row_count.row(0, named=True) if row_count.height else None,
    )


def _row_count_clause(row: dict, digits: int = 4) -> str:
    ratio, low, high = (
        _format(row[key], digits) for key in ("distance", "threshold_min", "threshold")
    )
    if row["distance"] < row["threshold_min"]:
        return f"row count ratio {ratio} < {low}"
    if row["distance"] > row["threshold"]:
        return f"row count ratio {ratio} > {high}"
    return f"row count ratio {ratio} within [{low}, {high}]"


def drift_report_markdown(comparison: pl.DataFrame, title: str, top: int = 10) -> str:
    """A markdown drift report of ``compare_statistics`` output: verdict and worst features."""
    features, crossed, row_count = _crossed_features(comparison)
    verdict = f"**{crossed.height} of {features.height} features crossed their threshold**"
    if row_count is not None:
        verdict += f"; {_row_count_clause(row_count)}"
        if row_count["crossed"]:
            verdict += " (crossed)"
    lines = [
        f"## {title}",
        "",
        verdict + ".",
        "",
        "| feature | metric | distance | threshold | crossed |",
        "| --- | --- | ---: | ---: | :---: |",
    ]
    for row in comparison.head(top).iter_rows(named=True):
        threshold = _format(row["threshold"])
        if row["threshold_min"] is not None:
            threshold = f"{_format(row['threshold_min'])} to {threshold}"
        lines.append(
            f"| {row['feature']} | {row['metric']} | {_format(row['distance'])} "
            f"| {threshold} | {'**yes**' if row['crossed'] else 'no'} |"
        )
    if comparison.height > top:
        lines.append(f"\n{comparison.height - top} more rows not shown.")
    return "\n".join(lines)


def _feature_clause(row: dict, comparison: str) -> str:
    return (
        f"{row['feature']} {_SHORT_METRIC[row['metric']]} {row['distance']:.3g} "
        f"{comparison} {row['threshold']:.3g}"
    )


def drift_description(comparison: pl.DataFrame, max_features: int = 5) -> str:
    """One sentence naming the features that drifted, by how much, against which threshold.

    E.g. "2 of 8 features drifted: pickups JS 0.231 > 0.1; status L-inf 0.15 > 0.1".
    """
    features, crossed, row_count = _crossed_features(comparison)
    row_count_crossed = row_count is not None and row_count["crossed"]
    if crossed.height:
        clauses = [_feature_clause(row, ">") for row in crossed.head(max_features).to_dicts()]
        if crossed.height > max_features:
            clauses.append(f"and {crossed.height - max_features} more")
        sentence = f"{crossed.height} of {features.height} features drifted: " + "; ".join(clauses)
        return sentence + (f"; {_row_count_clause(row_count, 3)}" if row_count_crossed else "")
    if features.height:
        worst = _feature_clause(features.row(0, named=True), "<=")
        sentence = f"No feature drifted beyond its threshold (worst: {worst})"
    else:
        sentence = "No feature compared"
    return sentence + (f", but {_row_count_clause(row_count, 3)}" if row_count_crossed else "")
