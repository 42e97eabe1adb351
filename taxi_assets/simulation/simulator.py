"""One simulated Tokyo day: rain, demand, fleet, dispatch, pings and faults, put together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from taxi_assets.calendar import day_window_utc
from taxi_assets.frames import RAW_PROBES_SCHEMA, Booking, ProbeStatus
from taxi_assets.simulation.config import CityConfig
from taxi_assets.simulation.cruising import CruisingPolicy, Guide, guided_taxis
from taxi_assets.simulation.demand import (
    CityEvent,
    DemandField,
    Requests,
    demand_field,
    draw_destinations,
    draw_requests,
    true_demand_frame,
)
from taxi_assets.simulation.dispatch import DispatchResult, run_dispatch
from taxi_assets.simulation.faults import FAULT_KINDS, choose_vehicle_faults, inject_faults
from taxi_assets.simulation.feed import (
    FEED_EFFECTS,
    apply_feed_profile,
    base_interval_s,
    median_interval_s,
    thin_to_feed_intervals,
    vehicle_id_column,
)
from taxi_assets.simulation.fleet import DAY_S, draw_shifts, road_speed_kmh
from taxi_assets.simulation.geo import LocalFrame
from taxi_assets.simulation.pings import sample_pings
from taxi_assets.simulation.streams import Stream, rng_for
from taxi_assets.simulation.weather import simulate_weather

TAXIS_PER_CHUNK = 500
"""Pings are generated this many taxis at a time to bound memory (fixed: it seeds streams)."""
_US = 1_000_000

TRIPS_SCHEMA = pl.Schema(
    {
        "vehicle_id": RAW_PROBES_SCHEMA["vehicle_id"],
        "booking": Booking,
        "request_ts": pl.Datetime("us", "UTC"),
        "pickup_ts": pl.Datetime("us", "UTC"),
        "pickup_lat": pl.Float64,
        "pickup_lon": pl.Float64,
        "pickup_cell": pl.Int64,
        "dropoff_ts": pl.Datetime("us", "UTC"),
        "dropoff_lat": pl.Float64,
        "dropoff_lon": pl.Float64,
        "dropoff_cell": pl.Int64,
    }
)


@dataclass(frozen=True)
class SimulatedDay:
    """A day of the simulated city: what the probe feed delivers, and the ground truth."""

    day: date
    probes: pl.DataFrame
    """RAW_PROBES_SCHEMA rows in delivery order, faults included."""
    weather: pl.DataFrame
    """WEATHER_SCHEMA: rain of each Tokyo hour (hour_start in UTC)."""
    true_demand: pl.DataFrame
    """Poisson mean of street-hail and app-booking pickups per cell and 5-minute slice."""
    trips: pl.DataFrame
    """Served trips (TRIPS_SCHEMA); dropoff_ts may pass midnight, pings stop at midnight."""
    faults: dict[str, int]
    """Rows (vehicles for stuck_status and clock_skew) affected per fault kind, what the
    feed profile changed (vacant_flaps, single_ping_fares, gps_steps, reentries), plus
    'unserved_requests'."""
    events: tuple[CityEvent, ...] = ()
    """Crowd events of the day (ground truth behind local evening spikes)."""


@dataclass(frozen=True)
class FleetDay:
    """The city's day without the probe feed: what the closed-loop bench measures."""

    field: DemandField
    requests: Requests
    result: DispatchResult
    guided: np.ndarray
    """Per taxi: whether it followed the cruising policy."""


def simulate_fleet(config: CityConfig, day: date, policy: CruisingPolicy | None = None) -> FleetDay:
    """Demand, shifts and dispatch of ``day`` (no pings): ``config.guidance_adoption`` of
    the taxis follow ``policy`` (simulation.cruising). Identical inputs give identical
    results; with adoption 0 the policy is never called."""
    guided = guided_taxis(config, day)
    if guided.any() and policy is None:
        raise ValueError(
            f"CityConfig.guidance_adoption={config.guidance_adoption!r} guides taxis: "
            "pass a cruising policy to simulate_day / simulate_fleet"
        )
    field = demand_field(config, day)
    requests = draw_requests(config, day, field)
    dest_x, dest_y = draw_destinations(config, day, field, requests)
    shifts = draw_shifts(config, day, field)
    speed_kmh = road_speed_kmh(config, day, field.rain_mm_per_h)
    guide = Guide(policy, config, day, field, guided) if guided.any() and policy else None
    result = run_dispatch(config, day, field, requests, dest_x, dest_y, shifts, speed_kmh, guide)
    return FleetDay(field=field, requests=requests, result=result, guided=guided)


def simulate_day(
    config: CityConfig, day: date, policy: CruisingPolicy | None = None
) -> SimulatedDay:
    """Simulate ``day`` for ``config``; identical inputs give identical frames.

    ``policy`` steers the ``config.guidance_adoption`` share of the fleet (see
    simulation.cruising); at adoption 0 (the default) it is ignored."""
    fleet = simulate_fleet(config, day, policy)
    field, requests, result = fleet.field, fleet.requests, fleet.result
    probes, fault_counts, reentered = _probes(config, day, result)
    fault_counts["unserved_requests"] = result.unserved_requests
    weather = simulate_weather(config, day)
    return SimulatedDay(
        day=day,
        probes=probes,
        weather=weather if config.feed.weather else weather.clear(),
        true_demand=true_demand_frame(field, day),
        trips=_trips_frame(config, day, result, requests.x, requests.y, reentered),
        faults=fault_counts,
        events=field.events,
    )


def _probes(
    config: CityConfig, day: date, result: DispatchResult
) -> tuple[pl.DataFrame, dict[str, int], np.ndarray]:
    segments = result.segments
    frame = LocalFrame.of(config.area)
    n_taxi = config.fleet_size
    profile = config.feed
    # An irregular feed is sampled on a fine clock, then thinned to its own intervals.
    sample_interval_s = base_interval_s(profile, config.ping_interval_s)
    interval_s = median_interval_s(profile, config.ping_interval_s)
    phase_s = (
        rng_for(config.seed, day, Stream.PINGS, 0)
        .integers(0, sample_interval_s, n_taxi)
        .astype(np.float64)
    )
    hail = ~result.trip_is_app & (result.trip_pickup_s < DAY_S)
    reentered = []
    vehicles = choose_vehicle_faults(config.seed, day, n_taxi, config.faults)
    day_start_us = int(day_window_utc(day)[0].timestamp()) * _US
    bounds = np.searchsorted(
        segments[:, 0], np.arange(0, n_taxi + TAXIS_PER_CHUNK, TAXIS_PER_CHUNK)
    )
    chunks, counts = [], dict.fromkeys(FAULT_KINDS + FEED_EFFECTS, 0)
    for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        pings = sample_pings(
            segments[lo:hi],
            phase_s,
            sample_interval_s,
            frame,
            config.gps_noise_m,
            rng_for(config.seed, day, Stream.PINGS, 1, c),
        )
        feed_rng = rng_for(config.seed, day, Stream.FEED, c)
        pings = thin_to_feed_intervals(pings, profile, feed_rng)
        in_chunk = hail & (result.trip_taxi >= c * TAXIS_PER_CHUNK)
        in_chunk &= result.trip_taxi < (c + 1) * TAXIS_PER_CHUNK
        chunk_hails = np.flatnonzero(in_chunk)
        shown = apply_feed_profile(
            pings,
            profile,
            frame,
            (chunk_hails, result.trip_taxi[chunk_hails], result.trip_pickup_s[chunk_hails]),
            feed_rng,
        )
        del pings
        reentered.append(shown.reentered_trips)
        shown_counts = shown.counts
        faulted = inject_faults(
            shown.pings,
            vehicles,
            config.faults,
            interval_s,
            frame,
            rng_for(config.seed, day, Stream.FAULTS, 1, c),
        )
        del shown
        for kind, count in (faulted.counts | shown_counts).items():
            counts[kind] += count
        chunks.append(
            pl.DataFrame(
                {
                    "vehicle_id": vehicle_id_column(faulted.taxi + 1, profile.vehicle_ids),
                    "ts": pl.Series(day_start_us + (faulted.ts_s * _US).astype(np.int64))
                    .cast(pl.Datetime("us"))
                    .dt.replace_time_zone("UTC"),
                    # A missing latitude is NaN in numpy, null as delivered.
                    "lat": pl.Series(faulted.lat).fill_nan(None),
                    "lon": faulted.lon,
                    "speed_kmh": faulted.speed_kmh,
                    "heading": faulted.heading,
                    "status": pl.Series(faulted.status).cat.to(ProbeStatus),
                    # float32 resolves 10 ms at 86,400 s: enough to order deliveries.
                    "_delivery_s": faulted.delivery_s.astype(np.float32),
                }
            )
        )
        del faulted
    # One contiguous copy, then free the chunks before the sort: peak stays ~2 frames.
    probes = pl.concat(chunks, rechunk=True) if chunks else _empty_probes()
    chunks.clear()
    probes = probes.sort("_delivery_s", maintain_order=True).drop("_delivery_s")
    probes = probes.select(list(RAW_PROBES_SCHEMA)).cast(dict(RAW_PROBES_SCHEMA))
    return probes, counts, np.concatenate(reentered) if reentered else np.zeros(0, np.int64)


def _empty_probes() -> pl.DataFrame:
    return pl.DataFrame(schema={**RAW_PROBES_SCHEMA, "_delivery_s": pl.Float32})


def _trips_frame(
    config: CityConfig,
    day: date,
    result: DispatchResult,
    request_x: np.ndarray,
    request_y: np.ndarray,
    reentered: np.ndarray,
) -> pl.DataFrame:
    frame = LocalFrame.of(config.area)
    day_start_us = int(day_window_utc(day)[0].timestamp()) * _US
    pickup_lat, pickup_lon = frame.to_latlon(
        request_x[result.trip_request_idx], request_y[result.trip_request_idx]
    )
    dropoff_lat, dropoff_lon = frame.to_latlon(result.trip_dest_x, result.trip_dest_y)

    def ts(seconds: np.ndarray) -> pl.Series:
        us = day_start_us + np.round(seconds * _US).astype(np.int64)
        return pl.Series(us, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")

    booking = np.where(result.trip_is_app, "app_booking", "street_hail")
    # A fare the feed shows coming back into the area occupied was picked up outside it.
    booking[reentered] = "other"
    trips = pl.DataFrame(
        {
            "vehicle_id": vehicle_id_column(result.trip_taxi + 1, config.feed.vehicle_ids),
            "booking": pl.Series(booking, dtype=pl.String).cast(Booking),
            "request_ts": ts(result.trip_request_s),
            "pickup_ts": ts(result.trip_pickup_s),
            "pickup_lat": pickup_lat,
            "pickup_lon": pickup_lon,
            "dropoff_ts": ts(result.trip_dropoff_s),
            "dropoff_lat": dropoff_lat,
            "dropoff_lon": dropoff_lon,
        }
    )
    return (
        trips.with_columns(
            pickup_cell=config.area.cell_of(pl.col("pickup_lat"), pl.col("pickup_lon")),
            dropoff_cell=config.area.cell_of(pl.col("dropoff_lat"), pl.col("dropoff_lon")),
        )
        .select(list(TRIPS_SCHEMA))
        .cast(dict(TRIPS_SCHEMA))
    )  # ids as the probes carry them
