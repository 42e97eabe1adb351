"""How many of the simulator's street hails the data path recovers, and how many it invents.

A derived street-hail pickup matches a true one of the same vehicle when it comes at most
``tolerance_s`` after it (the first occupied ping follows the true pickup by up to one
ping interval, more when pings are missed; the data path accepts up to its maximum pickup
gap, so that is the tolerance to use). Each true hail matches at most one pickup and
each pickup at most one true hail.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

# Pings are stamped to the microsecond; the true pickup can fall a hair after the ping
# that shows it when both round to the same instant.
_EARLY_SLACK_S = 1.0


@dataclass(frozen=True)
class HailRecovery:
    true_hails: int
    derived_hails: int
    matched: int

    @property
    def recall(self) -> float:
        return self.matched / self.true_hails if self.true_hails else 1.0

    @property
    def precision(self) -> float:
        return self.matched / self.derived_hails if self.derived_hails else 1.0


def street_hail_recovery(
    events: pl.DataFrame, trips: pl.DataFrame, day_end: object, tolerance_s: float = 600.0
) -> HailRecovery:
    """Match derived street-hail pickups (TRIP_EVENTS_SCHEMA) to the simulator's trips.

    Only true hails picked up before ``day_end`` count: pings stop at midnight.
    """
    derived = (
        events.filter((pl.col("event") == "pickup") & (pl.col("booking") == "street_hail"))
        .select("vehicle_id", event_ts="ts")
        .with_row_index("event")
        .sort("event_ts")
    )
    truth = (
        trips.filter((pl.col("booking") == "street_hail") & (pl.col("pickup_ts") < day_end))
        .select(
            "vehicle_id",
            "pickup_ts",
            search_ts=pl.col("pickup_ts") - pl.duration(seconds=_EARLY_SLACK_S),
        )
        .sort("search_ts")
    )
    matches = truth.join_asof(
        derived,
        left_on="search_ts",
        right_on="event_ts",
        by="vehicle_id",
        strategy="forward",
        tolerance=f"{int(tolerance_s + _EARLY_SLACK_S)}s",
        check_sortedness=False,  # sorted on time; Polars cannot check within groups
    ).filter(pl.col("event").is_not_null())
    # Two true hails cannot share one pickup: the later one of them is missed.
    matched = matches.sort("pickup_ts").unique("event", keep="first").height
    return HailRecovery(true_hails=truth.height, derived_hails=derived.height, matched=matched)
