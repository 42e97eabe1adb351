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
where it is, since moving mostly shares the same hails out differently.
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
    target_radius_cells: int = 3
    """How far (cells, each way) the single best target and the allocation look."""
    road_speed_kmh: tuple[float, ...] = DEFAULT_ROAD_SPEED_KMH
    """Road speed per Tokyo hour 0..23."""
    detour_factor: float = 1.3
    """Road distance over straight-line distance between cell centres."""
    bucket_minutes: int = 15
    """Width of the forecast's buckets."""
    max_taxis_per_cell: int = 200
    """Vacant taxis of one cell the allocation splits at most (the rest follow the last)."""

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
                _vacant().alias(f"v{bucket}"),
            ),
            on="cell",
            how="left",
        )
    prior, width = params.competitor_prior, float(params.bucket_minutes)
    return rates.with_columns(pl.col(f"^[lv]{b}$").fill_null(0.0) for b in buckets).with_columns(
        *(
            (pl.col(f"l{b}") / (pl.col(f"v{b}") + 1.0 + prior) / width).alias(f"arrive{b}")
            for b in buckets
        ),
        *(
            (pl.col(f"l{b}") / (pl.max_horizontal(pl.col(f"v{b}"), 1.0) + prior) / width).alias(
                f"home{b}"
            )
            for b in buckets
        ),
    )


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


def moves_within(
    cells: pl.DataFrame, area: ServiceArea, radius: int, speed_kmh: float, params: GuidanceParams
) -> pl.DataFrame:
    """Every (cell, target_cell) within ``radius`` cells each way, both in ``cells`` (a
    subset of ``area.cells()``), with the road distance between their centres and the
    minutes it takes at ``speed_kmh``."""
    lat_mid = (sum(area.row_range) / 2) / rows_per_degree(area.mesh_level)
    km_per_row = KM_PER_DEGREE_LATITUDE / rows_per_degree(area.mesh_level)
    km_per_col = (
        KM_PER_DEGREE_LATITUDE * math.cos(math.radians(lat_mid)) / cols_per_degree(area.mesh_level)
    )
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
    rates = _cell_rates(forecast, cells, buckets, params)
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
    best = _best_per_cell(candidates, "exposure").select(
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
    segments: list[tuple[int, float, float]],
    params: GuidanceParams,
) -> pl.DataFrame:
    """``allocation`` per cell: the vacant taxis of every cell split across their candidate
    targets, all cells at once, so taxis of neighbouring cells sent to one target see each
    other (see the module docstring).

    Every cell's own vacant taxis are allocated (staying is one of the targets), so a
    target's competitors are the vacant taxis forecast there beyond its own, the prior, and
    every taxi allocated to it. The next taxi goes where it expects the most; that falls
    with every taxi a target gets, so a lazy priority queue (rescoring an entry only when
    its target got a taxi since) finds the same allocation as rescoring everything after
    each taxi. The loop is over taxis, a few thousand a tick, not rows.
    """
    buckets = [bucket for bucket, _, _ in segments]
    origins = taxis.filter(pl.col("vacant_taxis") > 0)
    moving = candidates.join(origins, on="cell", how="semi")
    if moving.height == 0:
        return pl.DataFrame(
            schema={"cell": pl.Int64, "allocation": pl.List(pl.Struct(_ALLOCATION_FIELDS))}
        )
    targets = (
        moving.unique("target_cell")
        .select("target_cell", *(f"^[lv]{b}$" for b in buckets))
        .join(taxis.rename({"cell": "target_cell"}), on="target_cell", how="left")
        .with_columns(pl.col("vacant_taxis").fill_null(0).cast(pl.Float64))
        .select(
            "target_cell",
            *(pl.col(f"l{b}").alias(f"hails{i}") for i, b in enumerate(buckets)),
            *(
                (
                    (pl.col(f"v{b}") - pl.col("vacant_taxis")).clip(lower_bound=0.0)
                    + params.competitor_prior
                ).alias(f"base{i}")
                for i, b in enumerate(buckets)
            ),
        )
        .sort("target_cell")
    )
    target_of = {cell: i for i, cell in enumerate(targets["target_cell"].to_list())}
    hails = [targets[f"hails{i}"].to_list() for i in range(len(buckets))]
    base = [targets[f"base{i}"].to_list() for i in range(len(buckets))]
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
    first_taxi = (
        1.0
        - (
            -pl.sum_horizontal(
                pl.col(f"weight{i}") * pl.col(f"hails{i}") / (pl.col(f"base{i}") + 1.0)
                for i in range(len(buckets))
            )
        ).exp()
    )
    moving = (
        moving.select("cell", "target_cell", "distance_km", *weights)
        .join(targets, on="target_cell")
        .with_columns(first_taxi=first_taxi.round(_TIE_DIGITS))
        .sort(
            ["cell", "first_taxi", "distance_km", "target_cell"],
            descending=[False, True, False, False],
        )
        # A few best targets per cell, staying always among them, keep the queue short.
        .filter(
            (pl.int_range(pl.len()).over("cell") < _ALLOCATION_TARGETS)
            | (pl.col("target_cell") == pl.col("cell"))
        )
    )
    weight_rows = moving.select(f"weight{i}" for i in range(len(buckets))).rows()
    cand_origin = moving["cell"].to_list()
    cand_target = [target_of[cell] for cell in moving["target_cell"].to_list()]
    cand_distance = moving["distance_km"].to_list()
    target_cell = moving["target_cell"].to_list()
    left = dict(origins.select("cell", "vacant_taxis").iter_rows())
    guided = [0] * len(target_of)
    version = [0] * len(target_of)

    def exposure(cand: int, count: int) -> float:
        t = cand_target[cand]
        return sum(
            w * hails[h][t] / (base[h][t] + count) for h, w in enumerate(weight_rows[cand]) if w
        )

    def marginal(cand: int) -> float:
        return 1.0 - math.exp(-exposure(cand, guided[cand_target[cand]] + 1))

    def entry(cand: int) -> tuple:
        value = round(marginal(cand), _TIE_DIGITS)
        return (-value, cand_distance[cand], target_cell[cand], cand, version[cand_target[cand]])

    # Before any taxi is sent, a candidate's value is its first taxi's, computed above.
    queue = [
        (-value, cand_distance[cand], target_cell[cand], cand, 0)
        for cand, value in enumerate(moving["first_taxi"].to_list())
    ]
    heapq.heapify(queue)
    sent: dict[int, list[float]] = {}
    while queue:
        negative, _, _, cand, seen = heapq.heappop(queue)
        if left[cand_origin[cand]] == 0:
            continue
        t = cand_target[cand]
        if seen != version[t]:
            heapq.heappush(queue, entry(cand))
            continue
        left[cand_origin[cand]] -= 1
        guided[t] += 1
        version[t] += 1
        sent.setdefault(cand, []).append(-negative)
        if left[cand_origin[cand]]:
            heapq.heappush(queue, entry(cand))

    picked = sorted(sent)
    return (
        pl.DataFrame(
            {
                "cell": [cand_origin[c] for c in picked],
                "target_cell": [target_cell[c] for c in picked],
                "taxis": [len(sent[c]) for c in picked],
                # What each expects once every taxi is sent, and what the first expected
                # when it was sent alone.
                "expected_hails_per_taxi": [
                    1.0 - math.exp(-exposure(c, guided[cand_target[c]])) for c in picked
                ],
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
    forecast: pl.DataFrame, cells: pl.DataFrame, vacant_now: pl.DataFrame | None, cap: int
) -> pl.DataFrame:
    if vacant_now is None:
        first = forecast_horizons(forecast)[0]
        source = (
            forecast.filter(pl.col("horizon") == first)
            if "horizon" in forecast.columns
            else forecast
        ).select(pl.col("cell").cast(pl.Int64), vacant_taxis=_vacant().round())
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
    the forecast's vacant taxis of the bucket in progress, rounded) across targets. The
    same forecast and tick always give the same guidance.
    """
    cells = area.cells()
    plan, candidates = _plan(forecast, area, tick, params, cells, cells)
    taxis = _taxis_to_allocate(forecast, cells, vacant_now, params.max_taxis_per_cell)
    allocation = _allocate(candidates, taxis, arrival_segments(tick, params), params)
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
    reach = max(params.steps * params.step_radius_cells, params.target_radius_cells)
    nearby = cells.filter(
        (pl.col("row") - row).abs() <= reach, (pl.col("col") - col).abs() <= reach
    )
    plan, _ = _plan(forecast, area, tick, params, nearby, origin)
    return plan.row(0, named=True)
