"""The service area's cells as the API draws and looks them up: each cell's bounds, centre
and GeoJSON polygon, and the cell of a position.

Plain Python over one dictionary per grid: a request asks for one point, and building a
Polars frame for it would cost more than the whole answer. The arithmetic is the mesh
module's (``mesh_row``/``mesh_col``: floor of degrees times cells per degree), so a point
lands in the same cell as in the pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from taxi_assets.mesh import cols_per_degree, rows_per_degree
from taxi_assets.service_area import ServiceArea


@dataclass(frozen=True)
class CellBounds:
    south: float
    north: float
    west: float
    east: float

    @property
    def center(self) -> tuple[float, float]:
        """(lat, lon) of the cell's centre."""
        return (self.south + self.north) / 2, (self.west + self.east) / 2

    def ring(self) -> list[list[float]]:
        """The GeoJSON exterior ring, [lon, lat] pairs, counter-clockwise and closed."""
        return [
            [self.west, self.south],
            [self.east, self.south],
            [self.east, self.north],
            [self.west, self.north],
            [self.west, self.south],
        ]


@dataclass(frozen=True)
class CellGrid:
    """Every cell of ``area`` with its grid index; the inverse lookup by position."""

    area: ServiceArea
    index_of: dict[int, tuple[int, int]] = field(repr=False)
    cell_at_index: dict[tuple[int, int], int] = field(repr=False)

    @classmethod
    def of(cls, area: ServiceArea) -> CellGrid:
        cells = area.cells()
        index_of = {
            int(cell): (int(row), int(col))
            for cell, row, col in cells.select("cell", "row", "col").iter_rows()
        }
        return cls(area, index_of, {index: cell for cell, index in index_of.items()})

    @property
    def cells(self) -> list[int]:
        return sorted(self.index_of)

    def cell_at(self, lat: float, lon: float) -> int | None:
        """The cell holding (lat, lon), or None outside the area."""
        level = self.area.mesh_level
        row = math.floor(lat * rows_per_degree(level))
        col = math.floor((lon - 100.0) * cols_per_degree(level))
        return self.cell_at_index.get((row, col))

    def bounds(self, cell: int) -> CellBounds:
        row, col = self.index_of[cell]
        level = self.area.mesh_level
        per_lat, per_lon = rows_per_degree(level), cols_per_degree(level)
        return CellBounds(
            south=row / per_lat,
            north=(row + 1) / per_lat,
            west=100.0 + col / per_lon,
            east=100.0 + (col + 1) / per_lon,
        )

    def center(self, cell: int) -> tuple[float, float]:
        return self.bounds(cell).center
