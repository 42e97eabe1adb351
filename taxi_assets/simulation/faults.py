"""The faults of a real probe feed, injected into clean pings at configured rates.

Vehicle faults (stuck status, clock skew) are chosen once for the whole fleet; row faults
(position jumps, zero coordinates, late delivery, duplicates) per chunk of taxis. Delivery
order is arrival order: by true ping time, a late ping 2-20 intervals later, and a
duplicate right after its original.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from taxi_assets.frames import PROBE_STATUSES
from taxi_assets.simulation.config import FaultRates
from taxi_assets.simulation.geo import KM_PER_DEG_LAT, LocalFrame
from taxi_assets.simulation.pings import PingChunk
from taxi_assets.simulation.streams import Stream, rng_for

CLOCK_SKEW_S = 9 * 3600.0
"""A device stamping Tokyo wall time as UTC is 9 hours ahead."""
_OCCUPIED = PROBE_STATUSES.index("occupied")
FAULT_KINDS = (
    "duplicate",
    "out_of_order",
    "gps_jump",
    "zero_coordinates",
    "stuck_status",
    "clock_skew",
    "missing_value",
    "invalid_value",
    "outside_day",
    "conflicting_duplicate",
)
DAY_S = 86_400.0


@dataclass(frozen=True)
class VehicleFaults:
    clock_skew: np.ndarray
    """Per taxi: the device clock is +9 h."""
    stuck: np.ndarray
    """Per taxi: the status flag sticks at 'occupied' once in the day."""
    stuck_hours: np.ndarray
    stuck_u: np.ndarray


@dataclass(frozen=True)
class FaultedChunk:
    """A chunk after fault injection: rows in delivery order, as numpy columns."""

    taxi: np.ndarray
    ts_s: np.ndarray
    """Reported time (seconds after Tokyo midnight, skew included)."""
    delivery_s: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    speed_kmh: np.ndarray
    heading: np.ndarray
    status: np.ndarray
    counts: dict[str, int]


def _pick(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """A random subset of round(rate * n) of n items (stochastic rounding keeps the mean)."""
    k = int(np.floor(rate * n + rng.random()))
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=min(k, n), replace=False)] = True
    return mask


def choose_vehicle_faults(seed: int, day: date, n_taxi: int, rates: FaultRates) -> VehicleFaults:
    rng = rng_for(seed, day, Stream.FAULTS, 0)
    return VehicleFaults(
        clock_skew=_pick(rng, n_taxi, rates.clock_skew),
        stuck=_pick(rng, n_taxi, rates.stuck_status),
        stuck_hours=rng.uniform(3, 6, n_taxi),
        stuck_u=rng.random(n_taxi),
    )


def inject_faults(
    pings: PingChunk,
    vehicles: VehicleFaults,
    rates: FaultRates,
    interval_s: int,
    frame: LocalFrame,
    rng: np.random.Generator,
) -> FaultedChunk:
    """Apply every fault to a chunk of pings (taxi-major, time-ordered per taxi)."""
    n = len(pings)
    taxi, t_s = pings.taxi, pings.t_s
    lat, lon, status = pings.lat.copy(), pings.lon.copy(), pings.status.copy()
    counts = dict.fromkeys(FAULT_KINDS, 0)

    # Stuck status: the flag sticks for a number of pings (the spell's length at the ping
    # interval), from a random ping that leaves room for them. Counting pings rather than
    # clock time keeps a spell whole across a night taxi's daytime gap, as a stuck meter is.
    for v in np.unique(taxi[vehicles.stuck[taxi]]):
        lo, hi = np.searchsorted(taxi, [v, v + 1])
        spell_pings = int(vehicles.stuck_hours[v] * 3600 / interval_s)
        start = lo + int(vehicles.stuck_u[v] * max(hi - lo - spell_pings, 1))
        status[start : min(start + spell_pings, hi)] = _OCCUPIED
        counts["stuck_status"] += 1

    # One position fault at most per ping: a jump of 2-20 km, or (0, 0).
    draw = rng.random(n)
    jump = draw < rates.gps_jump
    zero = (draw >= rates.gps_jump) & (draw < rates.gps_jump + rates.zero_coordinates)
    n_jump = int(jump.sum())
    jump_km = rng.uniform(2, 20, n_jump)
    angle = rng.uniform(0, 2 * np.pi, n_jump)
    lat[jump] += jump_km * np.cos(angle) / KM_PER_DEG_LAT
    lon[jump] += jump_km * np.sin(angle) / frame.km_per_deg_lon
    lat[zero], lon[zero] = 0.0, 0.0
    counts["gps_jump"], counts["zero_coordinates"] = n_jump, int(zero.sum())

    skewed = vehicles.clock_skew[taxi]
    counts["clock_skew"] = int(np.unique(taxi[skewed]).size)
    late = rng.random(n) < rates.out_of_order
    delivery_s = t_s + np.where(late, rng.uniform(2, 20, n) * interval_s, 0.0)

    dup = np.flatnonzero(rng.random(n) < rates.duplicate)
    counts["duplicate"] = len(dup)

    # Row faults of single readings: a missing latitude (NaN here, null in the frame), a
    # negative speed, a ping replayed a day late. Drawn after the older faults
    # so that those stay as they were for a given seed.
    # At most one of them per ping, and none on a position fault, so that each is
    # quarantined with its own reason.
    speed_kmh = pings.speed_kmh.copy()
    free = ~(jump | zero)
    missing = (rng.random(n) < rates.missing_value) & free
    lat[missing] = np.nan
    invalid = (rng.random(n) < rates.invalid_value) & free & ~missing
    speed_kmh[invalid] = -1.0
    stale = rng.random(n) < rates.outside_day
    counts["missing_value"], counts["invalid_value"] = int(missing.sum()), int(invalid.sum())
    counts["outside_day"] = int(stale.sum())

    ts_s = t_s + np.where(skewed, CLOCK_SKEW_S, 0.0) - np.where(stale, DAY_S, 0.0)
    # A second reading at the same instant ~50 m away: neither copy can be trusted.
    conflict = np.flatnonzero((rng.random(n) < rates.conflicting_duplicate) & ~missing)
    counts["conflicting_duplicate"] = len(conflict)
    rows = np.concatenate([np.arange(n), dup, conflict])
    lat_shift = np.concatenate([np.zeros(n + len(dup)), np.full(len(conflict), 0.0005)])
    # Per taxi in delivery order (stable: a copy follows its original).
    position = np.lexsort((delivery_s[rows], taxi[rows]))
    order = rows[position]
    # A stale replay is quarantined as outside_day, not kept as a late ping.
    fresh = ~stale[order]
    counts["out_of_order"] = _count_out_of_order(taxi[order][fresh], ts_s[order][fresh])
    return FaultedChunk(
        taxi=taxi[order],
        ts_s=ts_s[order],
        delivery_s=delivery_s[order],
        lat=(lat[rows] + lat_shift)[position],
        lon=lon[order],
        speed_kmh=speed_kmh[order],
        heading=pings.heading[order],
        status=status[order],
        counts=counts,
    )


def _count_out_of_order(taxi: np.ndarray, ts_s: np.ndarray) -> int:
    """Rows whose time is earlier than a row of the same taxi delivered before them."""
    if len(ts_s) == 0:
        return 0
    # Taxis are grouped, so offsetting each by a day-plus stride makes one running max work.
    key = taxi * 1e6 + ts_s
    running_max = np.maximum.accumulate(key)
    return int((key[1:] < running_max[:-1]).sum())
