"""The fleet's working day: shifts with breaks, start positions, and road speeds by hour.

Day shifts start 05:00-10:00 and last 11-13 h (break included), so they end 16:00 or
later; night shifts run 16:00-19:00 to 03:30-05:30 and wrap midnight. A simulated Tokyo day
is self-contained, so a night taxi appears twice: from 00:00 (starting vacant) to the end of
last night's shift, and from this evening's shift start to 24:00. Every taxi is therefore on
duty after 15:00 Tokyo time, which a +9 h clock skew pushes past the end of the day: that is
how cleaning detects a skewed device.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from taxi_assets.calendar import day_type
from taxi_assets.simulation.config import CityConfig
from taxi_assets.simulation.demand import DemandField
from taxi_assets.simulation.geo import LocalFrame
from taxi_assets.simulation.streams import Stream, rng_for

DAY_S = 86_400.0
H = 3600.0


WorkInterval = tuple[float, float, float, float]
"""(start_s, end_s, off_duty_before_s, off_duty_after_s), seconds after Tokyo midnight.

Off-duty time before is the driver logging in; after is a break (when another interval
follows) or logging out.
"""


@dataclass(frozen=True)
class Shifts:
    """Per taxi: its work intervals in time order, and where it is at its first start."""

    intervals: list[list[WorkInterval]]
    start_x: np.ndarray
    start_y: np.ndarray
    is_night: np.ndarray


# Fraction of free-flow speed by Tokyo hour: rush hours crawl, nights flow.
# fmt: off
_WEEKDAY_SPEED = (
    1.0, 1.0, 1.0, 1.0, 1.0, 0.95,  # 00-05 h
    0.8, 0.6, 0.5, 0.55, 0.6, 0.6,  # 06-11 h
    0.6, 0.6, 0.6, 0.6, 0.55, 0.5,  # 12-17 h
    0.5, 0.55, 0.65, 0.75, 0.85, 0.9,  # 18-23 h
)
_WEEKEND_SPEED = (
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0,  # 00-05 h
    0.95, 0.85, 0.75, 0.7, 0.65, 0.6,  # 06-11 h
    0.6, 0.6, 0.6, 0.6, 0.6, 0.6,  # 12-17 h
    0.6, 0.65, 0.7, 0.8, 0.85, 0.9,  # 18-23 h
)
# fmt: on


def road_speed_kmh(config: CityConfig, day: date, rain_mm_per_h: np.ndarray) -> np.ndarray:
    """Typical taxi speed on the road in each Tokyo hour (congestion and rain)."""
    profile = _WEEKDAY_SPEED if day_type(day) == "weekday" else _WEEKEND_SPEED
    rain_factor = np.where(rain_mm_per_h >= 0.5, config.rain_speed_factor, 1.0)
    return config.free_flow_speed_kmh * np.asarray(profile) * rain_factor


def draw_shifts(config: CityConfig, day: date, field: DemandField) -> Shifts:
    """Shift pattern and starting point of every taxi (vectorized draws, then small lists)."""
    rng = rng_for(config.seed, day, Stream.SHIFTS)
    n = config.fleet_size
    is_night = rng.random(n) < config.night_shift_share
    u = rng.random((n, 6))
    login = 3 * 60 + u[:, 5] * 7 * 60  # 3-10 minutes of off_duty pings at log-in/out
    # Day shift: start 05:00-10:00 (most before 08:00, for the morning rush), 11-13 h long,
    # a 45-75 min break around mid-shift.
    day_start = (5 + 5 * u[:, 0] ** 2) * H
    day_len = (11 + 2 * u[:, 1]) * H
    day_break = day_start + (0.4 + 0.2 * u[:, 2]) * day_len
    day_break_len = (45 + 30 * u[:, 3]) * 60
    # Night shift: tail of last night until 03:30-05:30, then from 16:00-19:00 to midnight
    # with a 30-60 min break 1.5-3 h in (before the late-evening rush).
    tail_end = (3.5 + 2 * u[:, 0]) * H
    night_start = (16 + 3 * u[:, 1]) * H
    night_break = night_start + (1.5 + 1.5 * u[:, 2]) * H
    night_break_len = (30 + 30 * u[:, 3]) * 60

    intervals: list[list[WorkInterval]] = []
    for i in range(n):
        if is_night[i]:
            intervals.append(
                [
                    (0.0, tail_end[i], 0.0, login[i]),
                    (night_start[i], night_break[i], login[i], night_break_len[i]),
                    (night_break[i] + night_break_len[i], DAY_S, 0.0, login[i]),
                ]
            )
        else:
            intervals.append(
                [
                    (day_start[i], day_break[i], login[i], day_break_len[i]),
                    (day_break[i] + day_break_len[i], day_start[i] + day_len[i], 0.0, login[i]),
                ]
            )

    # Taxis start where the day's demand is (ranks, garages near the centre).
    weight = (field.street + field.app).sum(axis=0)
    cell = np.searchsorted(np.cumsum(weight) / weight.sum(), rng.random(n))
    cell = np.minimum(cell, len(weight) - 1)
    half_km = config.area.cell_size_m / 2000
    jitter = rng.uniform(-half_km, half_km, (2, n))
    x, y = LocalFrame.of(config.area).clip(
        field.cell_x[cell] + jitter[0], field.cell_y[cell] + jitter[1]
    )
    return Shifts(intervals=intervals, start_x=x, start_y=y, is_night=is_night)
