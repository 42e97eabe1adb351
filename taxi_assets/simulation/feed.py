"""Feed profiles: how a probe feed delivers the simulated city (DESIGN.md, real feeds).

The city (demand, fleet, dispatch) is the same under every profile; a profile changes what
the feed shows of it: how often taxis ping, how the meter flag flaps, GPS steps, taxis
coming back into the area already occupied (airport fares), whether app bookings and the
'dispatched' status exist, whether weather is delivered, and how vehicles are named. The
simulator's trips stay the ground truth: a fare turned into a re-entry is no longer a
street hail in the area, and every other street hail is still one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import polars as pl

from taxi_assets.frames import PROBE_STATUSES, RAW_PROBES_SCHEMA
from taxi_assets.simulation.geo import KM_PER_DEG_LAT, LocalFrame
from taxi_assets.simulation.pings import PingChunk

VehicleIds = Literal["integer", "prefixed", "hash"]
Dispatch = Literal["shown", "absent", "hidden"]
_VACANT = PROBE_STATUSES.index("vacant")
_OCCUPIED = PROBE_STATUSES.index("occupied")
_DISPATCHED = PROBE_STATUSES.index("dispatched")
_KEY_STRIDE = 1e6  # seconds between taxis in a combined (taxi, time) key
DAY_S = 86_400.0
FEED_EFFECTS = ("vacant_flaps", "single_ping_fares", "gps_steps", "reentries")


@dataclass(frozen=True)
class FeedProfile:
    """What a probe feed shows of the simulated city."""

    name: str
    ping_interval_s: int | None = None
    """Median seconds between pings (None: the city's regular ``ping_interval_s``)."""
    interval_spread: float = 0.0
    """Log-normal sigma of the interval around its median (0: a regular clock)."""
    missed_ping_share: float = 0.0
    """Share of intervals stretched 2-4x by missed pings (the 99th-percentile tail)."""
    vacant_flap_per_fare: float = 0.0
    """Share of fares showing one vacant ping in their middle."""
    single_ping_fare_per_hail: float = 0.0
    """Lone occupied pings among vacant ones, per street hail of the day."""
    gps_step_rate: float = 0.0
    """Share of pings starting a GPS step: a run of 2-6 pings displaced 8-30 km."""
    reentry_per_hail: float = 0.0
    """Share of street hails near the area's edge turned into fares picked up outside
    (an airport): the taxi leaves vacant and comes back occupied."""
    dispatch: Dispatch = "shown"
    """'absent': no app bookings at all; 'hidden': app bookings show no 'dispatched'."""
    weather: bool = True
    vehicle_ids: VehicleIds = "integer"

    def __post_init__(self) -> None:
        for name in (
            "missed_ping_share",
            "vacant_flap_per_fare",
            "single_ping_fare_per_hail",
            "gps_step_rate",
            "reentry_per_hail",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"feed profile {self.name!r}: {name}={value!r} not in [0, 1]")
        if self.ping_interval_s is not None and not 10 <= self.ping_interval_s <= 600:
            raise ValueError(
                f"feed profile {self.name!r}: ping_interval_s={self.ping_interval_s!r} "
                "must be in [10, 600] seconds"
            )
        if not 0 <= self.interval_spread <= 2:
            raise ValueError(f"feed profile {self.name!r}: interval_spread must be in [0, 2]")
        if self.dispatch not in ("shown", "absent", "hidden"):
            raise ValueError(f"feed profile {self.name!r}: dispatch={self.dispatch!r} unknown")
        if self.vehicle_ids not in ("integer", "prefixed", "hash"):
            raise ValueError(f"feed profile {self.name!r}: vehicle_ids={self.vehicle_ids!r}")

    @property
    def irregular(self) -> bool:
        return self.ping_interval_s is not None


# String ids need a String vehicle_id in RAW_PROBES_SCHEMA; until then the real-feed
# profiles name vehicles with integers (every other trait is unchanged).
_STRING_IDS: VehicleIds = "prefixed" if RAW_PROBES_SCHEMA["vehicle_id"] == pl.String else "integer"

CITY = FeedProfile(name="city")
# Measured on a real feed (DESIGN.md): ~60 s median, p95 ~110 s, p99 ~240 s; the meter
# flaps (single-ping fares up to ~9% of apparent hails); GPS steps; airport fares; no
# 'dispatched' status; no weather; string vehicle ids.
REAL_60S = FeedProfile(
    name="real_60s",
    ping_interval_s=60,
    interval_spread=0.3,
    missed_ping_share=0.03,
    vacant_flap_per_fare=0.05,
    single_ping_fare_per_hail=0.09,
    gps_step_rate=0.0005,
    reentry_per_hail=0.03,
    dispatch="absent",
    weather=False,
    vehicle_ids=_STRING_IDS,
)
# The same feed where app bookings exist but show no 'dispatched' status: they look like
# street hails, which no rule can tell apart (the bench shows what that costs).
REAL_60S_HIDDEN_DISPATCH = replace(REAL_60S, name="real_60s_hidden_dispatch", dispatch="hidden")
# Slower devices: every trait of real_60s at twice the interval, hashed vehicle ids.
REAL_120S = replace(
    REAL_60S,
    name="real_120s",
    ping_interval_s=120,
    vehicle_ids="hash" if _STRING_IDS != "integer" else "integer",
)
FEED_PROFILES: dict[str, FeedProfile] = {
    p.name: p for p in (CITY, REAL_60S, REAL_60S_HIDDEN_DISPATCH, REAL_120S)
}


def feed_profile(name: str) -> FeedProfile:
    """The profile called ``name``, or a ValueError listing the known ones."""
    try:
        return FEED_PROFILES[name]
    except KeyError:
        raise ValueError(
            f"feed_profile={name!r} is unknown: choose one of {sorted(FEED_PROFILES)}"
        ) from None


def vehicle_id_column(taxi_number: np.ndarray, style: VehicleIds) -> pl.Series:
    """The ids a feed gives taxis 1..n: integers, 'T-0043' or a short stable hash."""
    numbers = pl.Series("vehicle_id", taxi_number, dtype=pl.Int64)
    if style == "integer":
        return numbers.cast(pl.Int32)
    if style == "prefixed":
        return "T-" + numbers.cast(pl.String).str.zfill(4)
    return numbers.hash(seed=20_260_501).cast(pl.String).str.slice(0, 10)


def base_interval_s(profile: FeedProfile, city_interval_s: int) -> int:
    """The clock pings are sampled on before a feed's irregular intervals thin them."""
    return 10 if profile.irregular else city_interval_s


def median_interval_s(profile: FeedProfile, city_interval_s: int) -> int:
    return profile.ping_interval_s if profile.ping_interval_s is not None else city_interval_s


def thin_to_feed_intervals(
    pings: PingChunk, profile: FeedProfile, rng: np.random.Generator
) -> PingChunk:
    """Keep the pings of a 10 s clock that an irregular feed would have delivered."""
    if not profile.irregular or len(pings) == 0:
        return pings
    taxis = np.unique(pings.taxi)
    median = float(profile.ping_interval_s or 60)
    per_taxi = int(DAY_S / median * 1.5) + 10
    gaps = median * np.exp(profile.interval_spread * rng.standard_normal((len(taxis), per_taxi)))
    stretched = rng.random(gaps.shape) < profile.missed_ping_share
    gaps = np.where(stretched, gaps * rng.uniform(2, 4, gaps.shape), gaps)
    start = rng.uniform(0, median, (len(taxis), 1))
    wanted = taxis[:, None] * _KEY_STRIDE + start + np.cumsum(gaps, axis=1) - gaps[:, :1]
    keys = pings.taxi * _KEY_STRIDE + pings.t_s
    found = np.searchsorted(keys, wanted.ravel(), "left")
    found = found[found < len(keys)]
    keep = np.unique(found)
    return PingChunk(**{name: getattr(pings, name)[keep] for name in PingChunk.__annotations__})


def _runs(taxi: np.ndarray, status: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end exclusive) of every run of one status of one taxi."""
    change = np.ones(len(status), dtype=bool)
    change[1:] = (taxi[1:] != taxi[:-1]) | (status[1:] != status[:-1])
    starts = np.flatnonzero(change)
    return starts, np.append(starts[1:], len(status))


@dataclass(frozen=True)
class FeedEffects:
    """A chunk's pings as the feed shows them, and what the feed changed."""

    pings: PingChunk
    reentered_trips: np.ndarray  # indices (into the day's trips) now picked up outside
    counts: dict[str, int]


def apply_feed_profile(
    pings: PingChunk,
    profile: FeedProfile,
    frame: LocalFrame,
    hails: tuple[np.ndarray, np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> FeedEffects:
    """Meter flaps, GPS steps, re-entries and hidden dispatch on a chunk's pings.

    ``hails`` are the chunk's street hails as (trip index, taxi, pickup second), taxis
    numbered as in ``pings``.
    """
    taxi, t_s = pings.taxi, pings.t_s
    lat, lon, status = pings.lat.copy(), pings.lon.copy(), pings.status.copy()
    counts = dict.fromkeys(FEED_EFFECTS, 0)

    reentered = _reenter_occupied(pings, profile, frame, hails, rng, lat, lon, status)
    counts["reentries"] = len(reentered)

    # Meter flaps, on runs of the true status: a vacant ping in the middle of a fare, and
    # a lone occupied ping in the middle of a vacant stretch.
    starts, ends = _runs(taxi, status)
    fares = np.flatnonzero((status[starts] == _OCCUPIED) & (ends - starts >= 5))
    flapped = fares[rng.random(len(fares)) < profile.vacant_flap_per_fare]
    middles = starts[flapped] + (ends[flapped] - starts[flapped]) // 2
    status[middles] = _VACANT
    counts["vacant_flaps"] = len(middles)
    vacant_runs = np.flatnonzero((status[starts] == _VACANT) & (ends - starts >= 7))
    n_single = min(int(round(profile.single_ping_fare_per_hail * len(hails[0]))), len(vacant_runs))
    chosen = rng.choice(vacant_runs, size=n_single, replace=False)
    lone = starts[chosen] + (ends[chosen] - starts[chosen]) // 2
    status[lone] = _OCCUPIED
    counts["single_ping_fares"] = len(lone)

    # GPS steps: 2-6 consecutive pings of one taxi displaced together.
    step_starts = np.flatnonzero(rng.random(len(t_s)) < profile.gps_step_rate)
    for first in step_starts:
        length = int(rng.integers(2, 7))
        last = min(first + length, len(t_s))
        run = np.arange(first, last)
        run = run[taxi[run] == taxi[first]]
        km, angle = rng.uniform(8, 30), rng.uniform(0, 2 * np.pi)
        lat[run] += km * np.cos(angle) / KM_PER_DEG_LAT
        lon[run] += km * np.sin(angle) / frame.km_per_deg_lon
    counts["gps_steps"] = len(step_starts)

    if profile.dispatch == "hidden":
        status[status == _DISPATCHED] = _VACANT
    shown = PingChunk(
        taxi=taxi,
        t_s=t_s,
        lat=lat,
        lon=lon,
        speed_kmh=pings.speed_kmh,
        heading=pings.heading,
        status=status,
    )
    return FeedEffects(shown, reentered, counts)


def _reenter_occupied(
    pings: PingChunk,
    profile: FeedProfile,
    frame: LocalFrame,
    hails: tuple[np.ndarray, np.ndarray, np.ndarray],
    rng: np.random.Generator,
    lat: np.ndarray,
    lon: np.ndarray,
    status: np.ndarray,
) -> np.ndarray:
    """Turn hails near the area's edge into fares picked up outside (edits in place).

    For 15-40 minutes before the pickup the taxi is outside the area: vacant on its way
    out, then occupied with the passenger it took there; its first ping back inside is
    the first occupied one the clean feed sees.
    """
    trip_idx, hail_taxi, pickup_s = hails
    if profile.reentry_per_hail == 0 or len(trip_idx) == 0:
        return trip_idx[:0]
    keys = pings.taxi * _KEY_STRIDE + pings.t_s
    at_pickup = np.searchsorted(keys, hail_taxi * _KEY_STRIDE + pickup_s, "left")
    at_pickup = np.minimum(at_pickup, len(keys) - 1)
    x, y = frame.to_xy(lat[at_pickup], lon[at_pickup])
    edge_km = np.minimum.reduce([x, y, frame.width_km - x, frame.height_km - y])
    near_edge = np.flatnonzero((edge_km < 2.0) & (pings.taxi[at_pickup] == hail_taxi))
    wanted = int(round(profile.reentry_per_hail * len(trip_idx)))
    chosen: list[int] = []
    for c in rng.permutation(near_edge):
        if len(chosen) >= wanted:
            break
        outside_s = rng.uniform(15, 40) * 60
        lo = np.searchsorted(keys, hail_taxi[c] * _KEY_STRIDE + pickup_s[c] - outside_s, "left")
        hi = at_pickup[c]
        stretch = np.arange(lo, hi)
        stretch = stretch[pings.taxi[stretch] == hail_taxi[c]]
        # Only a vacant stretch can become a trip out: never rewrite another fare.
        if len(stretch) < 3 or np.any(status[stretch] != _VACANT):
            continue
        # Out past the southern edge (toward Haneda), 3-8 km beyond it.
        south_km = rng.uniform(3, 8)
        lat[stretch] = frame.lat0 - south_km / KM_PER_DEG_LAT + rng.normal(0, 0.002, len(stretch))
        lon[stretch] = lon[hi] + rng.normal(0, 0.002, len(stretch))
        status[stretch[len(stretch) // 2 :]] = _OCCUPIED
        chosen.append(trip_idx[c])
    return np.asarray(chosen, dtype=np.int64)
