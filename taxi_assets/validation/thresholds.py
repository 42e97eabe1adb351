"""Drift thresholds that belong to the deployment: calibrated on the feed's own days, kept as
JSON next to the schemas (``<validation folder>/drift_thresholds.json``), reviewed like code.

A threshold sits above the distances between the feed's normal consecutive days: the
largest one seen, times a margin, and never below a floor (two identical days would
otherwise give a threshold of zero that any noise crosses). The row count band is the
widest day-to-day ratio seen, widened by the same margin on a log scale.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from upath import UPath

from taxi_assets.storage import write_atomically
from taxi_assets.validation.drift import (
    JENSEN_SHANNON,
    L_INFINITY,
    ROW_COUNT,
    DriftThresholds,
    compare_statistics,
)
from taxi_assets.validation.schema import DataSchema, configured_validation_dir
from taxi_assets.validation.statistics import compute_statistics

THRESHOLDS_FILE = "drift_thresholds.json"
FORMAT_VERSION = 1
CALIBRATE_HINT = (
    "calibrate it from the feed's own days (`taxi-assets onboard`), or copy the committed "
    "taxi_assets/validation/schemas/drift_thresholds.json and review it"
)

# Identifiers, and features that change from one day to the next by design: the calendar
# of the day (a Monday after a Sunday) and the weather (a rainy day after a dry one).
NOT_COMPARED_BETWEEN_DAYS = ("vehicle_id", "weekday", "is_holiday", "day_type", "rain_mm_per_h")

# The largest normal distance times this. 13 consecutive pairs (two weeks) do not show
# every normal day; bench/calibrate_drift.py --holdout-days checks that later days stay
# below and the simulated breakages still cross.
DEFAULT_MARGIN = 2.0


@dataclass(frozen=True)
class ThresholdFloors:
    """The tightest thresholds calibration may set, however calm the reference days."""

    numeric_js: float = 0.002
    categorical_linf: float = 0.02
    row_count_ratio_min: float = 0.8  # the band is at least [0.8, 1.25]
    row_count_ratio_max: float = 1.25


@dataclass(frozen=True)
class CalibratedThresholds:
    """Drift thresholds with where they came from (written together to the JSON file)."""

    thresholds: DriftThresholds
    reference_partitions: list[str] = field(default_factory=list)
    margin: float | None = None
    # Largest distance between consecutive reference days per feature ("__row_count__":
    # the ratio furthest from 1), for the reviewer.
    normal_max: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        t = self.thresholds
        document = {
            "format_version": FORMAT_VERSION,
            "reference_partitions": sorted(self.reference_partitions),
            "margin": self.margin,
            "numeric_js": t.numeric_js,
            "categorical_linf": t.categorical_linf,
            "row_count_ratio_min": t.row_count_ratio_min,
            "row_count_ratio_max": t.row_count_ratio_max,
            "per_feature": dict(sorted(t.per_feature.items())),
            "ignore": sorted(t.ignore),
            "normal_max": dict(sorted(self.normal_max.items())),
        }
        return json.dumps(document, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "thresholds JSON") -> CalibratedThresholds:
        """Parse :meth:`to_json` output; ``ValueError`` naming ``source`` and the bad field."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}: not valid JSON: {error}") from error
        if not isinstance(document, dict):
            raise ValueError(f"{source}: expected an object at the top level")
        if document.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{source}: format_version {document.get('format_version')!r} is not "
                f"supported (expected {FORMAT_VERSION})"
            )

        def number(key: str) -> float:
            value = document.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{source}: {key} must be a number, got {value!r}")
            return float(value)

        def numbers(key: str) -> dict[str, float]:
            value = document.get(key, {})
            if not isinstance(value, dict) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
            ):
                raise ValueError(f"{source}: {key} must map feature names to numbers")
            return {str(k): float(v) for k, v in value.items()}

        def strings(key: str) -> list[str]:
            value = document.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{source}: {key} must be a list of strings")
            return value

        margin = document.get("margin")
        try:
            thresholds = DriftThresholds(
                numeric_js=number("numeric_js"),
                categorical_linf=number("categorical_linf"),
                row_count_ratio_min=number("row_count_ratio_min"),
                row_count_ratio_max=number("row_count_ratio_max"),
                per_feature=numbers("per_feature"),
                ignore=frozenset(strings("ignore")),
            )
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from error
        return cls(
            thresholds=thresholds,
            reference_partitions=strings("reference_partitions"),
            margin=None if margin is None else float(margin),
            normal_max=numbers("normal_max"),
        )


def thresholds_path(directory: Path | None = None) -> Path:
    """``<validation folder>/drift_thresholds.json``."""
    return configured_validation_dir(directory) / THRESHOLDS_FILE


def load_drift_thresholds(directory: Path | None = None) -> CalibratedThresholds:
    """The deployment's drift thresholds; errors name the file and how to create it."""
    path = thresholds_path(directory)
    if not path.exists():
        raise FileNotFoundError(f"no drift thresholds at {path}: {CALIBRATE_HINT}")
    return CalibratedThresholds.from_json(path.read_text(encoding="utf-8"), source=str(path))


def save_drift_thresholds(calibrated: CalibratedThresholds, directory: Path | None = None) -> Path:
    """Write the thresholds atomically into the validation folder; return the path."""
    path = thresholds_path(directory)
    text = calibrated.to_json().encode("utf-8")
    write_atomically(UPath(path), lambda handle: handle.write(text))
    return path


# ---------------------------------------------------------------------------------------------
# Calibration


def consecutive_day_distances(
    frames: Mapping[str, pl.DataFrame | pl.LazyFrame],
    schema: DataSchema,
    ignore: Sequence[str] = NOT_COMPARED_BETWEEN_DAYS,
) -> pl.DataFrame:
    """The drift distances between each pair of consecutive stored days (partition key ->
    frame, compared in key order), binned with the schema's edges.

    Columns: ``asset``, ``day``, ``compared_with``, ``feature``, ``metric``, ``distance``
    (the row count as its ratio, feature ``__row_count__``). Empty with fewer than 2 days.
    """
    keys = sorted(frames)
    edges = schema.bin_edges()
    statistics = {
        key: compute_statistics(
            frames[key].lazy().collect(),
            edges,
            categorical=schema.categorical,
            exclude=schema.excluded,
        )
        for key in keys
    }
    never = DriftThresholds(
        numeric_js=1.0,
        categorical_linf=1.0,
        row_count_ratio_min=0.0,
        row_count_ratio_max=math.inf,
        ignore=frozenset(ignore),
    )
    comparisons = [
        compare_statistics(statistics[today], statistics[yesterday], never)
        .select("feature", "metric", "distance")
        .with_columns(
            asset=pl.lit(schema.asset), day=pl.lit(today), compared_with=pl.lit(yesterday)
        )
        for yesterday, today in zip(keys, keys[1:], strict=False)
    ]
    columns = ["asset", "day", "compared_with", "feature", "metric", "distance"]
    if not comparisons:
        return pl.DataFrame(
            schema={
                "asset": pl.String,
                "day": pl.String,
                "compared_with": pl.String,
                "feature": pl.String,
                "metric": pl.String,
                "distance": pl.Float64,
            }
        )
    return pl.concat(comparisons).select(columns)


def calibrate_drift_thresholds(
    distances: pl.DataFrame,
    margin: float = DEFAULT_MARGIN,
    floors: ThresholdFloors = ThresholdFloors(),  # noqa: B008 - frozen, so sharing is safe
    ignore: Sequence[str] = NOT_COMPARED_BETWEEN_DAYS,
) -> CalibratedThresholds:
    """Thresholds from :func:`consecutive_day_distances` (of one or several assets, stacked).

    Per feature: the largest normal distance times ``margin``, at least the floor of its
    metric, at most 1 (a feature sharing its name across assets takes the largest). The
    defaults for features never measured: the loosest per-feature threshold of the metric
    (or its floor). The row count band: [r_min ** margin, r_max ** margin] over the ratios
    seen, at least as wide as the floors' band.
    """
    if margin < 1:
        raise ValueError(f"margin={margin} must be at least 1 (a threshold above every day seen)")
    finite = distances.filter(pl.col("distance").is_finite())
    if finite.is_empty():
        raise ValueError(
            "no distances between consecutive days to calibrate from: the reference window "
            "needs at least 2 stored days"
        )
    features = (
        finite.filter(pl.col("feature") != ROW_COUNT)
        .group_by("feature", "metric")
        .agg(pl.col("distance").max().alias("normal_max"))
        .sort("feature")
    )
    floor = {JENSEN_SHANNON: floors.numeric_js, L_INFINITY: floors.categorical_linf}
    per_feature: dict[str, float] = {}
    normal_max: dict[str, float] = {}
    for feature, metric, largest in features.iter_rows():
        threshold = min(1.0, max(floor[metric], _round_up(largest * margin)))
        per_feature[feature] = max(threshold, per_feature.get(feature, 0.0))
        normal_max[feature] = max(largest, normal_max.get(feature, 0.0))
    by_metric = dict(zip(features["feature"], features["metric"], strict=True))

    def loosest(metric: str) -> float:
        values = [t for name, t in per_feature.items() if by_metric[name] == metric]
        return max([floor[metric], *values])

    ratios = finite.filter(pl.col("feature") == ROW_COUNT)["distance"]
    low = min(floors.row_count_ratio_min, _round_down(float(ratios.min()) ** margin))
    high = max(floors.row_count_ratio_max, _round_up(float(ratios.max()) ** margin))
    furthest = max(ratios.to_list(), key=lambda r: abs(math.log(r)) if r > 0 else math.inf)
    normal_max[ROW_COUNT] = float(furthest)
    days = sorted(set(distances["day"].to_list()) | set(distances["compared_with"].to_list()))
    return CalibratedThresholds(
        thresholds=DriftThresholds(
            numeric_js=loosest(JENSEN_SHANNON),
            categorical_linf=loosest(L_INFINITY),
            row_count_ratio_min=max(0.0, low),
            row_count_ratio_max=max(1.0, high),
            per_feature=per_feature,
            ignore=frozenset(ignore),
        ),
        reference_partitions=days,
        margin=margin,
        normal_max={k: round(v, 6) for k, v in normal_max.items()},
    )


def _round_up(value: float) -> float:
    """Three significant digits, rounded up so a threshold stays above what it covers."""
    if value <= 0 or not math.isfinite(value):
        return value
    digits = 2 - math.floor(math.log10(value))
    return round(math.ceil(value * 10**digits - 1e-9) / 10**digits, max(digits, 0))


def _round_down(value: float) -> float:
    if value <= 0 or not math.isfinite(value):
        return value
    digits = 2 - math.floor(math.log10(value))
    return round(math.floor(value * 10**digits + 1e-9) / 10**digits, max(digits, 0))


# ---------------------------------------------------------------------------------------------
# Review


def drift_thresholds_diff(old: CalibratedThresholds, new: CalibratedThresholds) -> list[str]:
    """What changes from ``old`` to ``new``, one readable line per change; empty if nothing."""
    lines: list[str] = []
    if sorted(old.reference_partitions) != sorted(new.reference_partitions):
        lines.append(
            f"reference window: {_window(old.reference_partitions)} -> "
            f"{_window(new.reference_partitions)}"
        )
    if old.margin != new.margin:
        lines.append(f"margin: {old.margin} -> {new.margin}")
    before, after = old.thresholds, new.thresholds
    for name in ("numeric_js", "categorical_linf", "row_count_ratio_min", "row_count_ratio_max"):
        if getattr(before, name) != getattr(after, name):
            lines.append(f"{name}: {getattr(before, name):.4g} -> {getattr(after, name):.4g}")
    for feature in sorted(before.per_feature.keys() | after.per_feature.keys()):
        was, now = before.per_feature.get(feature), after.per_feature.get(feature)
        if was == now:
            continue
        seen = new.normal_max.get(feature)
        why = "" if seen is None else f" (largest normal distance {seen:.4g})"
        lines.append(f"~ {feature}: {_shown(was)} -> {_shown(now)}{why}")
    added, removed = sorted(after.ignore - before.ignore), sorted(before.ignore - after.ignore)
    if added:
        lines.append(f"ignored features added {added}")
    if removed:
        lines.append(f"ignored features removed {removed}")
    return lines


def _shown(value: float | None) -> str:
    return "default" if value is None else f"{value:.4g}"


def _window(partitions: Sequence[str]) -> str:
    ordered = sorted(partitions)
    if not ordered:
        return "(none)"
    return f"{ordered[0]}..{ordered[-1]} ({len(ordered)} partitions)"


def merged_thresholds(
    calibrated: DriftThresholds,
    overrides: Mapping[str, Any],
    per_feature: Mapping[str, float],
    extra_ignored: Sequence[str] = (),
    use_calibrated_per_feature: bool = True,
) -> DriftThresholds:
    """The folder's thresholds with run-time overrides on top: scalar overrides (not None)
    replace the folder's value, ``per_feature`` merges over the folder's per-feature
    thresholds (one override leaves the others calibrated), ``extra_ignored`` adds to the
    folder's ignored features."""
    scalars = {
        name: value
        for name, value in overrides.items()
        if value is not None
        and name in ("numeric_js", "categorical_linf", "row_count_ratio_min", "row_count_ratio_max")
    }
    base = dict(calibrated.per_feature) if use_calibrated_per_feature else {}
    return DriftThresholds(
        numeric_js=scalars.get("numeric_js", calibrated.numeric_js),
        categorical_linf=scalars.get("categorical_linf", calibrated.categorical_linf),
        row_count_ratio_min=scalars.get("row_count_ratio_min", calibrated.row_count_ratio_min),
        row_count_ratio_max=scalars.get("row_count_ratio_max", calibrated.row_count_ratio_max),
        per_feature={**base, **per_feature},
        ignore=frozenset(calibrated.ignore) | frozenset(extra_ignored),
    )
