"""Where asset partitions live: one parquet file per asset partition, replaced atomically.

We keep this small IO manager on Dagster's ``UPathIOManager`` instead of dagster-polars:
dagster-polars 0.27.x passes an argument Polars 2 removed from ``scan_parquet``. UPath lets
the same code write to a local folder or to a bucket (``gs://...``, see ``cloud_paths``).

Layout: ``<base_dir>/<asset_key>/<partition_key>.parquet`` (``<base_dir>/<asset_key>.parquet``
for unpartitioned assets). An unpartitioned asset marked :data:`STORED_PER_RUN` (the
5-minute forecast) is also kept per run, ``<base_dir>/<asset_key>/runs/<run_id>.parquet``,
and downstream steps load the copy of the run that produced their input: two overlapping
ticks each read their own forecast (a re-execution reads its parent run's), while
``<asset_key>.parquet`` stays the latest for people and the UI.
"""

from __future__ import annotations

import io
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO, get_args, get_origin

import dagster as dg
import polars as pl
from pydantic import Field
from upath import UPath

from taxi_assets.cloud_paths import CREDENTIALS_DESCRIPTION, ENDPOINT_DESCRIPTION, storage_root

LOCAL_PROTOCOLS = {"", "file", "local"}
# ``.<target name>.<uuid4 hex>.tmp``: what write_atomically leaves behind if its process dies.
TEMP_FILE = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")
# A temporary file this old belongs to a dead writer: no write of ours takes an hour.
ORPHAN_TEMP_AGE_SECONDS = 3600


# Asset metadata: keep each run's output apart (see the module docstring).
STORED_PER_RUN = "taxi_assets/stored_per_run"


class CorruptPartitionError(RuntimeError):
    """A stored partition exists but cannot be read as parquet (truncated, overwritten)."""


def is_local(path: UPath) -> bool:
    return path.protocol in LOCAL_PROTOCOLS


def write_atomically(path: UPath, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` so that readers see either the previous version or the new one.

    Locally: write a hidden temporary file beside the target, then ``os.replace`` it (atomic
    on POSIX); a crash mid-write leaves the previous version untouched. On object stores a
    single object upload is already atomic, so we upload the final name directly (there is no
    rename there: GCS would copy and delete, and the emulator lacks ``moveTo``). The bytes are
    written to memory first: an fsspec file's ``close`` on an error would still commit
    whatever was written so far, replacing the previous version with half a file.
    """
    if not is_local(path):
        buffer = io.BytesIO()
        write(buffer)
        path.fs.pipe_file(path.path, buffer.getvalue())
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    target = _local(path)
    folder = os.path.dirname(target)
    sweep_orphan_temp_files(folder)
    tmp = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        # The rename lives in the folder's entry: without this a power cut can forget it.
        _fsync_folder(folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def create_exclusively(path: UPath, data: bytes) -> None:
    """Write ``path`` only if it does not exist yet (FileExistsError otherwise), atomically.

    Locally the complete temporary file is hard-linked to the name, which fails if the name
    exists; on GCS the upload carries ``ifGenerationMatch=0``.
    """
    if not is_local(path):
        path.fs.pipe_file(path.path, data, mode="create")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    target = _local(path)
    folder = os.path.dirname(target)
    tmp = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, target)
        _fsync_folder(folder)
    finally:
        os.remove(tmp)


def _local(path: UPath) -> str:
    return os.fspath(path.path if hasattr(path, "path") else path)


def _fsync_folder(folder: str) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sweep_orphan_temp_files(
    folder: str, older_than_seconds: float = ORPHAN_TEMP_AGE_SECONDS, now: float | None = None
) -> list[str]:
    """Remove the temporary files dead writers left in ``folder``; returns their names.

    Only files named like ours and untouched for ``older_than_seconds``: a write in
    progress (another run writing the same folder) is younger and left alone.
    """
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not TEMP_FILE.match(entry.name):
            continue
        try:
            if now - entry.stat().st_mtime >= older_than_seconds:
                os.remove(entry.path)
                removed.append(entry.name)
        except FileNotFoundError:  # its writer finished (or another sweep won) meanwhile
            continue
    return removed


def write_parquet_atomically(frame: pl.DataFrame, path: UPath) -> None:
    write_atomically(path, lambda handle: frame.write_parquet(handle, compression="zstd"))


def read_parquet(path: UPath, what: str = "") -> pl.DataFrame:
    """The parquet file at ``path``; a file that is not readable parquet raises
    :class:`CorruptPartitionError` naming ``what`` (asset and partition) and the file."""
    try:
        with path.open("rb") as handle:
            return pl.read_parquet(handle)
    except (pl.exceptions.ComputeError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise _corrupt(path, what, error) from error


def _corrupt(path: UPath, what: str, error: Exception) -> CorruptPartitionError:
    subject = f"{what}: the" if what else "The"
    return CorruptPartitionError(
        f"{subject} stored file {path} is not readable parquet ({type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else ''}). It was truncated or overwritten: "
        "re-materialize that partition."
    )


def scan_parquet(path: UPath, what: str = "") -> pl.LazyFrame:
    """A stored parquet file as a lazy frame.

    Locally Polars reads the file itself and pushes filters and projections into the read.
    From a bucket the object is downloaded whole and scanned from memory: Polars' own cloud
    reader takes other credentials (and no emulator endpoint together with a token) than the
    gcsfs options our paths carry, and a day's partition fits in memory.

    The footer is read now, so a truncated file fails here, naming ``what`` and the file,
    rather than deep inside a later ``collect``.
    """
    source: str | bytes = _local(path) if is_local(path) else path.read_bytes()
    try:
        pl.read_parquet_schema(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (pl.exceptions.ComputeError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise _corrupt(path, what, error) from error
    return pl.scan_parquet(source)


def _is_dict_type(typing_type: Any) -> bool:
    return typing_type is dict or get_origin(typing_type) in (dict, Mapping)


def _wants_lazy(typing_type: Any) -> bool:
    """A ``pl.LazyFrame`` input, or a dict of them (several partitions of one asset)."""
    return typing_type is pl.LazyFrame or pl.LazyFrame in get_args(typing_type)


def _producing_run(context: dg.InputContext | dg.OutputContext) -> str | None:
    """The run whose copy to use, for an asset stored per run; None for any other asset."""
    output = context if isinstance(context, dg.OutputContext) else context.upstream_output
    if output is None or not (output.definition_metadata or {}).get(STORED_PER_RUN):
        return None
    return output.run_id


class PolarsParquetStore(dg.UPathIOManager):
    """Stores Polars frames as parquet; loads them eagerly, or lazily for LazyFrame inputs."""

    extension = ".parquet"

    def _get_path(self, context: dg.InputContext | dg.OutputContext) -> UPath:
        run_id = _producing_run(context)
        if run_id is None or context.has_asset_partitions:
            return super()._get_path(context)
        return self._get_path_without_extension(context) / "runs" / f"{run_id}{self.extension}"

    def dump_to_path(self, context: dg.OutputContext, obj: pl.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: expected a polars DataFrame to store, "
                f"got {type(obj).__name__}"
            )
        write_parquet_atomically(obj, path)
        if _producing_run(context) is not None and not context.has_asset_partitions:
            write_parquet_atomically(obj, super()._get_path(context))  # the latest, for people

    def make_directory(self, path: UPath) -> None:
        # Buckets have no folders: an object's name is its full path. gcsfs's mkdir would look
        # the bucket up (storage.buckets.get, which the writer is not granted) and, finding
        # nothing listed in an empty bucket, try to create it.
        if is_local(path):
            path.mkdir(parents=True, exist_ok=True)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pl.DataFrame | pl.LazyFrame:
        if not path.exists():
            raise FileNotFoundError(
                f"{context.asset_key.to_user_string()}: no stored partition at {path}; "
                "materialize it first"
            )
        what = context.asset_key.to_user_string()
        if context.has_asset_partitions and len(context.asset_partition_keys) == 1:
            what += f" partition {context.asset_partition_keys[0]}"
        elif path.stem != context.asset_key.path[-1]:
            what += f" partition {path.stem}"
        if _wants_lazy(context.dagster_type.typing_type):
            return scan_parquet(path, what)
        return read_parquet(path, what)

    def load_partitions(self, context: dg.InputContext) -> Any:
        """Several partitions of one asset as a dict by partition key.

        Unlike the base class, missing partitions (allowed by ``allow_missing_partitions``)
        are summarized in one log line instead of one warning each: a 90-day training
        window mapping would otherwise log dozens of warnings for days never materialized.
        """
        keys = context.asset_partition_keys
        if len(keys) == 1 and not _is_dict_type(context.dagster_type.typing_type):
            return super().load_partitions(context)
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions"))
        paths = self._get_paths_for_partitions(context)
        missing = [key for key in keys if not paths[key].exists()]
        if missing and not allow_missing:
            raise FileNotFoundError(
                f"{context.asset_key.to_user_string()}: partitions {', '.join(missing)} are "
                "not stored; materialize them first"
            )
        if missing:
            context.log.info(
                f"{context.asset_key.to_user_string()}: {len(keys) - len(missing)} of "
                f"{len(keys)} mapped partitions stored; skipping {len(missing)} not "
                f"materialized ({missing[0]}..{missing[-1]})"
            )
        return {key: self.load_from_path(context, paths[key]) for key in keys if key not in missing}

    def get_metadata(self, context: dg.OutputContext, obj: Any) -> dict[str, Any]:
        if isinstance(obj, pl.DataFrame):
            return {"dagster/row_count": obj.height}
        return {}


class PartitionedParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Asset partitions as parquet files under ``base_dir`` (a local folder or a bucket URL)."""

    base_dir: str = Field(
        description="Folder (or gs:// URL) that holds one parquet file per asset partition."
    )
    gcs_credentials: str | None = Field(default=None, description=CREDENTIALS_DESCRIPTION)
    gcs_endpoint_url: str | None = Field(default=None, description=ENDPOINT_DESCRIPTION)

    def create_io_manager(self, context: dg.InitResourceContext) -> PolarsParquetStore:
        root = storage_root(self.base_dir, self.gcs_credentials, self.gcs_endpoint_url)
        return PolarsParquetStore(base_path=root)


class StoredPartitions(dg.ConfigurableResource):
    """Reads a stored asset partition outside Dagster's input mapping.

    The 5-minute forecast is not partitioned, yet needs yesterday's and last week's
    ``cell_demand`` relative to its tick: a partition mapping cannot express "relative to a
    timestamp", so it reads them here, from the same files the IO manager writes.
    """

    base_dir: str = Field(description="The IO manager's base_dir.")
    gcs_credentials: str | None = Field(default=None, description=CREDENTIALS_DESCRIPTION)
    gcs_endpoint_url: str | None = Field(default=None, description=ENDPOINT_DESCRIPTION)

    def _path(self, asset: str, partition_key: str) -> UPath:
        root = storage_root(self.base_dir, self.gcs_credentials, self.gcs_endpoint_url)
        return root / asset / f"{partition_key}{PolarsParquetStore.extension}"

    def read(self, asset: str, partition_key: str) -> pl.DataFrame | None:
        path = self._path(asset, partition_key)
        return read_parquet(path, f"{asset} partition {partition_key}") if path.exists() else None

    def scan(self, asset: str, partition_key: str) -> pl.LazyFrame | None:
        """The partition as a lazy frame (locally, filters are pushed into the parquet read)."""
        path = self._path(asset, partition_key)
        return scan_parquet(path, f"{asset} partition {partition_key}") if path.exists() else None
