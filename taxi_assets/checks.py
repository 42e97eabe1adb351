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
    """Run the contract and report the failure count and a sample of failure cases."""
    failures = validate_contract(model, frame)
    failure_count = failures.height
    metadata: dict[str, Any] = {
        "rows_checked": frame.height,
        "failure_count": failure_count,
    }
    description = f"{frame.height} rows satisfy {model.__name__}"
    if failure_count:
        by_check = (
            failures.group_by(["column", "check"]).len("failures").sort("failures", descending=True)
        )
        metadata["failures_by_check"] = dg.MetadataValue.md(markdown_table(by_check, 50))
        sample = failures.select(
            [c for c in ("column", "check", "failure_case", "index") if c in failures.columns]
        )
        metadata["failure_cases_sample"] = dg.MetadataValue.md(
            markdown_table(sample, FAILURE_SAMPLE_ROWS)
        )
        worst = ", ".join(
            f"{column}: {check} ({n})" for column, check, n in by_check.head(5).iter_rows()
        )
        description = f"{failure_count} failure cases against {model.__name__}: {worst}"
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=CONTRACT_CHECK,
        passed=failure_count == 0,
        metadata=metadata,
        description=description,
    )
