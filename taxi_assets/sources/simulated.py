"""The embedded default probe source: the built-in city simulator."""

from __future__ import annotations

from datetime import date

import polars as pl
from pydantic import Field

from taxi_assets.simulation import CityConfig, FaultRates, simulate_day, simulate_weather
from taxi_assets.simulation import true_demand_rate as simulated_true_demand
from taxi_assets.sources.base import ProbeDelivery, ProbeSource

_DEFAULT_FAULTS = FaultRates()


class SimulatedProbeSource(ProbeSource):
    """Central Tokyo, simulated: deterministic for (seed, day), with realistic feed faults."""

    seed: int = Field(default=42, description="Same seed and day, same probes.")
    fleet_size: int = Field(default=1000, description="Taxis in the simulated fleet.")
    ping_interval_s: int = Field(default=15, description="Seconds between two pings of a taxi.")
    duplicate_rate: float = Field(default=_DEFAULT_FAULTS.duplicate)
    out_of_order_rate: float = Field(default=_DEFAULT_FAULTS.out_of_order)
    gps_jump_rate: float = Field(default=_DEFAULT_FAULTS.gps_jump)
    zero_coordinates_rate: float = Field(default=_DEFAULT_FAULTS.zero_coordinates)
    stuck_status_rate: float = Field(default=_DEFAULT_FAULTS.stuck_status)
    clock_skew_rate: float = Field(default=_DEFAULT_FAULTS.clock_skew)
    missing_value_rate: float = Field(default=_DEFAULT_FAULTS.missing_value)
    invalid_value_rate: float = Field(default=_DEFAULT_FAULTS.invalid_value)
    outside_day_rate: float = Field(default=_DEFAULT_FAULTS.outside_day)
    conflicting_duplicate_rate: float = Field(default=_DEFAULT_FAULTS.conflicting_duplicate)
    feed_profile: str = Field(
        default="city",
        description="How the feed shows the city: 'city' (15 s pings, every status), or a "
        "real feed's traits: 'real_60s', 'real_60s_hidden_dispatch', 'real_120s'.",
    )

    def city(self) -> CityConfig:
        return CityConfig(
            seed=self.seed,
            fleet_size=self.fleet_size,
            ping_interval_s=self.ping_interval_s,
            faults=FaultRates(
                duplicate=self.duplicate_rate,
                out_of_order=self.out_of_order_rate,
                gps_jump=self.gps_jump_rate,
                zero_coordinates=self.zero_coordinates_rate,
                stuck_status=self.stuck_status_rate,
                clock_skew=self.clock_skew_rate,
                missing_value=self.missing_value_rate,
                invalid_value=self.invalid_value_rate,
                outside_day=self.outside_day_rate,
                conflicting_duplicate=self.conflicting_duplicate_rate,
            ),
            feed_profile=self.feed_profile,
        )

    def read_probes(self, day: date) -> ProbeDelivery:
        simulated = simulate_day(self.city(), day)
        origin = {
            "source": "simulator",
            "seed": self.seed,
            "fleet_size": self.fleet_size,
            "feed_profile": self.feed_profile,
            **{f"injected_{kind}": int(n) for kind, n in simulated.faults.items()},
        }
        return ProbeDelivery(simulated.probes, origin)

    def read_weather(self, day: date) -> pl.DataFrame:
        city = self.city()
        weather = simulate_weather(city, day)
        # A feed without weather delivers none (the features then carry rain as missing).
        return weather if city.feed.weather else weather.clear()

    def true_demand(self, day: date) -> pl.DataFrame:
        return simulated_true_demand(self.city(), day)
