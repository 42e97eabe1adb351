"""Asset checks that run the Pandera contracts and record what failed."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandera.polars as pa
import polars as pl

from taxi_assets.metadata import markdown_table
from taxi_assets.partitions import daily_partitions

CONTRACT_CHECK = "contract"
FAILURE_SAMPLE_ROWS = 20


def contract_check_spec(asset: str, model: type[pa.DataFrameModel]) -> dg.AssetCheckSpec:
    """A blocking check: a frame that breaks its contract stops everything downstream."""
    summary = (model.__doc__ or "").strip().splitlines()[0]
    return dg.AssetCheckSpec(
        name=CONTRACT_CHECK,
        asset=asset,
        blocking=True,
        description=f"Pandera contract {model.__name__}: {summary}",
        partitions_def=daily_partitions,
    )


def validate_contract(model: type[pa.DataFrameModel], frame: pl.DataFrame) -> pl.DataFrame:
    """Every failure case of ``frame`` against ``model`` (empty when the frame is valid).

    ``lazy=True`` collects all failures instead of stopping at the first one.
    """
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        return errors.failure_cases
    except pa.errors.SchemaError as error:
        return pl.DataFrame(
            {
                "column": [str(error.schema.name)],
                "check": [str(error.check)],
                "failure_case": [str(error)],
            }
        )
    return pl.DataFrame()


def contract_check_result(
    model: type[pa.DataFrameModel], frame: pl.DataFrame, asset: str
) -> dg.AssetCheckResult:
    """Run the contract and report the failure count and a sample of failure cases.

    The description names every broken rule with its column and counts (and a few values),
    so the UI, the run log and the alert say what broke, not only that the contract did."""
    failures = validate_contract(model, frame)
    failure_count = failures.height
    failing_rows = (
        failures["index"].drop_nulls().n_unique()
        if failure_count and "index" in failures.columns
        else 0
    )
    metadata: dict[str, Any] = {
        "rows_checked": frame.height,
        "failure_count": failure_count,
        "failing_rows": failing_rows,
    }
    description = f"{frame.height} rows satisfy {model.__name__}"
    if failure_count:
        by_check = (
            failures.with_columns(pl.col("failure_case").cast(pl.String))
            .group_by(["column", "check"], maintain_order=True)
            .agg(
                pl.len().alias("failures"),
                pl.col("failure_case").unique(maintain_order=True).head(3).alias("examples"),
            )
            .sort("failures", descending=True, maintain_order=True)
        )
        metadata["failures_by_check"] = dg.MetadataValue.md(
            markdown_table(
                by_check.with_columns(pl.col("examples").list.join(", ")),
                50,
            )
        )
        sample = failures.select(
            [c for c in ("column", "check", "failure_case", "index") if c in failures.columns]
        )
        metadata["failure_cases_sample"] = dg.MetadataValue.md(
            markdown_table(sample, FAILURE_SAMPLE_ROWS)
        )
        description = contract_failure_summary(
            model.__name__, frame.height, failing_rows, failure_count, by_check
        )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=CONTRACT_CHECK,
        passed=failure_count == 0,
        metadata=metadata,
        description=description,
    )


def contract_failure_summary(
    model: str, rows: int, failing_rows: int, failure_count: int, by_check: pl.DataFrame
) -> str:
    """E.g. "CleanProbes broken: 2 of 1,000 rows fail, 3 failure cases: speed_kmh
    less_than_or_equal_to(300.0) x2 (e.g. 301.0, 512.5); heading not_nullable x1"."""
    rules = [
        f"{column} {check} x{n:,}" + (f" (e.g. {', '.join(map(_shown, shown))})" if shown else "")
        for column, check, n, shown in by_check.head(5).iter_rows()
    ]
    more = f"; and {by_check.height - 5} more rule(s)" if by_check.height > 5 else ""
    return (
        f"{model} broken: {failing_rows:,} of {rows:,} rows fail, {failure_count:,} failure "
        f"case(s): " + "; ".join(rules) + more
    )


def _shown(value: str | None, limit: int = 24) -> str:
    if value is None:
        return "null"
    return repr(value if len(value) <= limit else value[:limit] + "...")


def logged(context: dg.AssetExecutionContext, result: dg.AssetCheckResult) -> dg.AssetCheckResult:
    """``result``, after writing it to the run log when it failed: Dagster's own step error
    for a failed blocking check names only the check ("clean_probes: contract"), so the
    console would not say what broke."""
    if not result.passed:
        asset = result.asset_key.to_user_string() if result.asset_key else "?"
        context.log.error(f"Check {asset}:{result.check_name} failed: {result.description}")
    return result
