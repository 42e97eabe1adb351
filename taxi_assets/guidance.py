"""Cruising guidance: where a vacant taxi should head next to find a street hail.

**One unit everywhere: street hails one vacant taxi can expect to capture.** A cell expecting
``λ`` street hails in a bucket, with ``v`` vacant taxis expected to compete for them, offers
one more arriving taxi

    opportunity = 1 - exp(-λ / (v + 1 + prior))

Each of the ``v + 1`` taxis (the newcomer included) sees an even share of the cell's hails,
``λ / (v + 1)``; a taxi carries at most one street hail at a time (the first one it meets
takes it off the street), so what it can expect to capture is the chance that its share holds
at least one hail, ``1 - exp(-share)`` for Poisson-like hails. That is about ``λ / (v + 1)``
where hails are scarce and saturates at 1 where hails outnumber taxis, so a hotspot short of
taxis cannot promise ten hails to one taxi. ``prior`` (``competitor_prior``, default 1) is a
smoothing pseudo-count of competitors the supply forecast does not see (taxis passing through,
other guided taxis): without it a quiet cell the model expects empty would hand its whole,
noisy forecast to the newcomer. Finite everywhere: an empty cell with no taxis offers 0.

**Competitors present, not taxis seen.** ``expected_vacant_taxis`` counts the distinct vacant
taxis seen in a cell during a bucket, most of them passing through; the hails of a moment are
shared by the taxis there at that moment. The routes and the allocation count
``vacant_presence`` (0.17 in the simulated city: its vacant taxi-time per bucket over the
distinct vacant taxis seen) of them. Counting every taxi seen as present (1.0) multiplied
the competitors where taxis pass, which is where the hails are, and sent guided taxis away
from the demand: in the closed loop (README, Benchmarks) guided taxis then found fewer
hails per vacant hour than unguided ones. (``opportunity`` stored with the forecast keeps
the plain count: it is the per-cell figure the forecast's users already read.)

**Reach.** ``hail_reach_km`` > 0 values a position by the hails of every cell within that
road distance, each shared by the vacant taxis within reach of it (a taxi takes a hail while
passing, not only in its own cell). Measured in the closed loop it did worse than the
per-cell value (README), so the default is 0.

The former ``hails - vacant taxis`` subtracted a count of taxis seen in a bucket from a count
of hails; where taxis gather (which is where hails are) taxis outnumber hails, so the busiest
cells always lost. A ratio compares like with like.

**Time.** A taxi moving to another cell spends ``distance / road speed`` getting there (cell
centres, a detour factor for streets, the hour's speed from a table) and captures nothing on
the way; it then cruises there until the next decision. What it collects uses the forecast of
the bucket it is in at each minute (``horizon`` 0 is the bucket in progress, 1 the next...);
when the forecast lacks a horizon the nearest shorter one stands in (today: only horizon 0).

**Routes.** Over ``horizon_minutes`` (20) in steps of ``step_minutes`` (5), dynamic
programming over (cell, step) picks the route maximizing the hail intensity collected along
the way; ``route_expected_hails`` is the chance of at least one hail on it. The taxi's own
cell counts it among its vacant taxis already (``max(v, 1) + prior`` competitors rather
than ``v + 1 + prior``), so staying is not penalised for the taxi competing with itself.

**No herding.** The vacant taxis of every cell are allocated across targets (staying is
one) all at once, one taxi at a time: each goes where it expects the most hails given the
taxis already sent there, from its own cell or any other, each one more competitor. So the
second taxi sent to a cell expects less than the first, and taxis of neighbouring cells do
not all chase the same hotspot. Each taxi is valued by its own catch, as a driver would; a
fleet-wide objective (its catch minus what it takes from the others) keeps nearly every taxi
where it is, since moving mostly shares the same hails out differently. Targets reach
``target_radius_cells`` (6, about 3 km) each way: a taxi dropped off in a quiet quarter
must see where the fares are, as the drivers who are not guided drift back towards them.
``move_margin`` (default 0) makes a move beat staying by a share first; it lowered the
guided taxis' catch in the closed loop, since a moving taxi can still be hailed where it was.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from taxi_assets.calendar import TOKYO, day_window_utc
from taxi_assets.mesh import cols_per_degree, rows_per_degree
from taxi_assets.service_area import ServiceArea

KM_PER_DEGREE_LATITUDE = 111.32

# Typical road speed of a cruising taxi in central Tokyo per Tokyo hour (0..23): free flow
# at night, about 18 km/h in daytime congestion. A deployment sets its own table, e.g. the
# median speed_kmh of its vacant pings per hour.
DEFAULT_ROAD_SPEED_KMH: tuple[float, ...] = (
    *(30.0,) * 6,  # 00-05 h
    28.5, 25.5, 22.5, 21.0, 19.5, 18.0,  # 06-11 h
    *(18.0,) * 7,  # 12-18 h
    19.5, 21.0, 24.0, 25.5, 27.0,  # 19-23 h
)  # fmt: skip

GUIDANCE_COLUMNS = (
    "cell",
    "target_cell",
    "target_distance_km",
    "target_arrival_minutes",
    "target_expected_hails",
    "stay_expected_hails",
    "route",
    "route_expected_hails",
    "vacant_taxis",
    "allocation",
)

# Targets per cell the allocation considers (its best for one taxi, and staying).
_ALLOCATION_TARGETS = 8
_ALLOCATION_FIELDS = {
    "target_cell": pl.Int64,
    "taxis": pl.Int32,
    "expected_hails_per_taxi": pl.Float64,
    "first_taxi_expected_hails": pl.Float64,
}

# Ranking ties (an empty forecast, symmetric neighbours) go to staying, then the nearer cell,
# then the smaller code; values are rounded first so float noise does not decide.
_TIE_DIGITS = 12


@dataclass(frozen=True)
class GuidanceParams:
    """How the guidance values time, competition and distance."""

    competitor_prior: float = 1.0
    """Pseudo-count of vacant taxis competing in every cell beyond the forecast's."""
    horizon_minutes: int = 20
    """How far ahead a route plans."""
    step_minutes: int = 5
    """A route decides where to cruise every this many minutes (the forecast tick)."""
    step_radius_cells: int = 2
    """How far (cells, each way) one step of a route may move."""
    target_radius_cells: int = 6
    """How far (cells, each way) the single best target and the allocation look: far
    enough that a taxi dropped off in a quiet quarter sees where the fares are."""
    road_speed_kmh: tuple[float, ...] = DEFAULT_ROAD_SPEED_KMH
    """Road speed per Tokyo hour 0..23."""
    detour_factor: float = 1.3
    """Road distance over straight-line distance between cell centres."""
    bucket_minutes: int = 15
    """Width of the forecast's buckets."""
    max_taxis_per_cell: int = 200
    """Vacant taxis of one cell the allocation splits at most (the rest follow the last)."""
    hail_reach_km: float = 0.0
    """Road distance within which a vacant taxi takes a street hail: > 0 values a position
    by the hails of every cell within it, each shared by the vacant taxis within it of that
    cell. 0 (default, better in the closed loop) values a cell by its own hails and taxis."""
    vacant_presence: float = 0.17
    """Share of a bucket a vacant taxi counted in a cell (``expected_vacant_taxis``: the
    distinct vacant taxis seen there in the bucket, most of them passing through) spends
    there: the forecast's vacant taxis times this are the competitors present at once. The
    simulated city's is 0.17 (vacant taxi-time over distinct vacant taxis seen, per bucket);
    1 counts every taxi seen as present all the time."""
    move_margin: float = 0.0
    """A move must promise this share more than staying to be taken (hysteresis)."""

    def __post_init__(self) -> None:
        def require(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ValueError(
                    f"GuidanceParams.{name}={getattr(self, name)!r} is invalid: {expected}"
                )

        require(self.competitor_prior >= 0, "competitor_prior", "must be >= 0")
        require(self.step_minutes >= 1, "step_minutes", "must be >= 1")
        require(
            self.horizon_minutes >= self.step_minutes
            and self.horizon_minutes % self.step_minutes == 0,
            "horizon_minutes",
            "must be a whole number of step_minutes",
        )
        require(self.step_radius_cells >= 1, "step_radius_cells", "must be >= 1")
        require(self.target_radius_cells >= 1, "target_radius_cells", "must be >= 1")
        require(
            len(self.road_speed_kmh) == 24 and all(v > 0 for v in self.road_speed_kmh),
            "road_speed_kmh",
            "needs 24 positive speeds, one per Tokyo hour",
        )
        require(self.detour_factor >= 1, "detour_factor", "must be >= 1")
        require(1 <= self.bucket_minutes <= 1440, "bucket_minutes", "must be in [1, 1440]")
        require(self.max_taxis_per_cell >= 1, "max_taxis_per_cell", "must be >= 1")
        require(0 <= self.hail_reach_km <= 5, "hail_reach_km", "must be in [0, 5] km")
        require(self.move_margin >= 0, "move_margin", "must be >= 0")
        require(0 < self.vacant_presence <= 1, "vacant_presence", "must be in (0, 1]")

    @property
    def steps(self) -> int:
        return self.horizon_minutes // self.step_minutes

    def speed_kmh(self, tick: datetime) -> float:
        return self.road_speed_kmh[tick.astimezone(TOKYO).hour]


DEFAULT_GUIDANCE = GuidanceParams()


# Opportunity ------------------------------------------------------------------------------


def capture_expectation(hails: pl.Expr, competitors: pl.Expr) -> pl.Expr:
    """Street hails one vacant taxi can expect to capture from ``hails`` shared evenly with
    ``competitors`` vacant taxis (itself included), one hail at most: 1 - exp(-share)."""
    return 1.0 - (-(hails / competitors)).exp()


def _hails() -> pl.Expr:
    return pl.col("expected_street_hails").cast(pl.Float64).fill_null(0.0).clip(lower_bound=0.0)


def _vacant() -> pl.Expr:
    # A missing supply forecast (no stored history) counts as no taxis: the prior still damps.
    return pl.col("expected_vacant_taxis").cast(pl.Float64).fill_null(0.0).clip(lower_bound=0.0)


def opportunity(competitor_prior: float = GuidanceParams.competitor_prior) -> pl.Expr:
    """Street hails one more vacant taxi arriving in the cell for the whole bucket can expect
    to capture, from ``expected_street_hails`` and ``expected_vacant_taxis``."""
    return capture_expectation(_hails(), _vacant() + 1.0 + competitor_prior)


# The forecast per arrival bucket ----------------------------------------------------------


def minutes_into_bucket(tick: datetime, bucket_minutes: int) -> float:
    """Minutes elapsed since the start of the bucket in progress at ``tick`` (Tokyo days)."""
    if tick.tzinfo is None:
        raise ValueError(f"tick {tick.isoformat()} has no time zone: pass an aware datetime")
    day_start, _ = day_window_utc(tick.astimezone(TOKYO).date())
    return ((tick - day_start).total_seconds() / 60.0) % bucket_minutes


def arrival_segments(tick: datetime, params: GuidanceParams) -> list[tuple[int, float, float]]:
    """(arrival bucket, first minute, end minute) of each bucket the horizon touches, in
    minutes from the tick: bucket 0 is the one in progress."""
    offset = minutes_into_bucket(tick, params.bucket_minutes)
    segments, bucket = [], 0
    while (start := bucket * params.bucket_minutes - offset) < params.horizon_minutes:
        end = min((bucket + 1) * params.bucket_minutes - offset, params.horizon_minutes)
        segments.append((bucket, max(start, 0.0), end))
        bucket += 1
    return segments


def forecast_horizons(forecast: pl.DataFrame) -> list[int]:
    """Horizons the forecast holds (a forecast without a ``horizon`` column holds 0)."""
    if "horizon" not in forecast.columns:
        return [0]
    # An empty forecast is a forecast of nothing for the bucket in progress.
    return sorted(int(h) for h in forecast["horizon"].unique().drop_nulls()) or [0]


def horizon_for_arrival(forecast: pl.DataFrame, arrival_bucket: int) -> int:
    """The forecast horizon used for an arrival bucket: its own, else the nearest shorter."""
    available = [h for h in forecast_horizons(forecast) if h <= arrival_bucket]
    if not available:
        raise ValueError(f"forecast: no horizon at or before arrival bucket {arrival_bucket}")
    return available[-1]


def _cell_rates(
    forecast: pl.DataFrame,
    area: ServiceArea,
    cells: pl.DataFrame,
    buckets: list[int],
    params: GuidanceParams,
) -> pl.DataFrame:
    """One row per cell: hails ``l{b}`` and vacant taxis ``v{b}`` for each arrival bucket b,
    and the hail intensity per minute for a taxi arriving (``arrive{b}``) or already there
    (``home{b}``)."""
    if "horizon" not in forecast.columns:
        forecast = forecast.with_columns(horizon=pl.lit(0, pl.Int8))
    if forecast.select("cell", "horizon").is_duplicated().any():
        # Two rows for one cell and horizon (e.g. ticks stacked) would double its hails.
        raise ValueError("forecast: expected one row per cell and horizon, found duplicates")
    rates = cells.select("cell")
    for bucket in buckets:
        horizon = horizon_for_arrival(forecast, bucket)
        rates = rates.join(
            forecast.filter(pl.col("horizon") == horizon).select(
                pl.col("cell").cast(pl.Int64),
                _hails().alias(f"l{bucket}"),
                (_vacant() * params.vacant_presence).alias(f"v{bucket}"),
            ),
            on="cell",
            how="left",
        )
    prior, width = params.competitor_prior, float(params.bucket_minutes)
    rates = rates.with_columns(pl.col(f"^[lv]{b}$").fill_null(0.0) for b in buckets)
    pairs = reach_pairs(cells, area, params)
    # Competitors of the hails of a cell: the vacant taxis of every cell within reach of it.
    covered = (
        pairs.join(rates.select("cell", *(f"v{b}" for b in buckets)), on="cell")
        .group_by("near")
        .agg(pl.col(f"v{b}").sum().alias(f"n{b}") for b in buckets)
    )
    near = rates.select("cell", *(f"l{b}" for b in buckets)).join(
        covered.rename({"near": "cell"}), on="cell", how="left"
    )
    # A taxi in a cell collects, of the hails of every cell within its reach, the share of
    # one competitor more (arriving) or the one it is already (home: a cell's own vacant
    # taxis count it, so at least 1 of them is it).
    smoothed = (
        pairs.join(near.rename({"cell": "near"}), on="near", how="left")
        .join(rates.select("cell", *(pl.col(f"v{b}").alias(f"own{b}") for b in buckets)), on="cell")
        .group_by("cell")
        .agg(
            *(
                (pl.col(f"l{b}") / (pl.col(f"n{b}") + 1.0 + prior))
                .sum()
                .truediv(width)
                .alias(f"arrive{b}")
                for b in buckets
            ),
            *(
                (
                    pl.col(f"l{b}")
                    / (pl.col(f"n{b}") + (1.0 - pl.col(f"own{b}")).clip(lower_bound=0.0) + prior)
                )
                .sum()
                .truediv(width)
                .alias(f"home{b}")
                for b in buckets
            ),
        )
    )
    return rates.join(smoothed, on="cell", how="left")


def _collected(
    kind: str, start: pl.Expr, end: pl.Expr, segments: list[tuple[int, float, float]]
) -> pl.Expr:
    """Hail intensity collected cruising from minute ``start`` to ``end`` (``kind`` arrive
    or home), each minute at the rate of the bucket it falls in."""
    return pl.sum_horizontal(
        pl.col(f"{kind}{bucket}")
        * (
            pl.min_horizontal(end, pl.lit(seg_end)) - pl.max_horizontal(start, pl.lit(seg_start))
        ).clip(lower_bound=0.0)
        for bucket, seg_start, seg_end in segments
    )


# Moves -------------------------------------------------------------------------------------


def cell_km(area: ServiceArea) -> tuple[float, float]:
    """(height, width) of one cell of ``area`` in km, at the area's middle latitude."""
    lat_mid = (sum(area.row_range) / 2) / rows_per_degree(area.mesh_level)
    km_per_row = KM_PER_DEGREE_LATITUDE / rows_per_degree(area.mesh_level)
    km_per_col = (
        KM_PER_DEGREE_LATITUDE * math.cos(math.radians(lat_mid)) / cols_per_degree(area.mesh_level)
    )
    return km_per_row, km_per_col


def reach_pairs(cells: pl.DataFrame, area: ServiceArea, params: GuidanceParams) -> pl.DataFrame:
    """Every (cell, near) of ``cells`` whose centres are within ``hail_reach_km`` by road:
    a taxi cruising in ``cell`` can take the street hails of ``near`` (itself included)."""
    radius = math.floor(params.hail_reach_km / (params.detour_factor * min(cell_km(area))))
    return (
        moves_within(cells, area, radius, 1.0, params)
        .filter(pl.col("distance_km") <= params.hail_reach_km)
        .select("cell", near="target_cell")
    )


def moves_within(
    cells: pl.DataFrame, area: ServiceArea, radius: int, speed_kmh: float, params: GuidanceParams
) -> pl.DataFrame:
    """Every (cell, target_cell) within ``radius`` cells each way, both in ``cells`` (a
    subset of ``area.cells()``), with the road distance between their centres and the
    minutes it takes at ``speed_kmh``."""
    km_per_row, km_per_col = cell_km(area)
    steps = pl.DataFrame({"step": pl.int_range(-radius, radius + 1, eager=True)})
    offsets = steps.select(d_row="step").join(steps.select(d_col="step"), how="cross")
    return (
        cells.join(offsets, how="cross")
        .with_columns(
            target_row=pl.col("row") + pl.col("d_row"), target_col=pl.col("col") + pl.col("d_col")
        )
        .join(
            cells.select(target_cell="cell", target_row="row", target_col="col"),
            on=["target_row", "target_col"],
            how="inner",
        )
        .select(
            "cell",
            "target_cell",
            distance_km=params.detour_factor
            * ((pl.col("d_row") * km_per_row) ** 2 + (pl.col("d_col") * km_per_col) ** 2).sqrt(),
        )
        .with_columns(travel_minutes=pl.col("distance_km") / speed_kmh * 60.0)
    )


def _best_per_cell(frame: pl.DataFrame, value: str) -> pl.DataFrame:
    """The row of highest ``value`` per cell; ties to staying, the nearer, the smaller code."""
    return (
        frame.with_columns(_rank=pl.col(value).round(_TIE_DIGITS))
        .sort(
            ["cell", "_rank", "distance_km", "target_cell"], descending=[False, True, False, False]
        )
        .unique("cell", keep="first", maintain_order=True)
        .drop("_rank")
    )


# Routes and targets --------------------------------------------------------------------------


def _plan(
    forecast: pl.DataFrame,
    area: ServiceArea,
    tick: datetime,
    params: GuidanceParams,
    cells: pl.DataFrame,
    origins: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Routes and best targets for ``origins``, planned over ``cells`` (which must hold every
    cell a route from an origin can reach); also the per-candidate target values for the
    allocation."""
    segments = arrival_segments(tick, params)
    buckets = [bucket for bucket, _, _ in segments]
    rates = _cell_rates(forecast, area, cells, buckets, params)
    speed = params.speed_kmh(tick)
    step = float(params.step_minutes)

    moves = moves_within(cells, area, params.step_radius_cells, speed, params).filter(
        pl.col("travel_minutes") < step
    )
    moves = moves.join(rates.rename({"cell": "target_cell"}), on="target_cell", how="left")

    # Backward induction: value_arrive(s, c) is the most a taxi in c at step s collects from
    # then on, c not being its own cell; value_home(s, c) the same where c is its own cell.
    value = cells.select("cell", arrive=pl.lit(0.0), home=pl.lit(0.0))
    choices: list[pl.DataFrame] = []
    for s in reversed(range(params.steps)):
        start = s * step + pl.col("travel_minutes")
        end = pl.lit((s + 1) * step)
        scored = moves.with_columns(
            gain_arrive=_collected("arrive", start, end, segments),
            gain_home=_collected("home", start, end, segments),
        ).join(
            value.select(target_cell="cell", next_arrive="arrive", next_home="home"),
            on="target_cell",
        )
        stays = pl.col("target_cell") == pl.col("cell")
        arrive = _best_per_cell(
            scored.with_columns(value=pl.col("gain_arrive") + pl.col("next_arrive")), "value"
        )
        home = _best_per_cell(
            scored.with_columns(
                value=pl.when(stays)
                .then(pl.col("gain_home") + pl.col("next_home"))
                .otherwise(pl.col("gain_arrive") + pl.col("next_arrive"))
            ),
            "value",
        )
        value = arrive.select("cell", arrive="value").join(
            home.select("cell", home="value"), on="cell"
        )
        choices.insert(
            0,
            arrive.select("cell", via_arrive="target_cell").join(
                home.select("cell", via_home="target_cell"), on="cell"
            ),
        )

    walk = origins.select("cell", at=pl.col("cell"), left_home=pl.lit(False))
    for s, choice in enumerate(choices):
        walk = (
            walk.join(choice.rename({"cell": "at"}), on="at", how="left")
            .with_columns(at=pl.when(pl.col("left_home")).then("via_arrive").otherwise("via_home"))
            .with_columns(
                (pl.col("left_home") | (pl.col("at") != pl.col("cell"))).alias("left_home"),
                pl.col("at").alias(f"step{s}"),
            )
            .drop("via_arrive", "via_home")
        )
    routes = walk.select(
        "cell",
        route=pl.concat_list(f"step{s}" for s in range(params.steps)).list.eval(
            # Consecutive steps in one cell are one stop of the route.
            pl.element().filter(pl.element().ne_missing(pl.element().shift(1)))
        ),
    ).join(
        value.select("cell", route_expected_hails=1.0 - (-pl.col("home")).exp()),
        on="cell",
    )

    horizon = pl.lit(float(params.horizon_minutes))
    candidates = (
        moves_within(cells, area, params.target_radius_cells, speed, params)
        .join(origins.select("cell"), on="cell", how="semi")
        .filter(pl.col("travel_minutes") < params.horizon_minutes)
        .join(rates.rename({"cell": "target_cell"}), on="target_cell", how="left")
        .with_columns(
            exposure=pl.when(pl.col("target_cell") == pl.col("cell"))
            .then(_collected("home", pl.col("travel_minutes"), horizon, segments))
            .otherwise(_collected("arrive", pl.col("travel_minutes"), horizon, segments))
        )
    )
    # A move must beat staying by the margin (hysteresis): it ranks discounted by it.
    margin = 1.0 + params.move_margin
    ranked = candidates.with_columns(
        rank=pl.when(pl.col("target_cell") == pl.col("cell"))
        .then(pl.col("exposure"))
        .otherwise(-(1.0 - (1.0 - (-pl.col("exposure")).exp()) / margin).log())
    )
    best = _best_per_cell(ranked, "rank").select(
        "cell",
        "target_cell",
        target_distance_km="distance_km",
        target_arrival_minutes="travel_minutes",
        target_expected_hails=1.0 - (-pl.col("exposure")).exp(),
    )
    stay = candidates.filter(pl.col("target_cell") == pl.col("cell")).select(
        "cell", stay_expected_hails=1.0 - (-pl.col("exposure")).exp()
    )
    plan = (
        origins.select("cell").join(best, on="cell").join(stay, on="cell").join(routes, on="cell")
    )
    return plan, candidates


def _allocate(
    candidates: pl.DataFrame,
    taxis: pl.DataFrame,
    pairs: pl.DataFrame,
    segments: list[tuple[int, float, float]],
    params: GuidanceParams,
) -> pl.DataFrame:
    """``allocation`` per cell: the vacant taxis of every cell split across their candidate
    targets, all cells at once, so taxis sent to targets within reach of the same hails see
    each other (see the module docstring).

    Every cell's own vacant taxis are allocated (staying is one of the targets), so the
    competitors of a cell's hails are the vacant taxis forecast within reach of it beyond
    those, the prior, and every taxi allocated to a target within reach of it. The next taxi
    goes where it expects the most; that falls with every taxi sent within reach, so a lazy
    priority queue (rescoring an entry only when a target near its own got a taxi since)
    finds the same allocation as rescoring everything after each taxi. The loop is over
    taxis, a few thousand a tick, not rows.
    """
    buckets = [bucket for bucket, _, _ in segments]
    origins = taxis.filter(pl.col("vacant_taxis") > 0)
    moving = candidates.join(origins, on="cell", how="semi")
    if moving.height == 0:
        return pl.DataFrame(
            schema={"cell": pl.Int64, "allocation": pl.List(pl.Struct(_ALLOCATION_FIELDS))}
        )
    target_cells = moving.select("target_cell").unique()
    # The hails a target's taxi can take: those of the cells within reach of the target.
    reach = pairs.join(target_cells, left_on="cell", right_on="target_cell", how="semi")
    near_cells = reach.select(cell="near").unique()
    # Competitors of a near cell's hails not being allocated: the forecast's vacant taxis
    # within reach of it beyond the taxis allocated here, plus the prior.
    unallocated = (
        candidates.unique("target_cell")
        .select("target_cell", *(f"^v{b}$" for b in buckets))
        .join(taxis.rename({"cell": "target_cell"}), on="target_cell", how="left")
        .select(
            cell="target_cell",
            **{
                f"free{i}": (pl.col(f"v{b}") - pl.col("vacant_taxis").fill_null(0)).clip(
                    lower_bound=0.0
                )
                for i, b in enumerate(buckets)
            },
        )
    )
    near = (
        pairs.join(near_cells, left_on="near", right_on="cell", how="semi")
        .join(unallocated, on="cell", how="left")
        .group_by("near")
        .agg(pl.col(f"free{i}").fill_null(0.0).sum() for i in range(len(buckets)))
        .join(
            candidates.unique("target_cell").select(
                near="target_cell", **{f"hails{i}": f"l{b}" for i, b in enumerate(buckets)}
            ),
            on="near",
            how="left",
        )
        .sort("near")
    )
    near_of = {cell: i for i, cell in enumerate(near["near"].to_list())}
    hails = [near[f"hails{i}"].fill_null(0.0).to_list() for i in range(len(buckets))]
    base = [
        [free + params.competitor_prior for free in near[f"free{i}"].to_list()]
        for i in range(len(buckets))
    ]
    target_list = sorted(target_cells["target_cell"].to_list())
    target_of = {cell: i for i, cell in enumerate(target_list)}
    covers: list[list[int]] = [[] for _ in target_list]
    for cell, near_cell in reach.select("cell", "near").iter_rows():
        if near_cell in near_of:
            covers[target_of[cell]].append(near_of[near_cell])
    # Targets sharing a near cell with a target: a taxi sent there changes their value.
    covered_by: list[list[int]] = [[] for _ in near_of]
    for t, cells_near in enumerate(covers):
        for n in cells_near:
            covered_by[n].append(t)
    affected = [sorted({u for n in cells_near for u in covered_by[n]}) for cells_near in covers]

    # Share of a bucket's hails-per-competitor a taxi collects, arriving after its travel.
    weights = [
        (
            (pl.lit(seg_end) - pl.max_horizontal(pl.col("travel_minutes"), pl.lit(seg_start))).clip(
                lower_bound=0.0
            )
            / params.bucket_minutes
        ).alias(f"weight{i}")
        for i, (_, seg_start, seg_end) in enumerate(segments)
    ]
    moving = moving.select("cell", "target_cell", "distance_km", *weights)
    weight_rows = moving.select(f"weight{i}" for i in range(len(buckets))).rows()
    cand_origin = moving["cell"].to_list()
    cand_target = [target_of[cell] for cell in moving["target_cell"].to_list()]
    # A move must beat staying by the margin: its value is discounted by it.
    cand_factor = [
        1.0 if origin == cell else 1.0 / (1.0 + params.move_margin)
        for origin, cell in zip(cand_origin, moving["target_cell"].to_list(), strict=True)
    ]
    allocated = [0] * len(near_of)
    version = [0] * len(target_list)

    def exposure(cand: int, extra: int) -> float:
        cells_near = covers[cand_target[cand]]
        return sum(
            w * sum(hails[h][n] / (base[h][n] + allocated[n] + extra) for n in cells_near)
            for h, w in enumerate(weight_rows[cand])
            if w
        )

    def score(cand: int) -> float:
        return round(cand_factor[cand] * (1.0 - math.exp(-exposure(cand, 1))), _TIE_DIGITS)

    # Before any taxi is sent, a candidate's value is its first taxi's: per bucket, the
    # target's hails per competitor (one more), computed once per target.
    alone = pl.DataFrame(
        {
            "target_cell": target_list,
            **{
                f"alone{h}": [
                    sum(hails[h][n] / (base[h][n] + 1.0) for n in cells_near)
                    for cells_near in covers
                ]
                for h in range(len(buckets))
            },
        },
        schema_overrides={"target_cell": moving.schema["target_cell"]},
    )
    scored = (
        moving.with_columns(cand=pl.int_range(pl.len()), factor=pl.Series(cand_factor))
        .join(alone, on="target_cell", how="left")
        .with_columns(
            first_taxi=(
                pl.col("factor")
                * (
                    1.0
                    - (
                        -pl.sum_horizontal(
                            pl.col(f"weight{h}") * pl.col(f"alone{h}") for h in range(len(buckets))
                        )
                    ).exp()
                )
            ).round(_TIE_DIGITS)
        )
    ).sort(
        ["cell", "first_taxi", "distance_km", "target_cell"],
        descending=[False, True, False, False],
    )
    # A few best targets per cell, staying always among them, keep the queue short.
    kept = scored.filter(
        (pl.int_range(pl.len()).over("cell") < _ALLOCATION_TARGETS)
        | (pl.col("target_cell") == pl.col("cell"))
    )
    cand_distance = moving["distance_km"].to_list()
    target_cell = moving["target_cell"].to_list()
    left = dict(origins.select("cell", "vacant_taxis").iter_rows())
    queue = [
        (-value, cand_distance[cand], target_cell[cand], cand, 0)
        for cand, value in zip(kept["cand"].to_list(), kept["first_taxi"].to_list(), strict=True)
    ]
    heapq.heapify(queue)
    sent: dict[int, list[float]] = {}
    while queue:
        negative, _, _, cand, seen = heapq.heappop(queue)
        if left[cand_origin[cand]] == 0:
            continue
        t = cand_target[cand]
        if seen != version[t]:
            heapq.heappush(
                queue, (-score(cand), cand_distance[cand], target_cell[cand], cand, version[t])
            )
            continue
        left[cand_origin[cand]] -= 1
        for n in covers[t]:
            allocated[n] += 1
        for u in affected[t]:
            version[u] += 1
        sent.setdefault(cand, []).append(-negative / cand_factor[cand])
        if left[cand_origin[cand]]:
            heapq.heappush(
                queue, (-score(cand), cand_distance[cand], target_cell[cand], cand, version[t])
            )

    picked = sorted(sent)
    return (
        pl.DataFrame(
            {
                "cell": [cand_origin[c] for c in picked],
                "target_cell": [target_cell[c] for c in picked],
                "taxis": [len(sent[c]) for c in picked],
                # What each expects once every taxi is sent, and what the first expected
                # when it was sent alone.
                "expected_hails_per_taxi": [1.0 - math.exp(-exposure(c, 0)) for c in picked],
                "first_taxi_expected_hails": [sent[c][0] for c in picked],
                "distance_km": [cand_distance[c] for c in picked],
            },
            schema_overrides={"cell": pl.Int64, "target_cell": pl.Int64, "taxis": pl.Int32},
        )
        .sort(
            ["cell", "taxis", "distance_km", "target_cell"], descending=[False, True, False, False]
        )
        .group_by("cell", maintain_order=True)
        .agg(allocation=pl.struct(*_ALLOCATION_FIELDS))
    )


def _taxis_to_allocate(
    forecast: pl.DataFrame,
    cells: pl.DataFrame,
    vacant_now: pl.DataFrame | None,
    cap: int,
    presence: float,
) -> pl.DataFrame:
    if vacant_now is None:
        first = forecast_horizons(forecast)[0]
        source = (
            forecast.filter(pl.col("horizon") == first)
            if "horizon" in forecast.columns
            else forecast
        ).select(pl.col("cell").cast(pl.Int64), vacant_taxis=(_vacant() * presence).round())
    else:
        source = vacant_now.select(pl.col("cell").cast(pl.Int64), pl.col("vacant_taxis"))
    return (
        cells.select("cell")
        .join(source, on="cell", how="left")
        .select(
            "cell",
            vacant_taxis=pl.col("vacant_taxis").fill_null(0).clip(0, cap).cast(pl.Int32),
        )
    )


def cruising_guidance(
    forecast: pl.DataFrame,
    area: ServiceArea,
    tick: datetime,
    params: GuidanceParams = DEFAULT_GUIDANCE,
    vacant_now: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Where the vacant taxis of every cell of ``area`` should head at ``tick``.

    ``forecast`` has one row per cell (and ``horizon``, 0 = the bucket in progress, when it
    holds several) with ``expected_street_hails`` and ``expected_vacant_taxis``; cells it
    lacks count as no demand and no supply, cells outside the area are ignored. One row per
    cell (GUIDANCE_COLUMNS): the single best ``target_cell`` to cruise in for the horizon
    (itself when staying is best) and what one taxi expects there and staying; the ``route``
    (ordered cells, up to ``horizon_minutes / step_minutes``) and the hails expected along
    it; and the ``allocation`` of the cell's ``vacant_taxis`` (``vacant_now``, by default
    the vacant taxis present in the bucket in progress, rounded) across targets. The
    same forecast and tick always give the same guidance.
    """
    cells = area.cells()
    plan, candidates = _plan(forecast, area, tick, params, cells, cells)
    taxis = _taxis_to_allocate(
        forecast, cells, vacant_now, params.max_taxis_per_cell, params.vacant_presence
    )
    pairs = reach_pairs(cells, area, params)
    allocation = _allocate(candidates, taxis, pairs, arrival_segments(tick, params), params)
    return (
        plan.join(taxis, on="cell", how="left")
        .join(allocation, on="cell", how="left")
        .select(GUIDANCE_COLUMNS)
        .sort("cell")
    )


def best_targets(
    forecast: pl.DataFrame,
    area: ServiceArea,
    tick: datetime,
    params: GuidanceParams = DEFAULT_GUIDANCE,
) -> pl.DataFrame:
    """:func:`cruising_guidance` without the allocation (cheaper, for replays): per cell the
    target, what one taxi expects there and staying, and the route."""
    cells = area.cells()
    plan, _ = _plan(forecast, area, tick, params, cells, cells)
    return plan.sort("cell")


def guidance_for_position(
    forecast: pl.DataFrame,
    area: ServiceArea,
    lat: float,
    lon: float,
    tick: datetime,
    params: GuidanceParams = DEFAULT_GUIDANCE,
) -> dict:
    """The route and best target for one vacant taxi at (``lat``, ``lon``) at ``tick``:
    the row of :func:`cruising_guidance` for its cell (without the allocation), planned only
    over the cells a route from there can reach."""
    point = pl.DataFrame({"lat": [lat], "lon": [lon]})
    inside = point.select(area.contains(pl.col("lat"), pl.col("lon"))).item()
    if not inside:
        raise ValueError(f"position ({lat}, {lon}) is outside the service area")
    cell = point.select(area.cell_of(pl.col("lat"), pl.col("lon"))).item()
    cells = area.cells()
    origin = cells.filter(pl.col("cell") == cell)
    row, col = origin["row"].item(), origin["col"].item()
    # Plus twice the hail reach, so every cell a route can reach sees all its competitors.
    kernel = math.floor(params.hail_reach_km / (params.detour_factor * min(cell_km(area))))
    reach = max(params.steps * params.step_radius_cells, params.target_radius_cells) + 2 * kernel
    nearby = cells.filter(
        (pl.col("row") - row).abs() <= reach, (pl.col("col") - col).abs() <= reach
    )
    plan, _ = _plan(forecast, area, tick, params, nearby, origin)
    return plan.row(0, named=True)
