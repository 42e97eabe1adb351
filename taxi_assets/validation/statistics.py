"""Per-column statistics of a frame, after TFDV's ``generate_statistics``, on Polars.

One row per column: counts, nulls, range, moments, quantiles, a histogram for numeric
columns and value counts for categorical ones. Two days' statistics computed with the
same ``bin_edges`` can be compared for drift (``taxi_assets.validation.drift``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import polars as pl

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
SELF_BINS = 20
MAX_CATEGORICAL_VALUES = 5_000

STATISTICS_SCHEMA = pl.Schema(
    {
        "feature": pl.String,
        "kind": pl.String,
        "dtype": pl.String,
        "rows": pl.Int64,
        "count": pl.Int64,
        "null_fraction": pl.Float64,
        "min": pl.Float64,
        "max": pl.Float64,
        "mean": pl.Float64,
        "std": pl.Float64,
        "quantiles": pl.List(pl.Float64),
        "bin_edges": pl.List(pl.Float64),
        "histogram": pl.List(pl.Int64),
        "values": pl.List(pl.String),
        "value_counts": pl.List(pl.Int64),
    }
)

NUMERIC = "numeric"
CATEGORICAL = "categorical"
TIMESTAMP = "timestamp"


def feature_kind(dtype: pl.DataType, as_categorical: bool = False) -> str:
    """The statistics kind of a column dtype: "numeric", "categorical" or "timestamp"."""
    if as_categorical or isinstance(
        dtype, pl.Enum | pl.Categorical | pl.String | pl.Boolean | pl.Null
    ):
        return CATEGORICAL
    if dtype.is_numeric():
        return NUMERIC
    if isinstance(dtype, pl.Datetime | pl.Date):
        return TIMESTAMP
    raise ValueError(
        f"no statistics for dtype {dtype}; pass the column in exclude= (or categorical=)"
    )


def _checked_edges(feature: str, edges: Sequence[float]) -> list[float]:
    checked = [float(edge) for edge in edges]
    if len(checked) < 2:
        raise ValueError(f"bin_edges[{feature!r}] needs at least 2 edges, got {len(checked)}")
    if not all(math.isfinite(edge) for edge in checked):
        raise ValueError(f"bin_edges[{feature!r}] must be finite, got {checked}")
    if any(lo >= hi for lo, hi in zip(checked, checked[1:], strict=False)):
        raise ValueError(f"bin_edges[{feature!r}] must be strictly increasing, got {checked}")
    return checked


def _numeric_exprs(i: int, name: str, dtype: pl.DataType, edges: list[float]) -> list[pl.Expr]:
    # NaN counts as null (TFDV has no NaN), so every statistic below ignores it.
    value = pl.col(name).cast(pl.Float64)
    if dtype.is_float():
        value = value.fill_nan(None)
    exprs = [
        value.count().alias(f"{i}.count"),
        value.min().alias(f"{i}.min"),
        value.max().alias(f"{i}.max"),
        value.mean().alias(f"{i}.mean"),
        value.std().alias(f"{i}.std"),
        value.quantile(list(QUANTILES), interpolation="linear").alias(f"{i}.quantiles"),
    ]
    # One comparison per inner edge (values below it); the bins are the differences, so the
    # first bin also holds values below the first edge and the last those above the last.
    # The raw column is compared (NaN < edge is false, so NaN stays out of every bin): on a
    # 2.8M-row day that is several times faster than comparing the cast, NaN-free copy.
    exprs.extend(
        (pl.col(name) < edge).sum().alias(f"{i}.below.{k}") for k, edge in enumerate(edges[1:-1])
    )
    return exprs


def _self_bin_edges(frame: pl.DataFrame, features: Sequence[str]) -> dict[str, list[float] | None]:
    """SELF_BINS equal-width bins over each feature's finite range (None if it has none)."""
    if not features:
        return {}
    finite = [pl.col(name).cast(pl.Float64) for name in features]
    finite = [value.filter(value.is_finite()) for value in finite]
    ranges = frame.select(
        *(value.min().alias(f"{k}.lo") for k, value in enumerate(finite)),
        *(value.max().alias(f"{k}.hi") for k, value in enumerate(finite)),
    ).row(0, named=True)
    edges: dict[str, list[float] | None] = {}
    for k, name in enumerate(features):
        lo, hi = ranges[f"{k}.lo"], ranges[f"{k}.hi"]
        if lo is None:
            edges[name] = None
            continue
        if lo == hi:
            # numpy's convention for a constant column: one unit around the value.
            lo, hi = lo - 0.5, hi + 0.5
        edges[name] = np.linspace(lo, hi, SELF_BINS + 1).tolist()
    return edges


def _timestamp_exprs(i: int, name: str) -> list[pl.Expr]:
    epoch_s = pl.col(name).dt.epoch("us").cast(pl.Float64) / 1e6
    return [
        epoch_s.count().alias(f"{i}.count"),
        epoch_s.min().alias(f"{i}.min"),
        epoch_s.max().alias(f"{i}.max"),
        epoch_s.quantile(list(QUANTILES), interpolation="linear").alias(f"{i}.quantiles"),
    ]


def _categorical_exprs(i: int, name: str, dtype: pl.DataType) -> list[pl.Expr]:
    value = pl.col(name)
    if dtype.is_float():
        value = value.fill_nan(None)
    return [
        value.count().alias(f"{i}.count"),
        # Counted on the physical values; only the few distinct values are cast to text.
        value.drop_nulls().value_counts(name="n").implode().alias(f"{i}.value_counts"),
    ]


def _value_counts(cell: pl.Series) -> tuple[list[str], list[int]]:
    counts = cell.explode().struct.unnest()
    counts = (
        counts.select(
            pl.col(counts.columns[0]).cast(pl.String).alias("value"),
            pl.col("n").cast(pl.Int64),
        )
        .drop_nulls()
        .sort(["n", "value"], descending=[True, False])
        .head(MAX_CATEGORICAL_VALUES)
    )
    return counts["value"].to_list(), counts["n"].to_list()


def _histogram(count: int, below: list[int]) -> list[int]:
    cumulative = [0, *below, count]
    return [hi - lo for lo, hi in zip(cumulative, cumulative[1:], strict=False)]


def compute_statistics(
    frame: pl.DataFrame,
    bin_edges: Mapping[str, Sequence[float]] | None = None,
    categorical: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> pl.DataFrame:
    """STATISTICS_SCHEMA: one row per column of ``frame`` (but ``exclude``), in column order.

    Kinds: integers and floats are "numeric" (unless named in ``categorical``, e.g. the
    integer ``cell`` mesh code); Enum, Categorical, String and Boolean are "categorical";
    Datetime and Date are "timestamp" (min, max and quantiles in epoch seconds). NaN counts
    as null. ``std`` is the sample standard deviation (ddof=1), as Polars computes it.

    Numeric histograms count values per bin of ``bin_edges[feature]`` (values below the
    first edge in the first bin, above the last edge in the last bin), so two days
    binned with the same edges compare bin by bin. A numeric column without edges gets 20
    equal-width bins between its finite min and max: self-binned, not comparable across
    days. Edges for columns the frame lacks are ignored, so one set of edges serves frames
    whose schema drifted.

    Categorical ``values`` / ``value_counts`` are sorted by count, descending (ties by
    value); a column with more than 5,000 distinct values keeps the 5,000 most frequent.

    All aggregations run in one select over the frame (self-binned columns first need a
    small min/max pass for their range). About 0.3 s for a 2.8-million-row clean_probes day
    on 2 cores.
    """
    edges_by_feature = dict(bin_edges or {})
    as_categorical = set(categorical or ())
    excluded = set(exclude)
    rows = frame.height

    kinds = {
        name: feature_kind(dtype, as_categorical=name in as_categorical)
        for name, dtype in frame.schema.items()
        if name not in excluded
    }
    given_edges = {}
    for name, edges in edges_by_feature.items():
        if name not in kinds:
            continue
        if kinds[name] != NUMERIC:
            raise ValueError(f"bin_edges given for {name!r}, a {kinds[name]} column")
        given_edges[name] = _checked_edges(name, edges)
    # Self-binning needs each range before binning: one small extra min/max pass.
    self_binned = [n for n, kind in kinds.items() if kind == NUMERIC and n not in given_edges]
    histogram_edges = given_edges | _self_bin_edges(frame, self_binned)

    exprs: list[pl.Expr] = []
    for i, (name, kind) in enumerate(kinds.items()):
        dtype = frame.schema[name]
        if kind == NUMERIC:
            exprs.extend(_numeric_exprs(i, name, dtype, histogram_edges[name] or []))
        elif kind == TIMESTAMP:
            exprs.extend(_timestamp_exprs(i, name))
        else:
            exprs.extend(_categorical_exprs(i, name, dtype))
    aggregated = frame.lazy().select(exprs).collect() if exprs else pl.DataFrame()
    stat = aggregated.row(0, named=True) if exprs else {}

    records = []
    for i, (name, kind) in enumerate(kinds.items()):
        count = int(stat[f"{i}.count"])
        record = {
            "feature": name,
            "kind": kind,
            "dtype": str(frame.schema[name]),
            "rows": rows,
            "count": count,
            "null_fraction": (rows - count) / rows if rows else None,
        }
        if kind in (NUMERIC, TIMESTAMP):
            record |= {key: stat.get(f"{i}.{key}") for key in ("min", "max", "mean", "std")}
            record["quantiles"] = stat[f"{i}.quantiles"] if count else None
        edges = histogram_edges.get(name)
        if kind == NUMERIC and edges is not None:
            below = [int(stat[f"{i}.below.{k}"]) for k in range(len(edges) - 2)]
            record |= {"bin_edges": edges, "histogram": _histogram(count, below)}
        if kind == CATEGORICAL:
            values, counts = _value_counts(aggregated[f"{i}.value_counts"])
            record |= {"values": values, "value_counts": counts}
        records.append(record)
    return pl.DataFrame(records, schema=STATISTICS_SCHEMA)


# What a bounded sample still gives when a warehouse holds the day: the shape of each
# numeric distribution. Every other figure is cheap over the whole day in SQL.
SAMPLE_FIGURES = ("quantiles", "bin_edges", "histogram")


def top_value_counts(
    value_counts: pl.DataFrame,
) -> dict[str, tuple[list[str], list[int]]]:
    """Per feature, its values and counts as ``compute_statistics`` keeps them (by count,
    descending, ties by value, at most 5,000), from rows of (feature, value, n)."""
    ordered = value_counts.sort(["feature", "n", "value"], descending=[False, True, False])
    return {
        feature: (
            part["value"].to_list()[:MAX_CATEGORICAL_VALUES],
            part["n"].to_list()[:MAX_CATEGORICAL_VALUES],
        )
        for (feature,), part in ordered.group_by(["feature"], maintain_order=True)
    }


def with_whole_day_figures(sampled: pl.DataFrame, whole_day: pl.DataFrame) -> pl.DataFrame:
    """``sampled`` statistics (of a bounded sample) with every figure but the numeric
    distributions (SAMPLE_FIGURES) replaced by ``whole_day``'s: rows, counts, null
    fractions, ranges, moments and categorical value counts. Drift compares histograms
    and value counts as shares, so the sample's histogram stands beside the day's count.
    Both describe the same features; a feature missing from ``whole_day`` is an error."""
    missing = set(sampled["feature"]) - set(whole_day["feature"])
    if missing:
        raise ValueError(f"no whole-day statistics for {sorted(missing)}")
    day_columns = [name for name in STATISTICS_SCHEMA if name not in SAMPLE_FIGURES]
    return (
        sampled.select("feature", *SAMPLE_FIGURES)
        .join(whole_day.select(day_columns), on="feature", how="left", maintain_order="left")
        .select(STATISTICS_SCHEMA.names())
        .cast(dict(STATISTICS_SCHEMA))
    )


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:.4g}"


def _timestamp(epoch_s: float | None) -> str:
    if epoch_s is None:
        return ""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _top_values(values: list[str] | None, counts: list[int] | None, count: int) -> str:
    if not values or not counts or not count:
        return ""
    shown = ", ".join(
        f"{value} {n / count:.1%}" for value, n in zip(values[:3], counts[:3], strict=False)
    )
    more = f" (+{len(values) - 3} more)" if len(values) > 3 else ""
    return (shown + more).replace("|", "\\|")


def statistics_markdown(stats: pl.DataFrame, max_rows: int = 20) -> str:
    """A markdown table of ``compute_statistics`` output: one line per feature.

    Timestamps show their range in UTC; categoricals their top three values with shares.
    """
    lines = [
        "| feature | kind | count | null % | min | mean | max | top values |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in stats.head(max_rows).iter_rows(named=True):
        show = _timestamp if row["kind"] == TIMESTAMP else _number
        null_fraction = row["null_fraction"]
        null_pct = "" if null_fraction is None else f"{null_fraction:.2%}"
        lines.append(
            f"| {row['feature']} | {row['kind']} | {row['count']:,} | {null_pct} "
            f"| {show(row['min'])} | {_number(row['mean'])} | {show(row['max'])} "
            f"| {_top_values(row['values'], row['value_counts'], row['count'])} |"
        )
    if stats.height > max_rows:
        lines.append(f"\n{stats.height - max_rows} more features not shown.")
    return "\n".join(lines)
