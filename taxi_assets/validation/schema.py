"""The data schema of an asset: what a day's frame is expected to look like.

A schema is inferred from a reference window of partitions (TensorFlow Data Validation
style), saved as JSON in the deployment's validation folder (``TAXI_ASSETS_VALIDATION_DIR``;
by default the package's committed ``taxi_assets/validation/schemas/``, inferred from the
simulator) as ``<asset>.json`` and reviewed like code: ``taxi-assets schema infer --asset ...
--start ... --days ... [--write]`` re-infers it, prints what would change and, with
``--write``, saves it in that folder. :func:`find_anomalies` checks a day's frame against
it: columns missing, new or of another type, categories never seen, mesh cells outside the
service area, values outside the expected range, too many nulls.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from upath import UPath

from taxi_assets.service_area import ServiceArea
from taxi_assets.storage import write_atomically

# The committed folder: schemas and drift thresholds inferred from the simulator.
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
VALIDATION_DIR_ENV = "TAXI_ASSETS_VALIDATION_DIR"
FORMAT_VERSION = 1
KINDS = ("numeric", "categorical", "timestamp")
ANOMALY_KINDS = (
    "missing_column",
    "new_column",
    "type_change",
    "new_category",
    "outside_service_area",
    "out_of_range",
    "null_fraction",
)
ANOMALY_SCHEMA = pl.Schema(
    {"feature": pl.String, "anomaly": pl.String, "detail": pl.String, "rows": pl.Int64}
)

# A day may be a little dirtier than the dirtiest reference day without being an anomaly.
NULL_FRACTION_ALLOWANCE = 0.01
# Share of the reference range added on each side: a quiet reference week must not make an
# ordinary busy day "out of range". Counts are heavy-tailed: with 10% a fresh start or
# another simulator seed failed a valid day by one value above the observed maximum (e.g.
# 25 street hails in a cell against 22 seen). A range catches gross breakage (a sign, a
# unit off by 1000); drift between days catches the subtle kind.
RANGE_MARGIN = 0.5
# Bounds and bin edges are kept to 7 significant digits (~1 m in latitude) so a re-inferred
# schema diffs on real changes, not on float noise.
SIGNIFICANT_DIGITS = 7
# How many new categories a detail line names before summarizing the rest.
SHOWN_CATEGORIES = 10
INFER_COMMAND = "taxi-assets schema infer --asset {asset} --start YYYY-MM-DD --days N --write"
_ASSET_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class FeatureSchema:
    """What one column is expected to hold."""

    name: str
    dtype: str  # dtype_name() of the Polars dtype, compared as a string
    kind: str  # "numeric" | "categorical" | "timestamp"
    required: bool  # the column must be present
    max_null_fraction: float  # highest null (or NaN) share allowed
    min: float | None  # numeric only: allowed range
    max: float | None
    categories: list[str] | None  # categorical only, sorted; None: domain too large to list
    bin_edges: list[float] | None  # numeric only: histogram edges for day-to-day statistics


@dataclass(frozen=True)
class DataSchema:
    """The expected columns of an asset's partitions, and where the expectation came from."""

    asset: str
    features: dict[str, FeatureSchema]  # in column order
    reference_partitions: list[str]
    categorical: list[str]  # integer (or other) columns treated as categorical
    # Columns left out on purpose (e.g. opaque vehicle ids): never reported as new.
    excluded: list[str] = field(default_factory=list)
    # Mesh-cell columns: any cell of the configured service area is valid, whether or not
    # the reference window saw it (their categories are not listed).
    service_area_cells: list[str] = field(default_factory=list)

    def bin_edges(self) -> dict[str, list[float]]:
        """Histogram edges per numeric feature (features without edges left out)."""
        return {
            name: list(feature.bin_edges)
            for name, feature in self.features.items()
            if feature.bin_edges is not None
        }

    def to_json(self) -> str:
        """Stable, pretty JSON: one block per feature so ``git diff`` shows what changed."""
        document = {
            "format_version": FORMAT_VERSION,
            "asset": self.asset,
            "reference_partitions": sorted(self.reference_partitions),
            "categorical": sorted(self.categorical),
            "excluded": sorted(self.excluded),
            "service_area_cells": sorted(self.service_area_cells),
            "features": [_feature_to_dict(feature) for feature in self.features.values()],
        }
        return json.dumps(document, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "schema JSON") -> DataSchema:
        """Parse :meth:`to_json` output; ``ValueError`` naming ``source`` and the bad field."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}: not valid JSON: {error}") from error
        reader = _Reader(source)
        reader.require_object(document, "top level")
        version = reader.field(document, "format_version", int, "top level")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{source}: format_version {version} is not supported (expected {FORMAT_VERSION})"
            )
        raw_features = reader.field(document, "features", list, "top level")
        features: dict[str, FeatureSchema] = {}
        for index, raw in enumerate(raw_features):
            feature = reader.feature(raw, f"features[{index}]")
            if feature.name in features:
                raise ValueError(f"{source}: features[{index}]: duplicate feature {feature.name!r}")
            features[feature.name] = feature
        return cls(
            asset=reader.field(document, "asset", str, "top level"),
            features=features,
            reference_partitions=reader.strings(document, "reference_partitions", "top level"),
            categorical=reader.strings(document, "categorical", "top level"),
            excluded=reader.strings(document, "excluded", "top level"),
            # Optional: schemas written before cells were checked against the area lack it.
            service_area_cells=reader.strings(document, "service_area_cells", "top level")
            if "service_area_cells" in document
            else [],
        )


def dtype_name(dtype: pl.DataType) -> str:
    """The spelling of a dtype stored in a schema (e.g. ``Int32``, ``Enum(categories=[...])``)."""
    return str(dtype)


# ---------------------------------------------------------------------------------------------
# Inference


def infer_schema(
    asset: str,
    frames: Mapping[str, pl.DataFrame | pl.LazyFrame],
    categorical: Sequence[str] = (),
    exclude: Sequence[str] = (),
    bins: int = 20,
    max_categories: int = 5000,
    service_area_cells: Sequence[str] = (),
    optional: Sequence[str] = (),
    known_categories: Mapping[str, Sequence[str]] | None = None,
    unbounded: Sequence[str] = (),
) -> DataSchema:
    """Infer the schema of ``asset`` from reference partitions (partition key -> frame).

    ``service_area_cells`` are mesh-cell columns (categorical, checked against the service
    area rather than a list of cells seen); ``optional`` columns may be entirely null (rain
    on a feed without weather); ``known_categories`` adds a column's full domain to the
    categories seen (a short window may miss a holiday); ``unbounded`` numeric columns get
    no range (rain: two weeks never show the rainiest hour of the year), only bin edges.
    """
    categorical = sorted({*categorical, *service_area_cells})
    known = {name: list(values) for name, values in (known_categories or {}).items()}
    if not frames:
        raise ValueError(f"{asset}: no reference partitions to infer a schema from")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    lazies = {key: frames[key].lazy() for key in sorted(frames)}
    schemas = {key: lazy.collect_schema() for key, lazy in lazies.items()}
    columns = _reference_columns(asset, schemas, exclude)
    for label, names in (
        ("categorical", categorical),
        ("optional", optional),
        ("known_categories", known),
        ("unbounded", unbounded),
    ):
        unknown = sorted(set(names) - set(columns))
        if unknown:
            raise ValueError(f"{asset}: {label} column(s) {unknown} not in the reference frames")
    kinds = {name: _kind(asset, name, dtype, categorical) for name, dtype in columns.items()}

    # Presence is judged per partition (the dirtiest day sets the allowance); an empty
    # partition has nothing to judge and gives a null that max() skips.
    per_partition = [
        lazy.select(
            _missing(name, dtype).mean().alias(name)
            for name, dtype in columns.items()
            if name in schemas[key]
        )
        for key, lazy in lazies.items()
    ]
    reference = pl.concat(list(lazies.values()), how="diagonal")
    summary_exprs: list[pl.Expr] = [pl.len().alias("__rows__")]
    for name, dtype in columns.items():
        if kinds[name] == "numeric":
            values = _finite(name)
            summary_exprs += [
                values.min().alias(f"{name}\x00min"),
                values.max().alias(f"{name}\x00max"),
                values.quantile(quantile_levels(bins)).alias(f"{name}\x00q"),
            ]
        elif (
            kinds[name] == "categorical"
            and not isinstance(dtype, pl.Enum)
            and name not in service_area_cells
        ):
            summary_exprs.append(
                pl.col(name)
                .cast(pl.String)
                .drop_nulls()
                .unique()
                .sort()
                # One more than allowed is enough to know the domain is too large to list.
                .head(max_categories + 1)
                .implode()
                .alias(f"{name}\x00categories")
            )
    null_frame, summary_frame = pl.collect_all(
        [pl.concat(per_partition, how="diagonal").max(), reference.select(summary_exprs)]
    )
    summary = summary_frame.row(0, named=True)
    if summary["__rows__"] == 0:
        raise ValueError(f"{asset}: the reference partitions {list(lazies)} hold no rows")
    null_fractions = null_frame.row(0, named=True)

    features: dict[str, FeatureSchema] = {}
    for name, dtype in columns.items():
        low, high = summary.get(f"{name}\x00min"), summary.get(f"{name}\x00max")
        categories: list[str] | None = None
        if isinstance(dtype, pl.Enum):
            # The dtype already fixes the domain; every declared category is legitimate even
            # if the reference window happened not to see it.
            categories = sorted(dtype.categories.to_list())
        elif kinds[name] == "categorical" and name not in service_area_cells:
            seen = summary[f"{name}\x00categories"]
            categories = seen if len(seen) <= max_categories else None
            if categories is not None and name in known:
                categories = sorted({*categories, *known[name]})
        bounds = _widened_range(low, high)
        worst = null_fractions[name]
        features[name] = FeatureSchema(
            name=name,
            dtype=dtype_name(dtype),
            kind=kinds[name],
            required=all(name in schema for schema in schemas.values()),
            # A column seen only in empty partitions tells nothing about its presence.
            max_null_fraction=1.0
            if worst is None or name in optional
            else min(1.0, round(worst + NULL_FRACTION_ALLOWANCE, 6)),
            min=bounds[0] if bounds and name not in unbounded else None,
            max=bounds[1] if bounds and name not in unbounded else None,
            categories=categories,
            bin_edges=_bin_edges(summary[f"{name}\x00q"], low, high, bins) if bounds else None,
        )
    return DataSchema(
        asset=asset,
        features=features,
        reference_partitions=list(lazies),
        categorical=sorted(categorical),
        excluded=sorted(exclude),
        service_area_cells=sorted(service_area_cells),
    )


def _reference_columns(
    asset: str, schemas: Mapping[str, pl.Schema], exclude: Sequence[str]
) -> dict[str, pl.DataType]:
    """Columns of the reference window in order of first appearance, one dtype each."""
    columns: dict[str, pl.DataType] = {}
    first_seen: dict[str, str] = {}
    for key, schema in schemas.items():
        for name, dtype in schema.items():
            if name in exclude:
                continue
            if name in columns and columns[name] != dtype:
                raise ValueError(
                    f"{asset}: column {name!r} is {dtype_name(dtype)} in partition {key} but "
                    f"{dtype_name(columns[name])} in {first_seen[name]}; fix the data or exclude it"
                )
            columns.setdefault(name, dtype)
            first_seen.setdefault(name, key)
    return columns


def _kind(asset: str, name: str, dtype: pl.DataType, categorical: Sequence[str]) -> str:
    if dtype.is_nested() or dtype in (pl.Object, pl.Binary, pl.Null):
        raise ValueError(
            f"{asset}: column {name!r} has type {dtype_name(dtype)}, which a schema cannot "
            "describe; pass it in exclude"
        )
    if name in categorical:
        return "categorical"
    if dtype.is_temporal():
        return "timestamp"
    if dtype.is_numeric():
        return "numeric"
    return "categorical"


def _missing(name: str, dtype: pl.DataType) -> pl.Expr:
    """Null, or NaN for floats: both mean 'no usable value'."""
    column = pl.col(name)
    return column.is_null() | column.is_nan() if dtype.is_float() else column.is_null()


def _finite(name: str) -> pl.Expr:
    # Infinities would make the range meaningless; they stay anomalies instead.
    values = pl.col(name).cast(pl.Float64)
    return values.filter(values.is_finite())


def _round_significant(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def _widened_range(low: float | None, high: float | None) -> tuple[float, float] | None:
    """Reference min/max widened by the margin, not crossing zero for a one-signed column."""
    if low is None or high is None:
        return None
    margin = RANGE_MARGIN * (high - low)
    wide_low, wide_high = low - margin, high + margin
    if low >= 0:
        wide_low = max(wide_low, 0.0)
    if high <= 0:
        wide_high = min(wide_high, 0.0)
    # Round only outward so that every reference value stays inside.
    rounded_low, rounded_high = _round_significant(wide_low), _round_significant(wide_high)
    return (
        rounded_low if rounded_low <= low else wide_low,
        rounded_high if rounded_high >= high else wide_high,
    )


# Extra upper-tail levels: counts per cell are zero-inflated (most cells see no pickup in a
# 15-minute bucket), so the even grid collapses onto 0 and only the tail tells days apart.
TAIL_LEVELS = (0.96, 0.97, 0.98, 0.99, 0.995, 0.999)


def quantile_levels(bins: int) -> list[float]:
    """The reference quantiles that become bin edges: an even grid plus the upper tail."""
    return sorted({i / bins for i in range(bins + 1)} | set(TAIL_LEVELS))


def _bin_edges(quantiles: list[float], low: float, high: float, bins: int) -> list[float]:
    """The distinct reference quantiles as edges (each bin then holds a known share of the
    reference, and a zero-inflated count keeps a bin for zero and bins for its tail); equal
    width over the reference range when fewer than two bins survive de-duplication."""
    edges = sorted({_round_significant(q) for q in quantiles})
    if len(edges) >= 3:
        return edges
    if low == high:
        # A constant column: one bin around the value keeps the edges increasing.
        return [low - 0.5, high + 0.5]
    step = (high - low) / bins
    equal = [low + i * step for i in range(bins)] + [high]
    rounded = [_round_significant(edge) for edge in equal]
    strictly_increasing = all(a < b for a, b in zip(rounded, rounded[1:], strict=False))
    return rounded if strictly_increasing else equal


# ---------------------------------------------------------------------------------------------
# Files


def configured_validation_dir(configured: str | Path | None = None) -> Path:
    """The deployment's folder of schemas and drift thresholds: ``configured`` if given,
    else ``TAXI_ASSETS_VALIDATION_DIR``, else the package's committed folder."""
    chosen = configured or os.environ.get(VALIDATION_DIR_ENV) or SCHEMA_DIR
    return Path(chosen).expanduser()


def schema_path(asset: str, directory: Path | None = None) -> Path:
    """Where the schema of ``asset`` lives: ``<validation folder>/<asset>.json`` (the folder
    :func:`configured_validation_dir` names unless ``directory`` is given)."""
    if not _ASSET_NAME.match(asset):
        raise ValueError(f"asset name {asset!r} must be letters, digits and underscores")
    return (directory if directory is not None else configured_validation_dir()) / f"{asset}.json"


def load_schema(asset: str, path: Path | None = None) -> DataSchema:
    """The committed schema of ``asset``; errors name the file and how to (re)create it."""
    path = path if path is not None else schema_path(asset)
    if not path.exists():
        raise FileNotFoundError(
            f"no schema for asset {asset!r} at {path}: infer it from a reference window with "
            f"`{INFER_COMMAND.format(asset=asset)}`, review `git diff` and commit it"
        )
    schema = DataSchema.from_json(path.read_text(encoding="utf-8"), source=str(path))
    if schema.asset != asset:
        raise ValueError(f"{path}: holds the schema of asset {schema.asset!r}, not {asset!r}")
    return schema


def save_schema(schema: DataSchema, path: Path | None = None) -> Path:
    """Write the schema atomically (readers see the old file or the new one); return the path."""
    path = path if path is not None else schema_path(schema.asset)
    text = schema.to_json().encode("utf-8")
    write_atomically(UPath(path), lambda handle: handle.write(text))
    return path


# ---------------------------------------------------------------------------------------------
# Anomalies


@dataclass(frozen=True)
class TableAggregates:
    """What the value checks need of a whole table whose rows are not at hand (a warehouse
    partition, of which the frame checked is a sample), per feature: missing values (null,
    or NaN for floats); for numeric features with a range, the values below and above it
    and the extremes seen (NaN left out); for categorical ones, every distinct non-null
    value as text with its rows."""

    rows: int
    missing: Mapping[str, int]
    below: Mapping[str, int] = field(default_factory=dict)
    above: Mapping[str, int] = field(default_factory=dict)
    minimum: Mapping[str, float | None] = field(default_factory=dict)
    maximum: Mapping[str, float | None] = field(default_factory=dict)
    value_counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


def value_checked(feature: FeatureSchema) -> tuple[bool, bool]:
    """Whether ``feature`` has a range check and whether it has a category check."""
    ranged = feature.kind == "numeric" and feature.min is not None and feature.max is not None
    listed = feature.kind == "categorical" and feature.categories is not None
    return ranged, listed


def find_anomalies(
    frame: pl.DataFrame,
    schema: DataSchema,
    area: ServiceArea | None = None,
    whole_table: TableAggregates | None = None,
) -> pl.DataFrame:
    """One row per anomaly of ``frame`` against ``schema`` (ANOMALY_SCHEMA); empty if none.

    The schema's ``service_area_cells`` columns are checked against the cells of ``area``
    (without an area they are not value-checked). With ``whole_table`` the frame is a
    sample of a table: its columns and types are checked, and its values are judged from
    the table's aggregates (the same anomalies, rows and details as the whole table).
    """
    present = frame.schema
    checked: list[FeatureSchema] = []
    column_anomalies: dict[str, dict[str, Any]] = {}
    for name, feature in schema.features.items():
        if name not in present:
            if feature.required:
                column_anomalies[name] = _anomaly(
                    name, "missing_column", f"required column missing (expected {feature.dtype})"
                )
            continue
        actual = dtype_name(present[name])
        if actual != feature.dtype:
            column_anomalies[name] = _anomaly(
                name,
                "type_change",
                f"type {actual}, expected {feature.dtype}; values not range/category-checked",
            )
            continue
        checked.append(feature)

    area_cells = None if area is None else area.cells().get_column("cell").cast(pl.String).implode()
    values: dict[str, Any] = {}
    height = frame.height
    if whole_table is not None:
        values = _values_of_aggregates(checked, schema, area_cells, whole_table)
        height = whole_table.rows
    elif checked:
        exprs = [expr for feature in checked for expr in _value_checks(feature, present)]
        if area_cells is not None:
            exprs += [
                _outside_area(feature.name, area_cells)
                for feature in checked
                if feature.name in schema.service_area_cells
            ]
        values = frame.select(exprs).row(0, named=True)

    anomalies: list[dict[str, Any]] = []
    for name, feature in schema.features.items():
        if name in column_anomalies:
            anomalies.append(column_anomalies[name])
        elif name in present:
            anomalies += _value_anomalies(feature, values, height)
    known = set(schema.features) | set(schema.excluded)
    anomalies += [
        _anomaly(name, "new_column", f"column not in the schema (type {dtype_name(dtype)})")
        for name, dtype in present.items()
        if name not in known
    ]
    return pl.DataFrame(anomalies, schema=ANOMALY_SCHEMA, orient="row")


def _values_of_aggregates(
    checked: Sequence[FeatureSchema],
    schema: DataSchema,
    area_cells: pl.Series | None,
    table: TableAggregates,
) -> dict[str, Any]:
    """What ``_value_checks`` and ``_outside_area`` compute of a frame, from a table's
    aggregates: the same keys and values."""
    cells = None if area_cells is None else set(area_cells.explode().to_list())
    values: dict[str, Any] = {}
    for feature in checked:
        name = feature.name
        values[f"{name}\x00missing"] = table.missing[name]
        ranged, listed = value_checked(feature)
        counts = table.value_counts.get(name, {})
        if ranged:
            values[f"{name}\x00below"] = table.below[name]
            values[f"{name}\x00above"] = table.above[name]
            values[f"{name}\x00min"] = table.minimum[name]
            values[f"{name}\x00max"] = table.maximum[name]
        elif listed:
            new = sorted(set(counts) - set(feature.categories or ()))
            values[f"{name}\x00new_rows"] = sum(counts[value] for value in new)
            values[f"{name}\x00new_count"] = len(new)
            values[f"{name}\x00new_values"] = new[:SHOWN_CATEGORIES]
        if cells is not None and name in schema.service_area_cells:
            outside = sorted(set(counts) - cells)
            values[f"{name}\x00outside_area"] = {
                "rows": sum(counts[value] for value in outside),
                "shown": outside[:SHOWN_CATEGORIES],
            }
    return values


def _outside_area(name: str, area_cells: pl.Series) -> pl.Expr:
    text = pl.col(name).cast(pl.String)
    outside = text.is_not_null() & ~text.is_in(area_cells)
    return (
        pl.struct(
            rows=outside.sum(),
            shown=text.filter(outside).unique().sort().head(SHOWN_CATEGORIES).implode(),
        )
    ).alias(f"{name}\x00outside_area")


def _anomaly(feature: str, anomaly: str, detail: str, rows: int = 0) -> dict[str, Any]:
    return {"feature": feature, "anomaly": anomaly, "detail": detail, "rows": rows}


def _value_checks(feature: FeatureSchema, present: pl.Schema) -> list[pl.Expr]:
    """Aggregations of one feature, each aliased ``<name>\\x00<check>`` for one select."""
    name = feature.name
    exprs = [_missing(name, present[name]).sum().alias(f"{name}\x00missing")]
    ranged, listed = value_checked(feature)
    if ranged:
        # NaN compares above every number in Polars; it is a null here, counted as missing.
        number = pl.col(name).cast(pl.Float64).fill_nan(None)
        exprs += [
            (number < feature.min).sum().alias(f"{name}\x00below"),
            (number > feature.max).sum().alias(f"{name}\x00above"),
            number.min().alias(f"{name}\x00min"),
            number.max().alias(f"{name}\x00max"),
        ]
    elif listed:
        text = pl.col(name).cast(pl.String)
        new = text.is_not_null() & ~text.is_in(pl.Series(feature.categories, dtype=pl.String))
        unseen = text.filter(new).unique()
        exprs += [
            new.sum().alias(f"{name}\x00new_rows"),
            unseen.len().alias(f"{name}\x00new_count"),
            unseen.sort().head(SHOWN_CATEGORIES).implode().alias(f"{name}\x00new_values"),
        ]
    return exprs


def _value_anomalies(
    feature: FeatureSchema, values: Mapping[str, Any], height: int
) -> list[dict[str, Any]]:
    name = feature.name
    anomalies = []
    outside = values.get(f"{name}\x00outside_area")
    if outside and outside["rows"]:
        anomalies.append(
            _anomaly(
                name,
                "outside_service_area",
                f"{outside['rows']} rows in cells outside the service area, e.g. "
                f"{outside['shown']}",
                outside["rows"],
            )
        )
    new_rows = values.get(f"{name}\x00new_rows") or 0
    if new_rows:
        shown = values[f"{name}\x00new_values"]
        more = values[f"{name}\x00new_count"] - len(shown)
        listed = f"{shown} and {more} more" if more else f"{shown}"
        anomalies.append(
            _anomaly(name, "new_category", f"new categories {listed} ({new_rows} rows)", new_rows)
        )
    below = values.get(f"{name}\x00below") or 0
    above = values.get(f"{name}\x00above") or 0
    if below or above:
        seen_min, seen_max = values[f"{name}\x00min"], values[f"{name}\x00max"]
        parts = []
        if below:
            parts.append(f"{below} values below min {feature.min} (min seen {seen_min})")
        if above:
            parts.append(f"{above} values above max {feature.max} (max seen {seen_max})")
        anomalies.append(_anomaly(name, "out_of_range", "; ".join(parts), below + above))
    missing = values[f"{name}\x00missing"]
    # An empty frame has no null fraction to judge.
    if height and missing / height > feature.max_null_fraction:
        anomalies.append(
            _anomaly(
                name,
                "null_fraction",
                "null fraction {} > allowed {}".format(
                    *_distinct_digits(missing / height, feature.max_null_fraction)
                ),
                missing,
            )
        )
    return anomalies


def _distinct_digits(value: float, limit: float) -> tuple[str, str]:
    """Both numbers with as few significant digits (3 or more) as tell them apart."""
    for digits in range(3, 17):
        shown = f"{value:.{digits}g}", f"{limit:.{digits}g}"
        if shown[0] != shown[1]:
            return shown
    return str(value), str(limit)


# ---------------------------------------------------------------------------------------------
# Review


def schema_diff(old: DataSchema, new: DataSchema) -> list[str]:
    """What changes from ``old`` to ``new``, one readable line per change; empty if nothing."""
    lines: list[str] = []
    if old.asset != new.asset:
        lines.append(f"asset: {old.asset} -> {new.asset}")
    if sorted(old.reference_partitions) != sorted(new.reference_partitions):
        lines.append(
            f"reference window: {_window(old.reference_partitions)} -> "
            f"{_window(new.reference_partitions)}"
        )
    for label, before, after in (
        ("categorical", old.categorical, new.categorical),
        ("excluded", old.excluded, new.excluded),
        ("service area cells", old.service_area_cells, new.service_area_cells),
    ):
        if sorted(before) != sorted(after):
            lines.append(f"{label}: {sorted(before)} -> {sorted(after)}")
    for name in old.features.keys() - new.features.keys():
        lines.append(f"- {name}: feature removed")
    for name, feature in new.features.items():
        if name not in old.features:
            lines.append(f"+ {name}: new {feature.kind} feature ({feature.dtype})")
        else:
            in_area = name in new.service_area_cells
            lines += [
                f"~ {name}: {change}"
                for change in _feature_diff(old.features[name], feature, in_area)
            ]
    return lines


def _window(partitions: Sequence[str]) -> str:
    ordered = sorted(partitions)
    if not ordered:
        return "(none)"
    return f"{ordered[0]}..{ordered[-1]} ({len(ordered)} partitions)"


def _feature_diff(old: FeatureSchema, new: FeatureSchema, in_area: bool = False) -> list[str]:
    changes = []
    if old.dtype != new.dtype:
        changes.append(f"type {old.dtype} -> {new.dtype}")
    if old.kind != new.kind:
        changes.append(f"kind {old.kind} -> {new.kind}")
    if old.required != new.required:
        changes.append(f"required {old.required} -> {new.required}")
    if (old.min, old.max) != (new.min, new.max):
        changes.append(f"range [{old.min}, {old.max}] -> [{new.min}, {new.max}]")
    if old.categories != new.categories:
        if in_area and new.categories is None:
            changes.append(f"categories {_listed(old.categories)} -> any cell of the service area")
        elif old.categories is None or new.categories is None:
            changes.append(f"categories {_listed(old.categories)} -> {_listed(new.categories)}")
        else:
            added = sorted(set(new.categories) - set(old.categories))
            removed = sorted(set(old.categories) - set(new.categories))
            if added:
                changes.append(f"categories added {_shorten(added)}")
            if removed:
                changes.append(f"categories removed {_shorten(removed)}")
    if old.max_null_fraction != new.max_null_fraction:
        changes.append(f"null allowance {old.max_null_fraction:.4g} -> {new.max_null_fraction:.4g}")
    if old.bin_edges != new.bin_edges:
        changes.append(f"bin edges {_edges(old.bin_edges)} -> {_edges(new.bin_edges)}")
    return changes


def _shorten(values: list[str]) -> str:
    if len(values) <= SHOWN_CATEGORIES:
        return str(values)
    return f"{values[:SHOWN_CATEGORIES]} and {len(values) - SHOWN_CATEGORIES} more"


def _listed(categories: list[str] | None) -> str:
    return "not listed (domain too large)" if categories is None else f"{len(categories)} listed"


def _edges(edges: list[float] | None) -> str:
    if edges is None:
        return "none"
    return f"{len(edges) - 1} bins over [{edges[0]}, {edges[-1]}]"


# ---------------------------------------------------------------------------------------------
# JSON (de)serialization


def _feature_to_dict(feature: FeatureSchema) -> dict[str, Any]:
    # Fixed key order (name first) reads better in review than alphabetical.
    return {
        "name": feature.name,
        "dtype": feature.dtype,
        "kind": feature.kind,
        "required": feature.required,
        "max_null_fraction": feature.max_null_fraction,
        "min": feature.min,
        "max": feature.max,
        "categories": feature.categories,
        "bin_edges": feature.bin_edges,
    }


class _Reader:
    """Typed field access on parsed JSON with errors naming the source and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ValueError:
        return ValueError(f"{self.source}: {where}: {message}")

    def require_object(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {type(value).__name__}")

    def field(self, document: dict[str, Any], key: str, kind: type, where: str) -> Any:
        if key not in document:
            raise self.fail(where, f"missing field {key!r}")
        value = document[key]
        # bool is an int in Python; a schema never means one for the other.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.fail(
                f"{where}.{key}", f"expected {kind.__name__}, got {type(value).__name__}"
            )
        return value

    def number(self, document: dict[str, Any], key: str, where: str) -> float | None:
        if key not in document:
            raise self.fail(where, f"missing field {key!r}")
        value = document[key]
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{where}.{key}", f"expected a number or null, got {value!r}")
        return float(value)

    def strings(self, document: dict[str, Any], key: str, where: str) -> list[str]:
        values = self.field(document, key, list, where)
        if not all(isinstance(value, str) for value in values):
            raise self.fail(f"{where}.{key}", "expected a list of strings")
        return values

    def feature(self, raw: Any, where: str) -> FeatureSchema:
        self.require_object(raw, where)
        expected = set(FeatureSchema.__dataclass_fields__)
        missing, unknown = sorted(expected - set(raw)), sorted(set(raw) - expected)
        if missing or unknown:
            problems = [f"missing field(s) {missing}"] if missing else []
            problems += [f"unknown field(s) {unknown}"] if unknown else []
            raise self.fail(where, "; ".join(problems))
        name = self.field(raw, "name", str, where)
        where = f"{where} ({name})"
        kind = self.field(raw, "kind", str, where)
        if kind not in KINDS:
            raise self.fail(f"{where}.kind", f"{kind!r} is not one of {list(KINDS)}")
        null_fraction = self.number(raw, "max_null_fraction", where)
        if null_fraction is None or not 0 <= null_fraction <= 1:
            raise self.fail(f"{where}.max_null_fraction", f"must be in [0, 1], got {null_fraction}")
        low, high = self.number(raw, "min", where), self.number(raw, "max", where)
        if low is not None and high is not None and low > high:
            raise self.fail(f"{where}.min", f"min {low} is above max {high}")
        categories = (
            None if raw.get("categories") is None else self.strings(raw, "categories", where)
        )
        edges = raw.get("bin_edges")
        if edges is not None:
            if not isinstance(edges, list) or not all(
                isinstance(edge, int | float) and not isinstance(edge, bool) for edge in edges
            ):
                raise self.fail(f"{where}.bin_edges", "expected a list of numbers or null")
            edges = [float(edge) for edge in edges]
            if len(edges) < 2 or any(a >= b for a, b in zip(edges, edges[1:], strict=False)):
                raise self.fail(f"{where}.bin_edges", "expected at least 2 increasing edges")
        return FeatureSchema(
            name=name,
            dtype=self.field(raw, "dtype", str, where),
            kind=kind,
            required=self.field(raw, "required", bool, where),
            max_null_fraction=null_fraction,
            min=low,
            max=high,
            categories=categories,
            bin_edges=edges,
        )
