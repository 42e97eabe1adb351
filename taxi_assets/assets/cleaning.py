"""Cleaning: trusted pings, and a quarantine that keeps every rejected ping with its reason."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl

from taxi_assets.checks import contract_check_result, contract_check_spec, logged
from taxi_assets.cleaning import rejected_counts
from taxi_assets.contracts import CleanProbes, RejectedProbes
from taxi_assets.metadata import markdown_table, peak_rss_mib, preview, time_range_metadata
from taxi_assets.partitions import daily_partitions, partition_day
from taxi_assets.quarantine import (
    QuarantineLimits,
    judge_quarantine,
    quarantine_summary,
)
from taxi_assets.settings import PipelineSettings
from taxi_assets.shards import clean_in_shards, combine_shards
from taxi_assets.sources.base import ProbeSource

ROWS_CONSERVED_CHECK = "rows_conserved"
QUARANTINE_SHARE_CHECK = "quarantine_share"


@dg.multi_asset(
    outs={
        "clean_probes": dg.AssetOut(
            kinds={"polars", "parquet"},
            description=(
                "Pings we trust, one per taxi and instant, in time order: the basis of every "
                "trip, demand count and forecast."
            ),
        ),
        "rejected_probes": dg.AssetOut(
            kinds={"polars", "parquet"},
            description=(
                "Quarantine: every ping the cleaning removed, as delivered, with the reason. "
                "Nothing is lost silently; a data provider can be shown exactly what was wrong."
            ),
        ),
    },
    partitions_def=daily_partitions,
    group_name="cleaning",
    check_specs=[
        contract_check_spec("clean_probes", CleanProbes),
        contract_check_spec("rejected_probes", RejectedProbes),
        dg.AssetCheckSpec(
            name=ROWS_CONSERVED_CHECK,
            asset="clean_probes",
            blocking=True,
            description="Rows in raw_probes = rows in clean_probes + rows in rejected_probes.",
            partitions_def=daily_partitions,
        ),
        dg.AssetCheckSpec(
            name=QUARANTINE_SHARE_CHECK,
            asset="clean_probes",
            blocking=True,
            description="A few bad pings are quarantined and the day goes on; the day stops "
            "when the quarantined share, overall or for one reason, crosses its limit "
            "(PipelineSettings.max_quarantined_share*).",
            partitions_def=daily_partitions,
        ),
    ],
)
def clean_and_quarantine_probes(
    context: dg.AssetExecutionContext,
    raw_probes: pl.LazyFrame,
    settings: PipelineSettings,
    probe_source: ProbeSource,
) -> Iterator:
    """Apply the cleaning rules to one day of raw pings, in shards of vehicles (each read
    from the stored day on its own, so the raw day is never in memory whole)."""
    day = partition_day(context)
    warehouse = probe_source.warehouse_data_path()
    if warehouse is not None:
        yield from _clean_in_warehouse(context, warehouse, settings)
        return
    shards = []
    for shard in clean_in_shards(
        raw_probes,
        day,
        settings.service_area(),
        settings.cleaning_rules(),
        settings.vehicle_shards,
    ):
        context.log.info(
            f"{day}: shard {shard.index + 1}/{shard.count}: {shard.vehicles:,} vehicles, kept "
            f"{shard.result.clean.height:,} of {shard.raw_rows:,} pings"
        )
        shards.append(shard)
    # Counted apart from the shards, so that rows_conserved also catches a lost shard.
    raw_rows, shard_count = raw_probes.select(pl.len()).collect().item(), len(shards)
    result = combine_shards(shards)
    del shards
    clean, rejected = result.clean, result.rejected
    counts = rejected_counts(rejected)
    context.log.info(
        f"{day}: kept {clean.height:,} of {raw_rows:,} pings; rejected "
        + ", ".join(f"{reason}={n:,}" for reason, n in counts.items() if n)
    )

    yield dg.Output(
        clean,
        output_name="clean_probes",
        metadata={
            "rows": clean.height,
            "raw_rows": raw_rows,
            "kept_share": clean.height / raw_rows if raw_rows else 0.0,
            "vehicles": clean["vehicle_id"].n_unique(),
            "cells": clean["cell"].n_unique(),
            "out_of_order_rows": result.out_of_order_rows,
            "vehicle_shards": shard_count,
            # Of the process that ran the step (with the in-process executor, of all steps).
            "peak_rss_mib": peak_rss_mib(),
            **time_range_metadata(clean),
            "preview": preview(clean),
        },
    )
    yield dg.Output(
        rejected,
        output_name="rejected_probes",
        metadata={
            "rows": rejected.height,
            **{f"rejected_{reason}": n for reason, n in counts.items()},
            "rejected_by_reason": dg.MetadataValue.md(
                markdown_table(
                    pl.DataFrame({"reason": list(counts), "rows": list(counts.values())})
                )
            ),
            "preview": preview(rejected),
        },
    )
    yield logged(context, contract_check_result(CleanProbes, clean, "clean_probes"))
    yield logged(context, contract_check_result(RejectedProbes, rejected, "rejected_probes"))
    yield logged(context, rows_conserved_result(raw_rows, clean.height, rejected.height))
    yield logged(context, quarantine_share_result(counts, raw_rows, settings.quarantine_limits()))


def _clean_in_warehouse(
    context: dg.AssetExecutionContext, warehouse: Any, settings: PipelineSettings
) -> Iterator:
    """The same rules as SQL into the day's partitions of the BigQuery tables; the checks
    read SQL counts, the contracts a bounded sample (stored as the partition's sample)."""
    day = partition_day(context)
    out_of_order_rows = warehouse.write_clean_and_rejected(
        day, settings.service_area(), settings.cleaning_rules()
    )
    counts = warehouse.day_counts(day)
    context.log.info(
        f"{day}: kept {counts.kept_rows:,} of {counts.raw_rows:,} pings in "
        f"{warehouse.table('clean_probes')}; rejected "
        + ", ".join(f"{reason}={n:,}" for reason, n in counts.rejected.items() if n)
    )
    summary = warehouse.summary("clean_probes", day)
    samples = {stage: warehouse.sample(stage, day) for stage in ("clean_probes", "rejected_probes")}
    stored = {
        "stored": "a bounded sample; the day is in BigQuery",
        "partition": f"service_day={day.isoformat()}",
    }
    yield dg.Output(
        samples["clean_probes"],
        output_name="clean_probes",
        metadata={
            "rows": counts.kept_rows,
            "raw_rows": counts.raw_rows,
            "kept_share": counts.kept_rows / counts.raw_rows if counts.raw_rows else 0.0,
            "vehicles": summary.vehicles,
            "cells": summary.cells,
            # Counted against the table's arrival column; a table without one has no
            # arrival order (nor does a query result without ORDER BY): null, not 0.
            "out_of_order_rows": dg.MetadataValue.null()
            if out_of_order_rows is None
            else out_of_order_rows,
            **time_range_metadata(summary.times),
            "stored_rows": samples["clean_probes"].height,
            "table": warehouse.table("clean_probes"),
            **stored,
            "preview": preview(samples["clean_probes"]),
        },
    )
    yield dg.Output(
        samples["rejected_probes"],
        output_name="rejected_probes",
        metadata={
            "rows": counts.rejected_rows,
            **{f"rejected_{reason}": n for reason, n in counts.rejected.items()},
            "rejected_by_reason": dg.MetadataValue.md(
                markdown_table(
                    pl.DataFrame(
                        {"reason": list(counts.rejected), "rows": list(counts.rejected.values())}
                    )
                )
            ),
            "stored_rows": samples["rejected_probes"].height,
            "table": warehouse.table("rejected_probes"),
            **stored,
            "preview": preview(samples["rejected_probes"]),
        },
    )
    for stage, contract in (("clean_probes", CleanProbes), ("rejected_probes", RejectedProbes)):
        yield logged(context, contract_check_result(contract, samples[stage], stage))
    yield logged(
        context, rows_conserved_result(counts.raw_rows, counts.kept_rows, counts.rejected_rows)
    )
    yield logged(
        context,
        quarantine_share_result(counts.rejected, counts.raw_rows, settings.quarantine_limits()),
    )


def quarantine_share_result(
    counts: dict[str, int], raw_rows: int, limits: QuarantineLimits
) -> dg.AssetCheckResult:
    """The quarantined share overall and per reason (as numbers on every run, so the UI
    plots them), failing when one crosses its limit."""
    verdict = judge_quarantine(counts, raw_rows, limits)
    return dg.AssetCheckResult(
        asset_key="clean_probes",
        check_name=QUARANTINE_SHARE_CHECK,
        passed=verdict.passed,
        metadata={
            "raw_rows": raw_rows,
            "quarantined_rows": verdict.quarantined_rows,
            "quarantined_share": verdict.share,
            "max_quarantined_share": limits.max_share,
            "reasons_over_limit": len(verdict.breaches),
            **{f"share_{reason}": share for reason, share in verdict.shares.items()},
        },
        description=quarantine_summary(verdict, limits),
    )


def rows_conserved_result(raw_rows: int, kept: int, rejected: int) -> dg.AssetCheckResult:
    lost = raw_rows - kept - rejected
    return dg.AssetCheckResult(
        asset_key="clean_probes",
        check_name=ROWS_CONSERVED_CHECK,
        passed=lost == 0,
        metadata={
            "raw_rows": raw_rows,
            "kept_rows": kept,
            "rejected_rows": rejected,
            "unaccounted_rows": lost,
        },
        description=f"{raw_rows} in = {kept} kept + {rejected} rejected"
        if lost == 0
        else f"{lost} rows unaccounted for: {raw_rows} in, {kept} kept, {rejected} rejected",
    )
