"""Cruising guidance: where a vacant taxi should head next to find a street hail.

For every cell of the service area, the nearby cells (the cell itself included: staying can
be best) ranked by opportunity, the hails expected there minus the vacant taxis expected to
compete for them.
"""

from __future__ import annotations

import polars as pl

from taxi_assets.service_area import ServiceArea

GUIDANCE_COLUMNS = (
    "cell",
    "rank",
    "target_cell",
    "expected_street_hails",
    "expected_vacant_taxis",
    "opportunity",
    "distance_cells",
)


def cruising_guidance(
    forecast: pl.DataFrame, area: ServiceArea, radius: int = 1, top_n: int = 3
) -> pl.DataFrame:
    """The ``top_n`` best cells within ``radius`` cells (Chebyshev) of each cell of ``area``.

    ``forecast`` has one row per cell: ``cell``, ``expected_street_hails`` and
    ``expected_vacant_taxis``; cells it lacks count as no demand and no supply, cells outside
    the area are ignored. Ties go to the nearer cell, then the smaller cell code, so the same
    forecast always gives the same guidance.
    """
    if radius < 1:
        raise ValueError(f"radius must be at least 1 cell, got {radius}")
    if top_n < 1:
        raise ValueError(f"top_n must be at least 1, got {top_n}")
    if forecast["cell"].is_duplicated().any():
        # Two rows for one cell (e.g. several hours stacked) would double its candidates.
        raise ValueError("forecast: expected one row per cell, found duplicated cells")

    cells = area.cells().lazy()
    targets = cells.join(
        forecast.lazy().select(
            pl.col("cell").cast(pl.Int64),
            pl.col("expected_street_hails", "expected_vacant_taxis").cast(pl.Float64),
        ),
        on="cell",
        how="left",
    ).with_columns(pl.col("expected_street_hails", "expected_vacant_taxis").fill_null(0.0))
    steps = pl.LazyFrame({"step": pl.int_range(-radius, radius + 1, eager=True)})
    offsets = steps.select(d_row="step").join(steps.select(d_col="step"), how="cross")

    return (
        cells.join(offsets, how="cross")
        .select(
            "cell",
            target_row=pl.col("row") + pl.col("d_row"),
            target_col=pl.col("col") + pl.col("d_col"),
            distance_cells=pl.max_horizontal(pl.col("d_row").abs(), pl.col("d_col").abs()).cast(
                pl.Int16
            ),
        )
        # Inner join: offsets that fall off the edge of the area have no target and drop out.
        .join(
            targets.rename({"cell": "target_cell"}),
            left_on=["target_row", "target_col"],
            right_on=["row", "col"],
            how="inner",
        )
        .with_columns(opportunity=pl.col("expected_street_hails") - pl.col("expected_vacant_taxis"))
        .sort(
            ["cell", "opportunity", "distance_cells", "target_cell"],
            descending=[False, True, False, False],
        )
        .with_columns(rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int16).over("cell"))
        .filter(pl.col("rank") <= top_n)
        .select(GUIDANCE_COLUMNS)
        .collect()
    )
