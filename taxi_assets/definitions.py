"""The code location: every asset, check, job, schedule, sensor and resource of taxi_assets."""

from __future__ import annotations

import os
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
from taxi_assets.resources import SettingsError, resources_for_environment

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


EXECUTOR_ENV = "TAXI_ASSETS_EXECUTOR"
# The executor of every job that does not choose its own (forecast_job runs in process).
# A process per step runs independent steps side by side and gives each step's memory back
# when it ends, but each step process loads the code location first (about 2 s of CPU):
# on a small machine with small days that is most of a run (a 60-taxi day of data_path_job
# took 3-7 s in process and 54-68 s with a process per step in test_operations_live.py on
# the loaded 2-core machine).
# ``multiprocess`` is Dagster's own default, whose run config may still choose in_process.
EXECUTORS = {
    "multiprocess": dg.multi_or_in_process_executor,
    "in_process": dg.in_process_executor,
}


def executor_for_environment(env: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """The default executor ``TAXI_ASSETS_EXECUTOR`` names (``multiprocess`` when unset)."""
    env = os.environ if env is None else env
    name = env.get(EXECUTOR_ENV) or "multiprocess"
    if name not in EXECUTORS:
        raise SettingsError(
            f"{EXECUTOR_ENV}={name!r} is unknown: choose one of {', '.join(EXECUTORS)}"
        )
    return EXECUTORS[name]


def build_definitions(
    resources: Mapping[str, Any],
    executor: dg.ExecutorDefinition = dg.multi_or_in_process_executor,
) -> dg.Definitions:
    assets = dg.with_source_code_references(dg.load_assets_from_modules(list(ASSET_MODULES)))
    # The alert sensors need the `alerts` resource; an environment may bring its own.
    return dg.Definitions(
        assets=assets,
        jobs=list(JOBS),
        schedules=list(SCHEDULES),
        sensors=list(SENSORS),
        resources={**alert_resources(), **resources},
        executor=executor,
    )


defs = build_definitions(resources_for_environment(), executor_for_environment())
