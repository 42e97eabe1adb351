"""``taxi-assets serve`` as a real process on a loopback port, for tests that use the API
over HTTP as a driver's app (or a browser) does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from taxi_assets_tests.loopback import LOOPBACK, free_port

STARTUP_TIMEOUT_S = 60.0


@contextmanager
def guidance_api(
    artifacts_dir: Path, log_path: Path, extra_args: Sequence[str] = ()
) -> Iterator[str]:
    """The base URL of a running ``taxi-assets serve`` over ``artifacts_dir``; the process
    is stopped on exit. Its output goes to ``log_path`` (shown if it does not start)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "taxi_assets.cli",
        "serve",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--artifacts-dir",
        str(artifacts_dir),
        *extra_args,
    ]
    base_url = f"http://{LOOPBACK}:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"taxi-assets serve exited:\n{log_path.read_text()}")
                try:
                    httpx.get(f"{base_url}/healthz", timeout=2.0)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"taxi-assets serve did not answer:\n{log_path.read_text()}"
                        ) from None
                    time.sleep(0.2)  # polling a starting server, not timing a result
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
