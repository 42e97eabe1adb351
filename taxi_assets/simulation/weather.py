"""Hourly rain over Tokyo: most days dry, some with rain episodes of a few hours."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from taxi_assets.calendar import day_window_utc
from taxi_assets.frames import WEATHER_SCHEMA
from taxi_assets.simulation.config import CityConfig
from taxi_assets.simulation.streams import Stream, rng_for

# Chance of a day with rain, by month: Tokyo has ~1 mm or more on about a third of days,
# more in the tsuyu (June-July) and typhoon (September-October) seasons, least in winter.
RAIN_DAY_PROBABILITY = (0.15, 0.2, 0.3, 0.33, 0.33, 0.45, 0.4, 0.3, 0.42, 0.38, 0.28, 0.15)


def rain_mm_per_h(config: CityConfig, day: date) -> np.ndarray:
    """Rain intensity of each of the 24 Tokyo hours of ``day`` (mm/h, 0.1 mm resolution)."""
    rng = rng_for(config.seed, day, Stream.WEATHER)
    rain = np.zeros(24)
    if rng.random() >= RAIN_DAY_PROBABILITY[day.month - 1]:
        return rain
    hours = np.arange(24) + 0.5
    for _ in range(rng.integers(1, 4)):
        centre = rng.uniform(0, 24)
        half_width_h = rng.uniform(1.0, 4.0)
        peak = min(rng.lognormal(np.log(2.5), 0.8), 40.0)
        # Triangular episodes: showers build up and die out over a few hours.
        rain += peak * np.clip(1 - np.abs(hours - centre) / half_width_h, 0, None)
    return np.round(rain, 1)


def simulate_weather(config: CityConfig, day: date) -> pl.DataFrame:
    """Hourly rain of the Tokyo day, one row per hour (hour_start in UTC), WEATHER_SCHEMA."""
    start, _ = day_window_utc(day)
    return pl.DataFrame(
        {
            "hour_start": [start + timedelta(hours=h) for h in range(24)],
            "rain_mm_per_h": rain_mm_per_h(config, day),
        },
        schema=WEATHER_SCHEMA,
    )
