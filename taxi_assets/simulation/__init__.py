"""The simulated city: realistic taxi GPS probes for central Tokyo, with ground truth.

Deterministic for (seed, day). ``simulate_day`` returns the probe feed as delivered
(faults included) together with the true demand rate, the served trips and the injected
fault counts; it is also the project's benchmark workload.
"""

from taxi_assets.simulation.config import NO_FAULTS, CityConfig, FaultRates
from taxi_assets.simulation.demand import TRUE_DEMAND_SCHEMA, CityEvent, true_demand_rate
from taxi_assets.simulation.simulator import TRIPS_SCHEMA, SimulatedDay, simulate_day
from taxi_assets.simulation.weather import simulate_weather

__all__ = [
    "NO_FAULTS",
    "TRIPS_SCHEMA",
    "TRUE_DEMAND_SCHEMA",
    "CityConfig",
    "CityEvent",
    "FaultRates",
    "SimulatedDay",
    "simulate_day",
    "simulate_weather",
    "true_demand_rate",
]
