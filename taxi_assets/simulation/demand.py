"""The true demand rate of every cell and 5-minute slice, and requests drawn from it.

The rate is the oracle a forecast is judged against: ``expected_street_hails`` and
``expected_app_bookings`` are the Poisson means of *pickups* in that cell and slice. Street
hails are picked up the moment they are requested; an app booking's pickup time is drawn
from the rate and its request time is set earlier by the assigned taxi's approach, so
pickups in a cell/slice are Poisson with exactly the stated mean (minus the few requests no
taxi could serve, reported as ``unserved_requests``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from taxi_assets.calendar import bucket_starts, day_type
from taxi_assets.mesh import cols_per_degree, mesh_center, rows_per_degree
from taxi_assets.simulation.config import CityConfig
from taxi_assets.simulation.geo import LocalFrame
from taxi_assets.simulation.places import EVENT_VENUES, HOTSPOTS, LAYERS, Hotspot
from taxi_assets.simulation.streams import Stream, rng_for
from taxi_assets.simulation.weather import rain_mm_per_h

SLICE_MINUTES = 5
SLICE_S = SLICE_MINUTES * 60
SLICES_PER_DAY = 24 * 60 // SLICE_MINUTES

TRUE_DEMAND_SCHEMA = pl.Schema(
    {
        "cell": pl.Int64,
        "slice_start": pl.Datetime("us", "UTC"),
        "expected_street_hails": pl.Float64,
        "expected_app_bookings": pl.Float64,
    }
)

# Daily profile of requests: (centre hour, amplitude, width h) bumps over a floor. Weekdays
# peak at the morning commute, lunch, the evening and after the last trains (~00:30);
# Saturdays shift to shopping and a long night out; Sundays and holidays are flatter with
# a quiet night (work tomorrow).
_FLOOR = 0.25
_PROFILE_BUMPS = {
    "weekday": ((8.5, 0.7, 1.0), (12.5, 0.45, 1.5), (15.5, 0.3, 2.0), (19.0, 0.8, 1.5),
                (23.4, 1.1, 1.3)),
    "saturday": ((10.0, 0.4, 2.0), (14.0, 0.6, 2.5), (19.5, 0.8, 2.0), (23.5, 1.2, 1.5)),
    "holiday": ((11.0, 0.5, 2.0), (15.0, 0.7, 2.5), (19.0, 0.6, 2.0), (22.8, 0.5, 1.5)),
}  # fmt: skip
# Where demand comes from through the day: weight of each layer of LAYERS, as a floor plus
# (centre hour, amplitude, width h) bumps, wrapping midnight.
_MIX = {
    "weekday": {
        "station": (1.0, ()),
        "business": (0.1, ((9.0, 0.8, 1.5), (13.0, 0.5, 3.0), (18.5, 0.9, 1.5))),
        "nightlife": (0.05, ((23.5, 1.6, 2.0),)),
        "leisure": (0.15, ((15.0, 0.3, 3.0),)),
        "residential": (0.3, ((7.5, 0.8, 1.2),)),
    },
    "saturday": {
        "station": (1.0, ()),
        "business": (0.1, ((13.0, 0.2, 3.0),)),
        "nightlife": (0.05, ((23.5, 1.8, 2.5),)),
        "leisure": (0.1, ((14.0, 1.2, 4.0),)),
        "residential": (0.4, ((9.0, 0.5, 2.0),)),
    },
    "holiday": {
        "station": (1.0, ()),
        "business": (0.05, ()),
        "nightlife": (0.05, ((22.0, 0.8, 2.0),)),
        "leisure": (0.1, ((14.0, 1.5, 4.0),)),
        "residential": (0.5, ((10.0, 0.5, 2.0),)),
    },
}
EVENT_DECAY_MIN = 20.0
EVENT_SPAN_MIN = 90.0


@dataclass(frozen=True)
class CityEvent:
    """A crowd leaving a venue: extra requests decaying over ~an hour after ``end_s``."""

    venue: str
    lat: float
    lon: float
    end_s: float
    """Seconds after Tokyo midnight when the crowd starts to leave."""
    expected_requests: float


@dataclass(frozen=True)
class DemandField:
    """The rate of one day: ``street`` and ``app`` are (slice, cell) Poisson means."""

    cells: pl.DataFrame
    """Area cells in ``cell`` order: cell, row, col."""
    cell_x: np.ndarray
    cell_y: np.ndarray
    street: np.ndarray
    app: np.ndarray
    rain_mm_per_h: np.ndarray
    events: tuple[CityEvent, ...]
    grid_index: np.ndarray
    """Position in ``cells`` of grid cell (row - first row, col - first col)."""


@dataclass(frozen=True)
class Requests:
    """Requests of one day in pickup-time order (seconds after Tokyo midnight, km)."""

    t_s: np.ndarray
    x: np.ndarray
    y: np.ndarray
    cell_idx: np.ndarray
    is_app: np.ndarray

    def __len__(self) -> int:
        return len(self.t_s)


def _bumps(hours: np.ndarray, bumps: tuple, wrap: bool) -> np.ndarray:
    out = np.zeros_like(hours)
    for centre, amp, width in bumps:
        d = hours - centre
        if wrap:
            d = (d + 12) % 24 - 12
        out += amp * np.exp(-0.5 * (d / width) ** 2)
    return out


def daily_profile(day: date) -> np.ndarray:
    """Share of the day's requests in each 5-minute slice (sums to 1).

    The small hours belong to the previous evening, so they follow yesterday's day type.
    """
    hours = (np.arange(SLICES_PER_DAY) + 0.5) * SLICE_MINUTES / 60
    today = _PROFILE_BUMPS[day_type(day)]
    yesterday = _PROFILE_BUMPS[day_type(day - timedelta(days=1))]
    profile = _FLOOR + _bumps(hours, today, wrap=False) + _bumps(hours + 24, yesterday, False)
    # Before the first trains the city sleeps.
    profile *= 1 - 0.6 * _bumps(hours, ((4.5, 1.0, 1.0),), wrap=False)
    return profile / profile.sum()


def layer_mix(day: date) -> np.ndarray:
    """(slice, layer) weights of LAYERS, each row summing to 1."""
    hours = (np.arange(SLICES_PER_DAY) + 0.5) * SLICE_MINUTES / 60
    mix = _MIX[day_type(day)]
    weights = np.stack([mix[layer][0] + _bumps(hours, mix[layer][1], True) for layer in LAYERS])
    return (weights / weights.sum(axis=0)).T


def _spot_density(cell_x, cell_y, frame: LocalFrame, spots: tuple[Hotspot, ...]) -> np.ndarray:
    density = np.zeros_like(cell_x)
    for spot in spots:
        sx, sy = frame.to_xy(np.array(spot.lat), np.array(spot.lon))
        d2 = (cell_x - sx) ** 2 + (cell_y - sy) ** 2
        density += spot.weight * np.exp(-0.5 * d2 / spot.sigma_km**2)
    return density / density.sum()


def _draw_event(config: CityConfig, day: date, base_total: float) -> tuple[CityEvent, ...]:
    rng = rng_for(config.seed, day, Stream.EVENTS)
    # Draw every number regardless of the outcome so the stream stays aligned.
    happens, venue_u, end_h = rng.random(), rng.random(), rng.uniform(20.5, 21.75)
    chance = config.event_probability * (1.0 if day_type(day) == "weekday" else 1.5)
    if happens >= min(chance, 1.0) or config.event_demand_share == 0:
        return ()
    weights = np.array([v.weight for v in EVENT_VENUES])
    venue = EVENT_VENUES[int(np.searchsorted(np.cumsum(weights) / weights.sum(), venue_u))]
    return (
        CityEvent(
            venue.name, venue.lat, venue.lon, end_h * 3600, config.event_demand_share * base_total
        ),
    )


def _event_rate(event: CityEvent, cell_x, cell_y, frame: LocalFrame) -> np.ndarray:
    minutes_after = (np.arange(SLICES_PER_DAY) + 0.5) * SLICE_MINUTES - event.end_s / 60
    in_span = (minutes_after >= 0) & (minutes_after < EVENT_SPAN_MIN)
    time_kernel = np.where(in_span, np.exp(-np.clip(minutes_after, 0, None) / EVENT_DECAY_MIN), 0)
    venue = Hotspot(event.venue, event.lat, event.lon, 1.0, 0.3)
    space_kernel = _spot_density(cell_x, cell_y, frame, (venue,))
    return event.expected_requests * np.outer(time_kernel / time_kernel.sum(), space_kernel)


def demand_field(config: CityConfig, day: date) -> DemandField:
    """The true (slice, cell) request rate of the day, split into street hails and apps."""
    area, frame = config.area, LocalFrame.of(config.area)
    cells = area.cells()
    lat_c, lon_c = mesh_center(pl.col("cell"), area.mesh_level)
    centres = cells.select(lat=lat_c, lon=lon_c)
    cell_x, cell_y = frame.to_xy(centres["lat"].to_numpy(), centres["lon"].to_numpy())

    densities = np.stack([_spot_density(cell_x, cell_y, frame, HOTSPOTS[k]) for k in LAYERS])
    spatial = layer_mix(day) @ densities  # (slice, cell), each row sums to 1
    factor = {"weekday": 1.0, "saturday": config.saturday_demand_factor}.get(
        day_type(day), config.holiday_demand_factor
    )
    base_total = config.fleet_size * config.trips_per_taxi_per_day * factor
    rain = rain_mm_per_h(config, day)
    rain_boost = 1.0 + config.rain_demand_gain * np.log1p(rain)
    slice_boost = np.repeat(rain_boost, 60 // SLICE_MINUTES)
    total = (base_total * daily_profile(day) * slice_boost)[:, None] * spatial

    events = _draw_event(config, day, base_total)
    for event in events:
        total = total + _event_rate(event, cell_x, cell_y, frame)

    rows, cols = cells["row"].to_numpy(), cells["col"].to_numpy()
    grid_index = np.full((area.n_rows, area.n_cols), -1, dtype=np.int64)
    grid_index[rows - area.row_range[0], cols - area.col_range[0]] = np.arange(len(cells))
    return DemandField(
        cells=cells,
        cell_x=cell_x,
        cell_y=cell_y,
        street=total * (1 - config.effective_app_booking_share),
        app=total * config.effective_app_booking_share,
        rain_mm_per_h=rain,
        events=events,
        grid_index=grid_index,
    )


def true_demand_frame(field: DemandField, day: date) -> pl.DataFrame:
    """The rate as a dense frame: every area cell x every 5-minute slice, sorted that way."""
    n_cells = len(field.cells)
    starts = bucket_starts(day, SLICE_MINUTES)
    return pl.DataFrame(
        {
            "cell": np.repeat(field.cells["cell"].to_numpy(), SLICES_PER_DAY),
            "slice_start": starts.gather(np.tile(np.arange(SLICES_PER_DAY), n_cells)),
            "expected_street_hails": field.street.T.ravel(),
            "expected_app_bookings": field.app.T.ravel(),
        },
        schema=TRUE_DEMAND_SCHEMA,
    )


def true_demand_rate(config: CityConfig, day: date) -> pl.DataFrame:
    """Ground-truth Poisson means of street-hail and app-booking pickups per cell and slice.

    Dense over the area's cells x the 288 five-minute slices of the Tokyo day (slice_start in
    UTC). Pickup times are what the rate describes (an app booking is requested a few
    minutes before its pickup, while the taxi approaches).
    """
    return true_demand_frame(demand_field(config, day), day)


def draw_requests(config: CityConfig, day: date, field: DemandField) -> Requests:
    """Poisson draws of the rate: each request at a uniform time and place in its slice/cell."""
    rng = rng_for(config.seed, day, Stream.REQUESTS)
    counts = rng.poisson(np.stack([field.street, field.app]))  # (kind, slice, cell)
    kind, slice_idx, cell_idx = np.nonzero(counts)
    repeats = counts[kind, slice_idx, cell_idx]
    kind, slice_idx, cell_idx = (np.repeat(a, repeats) for a in (kind, slice_idx, cell_idx))
    n = len(kind)
    t_s = (slice_idx + rng.random(n)) * SLICE_S
    # Keep points a hair inside their cell so float rounding cannot move them next door.
    u_row, u_col = rng.uniform(0.001, 0.999, (2, n))
    level = config.area.mesh_level
    rows = field.cells["row"].to_numpy()[cell_idx]
    cols = field.cells["col"].to_numpy()[cell_idx]
    lat = (rows + u_row) / rows_per_degree(level)
    lon = 100.0 + (cols + u_col) / cols_per_degree(level)
    x, y = LocalFrame.of(config.area).to_xy(lat, lon)
    order = np.argsort(t_s, kind="stable")
    return Requests(
        t_s=t_s[order], x=x[order], y=y[order], cell_idx=cell_idx[order], is_app=kind[order] == 1
    )


def draw_destinations(
    config: CityConfig, day: date, field: DemandField, requests: Requests, n_candidates: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """Drop-off points (km): a lognormal trip length (median ~2.8 km as the crow flies,
    ~3.6 km by road) in a direction that favours busy places at that time of day."""
    rng = rng_for(config.seed, day, Stream.REQUESTS, 1)
    frame = LocalFrame.of(config.area)
    n = len(requests)
    length_km = np.clip(rng.lognormal(np.log(2.8), 0.65, n), 0.6, 15.0)
    bearing = rng.uniform(0, 2 * np.pi, (n, n_candidates))
    cand_x = requests.x[:, None] + length_km[:, None] * np.cos(bearing)
    cand_y = requests.y[:, None] + length_km[:, None] * np.sin(bearing)
    inside = (cand_x > 0) & (cand_x < frame.width_km) & (cand_y > 0) & (cand_y < frame.height_km)
    row = np.clip(
        (cand_y / (frame.height_km / config.area.n_rows)).astype(np.int64),
        0,
        config.area.n_rows - 1,
    )
    col = np.clip(
        (cand_x / (frame.width_km / config.area.n_cols)).astype(np.int64), 0, config.area.n_cols - 1
    )
    slice_idx = np.minimum((requests.t_s // SLICE_S).astype(np.int64), SLICES_PER_DAY - 1)
    rate = field.street + field.app
    attraction = rate[slice_idx[:, None], field.grid_index[row, col]]
    # A floor so quiet but reachable places still get trips; outside the area gets nothing.
    weight = np.where(inside, attraction + rate.mean() * 0.3, 0.0) + 1e-12
    cum = np.cumsum(weight, axis=1)
    pick = (cum < rng.random(n)[:, None] * cum[:, -1:]).sum(axis=1)
    pick = np.minimum(pick, n_candidates - 1)
    dest_x = cand_x[np.arange(n), pick]
    dest_y = cand_y[np.arange(n), pick]
    return frame.clip(dest_x, dest_y)
