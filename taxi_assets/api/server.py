"""``taxi-assets serve``: the guidance API on uvicorn."""

from __future__ import annotations

import argparse
import gc
import logging
from datetime import timedelta

from taxi_assets.api.app import (
    DEFAULT_MAX_TICK_AGE,
    DEFAULT_REFRESH_SECONDS,
    create_app,
    settings_for,
    store_from_env,
)
from taxi_assets.model.registry import ArtifactStore


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="the guidance API and live map over the latest forecast tick",
        description="Serves /v1/guidance, /v1/forecast, /healthz and the map at / from the "
        "artifact store the pipeline writes (TAXI_ASSETS_ARTIFACTS_DIR, or the GCS bucket "
        "with TAXI_ASSETS_ENV=production and the reader's key).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--artifacts-dir", default=None, help="artifact folder or gs:// URL (default: from env)"
    )
    serve.add_argument(
        "--max-tick-age-minutes",
        type=float,
        default=DEFAULT_MAX_TICK_AGE.total_seconds() / 60,
        help="/healthz answers 503 when the latest tick is older (default 15)",
    )
    serve.add_argument(
        "--refresh-seconds",
        type=float,
        default=DEFAULT_REFRESH_SECONDS,
        help="how often the store is checked for a newer tick (default 5; 0: every request)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store = ArtifactStore(base_dir=args.artifacts_dir) if args.artifacts_dir else store_from_env()
    settings = settings_for(
        store,
        max_tick_age=timedelta(minutes=args.max_tick_age_minutes),
        refresh_seconds=args.refresh_seconds,
    )
    app = create_app(settings)
    # The CLI has imported Dagster: a quarter of a million objects a full collection would
    # scan (0.14 s here) in the middle of requests. None of them is garbage; freeze them.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.port, access_log=args.access_log)
    return 0
