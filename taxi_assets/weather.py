"""Where the hourly rain comes from, and what the data path does when a feed has none.

Rain helps the forecast (people hail more taxis when it rains) but real probe feeds often
come without it. The ``weather_source`` setting says where it comes from: ``probe_source``
(the probe source's own weather: the simulator's, the landing folder's ``weather/`` files,
the BigQuery weather table) or ``none``. Without weather the ``weather`` asset is an empty
day, the features carry ``rain_mm_per_h`` as missing (CatBoost treats a null as missing)
and the feature, model and evaluation metadata say that no weather was used.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

import polars as pl

from taxi_assets.features import RAIN_FEATURE as RAIN
from taxi_assets.frames import WEATHER_SCHEMA

FROM_PROBE_SOURCE = "probe_source"
NO_WEATHER = "none"
WEATHER_SOURCES = (FROM_PROBE_SOURCE, NO_WEATHER)
WEATHER_SOURCE_ENV = "TAXI_ASSETS_WEATHER_SOURCE"


class DeliversWeather(Protocol):
    def read_weather(self, day: date) -> pl.DataFrame: ...


def validate_weather_source(value: str) -> str:
    if value not in WEATHER_SOURCES:
        raise ValueError(
            f"weather_source={value!r} is unknown ({WEATHER_SOURCE_ENV}): choose "
            f"{FROM_PROBE_SOURCE!r} (the probe source's weather) or {NO_WEATHER!r} (a feed "
            "without weather)"
        )
    return value


def no_weather() -> pl.DataFrame:
    """An hourly weather frame without hours: what a feed without weather delivers."""
    return pl.DataFrame(schema=WEATHER_SCHEMA)


def weather_for_day(source: DeliversWeather, weather_source: str, day: date) -> pl.DataFrame:
    """The day's hourly rain (``WEATHER_SCHEMA``) from where ``weather_source`` says; an
    empty frame when it says ``none`` (the source is then never asked)."""
    if validate_weather_source(weather_source) == NO_WEATHER:
        return no_weather()
    return source.read_weather(day)


def weather_was_used(features: pl.DataFrame | pl.LazyFrame) -> bool:
    """True when any feature row carries a rain value: a model trained on rows without one
    learned nothing from the weather."""
    lazy = features.lazy()
    if RAIN not in lazy.collect_schema():
        return False
    return bool(lazy.select(pl.col(RAIN).is_not_null().any()).collect().item())
