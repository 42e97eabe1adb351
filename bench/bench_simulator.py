"""Benchmark the city simulator: one simulated day per fleet size, each in a fresh process.

    python bench/bench_simulator.py --fleet 1000 --fleet 5000 --fleet 20000 [--day 2026-05-01]

A fresh subprocess per size makes the peak RSS that size's own (ru_maxrss of the child).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import date

_CHILD = """
import json, resource, sys, time
from datetime import date
from taxi_assets.simulation import CityConfig, simulate_day
fleet, day = int(sys.argv[1]), date.fromisoformat(sys.argv[2])
start = time.perf_counter()
result = simulate_day(CityConfig(fleet_size=fleet), day)
seconds = time.perf_counter() - start
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"fleet": fleet, "pings": result.probes.height, "trips": result.trips.height,
                  "unserved": result.faults["unserved_requests"], "seconds": seconds,
                  "peak_rss_mib": peak_mib}))
"""


def machine() -> str:
    """nproc, CPU model and total memory, from the standard library and /proc."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    python = platform.python_version()
    return f"nproc={os.cpu_count()}  cpu={cpu}  memory={mem_gib:.1f} GiB  python={python}"


def run_one(fleet: int, day: date) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(fleet), day.isoformat()],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fleet", type=int, action="append", help="fleet size (repeatable)")
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 5, 1))
    args = parser.parse_args(argv)
    fleets = args.fleet or [1000]
    print(machine())
    print(f"day={args.day}  (each size in a fresh subprocess)")
    header = f"{'fleet':>7} {'pings':>12} {'trips':>9} {'unserved':>9} {'seconds':>8} "
    header += f"{'pings/s':>11} {'peak RSS MiB':>13}"
    print(header)
    for fleet in fleets:
        r = run_one(fleet, args.day)
        print(
            f"{r['fleet']:>7} {r['pings']:>12,} {r['trips']:>9,} {r['unserved']:>9,} "
            f"{r['seconds']:>8.2f} {r['pings'] / r['seconds']:>11,.0f} {r['peak_rss_mib']:>13,.0f}"
        )


if __name__ == "__main__":
    main()
