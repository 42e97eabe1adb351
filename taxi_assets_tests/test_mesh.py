"""JIS X 0410 mesh codes, checked against published codes and against their own inverse."""

from __future__ import annotations

import polars as pl
import pytest

from taxi_assets.mesh import coarser_mesh_code, mesh_center, mesh_code
from taxi_assets.service_area import CENTRAL_TOKYO, ServiceArea

# Tokyo Station: first mesh 5339, second 533946, third 53394611 (published codes), in the
# north-west half of that third mesh.
TOKYO_STATION = (35.681236, 139.767125)


@pytest.mark.parametrize(
    ("level", "expected"),
    [("second", 533946), ("third", 53394611), ("half", 533946113), ("quarter", 5339461132)],
)
def test_tokyo_station_codes(level: str, expected: int) -> None:
    frame = pl.DataFrame({"lat": [TOKYO_STATION[0]], "lon": [TOKYO_STATION[1]]})
    assert frame.select(mesh_code(pl.col("lat"), pl.col("lon"), level)).item() == expected


def test_one_bad_point_does_not_spoil_the_batch() -> None:
    lat, lon = TOKYO_STATION
    frame = pl.DataFrame({"lat": [lat, None, float("nan")], "lon": [lon, 139.7, 139.7]})
    codes = frame.select(code=mesh_code(pl.col("lat"), pl.col("lon"))).get_column("code")
    assert codes[0] == 533946113
    assert codes[1] is None and codes[2] is None


@pytest.mark.parametrize("level", ["second", "third", "half", "quarter"])
def test_cell_centre_maps_back_to_its_own_code(level: str) -> None:
    cells = CENTRAL_TOKYO.cells()
    lat, lon = mesh_center(pl.col("cell"), "half")
    centres = cells.select(pl.col("cell"), lat.alias("lat"), lon.alias("lon"))
    again = centres.select(mesh_code(pl.col("lat"), pl.col("lon"), "half")).to_series()
    assert again.to_list() == centres["cell"].to_list()
    finer = centres.select(code=mesh_code(pl.col("lat"), pl.col("lon"), level))
    lat_l, lon_l = mesh_center(pl.col("code"), level)
    back = finer.select(mesh_code(lat_l, lon_l, level)).to_series()
    assert back.to_list() == finer["code"].to_list()


def test_central_tokyo_is_about_1500_half_mesh_cells_inside_one_first_mesh() -> None:
    cells = CENTRAL_TOKYO.cells()
    assert cells.height == 1520 == CENTRAL_TOKYO.n_cells
    assert cells["cell"].n_unique() == cells.height
    first_mesh = cells.select(coarser_mesh_code(pl.col("cell"), "half", "second") // 100)
    assert first_mesh.to_series().unique().to_list() == [5339]


def test_area_contains_is_false_for_missing_or_outside_points() -> None:
    frame = pl.DataFrame({"lat": [35.68, 0.0, None, 35.9], "lon": [139.76, 0.0, 139.7, 139.7]})
    inside = frame.select(CENTRAL_TOKYO.contains(pl.col("lat"), pl.col("lon"))).to_series()
    assert inside.to_list() == [True, False, False, False]


def test_an_area_outside_japan_is_refused_with_the_setting_named() -> None:
    with pytest.raises(ValueError, match="lon_min/lon_max"):
        ServiceArea(lon_min=2.0, lon_max=3.0)


@pytest.mark.parametrize("level", ["second", "third", "half", "quarter"])
def test_cell_codes_are_cell_of_on_and_off_the_grid(level: str) -> None:
    """The table lookup of cell_codes gives cell_of's codes: inside the area, on its exact
    snapped edges, and (computed) once any point is off the grid, null or NaN."""
    area = ServiceArea(mesh_level=level)
    lat_min, lat_max, lon_min, lon_max = area.snapped_bounds
    steps = 97
    inside = pl.DataFrame(
        {
            "lat": [lat_min + (lat_max - lat_min) * k / steps for k in range(steps)] + [lat_min],
            "lon": [
                lon_min + (lon_max - lon_min) * ((k * 31) % steps) / steps for k in range(steps)
            ]
            + [lon_min],
        }
    )
    off = pl.DataFrame(
        {
            "lat": [35.681, 35.9, None, float("nan"), lat_max],
            "lon": [139.767, 139.7, 139.7, 139.7, lon_max],
        },
        schema={"lat": pl.Float64, "lon": pl.Float64},
    )
    for points in (inside, pl.concat([inside, off])):
        expected = points.select(cell=area.cell_of(pl.col("lat"), pl.col("lon"))).to_series()
        got = area.cell_codes(points["lat"], points["lon"])
        assert got.equals(expected), (level, points.height)
    assert inside.select(area.contains(pl.col("lat"), pl.col("lon")).all()).item()
    assert area.cell_codes(inside["lat"], inside["lon"]).n_unique() > 1
