"""Small helpers that turn frames into Dagster metadata the UI can show and plot."""

from __future__ import annotations

import resource
from typing import Any

import dagster as dg
import polars as pl


def markdown_table(frame: pl.DataFrame, max_rows: int = 10) -> str:
    """A GitHub-flavoured markdown table of the first rows of a frame."""
    shown = frame.head(max_rows)
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "| " + " | ".join("---" for _ in shown.columns) + " |"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown.iter_rows()]
    more = [f"\n_{frame.height - max_rows} more rows_"] if frame.height > max_rows else []
    return "\n".join([header, rule, *rows, *more])


def text_table(frame: pl.DataFrame) -> str:
    """A frame as a plain-text table for a terminal: every row and column, no dtypes."""
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=250,
        fmt_str_lengths=80,
        float_precision=4,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        thousands_separator=True,
    ):
        return str(frame)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|")


def time_range_metadata(frame: pl.DataFrame, column: str = "ts") -> dict[str, dg.MetadataValue]:
    """First and last timestamp of a frame, as timestamps the UI renders in local time."""
    if frame.height == 0 or frame[column].null_count() == frame.height:
        return {}
    first, last = frame[column].min(), frame[column].max()
    return {
        f"{column}_min": dg.MetadataValue.timestamp(first),
        f"{column}_max": dg.MetadataValue.timestamp(last),
    }


def preview(frame: pl.DataFrame, max_rows: int = 5) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(frame, max_rows))


def latest_materialization_metadata(
    instance: dg.DagsterInstance, asset: str, partition: str | None = None
) -> dict[str, Any]:
    """The plain values of an asset's (partition's) latest materialization metadata, or {}."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(asset),
            asset_partitions=None if partition is None else [partition],
        ),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    metadata = records[0].asset_materialization.metadata
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
