"""The forecast tick the API serves: read from the artifact store, parsed once, swapped in
when a newer tick appears (no restart).

:func:`read_latest_tick` is the only code that reads the store. It relies on two public
methods of ``ArtifactStore``: ``latest_forecast_tick()`` (the newest tick's identity, from
two listings, no tick read) on every check, ``forecast(tick)`` only when that identity
changed, and ``production_pointer()`` for the deployed model. Everything a request needs
(the guidance of every cell, the GeoJSON and the map per horizon) is computed once per tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import anyio.to_thread
import polars as pl

from taxi_assets.api.cells import CellGrid
from taxi_assets.guidance import GuidanceParams, best_targets, forecast_horizons
from taxi_assets.model.registry import ArtifactStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredTick:
    """What the store holds now: the deployed model and the newest tick's identity."""

    deployed_model: str | None
    latest_tick: datetime | None


def read_latest_tick(
    store: ArtifactStore, known: datetime | None
) -> tuple[StoredTick, pl.DataFrame | None]:
    """The store's deployed model and newest tick; the tick's forecast only when it is not
    ``known`` (the tick already parsed), so an unchanged store costs two listings and one
    small JSON read."""
    pointer = store.production_pointer()
    latest = store.latest_forecast_tick()
    stored = StoredTick(pointer.get("model_version") if pointer else None, latest)
    if latest is None or latest == known:
        return stored, None
    return stored, store.forecast(latest)


@dataclass(frozen=True)
class LiveTick:
    """One forecast tick, parsed, with the guidance of every cell computed."""

    identity: datetime
    tick: datetime
    model_version: str
    horizons: tuple[int, ...]
    forecast: pl.DataFrame
    guidance: dict[int, dict] = field(repr=False)
    # (expected street hails, expected vacant taxis) per cell at the first horizon.
    expected_now: dict[int, tuple[float, float]] = field(repr=False)
    # Rendered answers per horizon (GeoJSON bytes, map pages), filled on first use.
    rendered: dict[tuple[str, int], bytes] = field(default_factory=dict, repr=False)

    def forecast_at(self, horizon: int) -> pl.DataFrame:
        return self.forecast.filter(pl.col("horizon") == horizon).sort("cell")


def parse_tick(
    identity: datetime, forecast: pl.DataFrame, grid: CellGrid, params: GuidanceParams
) -> LiveTick:
    """The stored forecast with its guidance per cell: ``best_targets`` over the whole area
    once (a fraction of a second), which gives for every cell the same target and route as
    ``guidance_for_position`` gives a taxi in it (about 45 ms each)."""
    if forecast.height == 0:
        raise ValueError(f"forecast tick {identity.isoformat()} is empty")
    if "horizon" not in forecast.columns:
        # A tick stored before forecasts carried their horizon: the bucket in progress.
        forecast = forecast.with_columns(horizon=pl.lit(0, pl.Int8))
    tick = forecast["tick"][0]
    guidance = best_targets(forecast, grid.area, tick, params)
    first = forecast.filter(pl.col("horizon") == forecast_horizons(forecast)[0])
    expected_now = {
        int(cell): (float(hails or 0.0), float(vacant or 0.0))
        for cell, hails, vacant in first.select(
            "cell", "expected_street_hails", "expected_vacant_taxis"
        ).iter_rows()
    }
    return LiveTick(
        identity=identity,
        tick=tick,
        model_version=str(forecast["model_version"][0]),
        horizons=tuple(forecast_horizons(forecast)),
        forecast=forecast,
        guidance={row["cell"]: row for row in guidance.iter_rows(named=True)},
        expected_now=expected_now,
    )


@dataclass
class ServingState:
    """What the service knows: the store as last checked, the tick it serves, and the last
    error reading the store (the previous tick stays served meanwhile)."""

    stored: StoredTick | None = None
    live: LiveTick | None = None
    error: str | None = None


class TickCache:
    """Checks the store at most every ``refresh_seconds`` (0: on every request) and swaps
    in a newer tick; requests meanwhile keep answering from the tick they have."""

    def __init__(
        self,
        store: ArtifactStore,
        grid: CellGrid,
        params: GuidanceParams,
        refresh_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.grid, self.params = store, grid, params
        self.refresh_seconds = refresh_seconds
        self.monotonic = monotonic
        self.state = ServingState()
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    def refresh(self) -> ServingState:
        """Check the store now (blocking I/O: call it from a worker thread)."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> ServingState:
        known = self.state.live.identity if self.state.live else None
        try:
            stored, forecast = read_latest_tick(self.store, known)
            live = self.state.live
            if forecast is not None and stored.latest_tick is not None:
                live = parse_tick(stored.latest_tick, forecast, self.grid, self.params)
                log.info("serving forecast tick %s", live.tick.isoformat())
            self.state = ServingState(stored, live, None)
        except Exception as error:  # a bad read keeps the tick already served
            log.exception("reading the artifact store failed")
            problem = (
                f"reading the artifact store {self.store.base_dir} failed, still serving the "
                f"tick read before: {type(error).__name__}: {error}"
            )
            self.state = ServingState(self.state.stored, self.state.live, problem)
        self._checked_at = self.monotonic()
        return self.state

    def _due(self) -> bool:
        return (
            self._checked_at is None or self.monotonic() - self._checked_at >= self.refresh_seconds
        )

    async def current(self) -> ServingState:
        """The state to answer from, refreshed first when a check is due. While one request
        refreshes, the others answer from the tick already parsed (if any)."""
        if self._due() and not (self._lock.locked() and self.state.live is not None):
            await anyio.to_thread.run_sync(self._refresh_if_due)
        return self.state

    def _refresh_if_due(self) -> None:
        with self._lock:
            if self._due():
                self._refresh_locked()
