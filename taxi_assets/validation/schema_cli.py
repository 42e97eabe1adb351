"""``taxi-assets schema infer``: re-infer an asset's schema from stored partitions for review.

Without ``--write`` it is a dry run that prints what would change and exits 1 if anything
would (0 if not), so it can guard a review; with ``--write`` it saves the schema in the
deployment's validation folder (``--schema-dir``, else ``TAXI_ASSETS_VALIDATION_DIR``, else
the package's committed folder), to be read in ``git diff`` and committed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from taxi_assets.features import DAY_TYPES, RAIN_FEATURE
from taxi_assets.validation.schema import (
    DataSchema,
    configured_validation_dir,
    infer_schema,
    save_schema,
    schema_diff,
    schema_path,
)

# How each validated asset's schema is inferred (keyword arguments of infer_schema). Mesh
# cells are identifiers checked against the service area: a range over them means nothing,
# and a cell the reference window happened not to see is as valid as any other. Vehicle
# ids are opaque (strings or integers, a new taxi every day): the contract checks them,
# the schema leaves them out. Rain may be missing entirely (a feed without weather), and
# has no range: a rainier hour than the reference's is weather, not a broken feed (the
# Weather contract bounds it).
SCHEMA_ASSETS: Mapping[str, dict[str, Any]] = {
    "clean_probes": {"service_area_cells": ("cell",), "exclude": ("vehicle_id",)},
    "cell_demand": {"service_area_cells": ("cell",)},
    "training_features": {
        "service_area_cells": ("cell",),
        "categorical": ("day_type",),
        "known_categories": {"day_type": DAY_TYPES},
        "optional": (RAIN_FEATURE,),
        "unbounded": (RAIN_FEATURE,),
    },
}
EXIT_UNCHANGED, EXIT_CHANGED, EXIT_ERROR = 0, 1, 2


def default_data_dir() -> Path:
    """The partitions folder the pipeline writes to (``TAXI_ASSETS_DATA_DIR`` or ``data``)."""
    return Path(os.environ.get("TAXI_ASSETS_DATA_DIR") or "data")


def window(start: date, days: int) -> list[str]:
    """Partition keys of ``days`` consecutive days from ``start``."""
    return [(start + timedelta(days=offset)).isoformat() for offset in range(days)]


def scan_partitions(data_dir: Path, asset: str, keys: Sequence[str]) -> dict[str, pl.LazyFrame]:
    """The stored partitions ``<data_dir>/<asset>/<key>.parquet``, lazily; all must exist."""
    paths = {key: data_dir / asset / f"{key}.parquet" for key in keys}
    missing = [str(path) for path in paths.values() if not path.exists()]
    if missing:
        raise FileNotFoundError(
            f"{asset}: {len(missing)} of {len(keys)} partitions missing (materialize them "
            "first, e.g. `taxi-assets run`):\n  " + "\n  ".join(missing)
        )
    return {key: pl.scan_parquet(path) for key, path in paths.items()}


def infer_command(
    asset: str,
    start: date,
    days: int,
    data_dir: Path | None = None,
    write: bool = False,
    schema_dir: Path | None = None,
) -> int:
    """Infer, print the diff against the committed schema, write with ``write``; exit code."""
    if asset not in SCHEMA_ASSETS:
        print(f"unknown asset {asset!r}; one of {sorted(SCHEMA_ASSETS)}", file=sys.stderr)
        return EXIT_ERROR
    if days < 1:
        print(f"--days must be at least 1, got {days}", file=sys.stderr)
        return EXIT_ERROR
    data_dir = data_dir if data_dir is not None else default_data_dir()
    path = schema_path(asset, configured_validation_dir(schema_dir))
    try:
        frames = scan_partitions(data_dir, asset, window(start, days))
        schema = infer_schema(asset, frames, **SCHEMA_ASSETS[asset])
    except (FileNotFoundError, ValueError) as error:
        print(f"schema infer: {error}", file=sys.stderr)
        return EXIT_ERROR

    keys = schema.reference_partitions
    print(f"{asset}: schema inferred from {len(keys)} partition(s) {keys[0]}..{keys[-1]}")
    text = schema.to_json()
    old_text = path.read_text(encoding="utf-8") if path.exists() else None
    if old_text == text:
        print(f"unchanged: {path}")
        return EXIT_UNCHANGED
    if old_text is None:
        print(f"new schema ({len(schema.features)} features): {', '.join(schema.features)}")
    else:
        try:
            changes = schema_diff(DataSchema.from_json(old_text, source=str(path)), schema)
        except ValueError as error:
            changes = [f"the committed schema cannot be read ({error}); it will be replaced"]
        print(f"changes against {path}:")
        for line in changes or ["(formatting only)"]:
            print(f"  {line}")
    if not write:
        print("dry run: nothing written; add --write to save it")
        return EXIT_CHANGED
    save_schema(schema, path)
    print(f"wrote {path}; review it with `git diff {path}` and commit it")
    return EXIT_UNCHANGED
