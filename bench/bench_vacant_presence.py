"""The guidance's vacant presence measured on simulated days, per feed profile.

``taxi_assets.demand.vacant_presence`` on a day's clean probes: vacant taxi-minutes per
(cell, bucket) over bucket minutes x the distinct vacant taxis seen there, the share of the
supply forecast's taxis that compete for a hail at a moment (``GuidanceConfig``'s
``vacant_presence``). Prints the machine, then one line per profile.

    .venv/bin/python bench/bench_vacant_presence.py --fleet 1000 --day 2026-05-12
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

from taxi_assets.cleaning import clean_probes
from taxi_assets.demand import vacant_presence, vacant_presence_by_cell
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.simulation.feed import FEED_PROFILES
from taxi_assets.sources.simulated import SimulatedProbeSource

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data_path import machine  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleet", type=int, default=1000)
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 5, 12))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profiles", nargs="+", default=sorted(FEED_PROFILES))
    args = parser.parse_args(argv)
    print(machine() + f"  load={os.getloadavg()[0]:.1f}")
    print(f"fleet {args.fleet}  day {args.day}  seed {args.seed}")
    for profile in args.profiles:
        source = SimulatedProbeSource(fleet_size=args.fleet, seed=args.seed, feed_profile=profile)
        clean = clean_probes(source.read_probes(args.day).probes, args.day, CENTRAL_TOKYO).clean
        started = time.perf_counter()
        presence = vacant_presence(clean, args.day)
        seconds = time.perf_counter() - started
        # The pair the guidance multiplies: taxis seen x presence is the vacant taxi-time.
        cells = vacant_presence_by_cell(clean, args.day)
        print(
            f"{profile:26s} vacant presence {presence:.3f}  "
            f"vacant taxi-hours {cells['vacant_minutes'].sum() / 60:,.0f}  "
            f"vacant taxis seen (cell x bucket) {cells['vacant_taxis'].sum():,}  "
            f"({clean.height:,} clean pings, measured in {seconds:.2f} s)"
        )


if __name__ == "__main__":
    main()
