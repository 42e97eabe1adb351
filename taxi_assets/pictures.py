"""Pictures for the asset pages: demand and guidance maps, error by hour, drift histograms.

Pure functions, frames in and PNG bytes out, drawn with matplotlib's Agg renderer on a bare
``Figure`` (no pyplot: no global figure state, no display) and no
web map tiles (the machines reach no network): cells are coloured on the mesh grid itself,
with a few landmarks labelled so a person can find their way.

How they reach the UI: Dagster 1.13 has no image metadata type, but its markdown renderer
(react-markdown with rehype-sanitize, ``data`` added to the allowed ``src`` protocols) shows
an image embedded as ``data:image/png;base64,...``, and the webserver's content security
policy does not restrict images. Markdown over 1,000 characters shows behind a
"[Show Markdown]" button on the asset page (Overview's latest materialization and the
Events tab), which opens the picture in a dialog. PNGs are reduced to a 128-colour palette
to keep each event small (tens of kB: the event log stores every tick's).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, NamedTuple

import dagster as dg
import numpy as np
import polars as pl
from PIL import Image

from taxi_assets.calendar import TOKYO
from taxi_assets.mesh import mesh_center, mesh_index_from_code
from taxi_assets.service_area import ServiceArea

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Landmark(NamedTuple):
    name: str
    lat: float
    lon: float


# Stations and districts a Tokyo driver knows (WGS84); only those inside the area are drawn.
LANDMARKS: tuple[Landmark, ...] = (
    Landmark("Tokyo Station", 35.6812, 139.7671),
    Landmark("Shinjuku", 35.6896, 139.7006),
    Landmark("Shibuya", 35.6580, 139.7016),
    Landmark("Ikebukuro", 35.7295, 139.7109),
    Landmark("Ginza", 35.6717, 139.7650),
    Landmark("Roppongi", 35.6628, 139.7314),
    Landmark("Ueno", 35.7141, 139.7774),
    Landmark("Shinagawa", 35.6285, 139.7388),
    Landmark("Akihabara", 35.6984, 139.7731),
)

# Arrows drawn on a forecast map: more turn it into a hedgehog.
GUIDANCE_ARROWS = 25
# Panels of a forecast map, one per horizon (horizons beyond are left out, and said so).
MAX_HORIZON_PANELS = 4
PALETTE_COLOURS = 128
DPI = 100
PREDICTOR_COLOURS = {
    "model": "tab:blue",
    "production": "tab:orange",
    "last_week": "tab:green",
    "historical_average": "tab:purple",
    "oracle": "black",
}


# ---- maps ------------------------------------------------------------------------------


def cell_grid(values: pl.DataFrame, value: str, area: ServiceArea) -> np.ndarray:
    """A (rows, cols) array of ``value`` per ``cell`` over the area, south row first; cells
    missing from ``values`` (or outside the area) are NaN and drawn blank."""
    (r0, r1), (c0, c1) = area.row_range, area.col_range
    grid = np.full((r1 - r0, c1 - c0), np.nan)
    row, col = mesh_index_from_code(pl.col("cell"), area.mesh_level)
    indexed = (
        values.select(row=row - r0, col=col - c0, v=pl.col(value).cast(pl.Float64))
        .filter(pl.col("row").is_between(0, r1 - r0 - 1) & pl.col("col").is_between(0, c1 - c0 - 1))
        .drop_nulls()
    )
    grid[indexed["row"].to_numpy(), indexed["col"].to_numpy()] = indexed["v"].to_numpy()
    return grid


def cell_centres(cells: pl.Series, level: str) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes of the centres of ``cells`` (mesh codes)."""
    lat, lon = mesh_center(pl.col("cell"), level)  # type: ignore[arg-type]
    centres = pl.DataFrame({"cell": cells}).select(lat=lat, lon=lon)
    return centres["lon"].to_numpy(), centres["lat"].to_numpy()


def _map_axes(ax, area: ServiceArea, grid: np.ndarray, cmap: str, vmax: float | None = None):
    """The grid on the area's extent with the landmarks; returns the image for a colorbar."""
    lat_min, lat_max, lon_min, lon_max = area.snapped_bounds
    image = ax.imshow(
        np.ma.masked_invalid(grid),
        origin="lower",
        extent=(lon_min, lon_max, lat_min, lat_max),
        cmap=cmap,
        interpolation="nearest",
        vmin=0,
        vmax=vmax,
    )
    # Degrees of longitude are shorter than degrees of latitude this far north.
    ax.set_aspect(1 / math.cos(math.radians((lat_min + lat_max) / 2)))
    ax.set_xlabel("longitude")
    if ax.get_subplotspec().is_first_col():
        ax.set_ylabel("latitude")
    for landmark in LANDMARKS:
        if lat_min <= landmark.lat < lat_max and lon_min <= landmark.lon < lon_max:
            ax.plot(landmark.lon, landmark.lat, "o", ms=4, mfc="white", mec="black", mew=0.8)
            ax.annotate(
                landmark.name,
                (landmark.lon, landmark.lat),
                xytext=(4, 3),
                textcoords="offset points",
                fontsize=7,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
            )
    return image


def _guidance_arrows(ax, guidance: pl.DataFrame, level: str, arrows: int) -> int:
    """Arrows from the cells with the most vacant taxis sent elsewhere to their targets."""
    moves = (
        guidance.filter(pl.col("target_cell") != pl.col("cell"))
        .sort(["vacant_taxis", "cell"], descending=[True, False])
        .head(arrows)
    )
    if moves.height == 0:
        return 0
    x0, y0 = cell_centres(moves["cell"], level)
    x1, y1 = cell_centres(moves["target_cell"], level)
    ax.quiver(
        x0,
        y0,
        x1 - x0,
        y1 - y0,
        angles="xy",
        scale_units="xy",
        scale=1,
        color="tab:cyan",
        edgecolor="black",
        linewidth=0.4,
        # Wide enough to keep a solid fill: the guidance now moves taxis a cell or two into
        # hotspots, and thin short arrows blurred into the map's colours.
        width=0.007,
        headwidth=3.5,
        zorder=3,
    )
    return moves.height


def forecast_map_png(
    forecast: pl.DataFrame,
    area: ServiceArea,
    guidance: pl.DataFrame | None = None,
    arrows: int = GUIDANCE_ARROWS,
) -> bytes:
    """Expected street hails per cell, one panel per horizon of the forecast (``horizon``
    column; a forecast without one is the bucket in progress), with the guidance's arrows
    (``cell`` -> ``target_cell``) on the first panel for the ``arrows`` cells with the most
    vacant taxis it sends elsewhere."""
    if "horizon" not in forecast.columns:
        forecast = forecast.with_columns(horizon=pl.lit(0, pl.Int8))
    horizons = sorted(forecast["horizon"].unique().to_list())[:MAX_HORIZON_PANELS]
    if not horizons:
        raise ValueError("forecast map: the forecast has no rows")
    fig = _new_figure(
        figsize=(1.4 + 5.0 * len(horizons), 5.6 if len(horizons) == 1 else 4.6), dpi=DPI
    )
    axes = fig.subplots(1, len(horizons), squeeze=False, sharey=True)[0]
    # Fixed margins: constrained layout would double the drawing time.
    fig.subplots_adjust(left=0.9 / fig.get_figwidth(), right=0.97, bottom=0.1, top=0.84)
    tick = forecast["tick"][0] if "tick" in forecast.columns else None
    # One colour scale for every horizon, so panels compare at a glance.
    vmax = max(float(forecast["expected_street_hails"].max() or 0.0), 1e-9)
    for ax, horizon in zip(axes, horizons, strict=True):
        rows = forecast.filter(pl.col("horizon") == horizon)
        grid = cell_grid(rows, "expected_street_hails", area)
        image = _map_axes(ax, area, grid, "magma_r", vmax)
        start = rows["bucket_start"][0] if "bucket_start" in rows.columns else None
        title = f"horizon {horizon}" + (f": bucket from {_tokyo(start)}" if start else "")
        if guidance is not None and ax is axes[0]:
            drawn = _guidance_arrows(ax, guidance, area.mesh_level, arrows)
            title += f"\n{drawn} guidance arrows (cells with most vacant taxis moved)"
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="expected street hails per cell")
    fig.suptitle(
        "Street-hail forecast" + (f", tick {_tokyo(tick)} Tokyo" if tick is not None else ""),
        fontsize=11,
    )
    return _png(fig)


def street_hail_heatmap_png(cell_demand: pl.DataFrame, area: ServiceArea, day: date) -> bytes:
    """The day's street hails per cell on the map, and the city's street hails per Tokyo
    hour beside it."""
    per_cell = cell_demand.group_by("cell").agg(pl.col("street_hail_pickups").sum())
    per_hour = (
        cell_demand.group_by(hour=pl.col("bucket_start").dt.convert_time_zone(TOKYO.key).dt.hour())
        .agg(pl.col("street_hail_pickups").sum())
        .sort("hour")
    )
    fig = _new_figure(figsize=(11, 5.4), dpi=DPI)
    map_ax, hour_ax = fig.subplots(1, 2, width_ratios=(1.6, 1))
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.1, top=0.88, wspace=0.25)
    grid = cell_grid(per_cell, "street_hail_pickups", area)
    image = _map_axes(map_ax, area, grid, "inferno_r")
    fig.colorbar(image, ax=map_ax, shrink=0.8, label="street hails in the day")
    map_ax.set_title(f"{int(per_cell['street_hail_pickups'].sum()):,} street hails", fontsize=9)
    hour_ax.bar(per_hour["hour"].to_numpy(), per_hour["street_hail_pickups"].to_numpy())
    hour_ax.set_xlabel("hour of day (Tokyo)")
    hour_ax.set_ylabel("street hails")
    hour_ax.set_xticks(range(0, 24, 3))
    hour_ax.set_title("street hails by hour", fontsize=9)
    fig.suptitle(f"Street hails on {day.isoformat()}", fontsize=11)
    return _png(fig)


# ---- model evaluation -----------------------------------------------------------------


def evaluation_png(slices: pl.DataFrame, scored: pl.DataFrame | None = None) -> bytes:
    """MAE by Tokyo hour for every predictor (the ``hour`` slices the evaluation computed),
    RMSE by forecast horizon when ``scored`` holds several, and the model's predicted vs
    observed street hails per cell and bucket in progress (``scored``: ``actual``,
    ``pred_model``, other ``pred_*``) with each predictor's mean prediction per observed
    count."""
    by_hour = slices.filter(pl.col("slice_kind") == "hour")
    has_rows = scored is not None and scored.height > 0
    by_horizon = has_rows and "horizon" in scored.columns and scored["horizon"].n_unique() > 1
    panels = 1 + has_rows + by_horizon
    fig = _new_figure(figsize=(6.2 * panels, 4.8), dpi=DPI)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.11, top=0.88, wspace=0.22)
    hour_ax = axes[0]
    for predictor in by_hour["predictor"].unique(maintain_order=True).to_list():
        rows = by_hour.filter(pl.col("predictor") == predictor).sort("slice")
        hour_ax.plot(
            rows["slice"].cast(pl.Int32).to_numpy(),
            rows["mae"].to_numpy(),
            marker="o",
            ms=3,
            label=predictor,
            color=PREDICTOR_COLOURS.get(predictor),
            linestyle="--" if predictor == "oracle" else "-",
        )
    hour_ax.set_xlabel("hour of day (Tokyo)")
    hour_ax.set_ylabel("MAE, street hails per cell and bucket")
    hour_ax.set_xticks(range(0, 24, 3))
    hour_ax.set_title("error by hour", fontsize=9)
    hour_ax.legend(fontsize=8)
    hour_ax.grid(alpha=0.3)
    if by_horizon:
        _error_by_horizon(axes[1], scored)
    if has_rows:
        _predicted_vs_observed(
            axes[-1], scored.filter(pl.col("horizon") == 0) if by_horizon else scored, fig
        )
    fig.suptitle("Held-out day", fontsize=11)
    return _png(fig)


def _error_by_horizon(ax, scored: pl.DataFrame) -> None:
    """RMSE per forecast horizon (0 = the bucket in progress) for every predictor."""
    predictors = [c.removeprefix("pred_") for c in scored.columns if c.startswith("pred_")]
    rmse = (
        scored.group_by("horizon")
        .agg(
            ((pl.col(f"pred_{p}") - pl.col("actual")) ** 2).mean().sqrt().alias(p)
            for p in predictors
        )
        .sort("horizon")
    )
    minutes = rmse["horizon"].cast(pl.Int32).to_numpy() * 15
    for predictor in predictors:
        ax.plot(
            minutes,
            rmse[predictor].to_numpy(),
            marker="o",
            label=predictor,
            color=PREDICTOR_COLOURS.get(predictor),
            linestyle="--" if predictor == "oracle" else "-",
        )
    ax.set_xticks(minutes)
    ax.set_xlabel("minutes ahead (bucket start)")
    ax.set_ylabel("RMSE, street hails per cell and bucket")
    ax.set_title("error by horizon", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _predicted_vs_observed(ax, scored: pl.DataFrame, fig: Figure) -> None:
    actual = scored["actual"].to_numpy()
    predicted = scored["pred_model"].to_numpy()
    top = max(float(np.nanmax(actual)), float(np.nanmax(predicted)), 1.0)
    cells = ax.hexbin(actual, predicted, gridsize=30, bins="log", cmap="Blues", mincnt=1)
    fig.colorbar(cells, ax=ax, shrink=0.8, label="rows (log)")
    predictors = [c.removeprefix("pred_") for c in scored.columns if c.startswith("pred_")]
    means = scored.group_by("actual").agg(pl.col(f"pred_{p}").mean() for p in predictors)
    means = means.sort("actual")
    for predictor in predictors:
        ax.plot(
            means["actual"].to_numpy(),
            means[f"pred_{predictor}"].to_numpy(),
            color=PREDICTOR_COLOURS.get(predictor),
            lw=1.2,
            label=f"mean {predictor}",
        )
    ax.plot([0, top], [0, top], color="grey", lw=0.8, linestyle=":")
    ax.set_xlim(-0.5, top + 0.5)
    ax.set_ylim(-0.5, top + 0.5)
    ax.set_xlabel("observed street hails (cell, bucket)")
    ax.set_ylabel("predicted by the model")
    ax.set_title("predicted vs observed", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


# ---- drift -----------------------------------------------------------------------------


def worst_drift_feature(comparison: pl.DataFrame) -> str | None:
    """The feature the comparison ranks worst (it is sorted crossed first, then by distance
    over threshold), the row count aside; None when no feature was compared."""
    features = comparison.filter(pl.col("feature") != "__row_count__")["feature"]
    return features[0] if features.len() else None


def drift_png(
    comparison: pl.DataFrame, current: pl.DataFrame, reference: pl.DataFrame, title: str
) -> bytes | None:
    """The worst feature's distribution today vs the day compared with, as shares: the
    fixed-edge histogram bins of a numeric feature, the most frequent values of a
    categorical one. None when no feature was compared."""
    feature = worst_drift_feature(comparison)
    if feature is None:
        return None
    row = comparison.filter(pl.col("feature") == feature).row(0, named=True)
    today = current.filter(pl.col("feature") == feature).row(0, named=True)
    before = reference.filter(pl.col("feature") == feature).row(0, named=True)
    fig = _new_figure(figsize=(8, 4.4), dpi=DPI)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.2, top=0.86)
    if today["kind"] == "numeric":
        labels, shares_today, shares_before = _histogram_shares(today, before)
    else:
        labels, shares_today, shares_before = _value_shares(today, before)
    x = np.arange(len(labels))
    ax.bar(x - 0.2, shares_before, width=0.4, label="compared with", color="tab:grey")
    ax.bar(x + 0.2, shares_today, width=0.4, label="today", color="tab:red")
    step = max(1, len(labels) // 12)
    ax.set_xticks(x[::step], labels[::step], rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    positive = np.concatenate([shares_today, shares_before])
    positive = positive[positive > 0]
    if positive.size and positive.max() > 50 * positive.min():
        # One bin holding nearly everything would flatten the rest: show orders of magnitude.
        ax.set_yscale("log")
        ax.set_ylabel("share of rows (log)")
    ax.legend(fontsize=8)
    verdict = "crossed" if row["crossed"] else "within"
    ax.set_title(
        f"{feature}: {row['metric']} {row['distance']:.4f} ({verdict} threshold "
        f"{row['threshold']:.4g})",
        fontsize=9,
    )
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def _shares(counts: Sequence[float]) -> np.ndarray:
    values = np.asarray(counts, dtype=float)
    total = values.sum()
    return values / total if total else values


def _histogram_shares(today: dict, before: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    edges = today["bin_edges"] or []
    bins = len(today["histogram"])
    # Bins are the reference's quantiles (uneven widths), so one bar per bin reads best.
    labels = [f"{edges[i]:.3g}..{edges[i + 1]:.3g}" for i in range(min(bins, len(edges) - 1))]
    labels += [f"bin {i}" for i in range(len(labels), bins)]
    if len(edges) >= 3 and bins == len(edges) - 1:
        # The first and last bins also hold the values beyond the edges.
        labels[0], labels[-1] = f"< {edges[1]:.3g}", f">= {edges[-2]:.3g}"
    return labels, _shares(today["histogram"]), _shares(before["histogram"] or [0] * bins)


def _value_shares(
    today: dict, before: dict, top: int = 15
) -> tuple[list[str], np.ndarray, np.ndarray]:
    now = dict(zip(today["values"] or [], _shares(today["value_counts"] or []), strict=True))
    then = dict(zip(before["values"] or [], _shares(before["value_counts"] or []), strict=True))
    labels = sorted(set(now) | set(then), key=lambda v: -max(now.get(v, 0), then.get(v, 0)))[:top]
    return (
        labels,
        np.array([now.get(v, 0.0) for v in labels]),
        np.array([then.get(v, 0.0) for v in labels]),
    )


# ---- to the UI -------------------------------------------------------------------------


def _tokyo(instant: datetime) -> str:
    return instant.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")


def _new_figure(figsize: tuple[float, float], dpi: int) -> Figure:
    # Imported on first use: matplotlib takes 0.4 s to import, which every process loading
    # the code location (each run worker, each step process, each sensor tick's code
    # server) would pay although only the steps that draw a picture need it.
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=dpi)


def _png(fig: Figure) -> bytes:
    raw = io.BytesIO()
    fig.savefig(raw, format="png")
    # A palette PNG is about a third of the RGBA one and looks the same for these plots.
    image = Image.open(raw).convert("RGB").quantize(colors=PALETTE_COLOURS)
    small = io.BytesIO()
    image.save(small, format="PNG", optimize=True)
    return small.getvalue()


def picture_markdown(png: bytes, caption: str) -> str:
    """Markdown that shows ``png`` in the Dagster UI: an embedded data URI, then a caption."""
    encoded = base64.b64encode(png).decode("ascii")
    return f"![{caption}](data:image/png;base64,{encoded})\n\n{caption}"


def picture(png: bytes | None, caption: str) -> dg.MetadataValue:
    """``png`` as markdown metadata for a materialization (a note when there is none)."""
    if png is None:
        return dg.MetadataValue.md(f"_{caption}: nothing to draw_")
    return dg.MetadataValue.md(picture_markdown(png, caption))


def png_from_markdown(markdown: str) -> bytes:
    """The PNG embedded by :func:`picture_markdown` (for tests and tools)."""
    prefix = "data:image/png;base64,"
    start = markdown.index(prefix) + len(prefix)
    return base64.b64decode(markdown[start : markdown.index(")", start)])


# ---- one call per asset (the assets attach these and nothing else) ---------------------
# A picture is a view of data already written: a drawing error must not fail the asset (a
# forecast tick least of all), so it becomes a note in the metadata instead.


def _drawn(draw: Callable[[], bytes | None], caption: str) -> dg.MetadataValue:
    try:
        return picture(draw(), caption)
    except Exception as error:  # noqa: BLE001 - any drawing error, reported where it shows
        return dg.MetadataValue.md(f"_{caption}: not drawn ({type(error).__name__}: {error})_")


def forecast_picture(
    forecast: pl.DataFrame, area: ServiceArea, guidance: pl.DataFrame | None = None
) -> dg.MetadataValue:
    horizons = forecast["horizon"].n_unique() if "horizon" in forecast.columns else 1
    shown = min(horizons, MAX_HORIZON_PANELS)
    caption = f"Expected street hails per cell, {shown} of {horizons} horizon(s)" + (
        ", with where the guidance sends vacant taxis" if guidance is not None else ""
    )
    return _drawn(lambda: forecast_map_png(forecast, area, guidance), caption)


def cell_demand_picture(
    cell_demand: pl.DataFrame, area: ServiceArea, day: date
) -> dg.MetadataValue:
    return _drawn(
        lambda: street_hail_heatmap_png(cell_demand, area, day), f"Street hails per cell on {day}"
    )


def evaluation_picture(slices: pl.DataFrame, scored: pl.DataFrame | None) -> dg.MetadataValue:
    return _drawn(
        lambda: evaluation_png(slices, scored),
        "MAE by Tokyo hour and RMSE by horizon per predictor; the model's predicted vs "
        "observed street hails",
    )


def drift_picture(
    comparison: pl.DataFrame, current: pl.DataFrame, reference: pl.DataFrame, title: str
) -> dg.MetadataValue:
    feature = worst_drift_feature(comparison)
    return _drawn(
        lambda: drift_png(comparison, current, reference, title),
        f"{title}: the worst feature ({feature}) today vs the day compared with",
    )
