"""Load test of the guidance API on loopback: p50, p99 and requests/s at a fixed rate.

Starts ``taxi-assets serve`` (one uvicorn process) over a temporary artifact store holding
one tick (every cell of the area, gamma-distributed street hails), then sends
``GET /v1/guidance`` for random positions in the area at ``--rate`` requests per second,
open loop: request i is due at start + i / rate whatever happened before, and its latency
counts from when it was due, so a stalled server shows in the tail instead of slowing the
sender (no coordinated omission). Bounded: it stops after ``--requests`` requests or
``--seconds`` seconds, whichever comes first, and always stops the server.

The client runs on the same machine (uvloop, raw HTTP/1.1 keep-alive connections, a few
microseconds per request), so server and client share its cores. Goal: p99 < 20 ms at 500
requests/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import psutil
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_data_path import machine  # noqa: E402

from taxi_assets.calendar import TOKYO  # noqa: E402
from taxi_assets.guidance import opportunity  # noqa: E402
from taxi_assets.model.registry import ArtifactStore  # noqa: E402
from taxi_assets.service_area import CENTRAL_TOKYO  # noqa: E402
from taxi_assets.serving import FORECAST_COLUMNS, target_bucket  # noqa: E402

LOOPBACK = "127.0.0.1"


def store_one_tick(store: ArtifactStore, tick: datetime, seed: int) -> None:
    """A deployed model and one tick of every cell, as ``demand_forecast`` stores it."""
    rng = np.random.default_rng(seed)
    cells = CENTRAL_TOKYO.cells()["cell"]
    hails = rng.gamma(0.4, 0.6, cells.len())
    forecast = (
        pl.DataFrame(
            {
                "cell": cells,
                "expected_street_hails": hails,
                "expected_vacant_taxis": hails * rng.uniform(0.5, 3.0, cells.len()),
            }
        )
        .with_columns(
            tick=pl.lit(tick.astimezone(UTC)).dt.cast_time_unit("us"),
            model_version=pl.lit("bench"),
            horizon=pl.lit(0, pl.Int8),
            bucket_start=pl.lit(target_bucket(tick, 15).astimezone(UTC)).dt.cast_time_unit("us"),
            opportunity=opportunity(),
        )
        .select(FORECAST_COLUMNS)
    )
    _, generation = store.read_production_pointer()
    store.swap_production_pointer({"model_version": "bench", "history": []}, generation)
    store.save_forecast(tick, forecast)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def start_server(artifacts: Path, port: int, log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "taxi_assets.cli", "serve", "--host", LOOPBACK,
        "--port", str(port), "--artifacts-dir", str(artifacts),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://{LOOPBACK}:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise TimeoutError(f"the server did not answer:\n{log.read_text()}")


async def read_response(reader: asyncio.StreamReader) -> int:
    """The status of one HTTP/1.1 response, its body read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def load(
    port: int, requests: list[bytes], rate: float, seconds: float, connections: int
) -> tuple[list[float], int, int, float]:
    """Latencies (s, from when each request was due), non-200 answers, requests sent and
    the wall-clock seconds the run took."""
    latencies: list[float] = []
    failures = sent = 0
    start = time.perf_counter() + 0.05
    stop_at = start + seconds
    next_index = 0

    async def connection() -> None:
        nonlocal next_index, failures, sent
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            while next_index < len(requests):
                index = next_index
                next_index += 1
                due = start + index / rate
                if due >= stop_at:
                    return
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(requests[index])
                status = await read_response(reader)
                latencies.append(time.perf_counter() - due)
                sent += 1
                failures += status != 200
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return latencies, failures, sent, time.perf_counter() - start


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20, help="longest run (default 20)")
    parser.add_argument("--requests", type=int, default=10_000, help="most requests sent")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    lat_min, lat_max, lon_min, lon_max = CENTRAL_TOKYO.snapped_bounds
    lats = rng.uniform(lat_min, lat_max, args.requests)
    lons = rng.uniform(lon_min, lon_max, args.requests)
    port = free_port()
    requests = [
        f"GET /v1/guidance?lat={lat:.6f}&lon={lon:.6f} HTTP/1.1\r\n"
        f"Host: {LOOPBACK}:{port}\r\n\r\n".encode()
        for lat, lon in zip(lats, lons, strict=True)
    ]
    with tempfile.TemporaryDirectory(prefix="bench_api_") as folder:
        artifacts = Path(folder) / "artifacts"
        tick = datetime.now(TOKYO).replace(microsecond=0) - timedelta(minutes=1)
        store_one_tick(ArtifactStore(base_dir=str(artifacts)), tick, args.seed)
        server = start_server(artifacts, port, Path(folder) / "serve.log")
        try:
            # Warm up: the first requests parse the tick and fill the caches.
            for raw in requests[:50]:
                httpx.get(f"http://{LOOPBACK}:{port}" + raw.split(b" ")[1].decode())
            cpu_before = psutil.Process(server.pid).cpu_times()
            # The client imported Dagster too (through the store): keep a full collection of
            # its quarter of a million objects out of the measured latencies, as the server
            # does (taxi-assets serve).
            gc.collect()
            gc.freeze()
            uvloop.install()
            latencies, failures, sent, wall = asyncio.run(
                load(port, requests, args.rate, args.seconds, args.connections)
            )
            cpu_after = psutil.Process(server.pid).cpu_times()
        finally:
            server.terminate()
            server.wait(timeout=15)
    latencies.sort()
    server_cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    # The load average says how much of the machine other work took during the run.
    print(machine() + f"  load={' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"GET /v1/guidance, random positions, open loop at {args.rate:.0f}/s on "
        f"{args.connections} keep-alive connections, one uvicorn process, client on the "
        "same machine"
    )
    ms = [x * 1000 for x in latencies]
    print(
        f"requests {sent:,}  non-200 {failures}  seconds {wall:.1f}  "
        f"requests/s {sent / wall:.0f}\n"
        f"latency ms  p50 {percentile(ms, 0.50):.2f}  p90 {percentile(ms, 0.90):.2f}  "
        f"p99 {percentile(ms, 0.99):.2f}  max {ms[-1]:.2f}  mean {statistics.fmean(ms):.2f}\n"
        f"server CPU {server_cpu:.1f} s ({server_cpu / wall * 100:.0f}% of one core, "
        f"{server_cpu / max(sent, 1) * 1000:.2f} ms a request)"
    )


if __name__ == "__main__":
    main()
