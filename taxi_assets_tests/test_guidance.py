"""Cruising guidance on a 3 x 3 cell area, where every answer can be checked by hand."""

from __future__ import annotations

import math
from datetime import datetime

import polars as pl
import pytest

from taxi_assets.calendar import TOKYO
from taxi_assets.guidance import (
    GUIDANCE_COLUMNS,
    GuidanceParams,
    arrival_segments,
    best_targets,
    cruising_guidance,
    guidance_for_position,
    horizon_for_arrival,
    opportunity,
)
from taxi_assets.service_area import ServiceArea

# Bounds on whole half-mesh cells (rows 8562..8564, cols 6360..6362); the area straddles
# third-mesh boundaries, so cell codes do not grow in grid order.
AREA = ServiceArea(lat_min=35.675, lat_max=35.6875, lon_min=139.75, lon_max=139.76875)
ROW0, COL0 = 8562, 6360
TICK = datetime(2026, 5, 1, 18, 0, tzinfo=TOKYO)  # 18 km/h on the default speed table


def cell_at(row: int, col: int) -> int:
    """Mesh code of the cell ``row`` rows north and ``col`` columns east of the SW corner."""
    cells = AREA.cells().filter(pl.col("row") == ROW0 + row, pl.col("col") == COL0 + col)
    return cells["cell"].item()


CENTRE, CORNER, EDGE, FAR = cell_at(1, 1), cell_at(0, 0), cell_at(0, 1), cell_at(2, 2)


def forecast(cells: dict[int, tuple[float, float]], horizon: int | None = None) -> pl.DataFrame:
    """A forecast from {cell: (expected hails, expected vacant taxis)}."""
    frame = pl.DataFrame(
        {
            "cell": list(cells),
            "expected_street_hails": [hails for hails, _ in cells.values()],
            "expected_vacant_taxis": [taxis for _, taxis in cells.values()],
        },
        schema={
            "cell": pl.Int64,
            "expected_street_hails": pl.Float64,
            "expected_vacant_taxis": pl.Float64,
        },
    )
    return frame if horizon is None else frame.with_columns(horizon=pl.lit(horizon, pl.Int8))


def row_of(guidance: pl.DataFrame, cell: int) -> dict:
    return guidance.filter(pl.col("cell") == cell).row(0, named=True)


def opportunity_of(hails: float, taxis: float, prior: float = 1.0) -> float:
    return forecast({CENTRE: (hails, taxis)}).select(opportunity(prior)).item()


def uniform_speed(kmh: float) -> tuple[float, ...]:
    return (kmh,) * 24


# Opportunity: street hails one more vacant taxi can capture --------------------------------


def test_a_busy_cell_full_of_taxis_still_beats_an_empty_cell() -> None:
    busy_and_crowded = opportunity_of(20.0, 40.0)
    empty = opportunity_of(0.05, 0.0)

    # Taxis outnumber hails two to one, yet a newcomer there expects far more than in a cell
    # with no taxis and almost no hails (hails minus taxis said -20 against +0.05).
    assert busy_and_crowded > 5 * empty
    assert busy_and_crowded == pytest.approx(1 - math.exp(-20 / 42))
    assert empty == pytest.approx(1 - math.exp(-0.05 / 2))


def test_a_busy_cell_with_few_taxis_offers_nearly_a_sure_hail_but_never_more_than_one() -> None:
    few_taxis = opportunity_of(20.0, 2.0)
    crowded = opportunity_of(20.0, 40.0)

    assert crowded < few_taxis < 1.0
    assert few_taxis == pytest.approx(1 - math.exp(-20 / 4))
    # A taxi carries one fare at a time: ten times the hails is not ten times the catch.
    assert opportunity_of(200.0, 2.0) <= 1.0
    assert opportunity_of(200.0, 2.0) < 1.01 * opportunity_of(20.0, 2.0)


def test_an_empty_cell_with_no_taxis_is_finite() -> None:
    assert opportunity_of(0.0, 0.0) == 0.0
    assert opportunity_of(0.0, 0.0, prior=0.0) == 0.0
    assert math.isfinite(opportunity_of(3.0, 0.0, prior=0.0))
    # Missing forecasts (no stored history) count as no hails and no taxis.
    missing = pl.DataFrame(
        {"expected_street_hails": [None, 1.0], "expected_vacant_taxis": [None, None]},
        schema={"expected_street_hails": pl.Float64, "expected_vacant_taxis": pl.Float64},
    )
    assert missing.select(opportunity(1.0)).to_series().to_list() == pytest.approx(
        [0.0, 1 - math.exp(-0.5)]
    )


def test_the_prior_damps_a_quiet_cell_more_than_a_busy_one() -> None:
    for hails, taxis in ((0.5, 0.0), (10.0, 10.0)):
        assert opportunity_of(hails, taxis, prior=2.0) < opportunity_of(hails, taxis, prior=0.0)
    quiet_loss = 1 - opportunity_of(0.5, 0.0, 2.0) / opportunity_of(0.5, 0.0, 0.0)
    busy_loss = 1 - opportunity_of(10.0, 10.0, 2.0) / opportunity_of(10.0, 10.0, 0.0)
    assert quiet_loss > busy_loss


# Targets -----------------------------------------------------------------------------------


def test_taxis_of_a_busy_crowded_cell_stay_rather_than_go_to_quiet_neighbours() -> None:
    quiet = {cell: (0.2, 0.5) for cell in AREA.cells()["cell"] if cell != CENTRE}
    guidance = cruising_guidance(forecast({**quiet, CENTRE: (6.0, 20.0)}), AREA, TICK)

    assert guidance.columns == list(GUIDANCE_COLUMNS)
    assert guidance.height == AREA.n_cells
    centre = row_of(guidance, CENTRE)
    assert centre["target_cell"] == CENTRE
    assert centre["target_distance_km"] == 0.0
    assert centre["route"] == [CENTRE]
    assert centre["target_expected_hails"] == centre["stay_expected_hails"]
    # Of the 20 seen there, 20 x 0.17 = 3.4 are there at once, the taxi among them: 20
    # minutes of a fifteenth of 6 / (3.4 + 1).
    assert centre["stay_expected_hails"] == pytest.approx(1 - math.exp(-6 / 4.4 * 20 / 15))
    # Its quiet neighbours are sent to it.
    assert row_of(guidance, CORNER)["target_cell"] == CENTRE


def test_a_busy_cell_with_few_taxis_draws_its_neighbours() -> None:
    guidance = cruising_guidance(forecast({CENTRE: (5.0, 1.0), CORNER: (0.5, 2.0)}), AREA, TICK)

    corner = row_of(guidance, CORNER)
    assert corner["target_cell"] == CENTRE
    assert corner["target_expected_hails"] > corner["stay_expected_hails"]
    assert 0 < corner["target_arrival_minutes"] < 5
    assert corner["route"][-1] == CENTRE


def test_a_move_must_beat_staying_by_the_margin() -> None:
    cells = forecast({CENTRE: (5.0, 1.0), CORNER: (0.5, 2.0)})
    corner = row_of(cruising_guidance(cells, AREA, TICK), CORNER)
    gain = corner["target_expected_hails"] / corner["stay_expected_hails"] - 1

    below = GuidanceParams(move_margin=0.9 * gain)
    above = GuidanceParams(move_margin=1.1 * gain)

    one = pl.DataFrame({"cell": [CORNER], "vacant_taxis": [1]})
    moved = row_of(cruising_guidance(cells, AREA, TICK, below, vacant_now=one), CORNER)
    held = row_of(cruising_guidance(cells, AREA, TICK, above, vacant_now=one), CORNER)
    assert moved["target_cell"] == CENTRE
    assert [t["target_cell"] for t in moved["allocation"]] == [CENTRE]
    assert held["target_cell"] == CORNER
    assert [t["target_cell"] for t in held["allocation"]] == [CORNER]


def test_taxis_seen_passing_through_are_not_all_competitors_at_once() -> None:
    # 20 vacant taxis seen in the busy centre during the bucket, 3.4 of them there at once
    # (vacant_presence 0.17): the centre's 6 hails beat the edge's 1 hail nobody waits for.
    # Counting all 20 as present hands the centre's hails to 22 taxis and loses to the edge.
    cells = forecast({CENTRE: (6.0, 20.0), EDGE: (1.0, 0.0)})
    present = row_of(cruising_guidance(cells, AREA, TICK), CORNER)
    all_seen = row_of(
        cruising_guidance(cells, AREA, TICK, GuidanceParams(vacant_presence=1)), CORNER
    )

    assert present["target_cell"] == CENTRE
    assert all_seen["target_cell"] == EDGE


def test_with_a_hail_reach_a_taxi_goes_between_two_hotspots() -> None:
    # Per cell, the corner's taxi takes the nearer hotspot; within 1 km of the centre lie
    # both (cells are 0.46 x 0.56 km, a diagonal step is 0.95 km by road), so with the
    # reach the centre, which nobody covers, is worth both hotspots' hails.
    cells = forecast({EDGE: (3.0, 0.0), FAR: (3.0, 0.0)})
    per_cell = row_of(cruising_guidance(cells, AREA, TICK), CORNER)
    within_reach = cruising_guidance(cells, AREA, TICK, GuidanceParams(hail_reach_km=1.0))

    assert per_cell["target_cell"] == EDGE
    assert row_of(within_reach, CORNER)["target_cell"] == CENTRE
    centre = row_of(within_reach, CENTRE)
    assert centre["target_cell"] == CENTRE
    # 20 minutes of the two hotspots' 3 hails, each shared with the prior and the taxi.
    assert centre["stay_expected_hails"] == pytest.approx(1 - math.exp(-2 * 3 / 2 * 20 / 15))
    position = guidance_for_position(
        cells, AREA, 35.676, 139.7505, TICK, GuidanceParams(hail_reach_km=1.0)
    )
    assert position["target_cell"] == CENTRE


def test_with_a_hail_reach_taxis_sent_near_one_another_share_the_hails() -> None:
    # Twenty taxis in the corner, 3 hails at the far corner: every target within reach of
    # those hails shares them, whichever cell the taxis are sent to.
    cells = forecast({FAR: (3.0, 0.0)})
    vacant_now = pl.DataFrame({"cell": [CORNER], "vacant_taxis": [20]})
    guidance = cruising_guidance(
        cells, AREA, TICK, GuidanceParams(hail_reach_km=1.0), vacant_now=vacant_now
    )
    allocation = pl.DataFrame(row_of(guidance, CORNER)["allocation"])
    assert allocation["taxis"].sum() == 20
    # Once all are sent, each expects less than the first did alone, and together they
    # expect no more than the hails (with the prior's share): 3 x 20 / 15 = 4.
    assert (allocation["expected_hails_per_taxi"] < allocation["first_taxi_expected_hails"]).all()
    assert (allocation["taxis"] * allocation["expected_hails_per_taxi"]).sum() < 4.0
    # Without the reach every cell but the far one offers nothing, so all go there.
    alone = cruising_guidance(cells, AREA, TICK, vacant_now=vacant_now)
    assert [t["target_cell"] for t in row_of(alone, CORNER)["allocation"]] == [FAR]


def test_an_empty_forecast_tells_every_taxi_to_stay_with_nothing_to_gain() -> None:
    guidance = cruising_guidance(forecast({}), AREA, TICK)

    assert (guidance["target_cell"] == guidance["cell"]).all()
    assert guidance["route"].to_list() == [[cell] for cell in guidance["cell"]]
    for column in ("target_expected_hails", "stay_expected_hails", "route_expected_hails"):
        assert guidance[column].to_list() == [0.0] * AREA.n_cells
    assert guidance["vacant_taxis"].to_list() == [0] * AREA.n_cells
    assert guidance.equals(cruising_guidance(forecast({}), AREA, TICK))


def test_cells_outside_the_area_are_ignored() -> None:
    outside = 533946999
    guidance = cruising_guidance(forecast({outside: (100.0, 0.0)}), AREA, TICK)
    assert outside not in guidance["target_cell"].to_list()


# Travel time and arrival buckets -----------------------------------------------------------


def test_a_far_target_wins_on_a_fast_road_and_loses_on_a_slow_one() -> None:
    cells = forecast({CORNER: (1.0, 1.0), FAR: (3.0, 1.0)})

    def at(kmh: float) -> GuidanceParams:
        # Every taxi seen counted present: one competitor in each cell.
        return GuidanceParams(road_speed_kmh=uniform_speed(kmh), vacant_presence=1.0)

    fast = cruising_guidance(cells, AREA, TICK, at(30))
    slow = cruising_guidance(cells, AREA, TICK, at(10))

    # 1.46 km between centres, 1.9 km by road: 3.8 min at 30 km/h, 11.4 min at 10 km/h.
    assert row_of(fast, CORNER)["target_arrival_minutes"] == pytest.approx(3.80, abs=0.01)
    assert row_of(fast, CORNER)["target_cell"] == FAR
    assert row_of(slow, CORNER)["target_cell"] == CORNER


def test_the_arrival_bucket_decides_which_horizon_is_read() -> None:
    tick = datetime(2026, 5, 1, 18, 12, tzinfo=TOKYO)  # 3 minutes left in the bucket
    assert arrival_segments(tick, GuidanceParams()) == [
        (0, 0.0, 3.0),
        (1, 3.0, 18.0),
        (2, 18.0, 20),
    ]
    # The far cell is quiet now and busy from the next bucket on, when the taxi arrives.
    now = forecast({CORNER: (1.0, 1.0), FAR: (0.0, 0.0)}, horizon=0)
    later = forecast({CORNER: (1.0, 1.0), FAR: (6.0, 0.0)}, horizon=1)

    only_now = cruising_guidance(now, AREA, tick)
    both = cruising_guidance(pl.concat([now, later]), AREA, tick)

    assert row_of(only_now, CORNER)["target_cell"] == CORNER
    assert row_of(both, CORNER)["target_cell"] == FAR
    # With horizon 0 only, its forecast stands in for every arrival bucket.
    assert [horizon_for_arrival(now, b) for b in (0, 1, 2)] == [0, 0, 0]
    assert [horizon_for_arrival(pl.concat([now, later]), b) for b in (0, 1, 2)] == [0, 1, 1]


# Routes ------------------------------------------------------------------------------------


def test_a_route_works_the_own_cell_then_moves_where_demand_comes_next() -> None:
    tick = datetime(2026, 5, 1, 18, 10, tzinfo=TOKYO)  # 5 minutes left in the bucket
    now = forecast({CORNER: (3.0, 0.0), FAR: (0.0, 0.0)}, horizon=0)
    later = forecast({CORNER: (0.0, 0.0), FAR: (3.0, 0.0)}, horizon=1)
    params = GuidanceParams(road_speed_kmh=uniform_speed(30), step_radius_cells=2)

    guidance = cruising_guidance(pl.concat([now, later]), AREA, tick, params)

    corner = row_of(guidance, CORNER)
    assert corner["route"] == [CORNER, FAR]
    # The route beats any single place: it catches both cells' busy minutes.
    assert corner["route_expected_hails"] > corner["target_expected_hails"]
    position = guidance_for_position(pl.concat([now, later]), AREA, 35.676, 139.751, tick, params)
    assert position["cell"] == CORNER
    assert position["route"] == corner["route"]
    assert position["route_expected_hails"] == pytest.approx(corner["route_expected_hails"])
    assert position["target_cell"] == corner["target_cell"]


def test_a_position_outside_the_area_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the service area"):
        guidance_for_position(forecast({}), AREA, 35.0, 139.0, TICK)


# No herding --------------------------------------------------------------------------------


def test_twenty_vacant_taxis_in_one_cell_are_spread_by_marginal_value() -> None:
    cells = forecast({CENTRE: (2.0, 20.0), EDGE: (3.0, 0.0), CORNER: (1.5, 0.0), FAR: (1.0, 0.0)})
    vacant_now = pl.DataFrame({"cell": [CENTRE], "vacant_taxis": [20]})

    guidance = cruising_guidance(cells, AREA, TICK, vacant_now=vacant_now)

    centre = row_of(guidance, CENTRE)
    assert centre["vacant_taxis"] == 20
    allocation = pl.DataFrame(centre["allocation"])
    assert allocation["taxis"].sum() == 20
    assert allocation.height >= 3  # not all sent to the same place
    assert allocation["taxis"].max() < 20
    # The single best target is where the first taxi goes, and it gets the most taxis.
    assert allocation.row(0, named=True)["target_cell"] == centre["target_cell"] == EDGE
    for target in allocation.filter(pl.col("taxis") >= 2).iter_rows(named=True):
        # The second taxi sent to a cell expects less than the first: once all are sent,
        # each expects less than the first did alone.
        assert target["expected_hails_per_taxi"] < target["first_taxi_expected_hails"]
    # Together they expect no more hails than the cells forecast.
    caught = (allocation["taxis"] * allocation["expected_hails_per_taxi"]).sum()
    assert caught < 2.0 + 3.0 + 1.5 + 1.0
    # Expectations balance: no target leaves its taxis much worse off than another.
    per_taxi = allocation["expected_hails_per_taxi"]
    assert per_taxi.max() - per_taxi.min() < 0.1


def test_taxis_of_neighbouring_cells_sent_to_one_hotspot_see_each_other() -> None:
    other_side = cell_at(0, 2)  # the edge cell lies between it and the corner
    cells = forecast({EDGE: (3.0, 0.0), CORNER: (0.5, 10.0), other_side: (0.5, 10.0)})

    def sent_to_edge(vacant: dict[int, int]) -> dict[int, int]:
        vacant_now = pl.DataFrame({"cell": list(vacant), "vacant_taxis": list(vacant.values())})
        guidance = cruising_guidance(cells, AREA, TICK, vacant_now=vacant_now)
        return {
            cell: sum(
                t["taxis"] for t in row_of(guidance, cell)["allocation"] if t["target_cell"] == EDGE
            )
            for cell in vacant
        }

    alone = sent_to_edge({other_side: 10})[other_side]
    together = sent_to_edge({CORNER: 10, other_side: 10})

    # The two sides mirror each other, and alone either would send most of its taxis.
    assert alone == sent_to_edge({CORNER: 10})[CORNER] >= 5
    # Together the hotspot is shared out, not promised to both: the taxis of one side count
    # those of the other as competitors, so fewer go than the two would send alone.
    assert together[CORNER] + together[other_side] < 2 * alone
    assert min(together.values()) < alone


def test_without_vacant_now_the_forecast_supply_of_the_bucket_is_allocated() -> None:
    # 20 seen in the bucket are 20 x 0.17 = 3.4 there at once; 2 seen are 0.34.
    guidance = cruising_guidance(forecast({CENTRE: (2.0, 20.0), EDGE: (1.0, 2.0)}), AREA, TICK)
    assert row_of(guidance, CENTRE)["vacant_taxis"] == 3
    assert sum(t["taxis"] for t in row_of(guidance, CENTRE)["allocation"]) == 3
    assert row_of(guidance, EDGE)["vacant_taxis"] == 0
    assert row_of(guidance, EDGE)["allocation"] is None


# Bad input ---------------------------------------------------------------------------------


def test_rejects_a_forecast_with_duplicated_cells() -> None:
    doubled = pl.concat([forecast({CENTRE: (1.0, 0.0)})] * 2)
    with pytest.raises(ValueError, match="one row per cell and horizon"):
        cruising_guidance(doubled, AREA, TICK)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"competitor_prior": -1.0}, "competitor_prior"),
        ({"horizon_minutes": 18}, "horizon_minutes"),
        ({"step_radius_cells": 0}, "step_radius_cells"),
        ({"road_speed_kmh": (20.0,) * 23}, "road_speed_kmh"),
        ({"detour_factor": 0.5}, "detour_factor"),
    ],
)
def test_impossible_params_name_the_field(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=f"GuidanceParams.{name}"):
        GuidanceParams(**kwargs)


def test_a_naive_tick_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        cruising_guidance(forecast({}), AREA, datetime(2026, 5, 1, 18, 0))


# The asset ---------------------------------------------------------------------------------


def test_the_asset_stores_every_cell_and_says_which_horizon_stood_in() -> None:
    import dagster as dg

    from taxi_assets.assets.serving import GuidanceConfig
    from taxi_assets.assets.serving import cruising_guidance as guidance_asset
    from taxi_assets.settings import PipelineSettings

    settings = PipelineSettings(
        lat_min=AREA.lat_min, lat_max=AREA.lat_max, lon_min=AREA.lon_min, lon_max=AREA.lon_max
    )
    tick = datetime(2026, 5, 1, 18, 7, tzinfo=TOKYO)
    stored = forecast({CENTRE: (6.0, 20.0), EDGE: (3.0, 0.0)}, horizon=0).with_columns(
        tick=pl.lit(tick).dt.convert_time_zone("UTC")
    )

    [output] = list(guidance_asset(dg.build_asset_context(), GuidanceConfig(), stored, settings))

    assert output.value.height == AREA.n_cells
    metadata = {key: getattr(v, "value", v) for key, v in output.metadata.items()}
    assert metadata["cells"] == AREA.n_cells
    assert metadata["forecast_horizons"] == "0"
    # 18:07: arrival buckets 18:00 (8 min) and 18:15 (12 min); the second reads horizon 0.
    assert metadata["arrival_buckets"] == 2
    assert metadata["arrival_buckets_on_a_shorter_horizon"] == 1
    assert "arrival bucket 1 uses horizon 0" in metadata["horizon_note"]
    # The 20 vacant taxis seen in the centre are 20 x 0.17 = 3.4, so 3, there at once.
    assert metadata["taxis_allocated"] == 3
    assert isinstance(metadata["mean_target_expected_hails"], float)

    with pytest.raises(dg.Failure, match="road_speed_kmh"):
        GuidanceConfig(road_speed_kmh=[20.0]).params(15)


def test_best_targets_are_the_guidance_without_the_allocation() -> None:
    cells = forecast({CENTRE: (2.0, 3.0), EDGE: (3.0, 0.0)})
    full = cruising_guidance(cells, AREA, TICK)
    assert best_targets(cells, AREA, TICK).equals(full.drop("vacant_taxis", "allocation"))
