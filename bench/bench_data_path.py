"""Benchmark: raw probes -> cell_demand in Polars, one DuckDB SQL query, and pandas.

For each fleet size one simulated day is generated once, in its own subprocess, and saved
to parquet; each engine then runs in its own subprocess (so its peak RSS is its own).
DuckDB and pandas load the parquet first and are timed from the loaded table/frame to
cell_demand ("read s" apart). Polars runs the data path in shards of vehicles
(taxi_assets.shards, ``--shards``, 0 = the automatic count) and reads each shard's pings
from the parquet itself, so its "seconds" include the reading. Every engine's cell_demand
is checked equal to the Polars one; a mismatch fails the run.

    python bench/bench_data_path.py --fleet 1000 --fleet 5000 --engines polars duckdb
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from taxi_assets.frames import CELL_DEMAND_SCHEMA  # noqa: E402
from taxi_assets.service_area import CENTRAL_TOKYO  # noqa: E402

ENGINES = ("polars", "duckdb", "pandas")
AREA = CENTRAL_TOKYO


def simulate_to_parquet(fleet_size: int, day: date, path: str) -> int:
    """Inside a child: simulate one day and save its raw probes (so the parent stays small
    while the engines run and each engine's peak RSS is its own)."""
    from taxi_assets.simulation import CityConfig, simulate_day

    probes = simulate_day(CityConfig(fleet_size=fleet_size, seed=42), day).probes
    probes.write_parquet(path)
    return probes.height


def run_engine(engine: str, probes_path: str, out_path: str, day: date, shards: int = 0) -> dict:
    """Inside the child: read, run, write cell_demand; report timings and own peak RSS."""
    t0 = time.perf_counter()
    used_shards = None
    if engine == "polars":
        from taxi_assets.shards import cell_demand_in_shards, shard_count

        raw = pl.scan_parquet(probes_path)
        used_shards = shard_count(raw.select(pl.len()).collect().item(), shards)
        t1 = time.perf_counter()
        demand = cell_demand_in_shards(raw, day, AREA, shards=used_shards)
    elif engine == "duckdb":
        import duckdb
        from data_path_duckdb import duckdb_cell_demand

        con = duckdb.connect()
        con.execute(f"CREATE TABLE probes AS SELECT * FROM read_parquet('{probes_path}')")
        t1 = time.perf_counter()
        demand = duckdb_cell_demand(con, day, AREA)
    elif engine == "pandas":
        import pandas as pd
        from data_path_pandas import pandas_cell_demand

        raw = pd.read_parquet(probes_path)
        t1 = time.perf_counter()
        out = pandas_cell_demand(raw, day, AREA)
        t2 = time.perf_counter()
        demand = (
            pl.from_pandas(out)
            .with_columns(pl.col("bucket_start").dt.cast_time_unit("us"))
            .cast(dict(CELL_DEMAND_SCHEMA))
        )
    else:
        raise ValueError(f"unknown engine {engine!r}")
    t2 = t2 if engine == "pandas" else time.perf_counter()
    demand.write_parquet(out_path)
    return {
        "read_s": t1 - t0,
        "work_s": t2 - t1,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "shards": used_shards,
    }


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    memory = f"{mem_kib / 2**20:.1f} GiB"
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"nproc={os.cpu_count()}  cpu={cpu}  memory={memory}  load={load}  polars={pl.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleet", type=int, action="append", help="fleet size (repeatable)")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--day", type=date.fromisoformat, default=date(2025, 6, 2))
    parser.add_argument("--timeout", type=float, default=3600, help="per engine run, seconds")
    parser.add_argument(
        "--pandas-max-gib",
        type=float,
        default=20.0,
        help="address-space cap of the pandas child, so it fails with MemoryError instead of "
        "driving a 24 GiB machine into the OOM killer (Polars and DuckDB reserve virtual "
        "memory they never touch, so only pandas is capped)",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=0,
        help="vehicle shards of the Polars engine (0: automatic, one per "
        "taxi_assets.shards.PINGS_PER_SHARD pings)",
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("ENGINE", "PROBES", "OUT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--simulate", nargs=2, metavar=("FLEET", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.worker[0] == "pandas":
            cap = int(args.pandas_max_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        print(json.dumps(run_engine(*args.worker, args.day, args.shards)))
        return
    if args.simulate:
        print(simulate_to_parquet(int(args.simulate[0]), args.day, args.simulate[1]))
        return
    fleets = args.fleet or [1000, 5000, 20000]
    engines = ["polars", *(e for e in args.engines if e != "polars")]
    print(machine(), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fleet in fleets:
            t0 = time.perf_counter()
            probes_path = f"{tmp}/probes_{fleet}.parquet"
            simulate = [
                sys.executable,
                __file__,
                "--day",
                str(args.day),
                "--simulate",
                str(fleet),
                probes_path,
            ]
            pings = int(
                subprocess.run(simulate, capture_output=True, text=True, check=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            print(
                f"fleet {fleet}: {pings:,} simulated pings in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
            reference = None
            for engine in engines:
                out_path = f"{tmp}/demand_{fleet}_{engine}.parquet"
                cmd = [
                    sys.executable,
                    __file__,
                    "--day",
                    str(args.day),
                    "--pandas-max-gib",
                    str(args.pandas_max_gib),
                    "--shards",
                    str(args.shards),
                    "--worker",
                    engine,
                    probes_path,
                    out_path,
                ]
                try:
                    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                except subprocess.TimeoutExpired:
                    rows.append(
                        (fleet, pings, engine, None, None, None, f"timeout > {args.timeout:.0f} s")
                    )
                    continue
                if done.returncode != 0:
                    tail = (done.stderr.strip().splitlines() or ["?"])[-1]
                    rows.append(
                        (
                            fleet,
                            pings,
                            engine,
                            None,
                            None,
                            None,
                            f"failed rc={done.returncode}: {tail}",
                        )
                    )
                    print(done.stderr[-2000:], file=sys.stderr)
                    continue
                stats = json.loads(done.stdout.strip().splitlines()[-1])
                demand = pl.read_parquet(out_path)
                if engine == "polars":
                    reference, equal = demand, "(reference)"
                elif reference is None:
                    equal = "no reference"
                else:
                    same = demand.equals(reference)
                    equal = "yes" if same else "NO"
                    if not same:
                        diff = demand.join(
                            reference, on=["cell", "bucket_start"], how="full", suffix="_polars"
                        )
                        print(
                            f"MISMATCH {engine} vs polars at fleet {fleet}:\n{diff}",
                            file=sys.stderr,
                        )
                label = f"polars/{stats['shards']}" if engine == "polars" else engine
                rows.append(
                    (
                        fleet,
                        pings,
                        label,
                        stats["work_s"],
                        stats["read_s"],
                        stats["peak_rss_mib"],
                        equal,
                    )
                )
                print(f"  {engine}: {stats}", flush=True)
    header = (
        f"{'fleet':>6} {'pings':>12} {'engine':>9} {'seconds':>8} {'pings/s':>12} "
        f"{'read s':>7} {'peak RSS MiB':>13}  equal-to-polars"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for fleet, pings, engine, secs, read_s, rss, equal in rows:
        head = f"{fleet:>6} {pings:>12,} {engine:>9}"
        if secs is None:
            print(f"{head} {'-':>8} {'-':>12} {'-':>7} {'-':>13}  {equal}")
        else:
            rate = pings / secs
            print(f"{head} {secs:>8.2f} {rate:>12,.0f} {read_s:>7.2f} {rss:>13,.0f}  {equal}")
    print("(polars/N: the Polars data path in N vehicle shards, its seconds include reading)")
    # Throughput ratios within this run (the machine is shared: compare within a run).
    for fleet in fleets:
        secs = {r[2].split("/")[0]: r[3] for r in rows if r[0] == fleet and r[3]}
        if "polars" in secs and "duckdb" in secs:
            print(f"fleet {fleet}: polars {secs['duckdb'] / secs['polars']:.2f}x duckdb's pings/s")
    print(f"load average at the end: {'/'.join(f'{x:.1f}' for x in os.getloadavg())}")
    if any(r[6] == "NO" for r in rows):
        sys.exit("cell_demand differs between engines (see MISMATCH above)")


if __name__ == "__main__":
    main()
