"""Guided cruising in the simulator: a policy steers a share of the fleet (issue 12 part 6).

A *cruising policy* is any callable ``policy(tick, vacant) -> guidance``: at ``tick`` (an
aware datetime, every 5 minutes of the Tokyo day) it gets the guided taxis that are vacant
per cell (``cell``, ``vacant_taxis``) and returns one row per cell with ``target_cell``
and, optionally, ``allocation`` (a list of ``{target_cell, taxis}``, as
``taxi_assets.guidance.cruising_guidance`` returns). The simulator sends the vacant guided
taxis of each cell to the allocation's targets in order (lowest taxi number first), the
rest to ``target_cell``; a guided taxi that drops a fare off heads for the ``target_cell``
of its drop-off cell at the latest tick.

How the dispatch reacts: a vacant taxi waits at an *anchor* (where and since when it is
free) and serves a request when it is the nearest on-duty taxi that could have reached the
origin by then. A guided taxi moving to a target drives there (vacant, logged) and its
anchor becomes a point in the target cell from the moment it arrives; a taxi told to stay
keeps its anchor. Unguided taxis behave exactly as before (see ``run_dispatch``), including
their drift towards demand after a far drop-off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from taxi_assets.calendar import day_window_utc
from taxi_assets.simulation.config import CityConfig
from taxi_assets.simulation.demand import DemandField
from taxi_assets.simulation.geo import LocalFrame
from taxi_assets.simulation.paths import DISPATCHED, OCCUPIED, VACANT
from taxi_assets.simulation.streams import Stream, rng_for

CruisingPolicy = Callable[[datetime, pl.DataFrame], pl.DataFrame]
"""policy(tick, vacant guided taxis per cell) -> per cell target_cell [, allocation]."""

TICK_S = 300.0
"""Guided taxis are re-guided every 5 minutes (the forecast tick)."""
TARGET_JITTER_KM = 0.2
"""Guided taxis spread around the target cell's centre rather than piling on one point."""


def guided_taxis(config: CityConfig, day: date) -> np.ndarray:
    """Which taxis follow the guidance: ``round(adoption * fleet)`` of them, drawn from
    their own stream, so every policy of one (seed, day) guides the same taxis."""
    n = config.fleet_size
    guided = np.zeros(n, dtype=bool)
    count = round(config.guidance_adoption * n)
    if count:
        order = rng_for(config.seed, day, Stream.GUIDANCE).permutation(n)
        guided[order[:count]] = True
    return guided


@dataclass
class Guide:
    """The policy as the dispatch loop sees it: cells of positions, targets per tick."""

    policy: CruisingPolicy
    config: CityConfig
    day: date
    field: DemandField
    guided: np.ndarray
    rng: np.random.Generator = field(init=False)
    targets: dict[int, int] = field(default_factory=dict, init=False)
    """target cell (index into field.cells) per cell index, from the latest tick."""

    def __post_init__(self) -> None:
        self.rng = rng_for(self.config.seed, self.day, Stream.GUIDANCE, 1)
        self._codes = self.field.cells["cell"].to_list()
        self._index_of = {code: i for i, code in enumerate(self._codes)}
        frame = LocalFrame.of(self.config.area)
        self._row_km = frame.height_km / self.config.area.n_rows
        self._col_km = frame.width_km / self.config.area.n_cols
        self._day_start = day_window_utc(self.day)[0]

    def cell_index(self, x: float, y: float) -> int:
        """Index into ``field.cells`` of the cell holding (x, y) km; -1 outside the area."""
        area = self.config.area
        row = min(max(int(y / self._row_km), 0), area.n_rows - 1)
        col = min(max(int(x / self._col_km), 0), area.n_cols - 1)
        return int(self.field.grid_index[row, col])

    def point_in(self, cell_index: int) -> tuple[float, float]:
        jitter = self.rng.uniform(-TARGET_JITTER_KM, TARGET_JITTER_KM, 2)
        return (
            float(self.field.cell_x[cell_index] + jitter[0]),
            float(self.field.cell_y[cell_index] + jitter[1]),
        )

    def tick(self, t: float, taxi_cells: list[tuple[int, int]]) -> dict[int, int]:
        """Ask the policy at ``t`` (seconds after Tokyo midnight) where the vacant guided
        taxis, ``(taxi, cell index)`` in taxi order, should go: target cell index per taxi.
        Also remembers each cell's single target for taxis freed before the next tick."""
        counts: dict[int, int] = {}
        for _, cell in taxi_cells:
            counts[cell] = counts.get(cell, 0) + 1
        vacant = pl.DataFrame(
            {
                "cell": [self._codes[c] for c in counts],
                "vacant_taxis": list(counts.values()),
            },
            schema={"cell": pl.Int64, "vacant_taxis": pl.Int32},
        )
        guidance = self.policy(self._day_start + timedelta(seconds=t), vacant)
        missing = {"cell", "target_cell"} - set(guidance.columns)
        if missing:
            raise ValueError(f"cruising policy: guidance lacks columns {sorted(missing)}")
        index = self._index_of
        self.targets = {
            index[cell]: index[target]
            for cell, target in zip(
                guidance["cell"].to_list(), guidance["target_cell"].to_list(), strict=True
            )
            if cell in index and target in index
        }
        # Per cell, the queue of targets the allocation hands out, one taxi at a time.
        queues: dict[int, list[int]] = {}
        if "allocation" in guidance.columns:
            wanted = guidance.filter(pl.col("cell").is_in(vacant["cell"].implode()))
            for code, allocation in zip(
                wanted["cell"].to_list(), wanted["allocation"].to_list(), strict=True
            ):
                queue = queues.setdefault(index[code], [])
                for entry in allocation or []:
                    if entry["target_cell"] in index:
                        queue.extend([index[entry["target_cell"]]] * int(entry["taxis"]))
        chosen: dict[int, int] = {}
        handed = dict.fromkeys(queues, 0)
        for taxi, cell in taxi_cells:
            queue = queues.get(cell, [])
            if handed.get(cell, 0) < len(queue):
                chosen[taxi] = queue[handed[cell]]
                handed[cell] += 1
            else:
                chosen[taxi] = self.targets.get(cell, cell)
        return chosen


GROUP_COLUMNS = (
    "group",
    "taxis",
    "street_hails",
    "app_bookings",
    "vacant_hours",
    "street_hails_per_vacant_hour",
    "occupancy_rate",
    "empty_km",
    "empty_km_per_street_hail",
)


def fleet_outcomes(
    segments: np.ndarray,
    trip_taxi: np.ndarray,
    trip_is_app: np.ndarray,
    trip_pickup_s: np.ndarray,
    guided: np.ndarray,
    day_s: float = 86_400.0,
) -> pl.DataFrame:
    """Per group (``guided``, ``unguided``, ``all``) of taxis over the Tokyo day: street
    hails and app bookings picked up, vacant hours, street hails per vacant hour, occupancy
    (occupied time over on-duty time, on duty being vacant, dispatched or occupied) and
    empty km (vacant or dispatched) per street hail. Time past midnight is cut off."""
    taxi = segments[:, 0].astype(np.int64)
    t0, t1 = np.clip(segments[:, 1], 0, day_s), np.clip(segments[:, 2], 0, day_s)
    seconds = t1 - t0
    full = np.maximum(segments[:, 2] - segments[:, 1], 1e-12)
    km = np.hypot(segments[:, 5] - segments[:, 3], segments[:, 6] - segments[:, 4])
    km = km * seconds / full  # the part of the segment inside the day
    status = segments[:, 7]
    vacant, occupied = status == VACANT, status == OCCUPIED
    empty = vacant | (status == DISPATCHED)
    on_duty = empty | occupied
    in_day = trip_pickup_s < day_s
    rows = []
    for group, members in (("guided", guided), ("unguided", ~guided), ("all", None)):
        seg = np.ones(len(taxi), bool) if members is None else members[taxi]
        trip = np.ones(len(trip_taxi), bool) if members is None else members[trip_taxi]
        hails = int((trip & in_day & ~trip_is_app).sum())
        vacant_h = seconds[seg & vacant].sum() / 3600
        duty_s = seconds[seg & on_duty].sum()
        empty_km = km[seg & empty].sum()
        rows.append(
            {
                "group": group,
                "taxis": int(len(guided) if members is None else members.sum()),
                "street_hails": hails,
                "app_bookings": int((trip & in_day & trip_is_app).sum()),
                "vacant_hours": vacant_h,
                "street_hails_per_vacant_hour": hails / vacant_h if vacant_h else None,
                "occupancy_rate": seconds[seg & occupied].sum() / duty_s if duty_s else None,
                "empty_km": empty_km,
                "empty_km_per_street_hail": empty_km / hails if hails else None,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "group": pl.String,
            "taxis": pl.Int64,
            "street_hails": pl.Int64,
            "app_bookings": pl.Int64,
            "vacant_hours": pl.Float64,
            "street_hails_per_vacant_hour": pl.Float64,
            "occupancy_rate": pl.Float64,
            "empty_km": pl.Float64,
            "empty_km_per_street_hail": pl.Float64,
        },
    ).select(GROUP_COLUMNS)
