"""Where models, their evaluations, the production pointer and forecast ticks live.

``ArtifactStore`` is one small resource over a folder or a bucket (UPath: ``gs://...``
works the same, see ``cloud_paths``). Layout under ``base_dir``::

    models/<version>/demand.cbm, supply.cbm   CatBoost files
    models/<version>/manifest.json            parameters, features, window, hash, code version
    models/<version>/evaluation.json          the evaluation report and blessing
    production_model.json                     the pointer, with its deployment history
    forecasts/<tokyo day>/<tick>.parquet      every forecast tick, under its own timestamp
    forecast_features/<tokyo day>/<tick>.parquet  the features each tick was made from

A version's files are written before its manifest, so a manifest means a complete version;
every file is replaced atomically (see ``storage.write_atomically``). CatBoost reads and writes
only local files: models pass through a temporary file as bytes (``training.model_file_bytes``),
and the bytes are what is uploaded and hashed.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field
from upath import UPath

from taxi_assets.calendar import TOKYO
from taxi_assets.cloud_paths import CREDENTIALS_DESCRIPTION, ENDPOINT_DESCRIPTION, storage_root
from taxi_assets.storage import read_parquet, write_atomically, write_parquet_atomically
from taxi_assets.training import (
    TrainedModel,
    TrainingParams,
    content_hash,
    model_file_bytes,
    regressor_from_bytes,
)

MODEL_FILES = ("demand.cbm", "supply.cbm")
# forecasts/<tokyo day>/<HHMMSS>.parquet (see _tick_path)
_TICK_FILE = re.compile(r"\d{6}\.parquet")


class RegistryError(RuntimeError):
    """A model, evaluation or pointer is missing or does not match what was recorded."""


class ArtifactStore(dg.ConfigurableResource):
    """Model versions, evaluations, the production pointer and forecast ticks."""

    base_dir: str = Field(description="Folder (or gs:// URL) holding models and forecasts.")
    gcs_credentials: str | None = Field(default=None, description=CREDENTIALS_DESCRIPTION)
    gcs_endpoint_url: str | None = Field(default=None, description=ENDPOINT_DESCRIPTION)

    def _path(self, *parts: str) -> UPath:
        root = storage_root(self.base_dir, self.gcs_credentials, self.gcs_endpoint_url)
        return root.joinpath(*parts)

    def _write_json(self, path: UPath, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
        write_atomically(path, lambda handle: handle.write(data))

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
        """Store both regressors and the manifest; return the content hash recorded."""
        files = {
            "demand.cbm": model_file_bytes(model.demand),
            "supply.cbm": model_file_bytes(model.supply),
        }
        for name, data in files.items():
            write_atomically(self._path("models", version, name), lambda h, d=data: h.write(d))
        digest = content_hash(*(files[name] for name in MODEL_FILES))
        self._write_json(
            self._path("models", version, "manifest.json"),
            {**manifest, "model_version": version, "content_hash": digest},
        )
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

    def set_production_pointer(self, pointer: dict[str, Any]) -> None:
        self._write_json(self._path("production_model.json"), pointer)

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
        """Every tick stored under a Tokyo day, stacked (ticks carry their own timestamp)."""
        folder = self._path("forecasts", day.isoformat())
        if not folder.exists():
            return None
        files = sorted(p for p in folder.iterdir() if p.name.endswith(".parquet"))
        if not files:
            return None
        return pl.concat([read_parquet(p) for p in files], how="vertical")

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


def _is_iso_day(name: str) -> bool:
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return len(name) == 10
