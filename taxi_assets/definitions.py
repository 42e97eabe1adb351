"""The code location: every asset, check, job and resource of taxi_assets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from taxi_assets.assets import (
    cleaning,
    demand,
    features,
    ingestion,
    model,
    monitoring,
    serving,
    validation,
)
from taxi_assets.jobs import JOBS
from taxi_assets.resources import resources_for_environment

ASSET_MODULES = (ingestion, cleaning, demand, validation, features, model, serving, monitoring)


def build_definitions(resources: Mapping[str, Any]) -> dg.Definitions:
    assets = dg.with_source_code_references(dg.load_assets_from_modules(list(ASSET_MODULES)))
    return dg.Definitions(assets=assets, jobs=list(JOBS), resources=dict(resources))


defs = build_definitions(resources_for_environment())
