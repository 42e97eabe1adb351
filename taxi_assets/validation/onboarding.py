"""Building blocks of onboarding a feed: from its own stored days to a reviewed validation
folder (the schemas of the validated assets and the drift thresholds).

Pure functions over frames, so the ``taxi-assets onboard`` command, a test or a notebook
call them the same way:

1. :func:`read_stored_days` scans the stored partitions of the reference days;
2. :func:`infer_validation_schemas` infers each validated asset's schema from them;
3. :func:`calibrate_validation_thresholds` derives the drift thresholds from the distances
   between the feed's consecutive days (binned with the new schemas' edges);
4. :func:`validation_folder_changes` says, one readable line per change, what writing them
   would change in the folder (for review), and :func:`write_validation_folder` writes them.

:func:`onboard_validation_folder` chains the four over stored days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from taxi_assets.validation.gate import VALIDATED_ASSETS
from taxi_assets.validation.schema import (
    DataSchema,
    configured_validation_dir,
    infer_schema,
    save_schema,
    schema_diff,
    schema_path,
)
from taxi_assets.validation.schema_cli import SCHEMA_ASSETS, scan_partitions
from taxi_assets.validation.thresholds import (
    DEFAULT_MARGIN,
    NOT_COMPARED_BETWEEN_DAYS,
    CalibratedThresholds,
    ThresholdFloors,
    calibrate_drift_thresholds,
    consecutive_day_distances,
    drift_thresholds_diff,
    save_drift_thresholds,
    thresholds_path,
)

Frames = Mapping[str, pl.DataFrame | pl.LazyFrame]


def read_stored_days(
    data_dir: Path, days: Sequence[str], assets: Sequence[str] = VALIDATED_ASSETS
) -> dict[str, dict[str, pl.LazyFrame]]:
    """asset -> partition key -> the stored partition, lazily; ``FileNotFoundError`` lists
    every partition missing."""
    return {asset: scan_partitions(data_dir, asset, days) for asset in assets}


def infer_validation_schemas(frames: Mapping[str, Frames]) -> dict[str, DataSchema]:
    """The schema of each validated asset (asset -> partition key -> frame), inferred the
    way ``taxi-assets schema infer`` does (cells against the service area, vehicle ids
    left out, rain optional)."""
    unknown = sorted(set(frames) - set(SCHEMA_ASSETS))
    if unknown:
        raise ValueError(f"no schema rules for asset(s) {unknown}; known: {sorted(SCHEMA_ASSETS)}")
    return {
        asset: infer_schema(asset, days, **SCHEMA_ASSETS[asset]) for asset, days in frames.items()
    }


def calibrate_validation_thresholds(
    frames: Mapping[str, Frames],
    schemas: Mapping[str, DataSchema],
    margin: float = DEFAULT_MARGIN,
    floors: ThresholdFloors = ThresholdFloors(),  # noqa: B008 - frozen, so sharing is safe
    ignore: Sequence[str] = NOT_COMPARED_BETWEEN_DAYS,
) -> CalibratedThresholds:
    """Drift thresholds from the feed's own consecutive days: per feature the largest
    distance between two consecutive reference days times ``margin``, at least the floors.
    Each asset's days are binned with the edges of its schema in ``schemas``."""
    missing = sorted(set(frames) - set(schemas))
    if missing:
        raise ValueError(f"no schema given for asset(s) {missing}: infer them first")
    distances = pl.concat(
        [consecutive_day_distances(days, schemas[asset], ignore) for asset, days in frames.items()]
    )
    return calibrate_drift_thresholds(distances, margin, floors, ignore)


def validation_folder_changes(
    schemas: Mapping[str, DataSchema],
    thresholds: CalibratedThresholds,
    directory: Path | None = None,
) -> list[str]:
    """What writing ``schemas`` and ``thresholds`` into the folder would change, one line per
    change under a heading per file; empty if nothing would. A file that is missing or
    unreadable is reported as new or replaced."""
    folder = configured_validation_dir(directory)
    lines: list[str] = []
    for asset, schema in schemas.items():
        path = schema_path(asset, folder)
        old = _read(path)
        if old == schema.to_json():
            continue
        if old is None:
            lines.append(f"{path}: new schema ({len(schema.features)} features)")
            continue
        try:
            changes = schema_diff(DataSchema.from_json(old, source=str(path)), schema)
        except ValueError as error:
            changes = [f"cannot be read ({error}); it will be replaced"]
        lines.append(f"{path}:")
        lines += [f"  {change}" for change in changes or ["(formatting only)"]]
    path = thresholds_path(folder)
    old = _read(path)
    if old is None:
        lines.append(f"{path}: new drift thresholds")
        lines += [f"  {line}" for line in _thresholds_summary(thresholds)]
    elif old != thresholds.to_json():
        try:
            changes = drift_thresholds_diff(
                CalibratedThresholds.from_json(old, source=str(path)), thresholds
            )
        except ValueError as error:
            changes = [f"cannot be read ({error}); it will be replaced"]
        lines.append(f"{path}:")
        lines += [f"  {change}" for change in changes or ["(formatting only)"]]
    return lines


def write_validation_folder(
    schemas: Mapping[str, DataSchema],
    thresholds: CalibratedThresholds,
    directory: Path | None = None,
) -> list[Path]:
    """Write every schema and the thresholds into the folder (created if needed), each file
    atomically; return the paths written."""
    folder = configured_validation_dir(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = [save_schema(schema, schema_path(asset, folder)) for asset, schema in schemas.items()]
    return [*written, save_drift_thresholds(thresholds, folder)]


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def _thresholds_summary(calibrated: CalibratedThresholds) -> list[str]:
    t = calibrated.thresholds
    lines = [
        f"numeric_js {t.numeric_js:.4g}, categorical_linf {t.categorical_linf:.4g}, "
        f"row count ratio [{t.row_count_ratio_min:.4g}, {t.row_count_ratio_max:.4g}]"
    ]
    for feature, threshold in sorted(t.per_feature.items()):
        seen = calibrated.normal_max.get(feature)
        why = "" if seen is None else f" (largest normal distance {seen:.4g})"
        lines.append(f"{feature}: {threshold:.4g}{why}")
    return lines


@dataclass(frozen=True)
class OnboardedValidation:
    """What onboarding inferred for a feed, what it changes, and what it wrote (if asked)."""

    schemas: dict[str, DataSchema]
    thresholds: CalibratedThresholds
    changes: list[str]
    written: list[Path]


def onboard_validation_folder(
    data_dir: Path,
    days: Sequence[str],
    directory: Path | None = None,
    write: bool = False,
    margin: float = DEFAULT_MARGIN,
    assets: Sequence[str] = VALIDATED_ASSETS,
) -> OnboardedValidation:
    """Infer the schemas and calibrate the drift thresholds from the stored ``days`` of
    ``assets`` under ``data_dir``, list what changes in the validation folder and, with
    ``write``, write them there (the configured folder unless ``directory`` is given)."""
    if len(days) < 2:
        raise ValueError(
            f"onboarding needs at least 2 reference days (consecutive-day distances), got "
            f"{list(days)}"
        )
    frames = read_stored_days(data_dir, days, assets)
    schemas = infer_validation_schemas(frames)
    thresholds = calibrate_validation_thresholds(frames, schemas, margin)
    changes = validation_folder_changes(schemas, thresholds, directory)
    written = write_validation_folder(schemas, thresholds, directory) if write else []
    return OnboardedValidation(schemas, thresholds, changes, written)
