"""Settings of the simulated city: fleet, demand calibration, speeds and probe-feed faults."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from taxi_assets.service_area import CENTRAL_TOKYO, ServiceArea

if TYPE_CHECKING:
    from taxi_assets.simulation.feed import FeedProfile


@dataclass(frozen=True)
class FaultRates:
    """How often each fault of a real probe feed is injected.

    Row faults are fractions of pings; ``stuck_status`` and ``clock_skew`` are fractions of
    vehicles.
    """

    duplicate: float = 0.002
    """Fraction of pings delivered twice (exact duplicate rows)."""
    out_of_order: float = 0.01
    """Fraction of pings delivered late, after later pings of the same vehicle."""
    gps_jump: float = 0.001
    """Fraction of pings whose position jumps 2-20 km away (single-ping spikes)."""
    zero_coordinates: float = 0.0005
    """Fraction of pings reported at lat=0, lon=0."""
    stuck_status: float = 0.01
    """Fraction of vehicles whose status sticks at 'occupied' for 3-6 h once in the day."""
    clock_skew: float = 0.005
    """Fraction of vehicles stamping Tokyo wall time as UTC (every ts is +9 h)."""
    missing_value: float = 0.0002
    """Fraction of pings delivered without a latitude."""
    invalid_value: float = 0.0002
    """Fraction of pings with an impossible reading (a negative speed)."""
    outside_day: float = 0.0002
    """Fraction of pings replayed with yesterday's date (a stale buffer)."""
    conflicting_duplicate: float = 0.0002
    """Fraction of pings delivered twice at one instant with two different positions."""

    def __post_init__(self) -> None:
        for spec in fields(self):
            rate = getattr(self, spec.name)
            if not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
                raise ValueError(f"faults.{spec.name}={rate!r} must be a fraction in [0, 1]")
        if self.gps_jump + self.zero_coordinates > 1.0:
            raise ValueError(
                "faults.gps_jump + faults.zero_coordinates must not exceed 1: "
                "a ping gets at most one position fault"
            )


NO_FAULTS = FaultRates(**{spec.name: 0.0 for spec in fields(FaultRates)})


@dataclass(frozen=True)
class CityConfig:
    """Everything that shapes one simulated day; the day itself is passed separately.

    Demand is calibrated to the fleet: a weekday without rain or events carries
    ``fleet_size * trips_per_taxi_per_day`` expected requests. Tokyo taxis carry roughly
    20-25 fares per shift at ~45% occupancy; the default of 15 per taxi (each taxi works one
    ~11 h shift a day here) leaves enough slack at the peaks for nearly every request to be
    served, so pickups observed in the probes follow the true rate.
    """

    seed: int = 42
    fleet_size: int = 1000
    ping_interval_s: int = 15
    area: ServiceArea = CENTRAL_TOKYO
    trips_per_taxi_per_day: float = 15.0
    app_booking_share: float = 0.2
    """Share of requests booked by app; the rest are street hails."""
    faults: FaultRates = field(default_factory=FaultRates)
    night_shift_share: float = 0.5
    """Share of taxis on night shifts (16:00-19:00 to ~03:00-05:00, wrapping midnight)."""
    saturday_demand_factor: float = 0.9
    holiday_demand_factor: float = 0.8
    rain_demand_gain: float = 0.2
    """Demand multiplier is ``1 + gain * ln(1 + rain_mm_per_h)``: +14% at 1 mm/h."""
    event_probability: float = 0.3
    """Chance that a day has one large event (concert, sumo) ending in the evening."""
    event_demand_share: float = 0.015
    """Extra requests of an event, as a share of the day's base demand."""
    free_flow_speed_kmh: float = 30.0
    """Road speed at night; daytime congestion lowers it (down to ~half at the rush)."""
    rain_speed_factor: float = 0.85
    max_pickup_distance_km: float = 3.0
    """How far (road distance) a vacant taxi may be from a request to serve it."""
    street_hail_reach_km: float | None = None
    """How far a vacant taxi may be from a street hail to take it (None: as far as
    ``max_pickup_distance_km``, as before). A hail is someone waving at a passing taxi, so a
    closed-loop experiment sets it short: only then does where a taxi cruises decide the
    hails it finds."""
    gps_noise_m: float = 5.0
    feed_profile: str = "city"
    """How the probe feed shows the city (simulation.feed.FEED_PROFILES): 'city', or a
    real feed's traits such as 'real_60s'."""
    guidance_adoption: float = 0.0
    """Share of the fleet following a cruising policy passed to ``simulate_day`` (0: no
    taxi is guided and the day is exactly what it was before policies existed)."""

    @property
    def feed(self) -> FeedProfile:
        from taxi_assets.simulation.feed import feed_profile  # feed imports the ping modules

        return feed_profile(self.feed_profile)

    @property
    def effective_app_booking_share(self) -> float:
        """No app bookings at all on a feed whose dispatch is 'absent'."""
        return 0.0 if self.feed.dispatch == "absent" else self.app_booking_share

    def __post_init__(self) -> None:
        self.feed  # noqa: B018 - an unknown profile fails here, naming the known ones
        _require(isinstance(self.seed, int) and self.seed >= 0, "seed", self.seed, "an int >= 0")
        _require(
            isinstance(self.fleet_size, int) and 1 <= self.fleet_size <= 50_000,
            "fleet_size",
            self.fleet_size,
            "an int in [1, 50000]",
        )
        _require(
            isinstance(self.ping_interval_s, int) and 1 <= self.ping_interval_s <= 600,
            "ping_interval_s",
            self.ping_interval_s,
            "an int in [1, 600] seconds",
        )
        _require(isinstance(self.area, ServiceArea), "area", self.area, "a ServiceArea")
        _require(isinstance(self.faults, FaultRates), "faults", self.faults, "a FaultRates")
        _require(
            0 < self.trips_per_taxi_per_day <= 60,
            "trips_per_taxi_per_day",
            self.trips_per_taxi_per_day,
            "in (0, 60]",
        )
        for name in (
            "app_booking_share",
            "night_shift_share",
            "event_probability",
            "guidance_adoption",
        ):
            _require(0 <= getattr(self, name) <= 1, name, getattr(self, name), "in [0, 1]")
        for name in ("saturday_demand_factor", "holiday_demand_factor"):
            _require(0 < getattr(self, name) <= 3, name, getattr(self, name), "in (0, 3]")
        _require(
            0 <= self.rain_demand_gain <= 2, "rain_demand_gain", self.rain_demand_gain, "in [0, 2]"
        )
        _require(
            0 <= self.event_demand_share <= 1,
            "event_demand_share",
            self.event_demand_share,
            "in [0, 1]",
        )
        _require(
            5 <= self.free_flow_speed_kmh <= 80,
            "free_flow_speed_kmh",
            self.free_flow_speed_kmh,
            "in [5, 80] km/h",
        )
        _require(
            0.2 <= self.rain_speed_factor <= 1,
            "rain_speed_factor",
            self.rain_speed_factor,
            "in [0.2, 1]",
        )
        _require(
            0.2 <= self.max_pickup_distance_km <= 20,
            "max_pickup_distance_km",
            self.max_pickup_distance_km,
            "in [0.2, 20] km",
        )
        _require(
            self.street_hail_reach_km is None or 0.1 <= self.street_hail_reach_km <= 20,
            "street_hail_reach_km",
            self.street_hail_reach_km,
            "None or in [0.1, 20] km",
        )
        _require(0 <= self.gps_noise_m <= 100, "gps_noise_m", self.gps_noise_m, "in [0, 100] m")


def _require(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise ValueError(f"CityConfig.{name}={value!r} is invalid: expected {expected}")
