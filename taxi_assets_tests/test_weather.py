"""Where weather comes from: the probe source's, or none at all (a feed without weather)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from pydantic import ValidationError

from taxi_assets.frames import WEATHER_SCHEMA
from taxi_assets.settings import PipelineSettings
from taxi_assets.sources.base import ProbeSourceError
from taxi_assets.sources.landing import LandingFolderProbeSource
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets.weather import NO_WEATHER, weather_for_day

DAY = date(2026, 5, 4)


class _NeverAsked:
    def read_weather(self, day: date) -> pl.DataFrame:
        raise AssertionError(f"weather read for {day}")


def test_no_weather_source_gives_an_empty_day_without_asking_the_source() -> None:
    frame = weather_for_day(_NeverAsked(), NO_WEATHER, DAY)
    assert frame.schema == WEATHER_SCHEMA and frame.is_empty()

    simulated = weather_for_day(SimulatedProbeSource(fleet_size=10), "probe_source", DAY)
    assert simulated.height == 24 and simulated.schema == WEATHER_SCHEMA


def test_the_setting_comes_from_the_environment_and_refuses_unknown_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert PipelineSettings().weather_source == "probe_source"
    monkeypatch.setenv("TAXI_ASSETS_WEATHER_SOURCE", "none")
    assert PipelineSettings().weather_source == "none"
    with pytest.raises(ValidationError, match="weather_source='rain gauge' is unknown"):
        PipelineSettings(weather_source="rain gauge")
    with pytest.raises(ValueError, match="weather_source='x'.*TAXI_ASSETS_WEATHER_SOURCE"):
        weather_for_day(_NeverAsked(), "x", DAY)


def test_a_landing_folder_without_weather_says_which_setting_to_change(tmp_path: Path) -> None:
    landing = LandingFolderProbeSource(landing_dir=str(tmp_path))
    with pytest.raises(ProbeSourceError, match="no weather file.*TAXI_ASSETS_WEATHER_SOURCE=none"):
        weather_for_day(landing, "probe_source", DAY)
    assert weather_for_day(landing, NO_WEATHER, DAY).is_empty()
