"""Cruising guidance on a 3 x 3 cell area, where every answer can be checked by hand."""

from __future__ import annotations

import polars as pl
import pytest

from taxi_assets.guidance import GUIDANCE_COLUMNS, cruising_guidance
from taxi_assets.service_area import ServiceArea

# Bounds on whole half-mesh cells (rows 8562..8564, cols 6360..6362); the area straddles
# third-mesh boundaries, so cell codes do not grow in grid order.
AREA = ServiceArea(lat_min=35.675, lat_max=35.6875, lon_min=139.75, lon_max=139.76875)
ROW0, COL0 = 8562, 6360


def cell_at(row: int, col: int) -> int:
    """Mesh code of the cell ``row`` rows north and ``col`` columns east of the SW corner."""
    cells = AREA.cells().filter(pl.col("row") == ROW0 + row, pl.col("col") == COL0 + col)
    return cells["cell"].item()


CENTRE, CORNER, EDGE = cell_at(1, 1), cell_at(0, 0), cell_at(0, 1)


def forecast(cells: dict[int, tuple[float, float]]) -> pl.DataFrame:
    """A forecast from {cell: (expected hails, expected vacant taxis)}."""
    return pl.DataFrame(
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


def targets_of(guidance: pl.DataFrame, cell: int) -> list[int]:
    return guidance.filter(pl.col("cell") == cell).sort("rank")["target_cell"].to_list()


def test_neighbours_of_a_hotspot_are_sent_to_it() -> None:
    guidance = cruising_guidance(forecast({CENTRE: (12.0, 2.0), EDGE: (3.0, 1.0)}), AREA)

    assert guidance.columns == list(GUIDANCE_COLUMNS)
    assert guidance.schema["rank"] == pl.Int16
    best = guidance.filter(pl.col("rank") == 1)
    assert best.height == AREA.n_cells
    # Every cell of a 3 x 3 area touches the centre.
    assert best["target_cell"].unique().to_list() == [CENTRE]
    corner_first = best.filter(pl.col("cell") == CORNER).row(0, named=True)
    assert corner_first["opportunity"] == 10.0
    assert corner_first["distance_cells"] == 1
    # The corner's runner-up is the edge cell between it and the centre.
    assert targets_of(guidance, CORNER)[:2] == [CENTRE, EDGE]


def test_staying_is_ranked_first_when_the_own_cell_is_best() -> None:
    guidance = cruising_guidance(forecast({CORNER: (5.0, 1.0), CENTRE: (3.0, 1.0)}), AREA)

    stay = guidance.filter(pl.col("cell") == CORNER, pl.col("rank") == 1).row(0, named=True)
    assert stay["target_cell"] == CORNER
    assert stay["distance_cells"] == 0
    assert stay["opportunity"] == 4.0


def test_cells_missing_from_the_forecast_count_as_empty_and_outside_cells_are_ignored() -> None:
    outside = 533946999
    crowded = forecast({EDGE: (1.0, 4.0), outside: (100.0, 0.0)})
    guidance = cruising_guidance(crowded, AREA, top_n=9)

    assert outside not in guidance["target_cell"].to_list()
    # More vacant taxis than hails: every empty cell beats the crowded one.
    assert targets_of(guidance, CORNER)[-1] == EDGE
    empty = guidance.filter(pl.col("target_cell") != EDGE)
    assert empty["expected_street_hails"].to_list() == [0.0] * empty.height
    assert empty["opportunity"].to_list() == [0.0] * empty.height


def test_edge_cells_have_fewer_candidates() -> None:
    guidance = cruising_guidance(forecast({}), AREA, top_n=9)

    candidates = dict(guidance.group_by("cell").len().iter_rows())
    assert candidates[CORNER] == 4
    assert candidates[EDGE] == 6
    assert candidates[CENTRE] == 9
    assert guidance.height == 4 * 4 + 4 * 6 + 9


def test_ties_go_to_the_nearer_cell_then_the_smaller_code() -> None:
    guidance = cruising_guidance(forecast({}), AREA, top_n=9)

    neighbours = sorted(set(AREA.cells()["cell"].to_list()) - {CENTRE})
    assert targets_of(guidance, CENTRE) == [CENTRE, *neighbours]
    assert guidance.equals(cruising_guidance(forecast({}), AREA, top_n=9))


def test_top_n_and_radius_bound_the_candidates() -> None:
    top_two = cruising_guidance(forecast({CENTRE: (2.0, 1.0)}), AREA, top_n=2)
    assert (
        top_two.group_by("cell").agg(pl.col("rank").sort())["rank"].to_list()
        == [[1, 2]] * AREA.n_cells
    )

    far = cell_at(2, 2)
    wide = cruising_guidance(forecast({far: (5.0, 0.0)}), AREA, radius=2, top_n=1)
    corner_best = wide.filter(pl.col("cell") == CORNER).row(0, named=True)
    assert (corner_best["target_cell"], corner_best["distance_cells"]) == (far, 2)


@pytest.mark.parametrize(("kwargs", "name"), [({"radius": 0}, "radius"), ({"top_n": 0}, "top_n")])
def test_rejects_a_radius_or_top_n_below_one(kwargs: dict[str, int], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        cruising_guidance(forecast({}), AREA, **kwargs)


def test_rejects_a_forecast_with_duplicated_cells() -> None:
    doubled = pl.concat([forecast({CENTRE: (1.0, 0.0)})] * 2)
    with pytest.raises(ValueError, match="one row per cell"):
        cruising_guidance(doubled, AREA)
