"""GPS pings sampled from the movement log, vectorized over all pings of a chunk of taxis.

Each taxi's device pings every ``ping_interval_s`` on its own phase while it is on (from
log-in to log-out; a night taxi has two such windows). A ping finds its segment by binary
search and interpolates linearly; speed is the segment's speed, heading its bearing (a
parked taxi keeps the heading it arrived with), both with small sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taxi_assets.simulation.fleet import DAY_S
from taxi_assets.simulation.geo import LocalFrame

_KEY_STRIDE = 1e6
"""Seconds between taxis in the combined (taxi, time) search key; a day is 86,400 s."""


@dataclass(frozen=True)
class PingChunk:
    """Pings of some taxis, taxi-major and in time order per taxi; t_s after Tokyo midnight."""

    taxi: np.ndarray
    t_s: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    speed_kmh: np.ndarray
    heading: np.ndarray
    status: np.ndarray

    def __len__(self) -> int:
        return len(self.t_s)


def sample_pings(
    segments: np.ndarray,
    phase_s: np.ndarray,
    interval_s: int,
    frame: LocalFrame,
    gps_noise_m: float,
    rng: np.random.Generator,
) -> PingChunk:
    """Pings of the taxis in ``segments`` (sorted by taxi, t0; contiguous while on duty)."""
    seg = segments[segments[:, 1] < DAY_S]
    taxi = seg[:, 0].astype(np.int64)
    # Pings stop at midnight, but segments keep their true end (speed, interpolation).
    t0, t1 = seg[:, 1], seg[:, 2]
    x0, y0, x1, y1 = seg[:, 3], seg[:, 4], seg[:, 5], seg[:, 6]

    # Device-on windows: runs of segments of one taxi without a time gap.
    new_window = np.ones(len(seg), dtype=bool)
    new_window[1:] = (taxi[1:] != taxi[:-1]) | (t0[1:] > t1[:-1] + 1e-6)
    starts = np.flatnonzero(new_window)
    win_taxi, win_start = taxi[starts], t0[starts]
    win_end = np.minimum(np.maximum.reduceat(t1, starts), DAY_S) if len(starts) else t1[:0]
    phase = phase_s[win_taxi]
    k_first = np.ceil((win_start - phase) / interval_s).astype(np.int64)
    k_stop = np.ceil((win_end - phase) / interval_s).astype(np.int64)
    n_per_window = np.maximum(k_stop - k_first, 0)

    window_of_ping = np.repeat(np.arange(len(starts)), n_per_window)
    first_ping = np.cumsum(n_per_window) - n_per_window
    k = k_first[window_of_ping] + np.arange(len(window_of_ping)) - first_ping[window_of_ping]
    ping_taxi = win_taxi[window_of_ping]
    t = phase[window_of_ping] + k * float(interval_s)
    del window_of_ping, k

    idx = np.searchsorted(taxi * _KEY_STRIDE + t0, ping_taxi * _KEY_STRIDE + t, "right") - 1
    duration = t1 - t0
    frac = (t - t0[idx]) / duration[idx]
    x = x0[idx] + frac * (x1 - x0)[idx]
    y = y0[idx] + frac * (y1 - y0)[idx]
    del frac

    length_km = np.hypot(x1 - x0, y1 - y0)
    moving = length_km > 1e-6
    seg_speed = np.where(moving, length_km / np.maximum(duration, 1e-9) * 3600, 0.0)
    bearing = np.degrees(np.arctan2(x1 - x0, y1 - y0)) % 360
    # A parked taxi reports the heading it arrived with (none before its first move).
    last_move = np.maximum.accumulate(np.where(moving, np.arange(len(seg)), -1))
    same_taxi = (last_move >= 0) & (taxi[np.maximum(last_move, 0)] == taxi)
    seg_heading = np.where(same_taxi, bearing[np.maximum(last_move, 0)], 0.0)

    n = len(t)
    noise_km = gps_noise_m / 1000
    x += rng.normal(0, noise_km, n)
    y += rng.normal(0, noise_km, n)
    lat, lon = frame.to_latlon(x, y)
    del x, y
    ping_moving = moving[idx]
    speed = seg_speed[idx] * np.where(ping_moving, 1 + 0.08 * rng.standard_normal(n), 0.0)
    heading = (seg_heading[idx] + np.where(ping_moving, rng.normal(0, 2.0, n), 0.0)) % 360
    heading32 = heading.astype(np.float32)
    heading32[heading32 >= 360] = 0  # 359.99999 rounds up to 360 in float32
    return PingChunk(
        taxi=ping_taxi,
        t_s=t,
        lat=lat,
        lon=lon,
        speed_kmh=np.maximum(speed, 0).astype(np.float32),
        heading=heading32,
        status=seg[idx, 7].astype(np.uint8),
    )
