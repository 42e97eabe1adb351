"""The model: trained daily, evaluated on a day it never saw, deployed only when blessed.

``demand_model`` for day D trains on the ``window_days`` days before D (the last of them
for early stopping); ``model_evaluation`` for D scores it on D itself, side by side with
the production model, two baselines and, on simulated data, the oracle; a blocking check
stops ``production_model`` in the same run when the candidate is not blessed, and the
deploy step verifies the blessing again on its own (no run configuration can skip it).
"""

import getpass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from taxi_assets.blessing import decide_blessing, reasons_markdown
from taxi_assets.evaluation import overall_markdown, overall_metrics, slice_metrics, slices_markdown
from taxi_assets.features import FEATURES, TARGET
from taxi_assets.metadata import latest_materialization_metadata, markdown_table
from taxi_assets.partitions import daily_partitions, partition_day
from taxi_assets.registry import ArtifactStore, RegistryError
from taxi_assets.scoring import busiest_cells, cross_validate, fold_summary, score_held_out
from taxi_assets.settings import EvaluationSettings, PipelineSettings
from taxi_assets.sources.base import ProbeSource
from taxi_assets.training import CODE_VERSION, OBJECTIVES, TrainingParams, train_model
from taxi_assets.validation.gate import VALIDATED_ASSETS, unvalidated_days
from taxi_assets.weather import weather_was_used

# A window is chosen per run (config), but a partition mapping is fixed: map the longest
# window we allow and pick the configured days from it (partitions load lazily, so unused
# days cost nothing).
MAX_WINDOW_DAYS = 90
TRAINING_WINDOW = dg.TimeWindowPartitionMapping(
    start_offset=-MAX_WINDOW_DAYS, end_offset=-1, allow_nonexistent_upstream_partitions=True
)
WINDOW_AND_HELD_OUT_DAY = dg.TimeWindowPartitionMapping(
    start_offset=-MAX_WINDOW_DAYS, end_offset=0, allow_nonexistent_upstream_partitions=True
)
BLESSED_CHECK = "blessed"

_DEFAULT_PARAMS = TrainingParams()


class TrainingConfig(dg.Config):
    """How one training run is set up; all of it lands in the model's manifest."""

    window_days: int = Field(
        default=28, ge=2, le=MAX_WINDOW_DAYS, description="Trailing days to train on."
    )
    validation_days: int = Field(
        default=1, ge=1, description="Last days of the window used for early stopping."
    )
    warm_start: bool = Field(
        default=False, description="Continue boosting from the current production model."
    )
    skip_unvalidated_days: bool = Field(
        default=False,
        description="Train without the days whose validation checks failed or never ran "
        "(default: refuse to train while any day of the window is unvalidated).",
    )
    cross_validation_folds: int = Field(
        default=0,
        ge=0,
        description="Rolling-origin folds over the window (0: none); reports mean and spread.",
    )
    objective: str = Field(default=_DEFAULT_PARAMS.objective, description=f"One of {OBJECTIVES}.")
    iterations: int = Field(default=_DEFAULT_PARAMS.iterations, ge=1)
    learning_rate: float = Field(default=_DEFAULT_PARAMS.learning_rate, gt=0, le=1)
    depth: int = Field(default=_DEFAULT_PARAMS.depth, ge=1, le=16)
    l2_leaf_reg: float = Field(default=_DEFAULT_PARAMS.l2_leaf_reg, ge=0)
    border_count: int = Field(default=_DEFAULT_PARAMS.border_count, ge=1)
    max_ctr_complexity: int = Field(default=_DEFAULT_PARAMS.max_ctr_complexity, ge=1)
    early_stopping_rounds: int = Field(default=_DEFAULT_PARAMS.early_stopping_rounds, ge=1)
    supply_iterations: int = Field(default=_DEFAULT_PARAMS.supply_iterations, ge=1)
    random_seed: int = Field(default=_DEFAULT_PARAMS.random_seed)

    def params(self) -> TrainingParams:
        return TrainingParams(
            **{name: getattr(self, name) for name in TrainingParams.__dataclass_fields__}
        )


def window_partitions(
    loaded: dict[str, pl.LazyFrame], day: date, window_days: int
) -> dict[str, pl.LazyFrame]:
    """The stored partitions among the ``window_days`` days before ``day``, oldest first."""
    first = (day - timedelta(days=window_days)).isoformat()
    return {key: loaded[key] for key in sorted(loaded) if first <= key < day.isoformat()}


def _validated(
    context: dg.AssetExecutionContext, window: dict[str, pl.LazyFrame], skip: bool
) -> tuple[dict[str, pl.LazyFrame], list[str]]:
    """The window without days whose validation failed or never ran, or a Failure naming
    them (unless ``skip``): a model must not learn from data nobody vouched for."""
    problems = unvalidated_days(context.instance, list(window))
    if not problems:
        return window, []
    summary = "; ".join(f"{day}: {', '.join(why)}" for day, why in problems.items())
    if not skip:
        raise dg.Failure(
            description=(
                f"{len(problems)} day(s) of the training window did not pass validation "
                f"({summary}). Fix and re-validate them (re-materialize their statistics), "
                "or train without them with skip_unvalidated_days: true."
            ),
            allow_retries=False,
        )
    context.log.warning(f"Training without {len(problems)} unvalidated day(s): {summary}")
    kept = {key: frame for key, frame in window.items() if key not in problems}
    return kept, sorted(problems)


def _collect(partitions: dict[str, pl.LazyFrame]) -> pl.DataFrame:
    return pl.concat([frame.collect() for frame in partitions.values()])


@dg.asset(
    partitions_def=daily_partitions,
    group_name="model",
    kinds={"catboost"},
    code_version=CODE_VERSION,
    # The data checks of the window's days gate training (see validation/gate.py); as deps
    # they are in the lineage, and a blocking check failing in the same run skips training.
    deps=[
        dg.AssetDep(f"{asset}_statistics", partition_mapping=TRAINING_WINDOW)
        for asset in VALIDATED_ASSETS
    ],
    ins={
        "training_features": dg.AssetIn(
            partition_mapping=TRAINING_WINDOW, metadata={"allow_missing_partitions": True}
        )
    },
)
def demand_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    training_features: dict[str, pl.LazyFrame],
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    """The street-hail and vacant-supply forecaster trained on the days before this one:
    a versioned CatBoost model with everything needed to reproduce it (parameters, features,
    data window, content hash, code version)."""
    day = partition_day(context)
    window = window_partitions(training_features, day, config.window_days)
    window, skipped = _validated(context, window, config.skip_unvalidated_days)
    if len(window) <= config.validation_days:
        raise dg.Failure(
            description=(
                f"demand_model {day}: {len(window)} validated day(s) of training_features in the "
                f"{config.window_days} days before it ({', '.join(window) or 'none'}); "
                f"training needs more than validation_days={config.validation_days}. "
                "Materialize training_features for earlier days (a backfill) first."
            ),
            allow_retries=False,
        )
    rows = _collect(window)
    params = config.params()
    context.log.info(f"{day}: training on {len(window)} day(s), {rows.height:,} rows")

    warm_start_from = ""
    warm = None
    if config.warm_start:
        pointer = artifacts.production_pointer()
        if pointer is None:
            raise dg.Failure(
                description="warm_start=True, but no model is in production yet to start from",
                allow_retries=False,
            )
        warm_start_from = pointer["model_version"]
        warm = artifacts.load_model(warm_start_from)
        context.log.info(f"Warm start from production model {warm_start_from}")

    cv_metadata: dict[str, Any] = {}
    if config.cross_validation_folds:
        try:
            folds = cross_validate(
                rows,
                params,
                config.cross_validation_folds,
                config.validation_days,
                context.log.info,
            )
        except ValueError as error:  # a window too short for the folds asked for
            raise dg.Failure(description=str(error), allow_retries=False) from error
        cv_metadata = {
            **fold_summary(folds),
            "cv_folds_table": dg.MetadataValue.md(markdown_table(folds, folds.height)),
        }

    model = train_model(rows, params, config.validation_days, warm, context.log.info)
    version = f"{day.isoformat()}-{context.run_id[:8]}"
    trained_at = datetime.now(UTC)
    manifest = {
        "partition": day.isoformat(),
        "params": params.as_dict(),
        "features": list(FEATURES),
        "target": TARGET,
        "window_days": config.window_days,
        "window_start": min(window),
        "window_end": max(window),
        "partitions_used": list(window),
        "validation_days": config.validation_days,
        "training_rows": model.training_rows,
        "validation_rows": model.validation_rows,
        "best_iteration": model.best_iteration,
        "validation_rmse": model.validation_rmse,
        "code_version": CODE_VERSION,
        "training_seconds": round(model.training_seconds, 2),
        "trained_at": trained_at.isoformat(),
        "warm_start_from": warm_start_from,
        "run_id": context.run_id,
        "weather_used": weather_was_used(rows),
    }
    digest = artifacts.save_model(version, model, manifest)
    context.log.info(f"Stored model version {version} ({digest[:12]})")
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "params": dg.MetadataValue.json(params.as_dict()),
            "features": dg.MetadataValue.json(list(FEATURES)),
            "objective": params.objective,
            "window_start": min(window),
            "window_end": max(window),
            "partitions_used": dg.MetadataValue.json(list(window)),
            "training_rows": model.training_rows,
            "validation_rows": model.validation_rows,
            "best_iteration": model.best_iteration,
            "validation_rmse": model.validation_rmse,
            "content_hash": digest,
            "code_version": CODE_VERSION,
            "training_seconds": round(model.training_seconds, 2),
            "trained_at": dg.MetadataValue.timestamp(trained_at),
            "warm_start_from": warm_start_from,
            "weather_used": manifest["weather_used"],
            "days_skipped_unvalidated": dg.MetadataValue.json(skipped),
            "model_path": dg.MetadataValue.path(str(artifacts.model_folder(version))),
            **cv_metadata,
        }
    )


def _predictor_metadata(overall: pl.DataFrame) -> dict[str, float]:
    """``mae``, ``rmse``... for the model; ``<metric>_<predictor>`` for the others."""
    metadata = {}
    for row in overall.iter_rows(named=True):
        suffix = "" if row["predictor"] == "model" else f"_{row['predictor']}"
        for metric in ("mae", "rmse", "poisson_deviance", "mape"):
            if row[metric] is not None:
                metadata[f"{metric}{suffix}"] = float(row[metric])
    return metadata


@dg.asset(
    partitions_def=daily_partitions,
    group_name="model",
    kinds={"catboost", "polars"},
    deps=[demand_model],
    ins={
        "training_features": dg.AssetIn(
            partition_mapping=WINDOW_AND_HELD_OUT_DAY,
            metadata={"allow_missing_partitions": True},
        )
    },
    check_specs=[
        dg.AssetCheckSpec(
            BLESSED_CHECK,
            asset="model_evaluation",
            blocking=True,
            partitions_def=daily_partitions,
            description="The candidate passed every blessing rule; production_model waits "
            "for this.",
        )
    ],
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    training_features: dict[str, pl.LazyFrame],
    artifacts: ArtifactStore,
    probe_source: ProbeSource,
    settings: PipelineSettings,
    evaluation: EvaluationSettings,
) -> dg.MaterializeResult:
    """How the day's candidate model does on a day it never saw, overall and per hour, day
    kind, area and busiest cells, next to the production model, two simple baselines and
    (simulated data) the oracle; and whether it is blessed for production, with reasons."""
    day = partition_day(context)
    version = latest_materialization_metadata(
        context.instance, "demand_model", day.isoformat()
    ).get("model_version")
    if not version:
        raise dg.Failure(
            description=f"demand_model has no materialization for {day}: train it first",
            allow_retries=False,
        )
    manifest = artifacts.manifest(str(version))
    candidate = artifacts.load_model(str(version))
    if day.isoformat() not in training_features:
        raise dg.Failure(
            description=f"training_features has no partition for the held-out day {day}",
            allow_retries=False,
        )
    held_out = training_features[day.isoformat()].collect()
    used = [key for key in manifest["partitions_used"] if key in training_features]
    training_rows = _collect({key: training_features[key] for key in used})

    pointer = artifacts.production_pointer()
    production = None if pointer is None else artifacts.load_model(pointer["model_version"])
    true_demand = probe_source.true_demand(day)
    scored = score_held_out(
        held_out, candidate, training_rows, production, true_demand, settings.bucket_minutes
    )
    predictors = [c.removeprefix("pred_") for c in scored.columns if c.startswith("pred_")]
    overall = overall_metrics(scored, predictors, evaluation.mape_min_pickups)
    busiest = busiest_cells(training_rows, evaluation.busiest_cells)
    slices = slice_metrics(scored, predictors, busiest, evaluation.mape_min_pickups)
    rules = evaluation.rules()
    decision = decide_blessing(overall, slices, rules)
    context.log.info(
        f"{version} on {day}: {'blessed' if decision.blessed else 'NOT blessed'} "
        f"({decision.decided_by}); " + "; ".join(decision.failures)
    )
    artifacts.save_evaluation(
        str(version),
        {
            "model_version": version,
            "content_hash": manifest["content_hash"],
            "held_out_day": day.isoformat(),
            "evaluated_at": datetime.now(UTC).isoformat(),
            "run_id": context.run_id,
            "blessed": decision.blessed,
            "decided_by": decision.decided_by,
            "reasons": list(decision.reasons),
            "rules": rules.__dict__,
            "production_model_version": None if pointer is None else pointer["model_version"],
            "overall": overall.to_dicts(),
            "slices": slices.to_dicts(),
        },
    )
    metrics = _predictor_metadata(overall)
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "content_hash": manifest["content_hash"],
            "held_out_day": day.isoformat(),
            # Manifests written before weather became optional always had weather.
            "weather_used": bool(manifest.get("weather_used", True)),
            "rows": scored.height,
            **metrics,
            "blessed": decision.blessed,
            "decided_by": decision.decided_by,
            "production_model_version": "" if pointer is None else pointer["model_version"],
            "metrics": dg.MetadataValue.md(overall_markdown(overall)),
            "slices": dg.MetadataValue.md(slices_markdown(slices)),
            "blessing_reasons": dg.MetadataValue.md(reasons_markdown(decision)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=BLESSED_CHECK,
                passed=decision.blessed,
                metadata={
                    "model_version": version,
                    "failures": len(decision.failures),
                    "mae": metrics["mae"],
                    "rmse": metrics["rmse"],
                },
                description="; ".join(decision.failures) or f"Blessed ({decision.decided_by})",
            )
        ],
    )


class DeploymentConfig(dg.Config):
    """What to deploy. By default: the most recently evaluated model, if it is blessed."""

    model_version: str | None = Field(
        default=None, description="A model version to deploy (default: the latest evaluated)."
    )
    rollback: bool = Field(
        default=False, description="Go back to the model deployed before the current one."
    )
    override_reason: str | None = Field(
        default=None,
        description="Emergencies only: deploy although not blessed. The reason is recorded.",
    )


# An override reason short enough to be "x" or "asdf" explains nothing to the next person.
MIN_OVERRIDE_REASON_CHARS = 15


def launched_by(context: dg.AssetExecutionContext) -> str:
    """Who or what started the run: a schedule, a sensor, a backfill, or a person."""
    tags = context.run.tags
    for tag, kind in (
        ("dagster/schedule_name", "schedule"),
        ("dagster/sensor_name", "sensor"),
        ("dagster/backfill", "backfill"),
    ):
        if tag in tags:
            return f"{kind} {tags[tag]}"
    user = tags.get("user") or tags.get("dagster/user") or getpass.getuser()
    return f"user {user}"


def _verified_evaluation(
    context: dg.AssetExecutionContext, artifacts: ArtifactStore, version: str
) -> dict[str, Any] | None:
    """The version's evaluation report, after checking it judged these very model files and
    that Dagster recorded the same verdict. None when it was never evaluated."""
    report = artifacts.evaluation(version)
    if report is None:
        return None
    stored = artifacts.stored_hash(version)
    if report["content_hash"] != stored:
        raise dg.Failure(
            description=f"{version}: the evaluation judged files hashing to "
            f"{report['content_hash'][:12]}, the stored files hash to {stored[:12]}",
            allow_retries=False,
        )
    recorded = latest_materialization_metadata(
        context.instance, "model_evaluation", report["held_out_day"]
    )
    if recorded.get("model_version") == version and bool(recorded.get("blessed")) != bool(
        report["blessed"]
    ):
        raise dg.Failure(
            description=f"{version}: the evaluation report and Dagster's record disagree on "
            "the blessing; re-run model_evaluation",
            allow_retries=False,
        )
    return report


def _deployment_entry(version: str, content_hash: str, report: dict[str, Any] | None) -> dict:
    metrics = {}
    if report is not None:
        model = next(row for row in report["overall"] if row["predictor"] == "model")
        metrics = {k: model[k] for k in ("mae", "rmse", "poisson_deviance") if model[k] is not None}
    return {
        "model_version": version,
        "content_hash": content_hash,
        "blessed": bool(report and report["blessed"]),
        "metrics": metrics,
    }


@dg.asset(group_name="model", kinds={"catboost"}, deps=[model_evaluation])
def production_model(
    context: dg.AssetExecutionContext, config: DeploymentConfig, artifacts: ArtifactStore
) -> dg.MaterializeResult:
    """The model the live forecast uses: a pointer that only ever moves to a blessed model
    (or, in an emergency, to one overridden with a recorded reason), with its deployment
    history so a rollback is one materialization."""
    current = artifacts.production_pointer()
    if config.rollback:
        if current is None or not current["history"]:
            raise dg.Failure(
                description="Nothing to roll back to: no model was deployed before the current one",
                allow_retries=False,
            )
        version = current["history"][0]["model_version"]
        history = current["history"][1:]
        report = _verified_evaluation(context, artifacts, version)
        action, reason = "rollback", (config.override_reason or "").strip()
    else:
        version = config.model_version or _latest_evaluated_version(context)
        report = _verified_evaluation(context, artifacts, version)
        action, reason = _deploy_action(context, version, report, config.override_reason)
        if current is None:
            history = []
        elif current["model_version"] == version:
            history = current["history"]  # a re-deploy does not push itself
        else:
            history = [_without_history(current), *current["history"]]

    try:
        artifacts.load_model(version)  # the files exist and match their manifest
    except RegistryError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    content_hash = artifacts.manifest(version)["content_hash"]
    deployed_at = datetime.now(UTC)
    who = launched_by(context)
    pointer = {
        **_deployment_entry(version, content_hash, report),
        "action": action,
        "override_reason": reason,
        "triggered_by": who,
        "run_id": context.run_id,
        "deployed_at": deployed_at.isoformat(),
        "history": history,
    }
    artifacts.set_production_pointer(pointer)
    context.log.info(f"production_model -> {version} ({action}, by {who})")
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "content_hash": content_hash,
            "action": action,
            "blessed": pointer["blessed"],
            "override_reason": reason,
            "triggered_by": who,
            "deployed_at": dg.MetadataValue.timestamp(deployed_at),
            "previous_model_version": "" if current is None else current["model_version"],
            "deployments_in_history": len(pointer["history"]),
            **{key: float(value) for key, value in pointer["metrics"].items()},
        }
    )


def _deploy_action(
    context: dg.AssetExecutionContext,
    version: str,
    report: dict[str, Any] | None,
    override_reason: str | None,
) -> tuple[str, str]:
    """("deploy", "") for a blessed model, ("override", reason) for an emergency override;
    anything else is refused."""
    reason = (override_reason or "").strip()
    if report is not None and report["blessed"]:
        return "deploy", reason
    if len(reason) >= MIN_OVERRIDE_REASON_CHARS:
        context.log.warning(f"Deploying UNBLESSED model {version} by override: {reason}")
        return "override", reason
    why = (
        "it was never evaluated"
        if report is None
        else "its evaluation did not bless it: "
        + "; ".join(r for r in report["reasons"] if r.endswith("FAIL"))
    )
    raise dg.Failure(
        description=f"Refusing to deploy {version}: {why}. An emergency override needs "
        f"override_reason (at least {MIN_OVERRIDE_REASON_CHARS} characters).",
        allow_retries=False,
    )


def _without_history(pointer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in pointer.items() if key != "history"}


def _latest_evaluated_version(context: dg.AssetExecutionContext) -> str:
    version = latest_materialization_metadata(context.instance, "model_evaluation").get(
        "model_version"
    )
    if not version:
        raise dg.Failure(
            description="No model has been evaluated yet: materialize model_evaluation first",
            allow_retries=False,
        )
    return str(version)
