"""The Japanese regional grid (JIS X 0410) as vectorized Polars expressions.

Every level is an integer grid: a cell's row is ``floor(lat * rows_per_degree)`` and its
column ``floor((lon - 100) * cols_per_degree)``. Mesh codes are built from that index with
integer arithmetic, so a batch with one bad point still gets codes for all the others
(unlike the unmaintained ``jismesh`` package, which rejects the whole batch).
"""

from __future__ import annotations

from typing import Literal

import polars as pl

MeshLevel = Literal["second", "third", "half", "quarter"]

# Cells per first-mesh edge (a first mesh is 40' of latitude by 1 degree of longitude).
CELLS_PER_FIRST_MESH: dict[str, int] = {"second": 8, "third": 80, "half": 160, "quarter": 320}
# Digits of each level's code: 6 (10 km), 8 (1 km), 9 (500 m), 10 (250 m).
CODE_DIGITS: dict[str, int] = {"second": 6, "third": 8, "half": 9, "quarter": 10}
# Approximate cell edge in metres, for docs and logs.
CELL_SIZE_M: dict[str, int] = {"second": 10_000, "third": 1_000, "half": 500, "quarter": 250}


def _check_level(level: str) -> int:
    if level not in CELLS_PER_FIRST_MESH:
        raise ValueError(
            f"unknown mesh level {level!r}: choose one of {sorted(CELLS_PER_FIRST_MESH)}"
        )
    return CELLS_PER_FIRST_MESH[level]


def rows_per_degree(level: MeshLevel) -> float:
    """Grid rows per degree of latitude (a first mesh spans 2/3 of a degree)."""
    return 1.5 * _check_level(level)


def cols_per_degree(level: MeshLevel) -> float:
    """Grid columns per degree of longitude."""
    return float(_check_level(level))


def mesh_row(lat: pl.Expr, level: MeshLevel) -> pl.Expr:
    # Non-strict: NaN or infinite coordinates become a null cell, not a failed batch.
    return (lat * rows_per_degree(level)).floor().cast(pl.Int64, strict=False)


def mesh_col(lon: pl.Expr, level: MeshLevel) -> pl.Expr:
    return ((lon - 100.0) * cols_per_degree(level)).floor().cast(pl.Int64, strict=False)


def mesh_code_from_index(row: pl.Expr, col: pl.Expr, level: MeshLevel) -> pl.Expr:
    """The JIS X 0410 code of the cell at grid index (row, col) of ``level``."""
    n = _check_level(level)
    first = (row // n) * 100 + (col // n)
    r, c = row % n, col % n
    # Second mesh: 8 x 8 inside the first mesh.
    step2 = n // 8
    code = first * 100 + (r // step2) * 10 + (c // step2)
    if level == "second":
        return code
    # Third mesh: 10 x 10 inside the second mesh.
    step3 = n // 80
    code = code * 100 + ((r % step2) // step3) * 10 + ((c % step2) // step3)
    if level == "third":
        return code
    # Half mesh: 2 x 2 inside the third mesh, numbered 1 SW, 2 SE, 3 NW, 4 NE.
    step_half = n // 160
    code = code * 10 + 1 + ((c % step3) // step_half) + 2 * ((r % step3) // step_half)
    if level == "half":
        return code
    # Quarter mesh: 2 x 2 inside the half mesh, same numbering.
    return code * 10 + 1 + (c % 2) + 2 * (r % 2)


def mesh_code(lat: pl.Expr, lon: pl.Expr, level: MeshLevel = "half") -> pl.Expr:
    """The mesh code (Int64) of each point; null where lat or lon is null."""
    return mesh_code_from_index(mesh_row(lat, level), mesh_col(lon, level), level)


def mesh_index_from_code(code: pl.Expr, level: MeshLevel) -> tuple[pl.Expr, pl.Expr]:
    """Grid (row, col) of a mesh code: the inverse of :func:`mesh_code_from_index`."""
    n = _check_level(level)
    extra = CODE_DIGITS[level] - 6
    second = code // (10**extra)
    first = second // 100
    row = (first // 100) * n + ((second // 10) % 10) * (n // 8)
    col = (first % 100) * n + (second % 10) * (n // 8)
    if level == "second":
        return row, col
    third = code // (10 ** (extra - 2))
    row = row + ((third // 10) % 10) * (n // 80)
    col = col + (third % 10) * (n // 80)
    if level == "third":
        return row, col
    half_digit = (code // (10 ** (extra - 3))) % 10 - 1
    row = row + (half_digit // 2) * (n // 160)
    col = col + (half_digit % 2) * (n // 160)
    if level == "half":
        return row, col
    quarter_digit = code % 10 - 1
    return row + quarter_digit // 2, col + quarter_digit % 2


def mesh_center(code: pl.Expr, level: MeshLevel) -> tuple[pl.Expr, pl.Expr]:
    """Latitude and longitude of the centre of each cell."""
    row, col = mesh_index_from_code(code, level)
    lat = (row.cast(pl.Float64) + 0.5) / rows_per_degree(level)
    lon = (col.cast(pl.Float64) + 0.5) / cols_per_degree(level) + 100.0
    return lat, lon


def coarser_mesh_code(code: pl.Expr, level: MeshLevel, coarser: MeshLevel) -> pl.Expr:
    """The code of the coarser cell that contains each cell (e.g. half mesh to second mesh)."""
    drop = CODE_DIGITS[level] - CODE_DIGITS[coarser]
    if drop < 0:
        raise ValueError(f"{coarser!r} is finer than {level!r}")
    return code // (10**drop)
