"""``taxi-assets models``: list and compare demand-model training runs.

Everything comes from what Dagster recorded in the instance at ``$DAGSTER_HOME``: the
metadata of each ``demand_model`` materialization (params, features, data window) and of
the ``model_evaluation`` that scored it, so the answer is the same one the UI shows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dagster as dg
import polars as pl

from taxi_assets.calendar import TOKYO, TOKYO_TZ_NAME
from taxi_assets.metadata import text_table

MODEL_ASSET = "demand_model"
EVALUATION_ASSET = "model_evaluation"
PAGE_SIZE = 100
SHORT_ID_CHARS = 8
# Evaluation metrics first, in the order a data scientist reads them; any other number the
# evaluation records (and the model's cross-validation numbers) follow alphabetically.
METRIC_ORDER = (
    "mae",
    "rmse",
    "poisson_deviance",
    "mape",
    "mae_production",
    "mae_last_week",
    "mae_historical_average",
    "rmse_oracle",
    "poisson_deviance_oracle",
)
VERSIONS_SCHEMA = {
    "model_version": pl.String,
    "partition": pl.String,
    "trained_at": pl.Datetime("us", TOKYO_TZ_NAME),
    "run_id": pl.String,
    "objective": pl.String,
    "training_rows": pl.Int64,
    "window": pl.String,
    "content_hash": pl.String,
    "blessed": pl.Boolean,
    "mae": pl.Float64,
    "rmse": pl.Float64,
    "poisson_deviance": pl.Float64,
}


class UnknownModelVersion(ValueError):
    """A model version that no ``demand_model`` materialization in the instance recorded."""

    def __init__(self, missing: Sequence[str], known: Sequence[str]) -> None:
        self.missing, self.known = list(missing), list(known)
        shown = ", ".join(self.known[:20]) or "none recorded yet"
        more = f" and {len(self.known) - 20} more" if len(self.known) > 20 else ""
        super().__init__(
            f"unknown model version(s) {', '.join(map(repr, self.missing))}; "
            f"known versions (newest first): {shown}{more}"
        )


@dataclass(frozen=True)
class TrainingRun:
    """One model version as recorded: its materialization and its latest evaluation."""

    model_version: str
    partition: str | None
    run_id: str
    recorded_at: float
    model: dict[str, Any]
    evaluation: dict[str, Any] | None


@dataclass(frozen=True)
class ComparisonReport:
    """What changed from model version ``a`` to ``b``; every frame has columns ``a``, ``b``."""

    a: str
    b: str
    runs: pl.DataFrame  # field, a, b, changed: the two runs side by side
    params: pl.DataFrame  # param, a, b: only the params that differ (null = not set)
    features_only_in_a: list[str]
    features_only_in_b: list[str]
    partitions_only_in_a: list[str]
    partitions_only_in_b: list[str]
    metrics: pl.DataFrame  # metric, a, b, delta (b - a), relative_change_pct


def _materializations(instance: dg.DagsterInstance, asset: str) -> Iterator[dg.EventLogRecord]:
    """Materializations of ``asset``, newest first, fetched a page at a time."""
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset)), limit=PAGE_SIZE, cursor=cursor
        )
        yield from page.records
        if not page.has_more:
            return
        cursor = page.cursor


def _metadata(record: dg.EventLogRecord) -> dict[str, Any]:
    materialization = record.asset_materialization
    assert materialization is not None  # fetch_materializations returns only materializations
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


def _training_runs(
    instance: dg.DagsterInstance, limit: int | None = None, versions: set[str] | None = None
) -> tuple[list[TrainingRun], list[str]]:
    """The newest materialization of each model version (the first ``limit``, or those in
    ``versions``), with its evaluation; and every version seen, newest first."""
    wanted: dict[str, dg.EventLogRecord] = {}
    seen: dict[str, None] = {}  # ordered set
    for record in _materializations(instance, MODEL_ASSET):
        version = str(_metadata(record).get("model_version", ""))
        if not version or version in seen:
            continue  # a re-materialization with the same content: the newest one wins
        seen[version] = None
        if versions is None or version in versions:
            wanted[version] = record
        if (limit is not None and len(wanted) >= limit) or (
            versions is not None and versions <= wanted.keys()
        ):
            break

    # Evaluations are not indexed by model version: read back until each one is found.
    evaluations: dict[str, dict[str, Any]] = {}
    if wanted:
        for record in _materializations(instance, EVALUATION_ASSET):
            metadata = _metadata(record)
            version = str(metadata.get("model_version", ""))
            if version in wanted and version not in evaluations:
                evaluations[version] = metadata
                if evaluations.keys() == wanted.keys():
                    break

    runs = [
        TrainingRun(
            model_version=version,
            partition=record.partition_key,
            run_id=record.run_id,
            recorded_at=record.timestamp,
            model=_metadata(record),
            evaluation=evaluations.get(version),
        )
        for version, record in wanted.items()
    ]
    return runs, list(seen)


def _trained_at(run: TrainingRun) -> datetime:
    seconds = float(run.model.get("trained_at") or run.recorded_at)
    return datetime.fromtimestamp(seconds, TOKYO).replace(microsecond=0)


def _short(identifier: str | None) -> str | None:
    return (identifier or "")[:SHORT_ID_CHARS] or None  # runless events have run_id ""


def _window(run: TrainingRun) -> str | None:
    start, end = run.model.get("window_start"), run.model.get("window_end")
    return f"{start}..{end}" if start or end else None


def model_versions(instance: dg.DagsterInstance, limit: int = 50) -> pl.DataFrame:
    """One row per model version, newest first, with its headline evaluation metrics (null
    until ``model_evaluation`` has scored it)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    runs, _ = _training_runs(instance, limit=limit)
    rows = [
        {
            "model_version": run.model_version,
            "partition": run.partition,
            "trained_at": _trained_at(run),
            "run_id": _short(run.run_id),
            "objective": run.model.get("objective"),
            "training_rows": run.model.get("training_rows"),
            "window": _window(run),
            "content_hash": _short(run.model.get("content_hash")),
            "blessed": (run.evaluation or {}).get("blessed"),
            **{m: (run.evaluation or {}).get(m) for m in ("mae", "rmse", "poisson_deviance")},
        }
        for run in runs
    ]
    return pl.DataFrame(rows, schema=VERSIONS_SCHEMA)


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _only_in(first: Sequence[Any] | None, second: Sequence[Any] | None) -> list[str]:
    others = set(second or [])
    return [str(item) for item in (first or []) if item not in others]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _metrics(run: TrainingRun) -> dict[str, float]:
    cross_validation = {k: v for k, v in run.model.items() if k.startswith("cv_")}
    numbers = {**(run.evaluation or {}), **cross_validation}
    return {key: float(value) for key, value in numbers.items() if _is_number(value)}


def _run_fields(run: TrainingRun) -> dict[str, Any]:
    return {
        "partition": run.partition,
        "trained_at": _trained_at(run).strftime("%Y-%m-%d %H:%M:%S %Z"),
        "run_id": _short(run.run_id),
        "objective": run.model.get("objective"),
        "window": _window(run),
        "partitions_used": len(run.model.get("partitions_used") or []),
        "training_rows": run.model.get("training_rows"),
        "content_hash": _short(run.model.get("content_hash")),
        "code_version": run.model.get("code_version"),
        "warm_start_from": run.model.get("warm_start_from") or None,
        "features": len(run.model.get("features") or []),
        "best_iteration": run.model.get("best_iteration"),
        "training_seconds": run.model.get("training_seconds"),
        "blessed": "not evaluated" if run.evaluation is None else run.evaluation.get("blessed"),
    }


def compare_versions(instance: dg.DagsterInstance, a: str, b: str) -> ComparisonReport:
    """Params, features, training data and metrics of model version ``b`` against ``a``.

    Raises :class:`UnknownModelVersion` (a ``ValueError``) listing the recorded versions
    when either is not in the instance.
    """
    runs, seen = _training_runs(instance, versions={a, b})
    by_version = {run.model_version: run for run in runs}
    missing = [version for version in dict.fromkeys((a, b)) if version not in by_version]
    if missing:
        raise UnknownModelVersion(missing, seen)
    run_a, run_b = by_version[a], by_version[b]

    fields_a, fields_b = _run_fields(run_a), _run_fields(run_b)
    runs_frame = pl.DataFrame(
        {
            "field": list(fields_a),
            "a": [_as_text(v) for v in fields_a.values()],
            "b": [_as_text(v) for v in fields_b.values()],
        },
        schema={"field": pl.String, "a": pl.String, "b": pl.String},
    ).with_columns(changed=pl.col("a").ne_missing(pl.col("b")))

    params_a, params_b = run_a.model.get("params") or {}, run_b.model.get("params") or {}
    changed_params = [
        (name, _as_text(params_a.get(name)), _as_text(params_b.get(name)))
        for name in sorted(params_a.keys() | params_b.keys())
        if params_a.get(name) != params_b.get(name)
    ]
    params = pl.DataFrame(
        changed_params, schema={"param": pl.String, "a": pl.String, "b": pl.String}, orient="row"
    )

    metrics_a, metrics_b = _metrics(run_a), _metrics(run_b)
    names = metrics_a.keys() | metrics_b.keys()
    ordered = [m for m in METRIC_ORDER if m in names] + sorted(names - set(METRIC_ORDER))
    delta = pl.col("b") - pl.col("a")
    metrics = pl.DataFrame(
        {
            "metric": ordered,
            "a": [metrics_a.get(m) for m in ordered],
            "b": [metrics_b.get(m) for m in ordered],
        },
        schema={"metric": pl.String, "a": pl.Float64, "b": pl.Float64},
    ).with_columns(
        delta=delta,
        # A change from zero has no meaningful relative size.
        relative_change_pct=pl.when(pl.col("a") != 0).then(100 * delta / pl.col("a").abs()),
    )

    model_a, model_b = run_a.model, run_b.model
    return ComparisonReport(
        a=a,
        b=b,
        runs=runs_frame,
        params=params,
        features_only_in_a=_only_in(model_a.get("features"), model_b.get("features")),
        features_only_in_b=_only_in(model_b.get("features"), model_a.get("features")),
        partitions_only_in_a=_only_in(
            model_a.get("partitions_used"), model_b.get("partitions_used")
        ),
        partitions_only_in_b=_only_in(
            model_b.get("partitions_used"), model_a.get("partitions_used")
        ),
        metrics=metrics,
    )


def format_model_versions(versions: pl.DataFrame) -> str:
    """The ``model_versions`` table for a terminal."""
    if versions.is_empty():
        return f"No {MODEL_ASSET} materializations recorded in this instance yet."
    return f"{versions.height} model version(s), newest first:\n{text_table(versions)}"


def _listing(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def format_comparison(report: ComparisonReport) -> str:
    """A ``ComparisonReport`` for a terminal: runs, params, features, data, metrics."""
    params = text_table(report.params) if not report.params.is_empty() else "(same parameters)"
    metrics = (
        text_table(report.metrics) if not report.metrics.is_empty() else "(no metrics recorded)"
    )
    return "\n".join(
        [
            f"A = {report.a}",
            f"B = {report.b}",
            "",
            "Runs:",
            text_table(report.runs),
            "",
            f"Parameters that differ ({report.params.height}; null = not set):",
            params,
            "",
            f"Features only in A: {_listing(report.features_only_in_a)}",
            f"Features only in B: {_listing(report.features_only_in_b)}",
            f"Partitions only in A: {_listing(report.partitions_only_in_a)}",
            f"Partitions only in B: {_listing(report.partitions_only_in_b)}",
            "",
            "Metrics (delta = B - A; for errors, negative is better):",
            metrics,
        ]
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_models_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``models list`` and ``models diff`` to a CLI's subcommands."""
    models = subparsers.add_parser(
        "models",
        help="list and compare demand-model training runs recorded in the Dagster instance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = models.add_subparsers(dest="models_action", required=True)
    listing = actions.add_parser("list", help="model versions, newest first, with metrics")
    listing.add_argument(
        "--limit", type=_positive_int, default=50, help="versions to show (default 50)"
    )
    diff = actions.add_parser("diff", help="what changed from model version A to B")
    diff.add_argument("a", metavar="A", help="baseline model version")
    diff.add_argument("b", metavar="B", help="candidate model version")
    return models


def models_command(args: argparse.Namespace, instance: dg.DagsterInstance | None = None) -> int:
    """Run a parsed ``models`` command against ``instance`` (default: ``$DAGSTER_HOME``)."""
    if instance is None:
        home = os.environ.get("DAGSTER_HOME")
        if not home:
            print(
                "DAGSTER_HOME is not set: set it to the instance folder (make run uses "
                ".dagster_home)",
                file=sys.stderr,
            )
            return 2
        try:
            home_instance = dg.DagsterInstance.get()
        except dg.DagsterInvariantViolationError as error:
            # E.g. DAGSTER_HOME is relative or names a folder that does not exist.
            print(f"DAGSTER_HOME={home}: {error}", file=sys.stderr)
            return 2
        with home_instance:
            return models_command(args, home_instance)

    if args.models_action == "list":
        print(format_model_versions(model_versions(instance, limit=args.limit)))
        return 0
    try:
        report = compare_versions(instance, args.a, args.b)
    except UnknownModelVersion as error:
        print(error, file=sys.stderr)
        return 2
    print(format_comparison(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taxi_assets.model.experiments")
    add_models_parser(parser.add_subparsers(dest="command", required=True))
    return models_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
