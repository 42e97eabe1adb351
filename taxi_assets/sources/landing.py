"""Probe files dropped in a landing folder: parquet or CSV, one or more files per day.

Layout::

    <landing_dir>/probes/<YYYY-MM-DD>/<any name>.parquet|.csv   pings of that Tokyo day
    <landing_dir>/weather/<YYYY-MM-DD>.parquet|.csv             hourly rain of that day

Files whose names start with ``.`` or ``_`` or end in ``.tmp``/``.part`` are still being
written by the uploader and are ignored.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
from pydantic import Field
from upath import UPath

from taxi_assets.frames import RAW_PROBES_SCHEMA, WEATHER_SCHEMA
from taxi_assets.sources.base import (
    LOOK_BACK_SCHEMA,
    LookBack,
    ProbeDelivery,
    ProbeSource,
    ProbeSourceError,
    cast_keeping_track,
    examples,
    look_back_starts,
    refused_ids_message,
    select_window,
    text_column,
    vehicle_ids_as_text,
    window_origin,
)

LANDING_SUFFIXES = (".parquet", ".csv")
IN_FLIGHT_SUFFIXES = (".tmp", ".part")
UTC_OFFSET = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"


def is_complete_landing_file(path: UPath) -> bool:
    name = path.name
    return (
        path.suffix.lower() in LANDING_SUFFIXES
        and not name.startswith((".", "_"))
        and not name.endswith(IN_FLIGHT_SUFFIXES)
    )


def probe_files_for_day(landing_dir: UPath, day: date) -> list[UPath]:
    folder = landing_dir / "probes" / day.isoformat()
    if not folder.exists():
        return []
    return sorted((p for p in folder.iterdir() if is_complete_landing_file(p)), key=str)


def read_table_file(path: UPath) -> pl.DataFrame:
    """Read a parquet or CSV file as delivered (CSV columns as text, cast later)."""
    suffix = path.suffix.lower()
    try:
        with path.open("rb") as handle:
            if suffix == ".parquet":
                return pl.read_parquet(handle)
            return pl.read_csv(handle, infer_schema=False, encoding="utf8")
    except Exception as error:  # polars raises several kinds; all mean "unreadable file"
        kind = "parquet" if suffix == ".parquet" else "UTF-8 CSV"
        raise ProbeSourceError(f"{path}: cannot be read as {kind}: {error}") from error


def scan_by_time(path: UPath) -> pl.LazyFrame | None:
    """A lazy scan of a local parquet file whose ``ts`` is a zoned timestamp (in UTC), so
    that a filter on ``ts`` skips the row groups whose statistics lie outside it; None for
    any other file (CSV, text timestamps, a bucket URL), which is read whole."""
    if path.protocol not in ("", "file") or path.suffix.lower() != ".parquet":
        return None
    try:
        schema = pl.read_parquet_schema(path.path)
    except Exception as error:  # polars raises several kinds; all mean "unreadable file"
        raise ProbeSourceError(f"{path}: cannot be read as parquet: {error}") from error
    ts_type = schema.get("ts")
    if not (isinstance(ts_type, pl.Datetime) and ts_type.time_zone is not None):
        return None
    # Text or integer ids cast to text are the ids conform() gives (integers as decimal
    # text), so vehicles can be told apart before the rows are conformed; other types
    # (floats holding integers) are read whole.
    id_type = schema.get("vehicle_id")
    if id_type is None or not (id_type == pl.String or id_type.is_integer()):
        return None
    scan = pl.scan_parquet(path.path).with_columns(pl.col("vehicle_id").cast(pl.String))
    if ts_type.time_zone != "UTC":
        scan = scan.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
    return scan


def _utc_end(end: datetime) -> datetime:
    if end.tzinfo is None:
        raise ValueError(f"{end} needs a time zone (UTC or an offset)")
    return end.astimezone(UTC)


def collect_file(
    scan: pl.LazyFrame,
    path: UPath,
    schema: pl.Schema,
    start: datetime,
    end: datetime,
    starts: pl.DataFrame,
) -> pl.DataFrame:
    """The rows of a scanned file :func:`select_window` keeps, conformed to ``schema``."""
    try:
        frame = select_window(scan, start, end, starts)
    except pl.exceptions.PolarsError as error:
        raise ProbeSourceError(f"{path}: cannot be read as parquet: {error}") from error
    return conform(frame, schema, path)


def conform(frame: pl.DataFrame, schema: pl.Schema, path: UPath) -> pl.DataFrame:
    """Cast a delivered frame to ``schema``, or raise naming the file and column at fault.

    Extra columns are dropped (the source may carry more than we use); missing ones are an
    error; timestamps must carry a time zone (a naive one is ambiguous: UTC or Tokyo?).
    """
    missing = [name for name in schema if name not in frame.columns]
    if missing:
        hint = ""
        if frame.width == 1 and any(sep in frame.columns[0] for sep in ";\t|"):
            hint = f" (found one column {frame.columns[0]!r}: is the delimiter not a comma?)"
        raise ProbeSourceError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(schema)}{hint}"
        )
    return frame.select(_cast_column(frame[name], dtype, path) for name, dtype in schema.items())


def _cast_column(column: pl.Series, dtype: pl.DataType, path: UPath) -> pl.Series:
    name = column.name
    if isinstance(dtype, pl.Datetime):
        return _to_utc(column, path)
    if name == "vehicle_id":
        ids = vehicle_ids_as_text(column)
        if ids is None:
            raise ProbeSourceError(
                f"{path}: column {name!r} has type {column.dtype}; expected text or integers"
            )
        text, refused = ids
        if refused.len():
            raise ProbeSourceError(refused_ids_message(str(path), name, refused))
        return text
    if dtype == pl.String:
        # Statuses are kept as the feed's words (or 0/1 flags): cleaning maps them with the
        # status_mapping setting and quarantines the ones it has no word for.
        words = text_column(column)
        if words is None or words[1].len():
            shown = f", e.g. {examples(words[1])}" if words else ""
            raise ProbeSourceError(
                f"{path}: column {name!r} has type {column.dtype}{shown}; expected text or "
                "whole numbers"
            )
        return words[0]
    cast, bad = cast_keeping_track(column, dtype)
    if bad.len():
        raise ProbeSourceError(
            f"{path}: column {name!r} cannot be read as {dtype}: "
            f"{bad.len()} bad value(s), e.g. {examples(bad)}"
        )
    return cast


def _to_utc(column: pl.Series, path: UPath) -> pl.Series:
    name = column.name
    if column.dtype == pl.String:
        # Polars would read an offset-less string as UTC: a Tokyo export without offsets
        # would silently shift every ping by 9 hours. Refuse it instead.
        naive = column.drop_nulls().filter(~column.drop_nulls().str.contains(UTC_OFFSET))
        if naive.len():
            raise ProbeSourceError(
                f"{path}: column {name!r} has {naive.len()} timestamp(s) without a time zone, "
                f"e.g. {naive.head(2).to_list()}; write them with an offset "
                "(2026-05-01T09:00:00+09:00 or ...Z)"
            )
        try:
            parsed = column.str.to_datetime(time_unit="us", time_zone="UTC", strict=True)
        except Exception as error:
            raise ProbeSourceError(
                f"{path}: column {name!r} has timestamps that are not ISO 8601 with a UTC "
                f"offset (e.g. 2026-05-01T09:00:00+09:00): {error}"
            ) from error
        return parsed.alias(name)
    if isinstance(column.dtype, pl.Datetime):
        if column.dtype.time_zone is None:
            raise ProbeSourceError(
                f"{path}: column {name!r} holds naive timestamps; landing files must carry "
                "a time zone (UTC or an offset) so pings are not shifted by 9 hours"
            )
        return column.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    raise ProbeSourceError(f"{path}: column {name!r} has type {column.dtype}, not a timestamp")


class LandingFolderProbeSource(ProbeSource):
    """Probe files landed by an uploader (or a partner's export) in a folder or bucket."""

    landing_dir: str = Field(description="Folder (or gs:// URL) holding probes/ and weather/.")

    def read_probes(self, day: date) -> ProbeDelivery:
        root = UPath(self.landing_dir)
        files = probe_files_for_day(root, day)
        if not files:
            raise ProbeSourceError(
                f"no probe files for {day} under {root / 'probes' / day.isoformat()} "
                f"(expected *.parquet or *.csv)"
            )
        frames = [conform(read_table_file(path), RAW_PROBES_SCHEMA, path) for path in files]
        probes = pl.concat(frames, how="vertical")
        origin = {
            "source": "landing_folder",
            "files": len(files),
            "file_list": "\n".join(str(p) for p in files),
            **{f"rows_from_{p.name}": f.height for p, f in zip(files, frames, strict=True)},
        }
        return ProbeDelivery(probes, origin)

    def read_probes_window(
        self, day: date, start: datetime, end: datetime, look_back: LookBack | None = None
    ) -> ProbeDelivery:
        """The day's pings of the window and look-back (``ProbeSource.read_probes_window``):
        parquet files are scanned (:func:`scan_by_time`) twice: ids, times and statuses up
        to ``end`` for each vehicle's look-back, then only the window's rows and the
        look-backs' earlier rows, selected in the scan and conformed. The state is taken
        over all the day's files, which may split time; CSV files are read whole and sliced."""
        root = UPath(self.landing_dir)
        files = probe_files_for_day(root, day)
        if not files:
            raise ProbeSourceError(
                f"no probe files for {day} under {root / 'probes' / day.isoformat()} "
                f"(expected *.parquet or *.csv)"
            )
        scans = {path: scan_by_time(path) for path in files}
        whole = {
            path: conform(read_table_file(path), RAW_PROBES_SCHEMA, path)
            for path, scan in scans.items()
            if scan is None
        }
        starts = pl.DataFrame(schema=LOOK_BACK_SCHEMA)
        if look_back is not None:
            # The per-vehicle state reads three columns, unconformed: ids are text already,
            # and LookBack.breaks casts the status as conform would.
            state = pl.concat(
                [
                    scan.select("vehicle_id", pl.col("ts").dt.cast_time_unit("us"), "status")
                    .filter(pl.col("ts") < _utc_end(end))
                    .collect()
                    if scan is not None
                    else whole[path].select("vehicle_id", "ts", "status")
                    for path, scan in scans.items()
                ],
                how="vertical_relaxed",
            )
            starts = look_back_starts(state, start, end, look_back)
        # The window's rows, then the look-back's earlier rows, selected in the scan; only
        # they are conformed (the files' checks run on the rows read).
        frames = [
            collect_file(scan, path, RAW_PROBES_SCHEMA, start, end, starts)
            if scan is not None
            else select_window(whole[path], start, end, starts)
            for path, scan in scans.items()
        ]
        origin = {
            "source": "landing_folder",
            "files": len(files),
            "file_list": "\n".join(str(p) for p in files),
            "look_back_vehicles": starts.height,
        }
        return ProbeDelivery(pl.concat(frames, how="vertical"), window_origin(origin, start, end))

    def read_weather(self, day: date) -> pl.DataFrame:
        root = UPath(self.landing_dir) / "weather"
        for suffix in LANDING_SUFFIXES:
            path = root / f"{day.isoformat()}{suffix}"
            if path.exists():
                return conform(read_table_file(path), WEATHER_SCHEMA, path)
        raise ProbeSourceError(
            f"no weather file for {day} under {root} (expected {day}.parquet or .csv); "
            "for a feed without weather set TAXI_ASSETS_WEATHER_SOURCE=none"
        )
