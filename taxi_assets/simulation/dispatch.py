"""Matching requests to taxis, in time order, and logging every taxi movement.

An event loop over requests (pickup time order) and taxi state changes (shift starts,
drop-offs, interval ends). Vacant taxis sit in a uniform spatial grid keyed by where they
became free; a request scans rings of grid cells outwards and takes the nearest taxi (road
distance from where it became free) that could have reached the origin by the pickup time
at road speed and is still on duty. Street hails: the taxi cruises by and is hailed at the
request time. App bookings: the taxi waits/cruises, then drives straight to the origin as
'dispatched'; the request time is the pickup time minus that approach.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np

from taxi_assets.simulation.config import CityConfig
from taxi_assets.simulation.demand import SLICE_S, SLICES_PER_DAY, DemandField, Requests
from taxi_assets.simulation.fleet import H, Shifts
from taxi_assets.simulation.geo import LocalFrame
from taxi_assets.simulation.paths import (
    DISPATCHED,
    OCCUPIED,
    OFF_DUTY,
    VACANT,
    SegmentLog,
)
from taxi_assets.simulation.streams import Stream, rng_for

if TYPE_CHECKING:
    from taxi_assets.simulation.cruising import Guide

_START, _FREE, _END, _TICK = 0, 1, 2, 3
TAXIS_PER_GRID_CELL = 4.0
RELOCATION_CANDIDATES = 4
RELOCATE_BEYOND_KM = 1.0
"""A taxi dropping off farther than this from busy streets cruises back towards them."""
RELOCATION_LEAD_S = 15 * 60.0


@dataclass(frozen=True)
class DispatchResult:
    segments: np.ndarray
    """(n, 8) float64 rows of paths.SEGMENT_FIELDS, sorted by taxi then t0."""
    trip_taxi: np.ndarray
    trip_is_app: np.ndarray
    trip_request_s: np.ndarray
    trip_pickup_s: np.ndarray
    trip_dropoff_s: np.ndarray
    trip_request_idx: np.ndarray
    trip_dest_x: np.ndarray
    trip_dest_y: np.ndarray
    unserved_requests: int


def run_dispatch(
    config: CityConfig,
    day: date,
    field: DemandField,
    requests: Requests,
    dest_x: np.ndarray,
    dest_y: np.ndarray,
    shifts: Shifts,
    speed_kmh: np.ndarray,
    guide: Guide | None = None,
) -> DispatchResult:
    """Serve the day's requests with the fleet; returns the movement log and served trips.

    After a drop-off far from busy streets the taxi heads (vacant) for the nearest of a few
    points drawn from the demand of the next quarter hour, as drivers do; without that,
    taxis strand in quiet areas and hotspots go unserved.

    With a ``guide`` (simulation.cruising), its guided taxis skip that drift: every 5
    minutes and after each drop-off they drive to the cell the policy names instead. Without
    one, nothing here draws or orders differently from before guides existed.
    """
    frame = LocalFrame.of(config.area)
    rng = rng_for(config.seed, day, Stream.DISPATCH)
    n_req, n_taxi = len(requests), config.fleet_size
    log = SegmentLog(frame)
    speed_kms = [float(v) / 3600 for v in speed_kmh]
    # Per-request draws up front (cruise length, waypoint angle, route shape, dwell, pace).
    u = rng.random((n_req, 4)).tolist()
    trip_pace = np.exp(rng.normal(0.0, 0.15, n_req)).tolist()
    board_s = rng.uniform(20, 60, n_req).tolist()
    pay_s = rng.uniform(30, 90, n_req).tolist()
    idle_u = rng.random((n_taxi * 8, 2)).tolist()  # idle spells: a few per taxi per day
    idle_next = 0
    reloc_x, reloc_y = _relocation_candidates(field, requests.t_s + RELOCATION_LEAD_S, rng)
    reloc_x, reloc_y = reloc_x.tolist(), reloc_y.tolist()

    # Uniform grid of vacant taxis, ~4 taxis per cell.
    cell_km = min(
        max(math.sqrt(frame.width_km * frame.height_km * TAXIS_PER_GRID_CELL / n_taxi), 0.25), 2.0
    )
    nx, ny = int(frame.width_km / cell_km) + 1, int(frame.height_km / cell_km) + 1
    grid: list[set[int]] = [set() for _ in range(nx * ny)]
    max_km = config.max_pickup_distance_km
    hail_km = max_km if config.street_hail_reach_km is None else config.street_hail_reach_km
    rings = _ring_offsets(int(max_km / cell_km) + 2)

    # A vacant taxi has an anchor (where and when it became free) and, after a drop-off in
    # a quiet area, a second one: where and when it would be after driving back towards
    # demand. It is indexed under both and may serve a request from either; the relocation
    # drive is only logged if the taxi used it.
    px, py = shifts.start_x.tolist(), shifts.start_y.tolist()
    t_free = [0.0] * n_taxi
    rx, ry, rt = [0.0] * n_taxi, [0.0] * n_taxi, [math.inf] * n_taxi
    leave = [-1.0] * n_taxi  # a guided taxi leaves its anchor then, not when it became free
    work_end = [-1.0] * n_taxi
    interval_idx = [0] * n_taxi
    grid_keys: list[tuple[int, ...]] = [()] * n_taxi
    intervals = shifts.intervals
    heap: list[tuple[float, int, int, int]] = []
    seq = 0
    for taxi in range(n_taxi):
        heap.append((intervals[taxi][0][0], seq, _START, taxi))
        seq += 1
    guided = guide.guided.tolist() if guide is not None else [False] * n_taxi
    if guide is not None:
        for tick in range(int(SLICES_PER_DAY)):
            heap.append((tick * SLICE_S, seq, _TICK, -1))
            seq += 1
    heapq.heapify(heap)

    def grid_key(x: float, y: float) -> int:
        return min(int(y / cell_km), ny - 1) * nx + min(int(x / cell_km), nx - 1)

    def insert(taxi: int) -> None:
        keys = {grid_key(px[taxi], py[taxi])}
        if rt[taxi] < math.inf:
            keys.add(grid_key(rx[taxi], ry[taxi]))
        for key in keys:
            grid[key].add(taxi)
        grid_keys[taxi] = tuple(keys)

    def remove(taxi: int) -> None:
        for key in grid_keys[taxi]:
            grid[key].discard(taxi)
        grid_keys[taxi] = ()

    def use_relocation(taxi: int, lon_first: bool) -> None:
        t0 = t_free[taxi]
        if leave[taxi] >= 0:
            t0 = leave[taxi]
            log.stay(taxi, t_free[taxi], t0, px[taxi], py[taxi], VACANT)
            leave[taxi] = -1.0
        log.road(taxi, t0, rt[taxi], px[taxi], py[taxi], rx[taxi], ry[taxi], VACANT, lon_first)
        px[taxi], py[taxi], t_free[taxi] = rx[taxi], ry[taxi], rt[taxi]

    def push(t: float, kind: int, taxi: int) -> None:
        nonlocal seq
        heapq.heappush(heap, (t, seq, kind, taxi))
        seq += 1

    def steer(taxi: int, t: float, target: int) -> None:
        """A guided vacant taxi heads from its anchor for a point of cell ``target``,
        leaving at ``t`` (or once free). Like the drift after a far drop-off, the point is
        a second anchor: the taxi may still be hailed near where it was. One still on its
        way keeps going; staying, or arriving past its shift, keeps it where it is."""
        assert guide is not None
        if rt[taxi] < math.inf:
            if rt[taxi] > t:
                return
            remove(taxi)
            use_relocation(taxi, guide.rng.random() < 0.5)
            rt[taxi] = math.inf
            insert(taxi)
        if target == guide.cell_index(px[taxi], py[taxi]):
            return
        tx, ty = guide.point_in(target)
        start = max(t, t_free[taxi])
        v = speed_kms[min(int(start // H), 23)]
        arrive = start + (abs(tx - px[taxi]) + abs(ty - py[taxi])) / v
        if arrive >= work_end[taxi]:
            return
        remove(taxi)
        rx[taxi], ry[taxi], rt[taxi], leave[taxi] = tx, ty, arrive, start
        insert(taxi)

    def tick(t: float) -> None:
        assert guide is not None
        vacant = [
            (taxi, guide.cell_index(px[taxi], py[taxi]))
            for taxi in range(n_taxi)
            if guided[taxi] and grid_keys[taxi] and t < work_end[taxi]
        ]
        vacant = [(taxi, cell) for taxi, cell in vacant if cell >= 0]
        for taxi, target in guide.tick(t, vacant).items():
            steer(taxi, t, target)

    def close(taxi: int, t: float) -> None:
        """End the current work interval: off duty (break or log-out), then the next one."""
        _, _, _, after = intervals[taxi][interval_idx[taxi]]
        log.stay(taxi, t, t + after, px[taxi], py[taxi], OFF_DUTY)
        interval_idx[taxi] += 1
        work_end[taxi] = -1.0
        if interval_idx[taxi] < len(intervals[taxi]):
            push(max(intervals[taxi][interval_idx[taxi]][0], t + after), _START, taxi)

    def handle(t: float, kind: int, taxi: int) -> None:
        nonlocal idle_next
        if kind == _TICK:
            tick(t)
        elif kind == _START:
            _, end, before, _ = intervals[taxi][interval_idx[taxi]]
            log.stay(taxi, t - before, t, px[taxi], py[taxi], OFF_DUTY)
            t_free[taxi], work_end[taxi], rt[taxi] = t, end, math.inf
            leave[taxi] = -1.0
            insert(taxi)
            push(end, _END, taxi)
        elif kind == _FREE:
            if t >= work_end[taxi]:
                close(taxi, t)
            else:
                insert(taxi)
                if guided[taxi]:
                    assert guide is not None
                    cell = guide.cell_index(px[taxi], py[taxi])
                    if cell >= 0:
                        steer(taxi, t, guide.targets.get(cell, cell))
        elif grid_keys[taxi] and work_end[taxi] == t:  # _END while vacant
            remove(taxi)
            ua, ub = idle_u[idle_next % len(idle_u)]
            idle_next += 1
            if rt[taxi] <= t:
                use_relocation(taxi, ua < 0.5)
            hour_speed = speed_kms[min(int(t_free[taxi] // H), 23)]
            log.idle(taxi, t_free[taxi], t, px[taxi], py[taxi], hour_speed, ua, ub)
            close(taxi, t)

    trips: list[tuple] = []
    unserved = 0
    req_t, req_x, req_y = requests.t_s.tolist(), requests.x.tolist(), requests.y.tolist()
    req_app = requests.is_app.tolist()
    dxs, dys = dest_x.tolist(), dest_y.tolist()
    for i in range(n_req):
        t = req_t[i]
        while heap and heap[0][0] <= t:
            te, _, kind, taxi = heapq.heappop(heap)
            handle(te, kind, taxi)
        v = speed_kms[min(int(t // H), 23)]
        ox, oy = req_x[i], req_y[i]
        cx, cy = min(int(ox / cell_km), nx - 1), min(int(oy / cell_km), ny - 1)
        best, best_km, best_relocated = -1, max_km if req_app[i] else hail_km, False
        for ring_no, ring in enumerate(rings):
            if (ring_no - 1) * cell_km > best_km:
                break
            for dx, dy in ring:
                gx, gy = cx + dx, cy + dy
                if gx < 0 or gy < 0 or gx >= nx or gy >= ny:
                    continue
                for taxi in grid[gy * nx + gx]:
                    if t >= work_end[taxi]:
                        continue
                    km = abs(px[taxi] - ox) + abs(py[taxi] - oy)
                    if km < best_km and t_free[taxi] + km / v <= t:
                        best, best_km, best_relocated = taxi, km, False
                    km = abs(rx[taxi] - ox) + abs(ry[taxi] - oy)
                    if km < best_km and rt[taxi] + km / v <= t:
                        best, best_km, best_relocated = taxi, km, True
        if best < 0:
            unserved += 1
            continue
        taxi = best
        remove(taxi)
        u_extra, u_angle, u_route, u_route2 = u[i]
        if best_relocated:
            use_relocation(taxi, u_route2 < 0.5)
        x0, y0 = px[taxi], py[taxi]
        if req_app[i]:
            t_request = t - best_km / v
            log.idle(taxi, t_free[taxi], t_request, x0, y0, v, u_extra, u_angle)
            log.road(taxi, t_request, t, x0, y0, ox, oy, DISPATCHED, u_route2 < 0.5)
        else:
            t_request = t
            log.cruise_to(taxi, t_free[taxi], t, x0, y0, ox, oy, v, u_extra, u_angle)
        ex, ey = dxs[i], dys[i]
        t_go = t + board_s[i]
        t_arrive = t_go + (abs(ex - ox) + abs(ey - oy)) / (v * trip_pace[i])
        t_drop = t_arrive + pay_s[i]
        log.stay(taxi, t, t_go, ox, oy, OCCUPIED)
        log.road(taxi, t_go, t_arrive, ox, oy, ex, ey, OCCUPIED, u_route < 0.5)
        log.stay(taxi, t_arrive, t_drop, ex, ey, OCCUPIED)
        trips.append((taxi, req_app[i], t_request, t, t_drop, i, ex, ey))
        px[taxi], py[taxi], t_free[taxi], rt[taxi] = ex, ey, t_drop, math.inf
        leave[taxi] = -1.0
        qx, qy = min(
            zip(reloc_x[i], reloc_y[i], strict=True),
            key=lambda q, ex=ex, ey=ey: abs(q[0] - ex) + abs(q[1] - ey),
        )
        reloc_km = abs(qx - ex) + abs(qy - ey)
        if reloc_km > RELOCATE_BEYOND_KM and not guided[taxi]:
            rx[taxi], ry[taxi], rt[taxi] = qx, qy, t_drop + reloc_km / v
        push(t_drop, _FREE, taxi)
    while heap:
        te, _, kind, taxi = heapq.heappop(heap)
        handle(te, kind, taxi)

    segments = np.frombuffer(log.data, dtype=np.float64).reshape(-1, 8)
    segments = segments[np.lexsort((segments[:, 1], segments[:, 0]))]
    cols = list(zip(*trips, strict=True)) if trips else [()] * 8
    return DispatchResult(
        segments=segments,
        trip_taxi=np.array(cols[0], dtype=np.int64),
        trip_is_app=np.array(cols[1], dtype=bool),
        trip_request_s=np.array(cols[2], dtype=np.float64),
        trip_pickup_s=np.array(cols[3], dtype=np.float64),
        trip_dropoff_s=np.array(cols[4], dtype=np.float64),
        trip_request_idx=np.array(cols[5], dtype=np.int64),
        trip_dest_x=np.array(cols[6], dtype=np.float64),
        trip_dest_y=np.array(cols[7], dtype=np.float64),
        unserved_requests=unserved,
    )


def _relocation_candidates(
    field: DemandField, t_s: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(n, RELOCATION_CANDIDATES) points drawn from the demand rate at each time ``t_s``."""
    rate = field.street + field.app
    slice_idx = np.minimum((t_s // SLICE_S).astype(np.int64), SLICES_PER_DAY - 1)
    u = rng.random((len(t_s), RELOCATION_CANDIDATES))
    cell = np.zeros(u.shape, dtype=np.int64)
    for s in np.unique(slice_idx):
        rows = slice_idx == s
        cdf = np.cumsum(rate[s])
        cell[rows] = np.searchsorted(cdf / cdf[-1], u[rows])
    cell = np.minimum(cell, rate.shape[1] - 1)
    jitter = rng.uniform(-0.25, 0.25, (2, *u.shape))
    return field.cell_x[cell] + jitter[0], field.cell_y[cell] + jitter[1]


def _ring_offsets(n_rings: int) -> list[list[tuple[int, int]]]:
    """Grid offsets at Chebyshev distance 0, 1, 2, ... from a cell."""
    rings: list[list[tuple[int, int]]] = [[] for _ in range(n_rings)]
    for dx in range(-n_rings + 1, n_rings):
        for dy in range(-n_rings + 1, n_rings):
            rings[max(abs(dx), abs(dy))].append((dx, dy))
    return rings
