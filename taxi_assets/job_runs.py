"""Running a job of the code location from the command line, one line per run."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date

import dagster as dg

# Step-level DEBUG events stay in the instance (and the UI); the terminal gets the INFO
# lines: pings read, kept and rejected per day, training progress, the blessing.
CONSOLE_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def execute_job(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    job_name: str,
    label: str,
    partition: date | None = None,
    ops_config: dict | None = None,
    asset_selection: Sequence[dg.AssetKey] | None = None,
) -> dg.ExecuteInProcessResult:
    """One run of a job (for one partition, optionally a subset of its assets) in this
    process, reported on one line."""
    started = time.monotonic()
    result = defs.resolve_job_def(job_name).execute_in_process(
        partition_key=None if partition is None else partition.isoformat(),
        instance=instance,
        raise_on_error=False,
        run_config={**CONSOLE_INFO, **({"ops": ops_config} if ops_config else {})},
        asset_selection=asset_selection,
    )
    status = "ok" if result.success else "FAILED"
    print(
        f"  {label}  {status}  run {result.run_id[:8]}  {time.monotonic() - started:.1f}s",
        flush=True,
    )
    # Dagster's step error names a failed check only ("clean_probes: contract"); say what it
    # found (column, rule, counts) on the console too.
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            asset = evaluation.asset_key.to_user_string()
            print(f"    check {asset}:{evaluation.check_name} failed: {evaluation.description}")
    return result


def run_job(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    job_name: str,
    label: str,
    partition: date | None = None,
    ops_config: dict | None = None,
) -> bool:
    """:func:`execute_job`, True if the run succeeded."""
    return execute_job(instance, defs, job_name, label, partition, ops_config).success


def failed_steps(result: dg.ExecuteInProcessResult) -> list[str]:
    """The keys of the steps that failed in a run."""
    return sorted({event.step_key for event in result.get_step_failure_events() if event.step_key})


def assets_in_groups(defs: dg.Definitions, groups: Sequence[str]) -> list[dg.AssetKey]:
    """The materializable assets of the given groups."""
    return [
        node.key
        for node in defs.resolve_asset_graph().asset_nodes
        if node.group_name in groups and node.is_materializable
    ]
