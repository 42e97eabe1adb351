"""The code location: every asset, check, job, schedule, sensor and resource of taxi_assets."""

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
    monitoring_guidance,
    serving,
    validation,
)
from taxi_assets.automation import SCHEDULES, SENSORS, alert_resources
from taxi_assets.jobs import JOBS
from taxi_assets.resources import resources_for_environment

ASSET_MODULES = (
    ingestion,
    cleaning,
    demand,
    validation,
    features,
    model,
    serving,
    monitoring,
    monitoring_guidance,
)


def build_definitions(resources: Mapping[str, Any]) -> dg.Definitions:
    assets = dg.with_source_code_references(dg.load_assets_from_modules(list(ASSET_MODULES)))
    # The alert sensors need the `alerts` resource; an environment may bring its own.
    return dg.Definitions(
        assets=assets,
        jobs=list(JOBS),
        schedules=list(SCHEDULES),
        sensors=list(SENSORS),
        resources={**alert_resources(), **resources},
    )


defs = build_definitions(resources_for_environment())
