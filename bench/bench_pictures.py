"""Time each asset picture on realistic-size frames: central Tokyo's ~1,500 half-mesh cells,
a day of 96 buckets (~146k cell-bucket rows) for the heatmap and the scored held-out day.

    .venv/bin/python bench/bench_pictures.py [--repeat 5]

Prints the median and worst seconds and the PNG size of each picture. Goal: under 1 s each.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import matplotlib

from taxi_assets.pictures import (
    drift_png,
    evaluation_png,
    forecast_map_png,
    street_hail_heatmap_png,
)
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets_tests import picture_frames as frames


def timed(draw: Callable[[], bytes | None], repeat: int) -> tuple[float, float, int]:
    seconds, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        png = draw()
        seconds.append(time.perf_counter() - started)
        size = len(png or b"")
    return statistics.median(seconds), max(seconds), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    forecast = frames.forecast_tick(horizons=1)
    guidance = frames.guidance_for(forecast)
    forecast_4 = frames.forecast_tick(horizons=4)
    demand = frames.cell_demand_day()
    slices, scored = frames.scored_day()
    comparison, today, before = frames.drift_statistics()
    pictures = {
        "forecast map + guidance (1 horizon)": lambda: forecast_map_png(
            forecast, CENTRAL_TOKYO, guidance
        ),
        "forecast map + guidance (4 horizons)": lambda: forecast_map_png(
            forecast_4, CENTRAL_TOKYO, guidance
        ),
        "cell_demand heatmap": lambda: street_hail_heatmap_png(demand, CENTRAL_TOKYO, frames.DAY),
        "model_evaluation (hour + predicted vs observed)": lambda: evaluation_png(slices, scored),
        "drift histogram": lambda: drift_png(comparison, today, before, "clean_probes"),
    }
    # The first figure pays matplotlib's font cache and imports: a worker pays it once.
    street_hail_heatmap_png(demand, CENTRAL_TOKYO, frames.DAY)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"nproc={os.cpu_count()}  python={platform.python_version()}  "
        f"matplotlib={matplotlib.__version__}  load average {load} (a shared machine)"
    )
    print(
        f"cells {CENTRAL_TOKYO.n_cells:,}, demand rows {demand.height:,}, "
        f"scored rows {scored.height:,}"
    )
    print(f"{'picture':<50} {'median s':>9} {'worst s':>8} {'PNG kB':>7}")
    for name, draw in pictures.items():
        median, worst, size = timed(draw, args.repeat)
        print(f"{name:<50} {median:9.3f} {worst:8.3f} {size / 1024:7.1f}")


if __name__ == "__main__":
    main()
