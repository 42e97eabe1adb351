"""Where models, their evaluations, the production pointer and forecast ticks live.

``ArtifactStore`` is one small resource over a folder or a bucket (UPath: ``gs://...``
works the same, see ``cloud_paths``). Layout under ``base_dir``::

    models/<version>/demand.cbm, supply.cbm   CatBoost files
    models/<version>/manifest.json            parameters, features, window, hash, code version
    models/<version>/evaluation.json          the evaluation report and blessing
    production_model.json                     the pointer, with its deployment history
    production_model.json.lock                held while a deploy swaps the pointer (local)
    forecasts/<tokyo day>/<tick>.parquet      every forecast tick, under its own timestamp
    forecast_features/<tokyo day>/<tick>.parquet  the features each tick was made from

A version's files are written before its manifest, so a manifest means a complete version;
a manifest is created, never replaced, so a version is never overwritten; every other file
is replaced atomically (see ``storage.write_atomically``). The pointer is compare-and-swap:
a deploy names the generation it read, and the swap fails if another deploy moved the
pointer meanwhile (GCS: ``ifGenerationMatch``; locally: an exclusive lock around the
read-compare-replace). CatBoost reads and writes
only local files: models pass through a temporary file as bytes (``training.model_file_bytes``),
and the bytes are what is uploaded and hashed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field
from upath import UPath

from taxi_assets.calendar import TOKYO
from taxi_assets.cloud_paths import CREDENTIALS_DESCRIPTION, ENDPOINT_DESCRIPTION, storage_root
from taxi_assets.model.training import (
    TrainedModel,
    TrainingParams,
    content_hash,
    model_file_bytes,
    regressor_from_bytes,
)
from taxi_assets.storage import (
    create_exclusively,
    is_local,
    read_parquet,
    write_atomically,
    write_parquet_atomically,
)

MODEL_FILES = ("demand.cbm", "supply.cbm")
# forecasts/<tokyo day>/<HHMMSS>.parquet (see _tick_path)
_TICK_FILE = re.compile(r"\d{6}\.parquet")


class RegistryError(RuntimeError):
    """A model, evaluation or pointer is missing or does not match what was recorded."""


class PointerConflict(RegistryError):
    """Another deploy moved the production pointer after this one read it."""


# The generation of a pointer that does not exist yet (GCS's ifGenerationMatch=0 says the same).
NO_POINTER = 0


class ArtifactStore(dg.ConfigurableResource):
    """Model versions, evaluations, the production pointer and forecast ticks."""

    base_dir: str = Field(description="Folder (or gs:// URL) holding models and forecasts.")
    gcs_credentials: str | None = Field(default=None, description=CREDENTIALS_DESCRIPTION)
    gcs_endpoint_url: str | None = Field(default=None, description=ENDPOINT_DESCRIPTION)

    def _path(self, *parts: str) -> UPath:
        root = storage_root(self.base_dir, self.gcs_credentials, self.gcs_endpoint_url)
        return root.joinpath(*parts)

    def _write_json(self, path: UPath, payload: dict[str, Any]) -> None:
        data = self._json_bytes(payload)
        write_atomically(path, lambda handle: handle.write(data))

    @staticmethod
    def _json_bytes(payload: dict[str, Any]) -> bytes:
        return json.dumps(payload, indent=2, sort_keys=True, default=str).encode()

    def _read_json(self, path: UPath) -> dict[str, Any] | None:
        # One request rather than an existence check and a read (and no gap between them).
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return None

    def model_folder(self, version: str) -> UPath:
        return self._path("models", version)

    # Models -----------------------------------------------------------------------------

    def save_model(self, version: str, model: TrainedModel, manifest: dict[str, Any]) -> str:
        """Store both regressors and the manifest; return the content hash recorded.

        A version that has a manifest is complete and is never written again: a second save
        under its name raises (files left by a save that died before its manifest are
        replaced).
        """
        manifest_path = self._path("models", version, "manifest.json")
        if manifest_path.exists():
            raise RegistryError(
                f"model version {version!r} already exists at {self.model_folder(version)}: "
                "versions are never overwritten, train under a new version"
            )
        files = {
            "demand.cbm": model_file_bytes(model.demand),
            "supply.cbm": model_file_bytes(model.supply),
        }
        for name, data in files.items():
            write_atomically(self._path("models", version, name), lambda h, d=data: h.write(d))
        digest = content_hash(*(files[name] for name in MODEL_FILES))
        payload = {**manifest, "model_version": version, "content_hash": digest}
        try:
            create_exclusively(manifest_path, self._json_bytes(payload))
        except FileExistsError:
            raise RegistryError(
                f"model version {version!r} was saved by someone else meanwhile "
                f"({manifest_path}): versions are never overwritten"
            ) from None
        return digest

    def manifest(self, version: str) -> dict[str, Any]:
        manifest = self._read_json(self._path("models", version, "manifest.json"))
        if manifest is None:
            raise RegistryError(
                f"model version {version!r} has no manifest under {self._path('models')}: "
                "it was never trained here, or its training did not finish"
            )
        return manifest

    def stored_hash(self, version: str) -> str:
        """The hash of the model files as they are now (not as the manifest says)."""
        paths = [self._path("models", version, name) for name in MODEL_FILES]
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise RegistryError(f"model version {version!r} is missing {', '.join(missing)}")
        return content_hash(*(path.read_bytes() for path in paths))

    def load_model(self, version: str) -> TrainedModel:
        """The model version, after checking its files still match the recorded hash."""
        manifest = self.manifest(version)
        actual = self.stored_hash(version)
        if actual != manifest["content_hash"]:
            raise RegistryError(
                f"model version {version!r}: files hash to {actual[:12]}, the manifest "
                f"recorded {manifest['content_hash'][:12]}; refusing a model that changed "
                "after training"
            )
        demand, supply = (
            regressor_from_bytes(self._path("models", version, name).read_bytes())
            for name in MODEL_FILES
        )
        return TrainedModel(
            demand=demand,
            supply=supply,
            params=TrainingParams(**manifest["params"]),
            features=tuple(manifest["features"]),
        )

    # Evaluations --------------------------------------------------------------------------

    def save_evaluation(self, version: str, report: dict[str, Any]) -> None:
        self._write_json(self._path("models", version, "evaluation.json"), report)

    def evaluation(self, version: str) -> dict[str, Any] | None:
        return self._read_json(self._path("models", version, "evaluation.json"))

    # The production pointer ---------------------------------------------------------------

    def production_pointer(self) -> dict[str, Any] | None:
        return self._read_json(self._path("production_model.json"))

    def read_production_pointer(self) -> tuple[dict[str, Any] | None, int]:
        """The pointer and its generation, to hand back to :meth:`swap_production_pointer`."""
        path = self._path("production_model.json")
        if is_local(path):
            pointer = self._read_json(path)
            return pointer, NO_POINTER if pointer is None else int(pointer.get("generation", 1))
        try:
            # The generation first: if the object changes between the two requests, the
            # swap fails on the newer generation instead of overwriting what we did not read.
            generation = int(path.fs.info(path.path)["generation"])
        except FileNotFoundError:
            return None, NO_POINTER
        return self._read_json(path), generation

    def swap_production_pointer(self, pointer: dict[str, Any], expected_generation: int) -> int:
        """Replace the pointer if it is still at ``expected_generation``; else raise
        :class:`PointerConflict` and change nothing. Returns the new generation."""
        path = self._path("production_model.json")
        if is_local(path):
            with self._pointer_lock():
                current, generation = self.read_production_pointer()
                if generation != expected_generation:
                    raise self._conflict(current)
                new_generation = generation + 1
                self._write_json(path, {**pointer, "generation": new_generation})
                return new_generation
        try:
            reply = _upload_if_generation_matches(
                path, self._json_bytes(pointer), expected_generation
            )
        except FileExistsError:  # gcsfs's name for HTTP 412, precondition failed
            raise self._conflict(self.production_pointer()) from None
        return int(reply["generation"])

    def _conflict(self, current: dict[str, Any] | None) -> PointerConflict:
        now = "nothing" if current is None else current["model_version"]
        by = "" if current is None else f" by run {current.get('run_id', '?')}"
        return PointerConflict(
            f"another deploy moved production_model while this one ran (it now points to "
            f"{now}{by}); nothing was changed: look at the new pointer, then re-run if still "
            "wanted"
        )

    @contextmanager
    def _pointer_lock(self) -> Iterator[None]:
        # flock, not a lock file created exclusively: the kernel drops it when its process
        # dies, so a deploy killed mid-swap cannot block every later one.
        lock_path = os.fspath(self._path("production_model.json.lock").path)
        os.makedirs(os.path.dirname(lock_path), exist_ok=True)
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # Forecast ticks -------------------------------------------------------------------------

    def _tick_path(self, folder: str, tick: datetime) -> UPath:
        local = tick.astimezone(TOKYO)
        return self._path(folder, local.date().isoformat(), f"{local:%H%M%S}.parquet")

    def save_forecast(self, tick: datetime, forecast: pl.DataFrame) -> UPath:
        path = self._tick_path("forecasts", tick)
        write_parquet_atomically(forecast, path)
        return path

    def save_forecast_features(self, tick: datetime, features: pl.DataFrame) -> UPath:
        """The features a tick was made from: what training-serving skew is judged on."""
        path = self._tick_path("forecast_features", tick)
        write_parquet_atomically(features, path)
        return path

    def forecast_features(self, tick: datetime) -> pl.DataFrame | None:
        path = self._tick_path("forecast_features", tick)
        return read_parquet(path) if path.exists() else None

    def forecasts_for_day(self, day: date) -> pl.DataFrame | None:
        """Every tick stored under a Tokyo day, stacked (ticks carry their own timestamp);
        ticks stored before a column was added stack with later ones (nulls there)."""
        folder = self._path("forecasts", day.isoformat())
        if not folder.exists():
            return None
        files = sorted(p for p in folder.iterdir() if p.name.endswith(".parquet"))
        if not files:
            return None
        return pl.concat([read_parquet(p) for p in files], how="diagonal_relaxed")

    def latest_forecast_tick(self) -> datetime | None:
        """The newest tick stored (from the folder and file names, without reading a tick):
        two listings, cheap enough for a service to poll (gs:// listings are not cached, see
        ``cloud_paths``, so a tick stored a second ago is seen)."""
        folder = self._path("forecasts")
        if not folder.exists():
            return None
        days = sorted((p for p in folder.iterdir() if _is_iso_day(p.name)), key=lambda p: p.name)
        for day_folder in reversed(days):
            names = sorted(
                p.name for p in day_folder.iterdir() if _TICK_FILE.fullmatch(p.name) is not None
            )
            if names:
                local = datetime.strptime(day_folder.name + names[-1][:6], "%Y-%m-%d%H%M%S")
                return local.replace(tzinfo=TOKYO)
        return None

    def forecast(self, tick: datetime) -> pl.DataFrame | None:
        """The forecast stored for ``tick``, or None when there is none."""
        try:
            return read_parquet(self._tick_path("forecasts", tick))
        except FileNotFoundError:
            return None


def _upload_if_generation_matches(path: UPath, data: bytes, generation: int) -> dict[str, Any]:
    """One GCS upload with ``ifGenerationMatch`` (0: only if absent); FileExistsError when
    the object is at another generation. gcsfs exposes only the 0 case (mode="create"), so
    this is its simple upload with the precondition set."""
    fs = path.fs
    bucket, key, _ = fs.split_path(path.path)
    metadata = json.dumps({"name": key})
    body = (
        (
            "--==0==\nContent-Type: application/json; charset=UTF-8\n\n"
            + metadata
            + "\n--==0==\nContent-Type: application/json\n\n"
        ).encode()
        + data
        + b"\n--==0==--"
    )
    return fs.call(
        "POST",
        f"{fs._location}/upload/storage/v1/b/{bucket}/o",
        uploadType="multipart",
        headers={"Content-Type": 'multipart/related; boundary="==0=="'},
        data=body,
        json_out=True,
        ifGenerationMatch=str(generation),
    )


def _is_iso_day(name: str) -> bool:
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return len(name) == 10
