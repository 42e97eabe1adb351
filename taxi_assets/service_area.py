"""Where the platform works: a rectangle of mesh cells, central Tokyo by default."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from taxi_assets.mesh import (
    CELL_SIZE_M,
    MeshLevel,
    cols_per_degree,
    mesh_code,
    mesh_code_from_index,
    mesh_col,
    mesh_row,
    rows_per_degree,
)


@dataclass(frozen=True)
class ServiceArea:
    """A rectangle aligned to the mesh grid; every cell inside it is a demand cell.

    Bounds are snapped outwards to whole cells of ``mesh_level`` so that a cell is either
    entirely inside the area or not at all.
    """

    lat_min: float = 35.6
    lat_max: float = 35.766
    lon_min: float = 139.625
    lon_max: float = 139.862_5
    mesh_level: MeshLevel = "half"

    def __post_init__(self) -> None:
        if not (-90 <= self.lat_min < self.lat_max <= 90):
            raise ValueError(
                f"service area: lat_min ({self.lat_min}) must be below lat_max ({self.lat_max})"
            )
        if not (100 <= self.lon_min < self.lon_max <= 180):
            raise ValueError(
                "service area: lon_min/lon_max must satisfy 100 <= lon_min < lon_max <= 180 "
                f"(the JIS X 0410 grid covers Japan), got {self.lon_min}..{self.lon_max}"
            )

    @property
    def row_range(self) -> tuple[int, int]:
        """Grid rows covered, as a half-open range [first, last)."""
        per_deg = rows_per_degree(self.mesh_level)
        return _floor(self.lat_min * per_deg), _ceil(self.lat_max * per_deg)

    @property
    def col_range(self) -> tuple[int, int]:
        per_deg = cols_per_degree(self.mesh_level)
        return _floor((self.lon_min - 100) * per_deg), _ceil((self.lon_max - 100) * per_deg)

    @property
    def n_rows(self) -> int:
        first, last = self.row_range
        return last - first

    @property
    def n_cols(self) -> int:
        first, last = self.col_range
        return last - first

    @property
    def n_cells(self) -> int:
        return self.n_rows * self.n_cols

    @property
    def cell_size_m(self) -> int:
        return CELL_SIZE_M[self.mesh_level]

    @property
    def snapped_bounds(self) -> tuple[float, float, float, float]:
        """(lat_min, lat_max, lon_min, lon_max) of the whole cells covered."""
        (r0, r1), (c0, c1) = self.row_range, self.col_range
        lat_deg, lon_deg = rows_per_degree(self.mesh_level), cols_per_degree(self.mesh_level)
        return r0 / lat_deg, r1 / lat_deg, 100 + c0 / lon_deg, 100 + c1 / lon_deg

    def contains(self, lat: pl.Expr, lon: pl.Expr) -> pl.Expr:
        """True where a point lies inside the area (false for null or NaN coordinates)."""
        lat_min, lat_max, lon_min, lon_max = self.snapped_bounds
        inside = (lat >= lat_min) & (lat < lat_max) & (lon >= lon_min) & (lon < lon_max)
        return inside.fill_null(False)

    def cell_of(self, lat: pl.Expr, lon: pl.Expr) -> pl.Expr:
        """Mesh code of each point at the area's mesh level."""
        return mesh_code(lat, lon, self.mesh_level)

    def cell_codes(self, lat: pl.Series, lon: pl.Series) -> pl.Series:
        """:meth:`cell_of` over Series (``cell``): the same codes, several times faster when
        every point lies on the area's grid (cleaned pings all do), by looking them up in a
        table of the area's cells rather than computing each (a dozen integer divisions)."""
        level = self.mesh_level
        (r0, _), (c0, _) = self.row_range, self.col_range
        points = pl.DataFrame({"lat": lat, "lon": lon})
        index = points.select(
            row=mesh_row(pl.col("lat"), level) - r0, col=mesh_col(pl.col("lon"), level) - c0
        )
        row, col = pl.col("row"), pl.col("col")
        on_grid = (row >= 0) & (row < self.n_rows) & (col >= 0) & (col < self.n_cols)
        if not index.select(on_grid.fill_null(False).all()).item():
            return points.select(cell=self.cell_of(pl.col("lat"), pl.col("lon"))).to_series()
        # Row-major over the area's grid: the cell at (r0 + i // n_cols, c0 + i % n_cols).
        i = pl.int_range(self.n_cells, dtype=pl.Int64)
        table = pl.select(
            mesh_code_from_index(r0 + i // self.n_cols, c0 + i % self.n_cols, level)
        ).to_series()
        return table.gather(index.select(row * self.n_cols + col).to_series()).alias("cell")

    def cells(self) -> pl.DataFrame:
        """Every cell of the area: ``cell`` (mesh code), ``row``, ``col`` (grid index)."""
        (r0, r1), (c0, c1) = self.row_range, self.col_range
        grid = pl.DataFrame({"row": pl.arange(r0, r1, eager=True)}).join(
            pl.DataFrame({"col": pl.arange(c0, c1, eager=True)}), how="cross"
        )
        return grid.select(
            cell=mesh_code_from_index(pl.col("row"), pl.col("col"), self.mesh_level),
            row=pl.col("row"),
            col=pl.col("col"),
        ).sort("cell")


def _floor(x: float) -> int:
    # Guard against 35.6 * 240 = 8543.999999 style float error at exact cell edges.
    return int((x + 1e-9) // 1)


def _ceil(x: float) -> int:
    return -int((-x + 1e-9) // 1)


CENTRAL_TOKYO = ServiceArea()
