"""Independent, reproducible random streams for one simulated day.

Each concern draws from its own stream seeded by ``[seed, day.toordinal(), stream]``, so
changing how one concern uses randomness does not reshuffle the others, and
``simulate_weather`` alone gives the same rain as a full ``simulate_day``.
"""

from __future__ import annotations

from datetime import date
from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    WEATHER = 1
    EVENTS = 2
    REQUESTS = 3
    SHIFTS = 4
    DISPATCH = 5
    PINGS = 6
    FAULTS = 7
    FEED = 8
    GUIDANCE = 9


def rng_for(seed: int, day: date, stream: Stream, *sub: int) -> np.random.Generator:
    """The generator of ``stream`` for (seed, day); ``sub`` splits it further (e.g. chunks)."""
    return np.random.default_rng([seed, day.toordinal(), int(stream), *sub])
