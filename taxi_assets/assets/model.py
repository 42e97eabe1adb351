"""The model: trained daily, evaluated on a day it never saw, deployed only when blessed.

``demand_model`` for day D trains on the ``window_days`` days before D (the last of them
for early stopping); ``model_evaluation`` for D scores it on D itself, side by side with
the production model, two baselines and, on simulated data, the oracle; a blocking check
stops ``production_model`` in the same run when the candidate is not blessed, and the
deploy step finds Dagster's own record of the evaluation of those exact model files (by
content hash) and applies the deployment rules of :mod:`taxi_assets.model.deployment`: no file
in the artifact store and no run configuration can change a verdict.
"""

import dataclasses
import getpass
import typing
from collections.abc import Iterator
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import dagster as dg
import polars as pl
import pydantic
from pydantic import Field

from taxi_assets.features import FEATURES, HORIZONS, TARGET
from taxi_assets.metadata import latest_materialization_metadata, markdown_table
from taxi_assets.model.blessing import decide_blessing_at_every_horizon, reasons_markdown
from taxi_assets.model.deployment import (
    Candidate,
    DeploymentRefused,
    Verdict,
    days_seen_on_or_after,
    decide_deploy,
    decide_rollback,
    moved_pointer,
)
from taxi_assets.model.evaluation import (
    by_horizon,
    horizon_metadata,
    horizon_metrics,
    horizons_markdown,
    overall_markdown,
    overall_metrics,
    predictor_metadata,
    slice_metrics,
    slices_markdown,
)
from taxi_assets.model.registry import ArtifactStore, PointerConflict, RegistryError
from taxi_assets.model.scoring import busiest_cells, cross_validate, fold_summary, score_held_out
from taxi_assets.model.training import (
    CODE_VERSION,
    TrainingParams,
    train_model,
    window_partitions,
)
from taxi_assets.partitions import daily_partitions, partition_day
from taxi_assets.pictures import evaluation_picture
from taxi_assets.settings import EvaluationSettings, PipelineSettings
from taxi_assets.sources.base import ProbeSource
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


class TrainingRunConfig(dg.Config):
    """How one training run is set up besides the hyper-parameters."""

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

    def params(self) -> TrainingParams:
        return TrainingParams(
            **{
                param.name: getattr(self, param.name)
                for param in dataclasses.fields(TrainingParams)
            }
        )


def _hyper_parameter_fields() -> dict[str, Any]:
    """TrainingParams' fields as config fields: same names, types, defaults and bounds."""
    types = typing.get_type_hints(TrainingParams)
    return {
        param.name: (types[param.name], Field(default=param.default, **param.metadata))
        for param in dataclasses.fields(TrainingParams)
    }


# The run config and the hyper-parameters of TrainingParams, which define them once.
TrainingConfig = pydantic.create_model(
    "TrainingConfig",
    __base__=TrainingRunConfig,
    __doc__="How one training run is set up; all of it lands in the model's manifest.",
    **_hyper_parameter_fields(),
)


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
        seen = days_seen_on_or_after(artifacts.manifest(warm_start_from), day)
        if seen:
            raise dg.Failure(
                description=f"warm_start=True, but production model {warm_start_from} trained "
                f"on {', '.join(seen)}, on or after {day}: a model for {day} must not start "
                "from trees that saw its held-out day. Train cold (warm_start: false).",
                allow_retries=False,
            )
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
        "horizons": list(HORIZONS),
        "window_days": config.window_days,
        "window_start": min(window),
        "window_end": max(window),
        "partitions_used": list(window),
        "validation_days": config.validation_days,
        "training_rows": model.training_rows,
        "sampled_rows": model.sampled_rows,
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
            "horizons": ", ".join(str(h) for h in HORIZONS),
            "window_start": min(window),
            "window_end": max(window),
            "partitions_used": dg.MetadataValue.json(list(window)),
            "training_rows": model.training_rows,
            "sampled_rows": model.sampled_rows,
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


def refuse_per_run_rules(context: dg.AssetExecutionContext) -> None:
    """The blessing rules are the deployment's: a run's config may not loosen them."""
    resources = (context.run.run_config or {}).get("resources") or {}
    changed = (resources.get("evaluation") or {}).get("config")
    if changed:
        raise dg.Failure(
            description=(
                "The blessing rules are the deployment's, not a run's: this run's config sets "
                f"resources.evaluation.config ({', '.join(sorted(changed))}). Remove it from "
                "the run config; to change the rules for every run, change EvaluationSettings "
                "in the deployment (taxi_assets/resources.py) and re-evaluate."
            ),
            allow_retries=False,
        )


def recorded_verdict(instance: dg.DagsterInstance, content_hash: str) -> Verdict | None:
    """Dagster's latest ``model_evaluation`` of the model files hashing to ``content_hash``,
    whichever day it was for; None if those files were never evaluated. Only the instance's
    record counts: nothing in the artifact store can change it."""
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetKey("model_evaluation"), limit=100, cursor=cursor, ascending=False
        )
        for record in page.records:
            materialization = record.asset_materialization
            if materialization is None:
                continue
            metadata = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            if metadata.get("content_hash") != content_hash:
                continue
            return Verdict(
                content_hash=content_hash,
                model_version=str(metadata.get("model_version")),
                held_out_day=str(metadata.get("held_out_day") or materialization.partition),
                blessed=bool(metadata.get("blessed")),
                rules_fingerprint=metadata.get("rules_fingerprint"),
                run_id=record.run_id,
                metrics={
                    k: float(metadata[k])
                    for k in ("mae", "rmse", "poisson_deviance")
                    if isinstance(metadata.get(k), int | float)
                },
            )
        if not page.has_more:
            return None
        cursor = page.cursor


def _production_to_compare(
    artifacts: ArtifactStore, pointer: dict[str, Any] | None, day: date
) -> tuple[Any, str]:
    """The production model to judge the candidate against on ``day``, and why not if none:
    a production model whose training window reaches the held-out day has seen it."""
    if pointer is None:
        return None, ""
    version = pointer["model_version"]
    seen = days_seen_on_or_after(artifacts.manifest(version), day)
    if seen:
        return None, (
            f"production {version} trained on {', '.join(seen)}, on or after the held-out day "
            f"{day}: comparing with it would favour it, so the baselines decide"
        )
    return artifacts.load_model(version), ""


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
    """How the day's candidate model does on a day it never saw, for the bucket in progress
    and up to 30 minutes ahead (each horizon apart and all together), overall and per hour,
    day kind, area and busiest cells, next to the production model, two simple baselines and
    (simulated data) the oracle; and whether it is blessed for production at every horizon,
    with reasons."""
    refuse_per_run_rules(context)
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
    production, production_excluded = _production_to_compare(artifacts, pointer, day)
    if production_excluded:
        context.log.warning(production_excluded)
    true_demand = probe_source.true_demand(day)
    scored = score_held_out(
        held_out, candidate, training_rows, production, true_demand, settings.bucket_minutes
    )
    predictors = [c.removeprefix("pred_") for c in scored.columns if c.startswith("pred_")]
    overall = overall_metrics(scored, predictors, evaluation.mape_min_pickups)
    busiest = busiest_cells(training_rows, evaluation.busiest_cells)
    slices = slice_metrics(scored, predictors, busiest, evaluation.mape_min_pickups)
    per_horizon = horizon_metrics(scored, predictors, evaluation.mape_min_pickups)
    slices_per_horizon = {
        horizon: slice_metrics(rows, predictors, busiest, evaluation.mape_min_pickups)
        for horizon, rows in by_horizon(scored).items()
    }
    rules = evaluation.rules()
    decision = decide_blessing_at_every_horizon(
        overall,
        slices,
        {
            horizon: (per_horizon.filter(pl.col("horizon") == horizon).drop("horizon"), table)
            for horizon, table in slices_per_horizon.items()
        },
        rules,
    )
    compared_with = "" if pointer is None or production_excluded else pointer["model_version"]
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
            "rules_fingerprint": rules.fingerprint(),
            "production_model_version": compared_with or None,
            "production_excluded": production_excluded,
            "overall": overall.to_dicts(),
            "slices": slices.to_dicts(),
            "horizons": per_horizon.to_dicts(),
            "slices_per_horizon": {
                str(horizon): table.to_dicts() for horizon, table in slices_per_horizon.items()
            },
        },
    )
    metrics = predictor_metadata(overall)
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "content_hash": manifest["content_hash"],
            "held_out_day": day.isoformat(),
            # Manifests written before weather became optional always had weather.
            "weather_used": bool(manifest.get("weather_used", True)),
            "rows": scored.height,
            "horizons": ", ".join(str(h) for h in slices_per_horizon),
            **metrics,
            **horizon_metadata(per_horizon),
            "blessed": decision.blessed,
            "decided_by": decision.decided_by,
            "rules_fingerprint": rules.fingerprint(),
            "production_model_version": compared_with,
            "production_excluded": production_excluded,
            "metrics": dg.MetadataValue.md(overall_markdown(overall)),
            "metrics_per_horizon": dg.MetadataValue.md(horizons_markdown(per_horizon)),
            "slices": dg.MetadataValue.md(slices_markdown(slices)),
            "blessing_reasons": dg.MetadataValue.md(reasons_markdown(decision)),
            "error_by_hour": evaluation_picture(slices, scored),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=BLESSED_CHECK,
                passed=decision.blessed,
                metadata={
                    "model_version": version,
                    "failures": len(decision.failures),
                    "rmse": metrics["rmse"],
                    "poisson_deviance": metrics["poisson_deviance"],
                    "rules_fingerprint": rules.fingerprint(),
                },
                description="; ".join(decision.failures) or f"Blessed ({decision.decided_by})",
            )
        ],
    )


class DeploymentConfig(dg.Config):
    """What to deploy. By default: the model evaluated for this run's day (or the latest
    evaluated), if Dagster's record of its evaluation blessed it."""

    model_version: str | None = Field(
        default=None, description="A model version to deploy (default: the latest evaluated)."
    )
    rollback: bool = Field(
        default=False,
        description="Go back to the model deployed before the current one (needs "
        "override_reason if that one was not blessed).",
    )
    override_reason: str | None = Field(
        default=None,
        description="Emergencies only: deploy although not blessed, or older than "
        "production. The reason is recorded.",
    )
    allow_older_model: bool = Field(
        default=False,
        description="Deploy a model trained for an earlier day than production's (with "
        "override_reason). Backfills never move production back.",
    )


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


def _candidate(
    artifacts: ArtifactStore, version: str, verdict_for: Any
) -> tuple[Candidate, Verdict | None]:
    """The version as stored now (files checked against their manifest) and Dagster's
    verdict on those very bytes."""
    try:
        artifacts.load_model(version)  # the files exist and match their manifest
        content_hash = artifacts.stored_hash(version)
        manifest = artifacts.manifest(version)
    except RegistryError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    verdict = verdict_for(content_hash)
    # The day comes from Dagster's record when there is one: a manifest is only a file.
    day = verdict.held_out_day if verdict else str(manifest.get("partition", version[:10]))
    return Candidate(version, content_hash, day), verdict


@dg.asset(group_name="model", kinds={"catboost"}, deps=[model_evaluation], output_required=False)
def production_model(
    context: dg.AssetExecutionContext,
    config: DeploymentConfig,
    artifacts: ArtifactStore,
    evaluation: EvaluationSettings,
) -> Iterator[dg.MaterializeResult]:
    """The model the live forecast uses: a pointer that only ever moves to a model Dagster's
    own evaluation record blessed under the deployment's rules (or, in an emergency, to one
    overridden with a recorded reason), forward in time unless someone says why, with its
    deployment history so a rollback is one materialization."""
    refuse_per_run_rules(context)
    fingerprint = evaluation.rules().fingerprint()
    current, generation = artifacts.read_production_pointer()
    verdict_for = partial(recorded_verdict, context.instance)
    try:
        if config.rollback:
            if current is None or not current["history"]:
                raise DeploymentRefused(
                    "Nothing to roll back to: no model was deployed before the current one"
                )
            target = current["history"][0]
            candidate, verdict = _candidate(artifacts, target["model_version"], verdict_for)
            move = decide_rollback(target, verdict, config.override_reason)
        else:
            version = config.model_version or _latest_evaluated_version(context)
            candidate, verdict = _candidate(artifacts, version, verdict_for)
            move = decide_deploy(
                candidate,
                verdict,
                current,
                fingerprint,
                config.override_reason,
                config.allow_older_model,
                in_backfill="dagster/backfill" in context.run.tags,
            )
    except DeploymentRefused as refused:
        raise dg.Failure(description=str(refused), allow_retries=False) from refused
    if move.action == "keep":
        context.log.info(
            f"production_model stays at {current and current['model_version']}: {move.note}"
        )
        return
    if move.note:
        context.log.warning(
            f"{move.action} of {candidate.model_version}: {move.note}; reason: {move.reason}"
        )

    deployed_at = datetime.now(UTC)
    who = launched_by(context)
    entry = {
        "model_version": candidate.model_version,
        "content_hash": candidate.content_hash,
        "training_day": candidate.training_day,
        "blessed": move.action in ("deploy", "rollback"),
        "evaluation_run_id": verdict.run_id if verdict else None,
        "rules_fingerprint": verdict.rules_fingerprint if verdict else None,
        "deployment_rules_fingerprint": fingerprint,
        "metrics": dict(verdict.metrics) if verdict else {},
        "triggered_by": who,
        "run_id": context.run_id,
        "deployed_at": deployed_at.isoformat(),
    }
    pointer = moved_pointer(current, entry, move)
    try:
        artifacts.swap_production_pointer(pointer, generation)
    except PointerConflict as conflict:
        raise dg.Failure(description=str(conflict), allow_retries=False) from conflict
    context.log.info(f"production_model -> {candidate.model_version} ({move.action}, by {who})")
    yield dg.MaterializeResult(
        metadata={
            "model_version": candidate.model_version,
            "content_hash": candidate.content_hash,
            "training_day": candidate.training_day,
            "action": move.action,
            "blessed": pointer["blessed"],
            "override_reason": move.reason,
            "moved_backwards": move.moved_backwards,
            "rules_fingerprint": entry["rules_fingerprint"] or "",
            "deployment_rules_fingerprint": fingerprint,
            "evaluation_run_id": entry["evaluation_run_id"] or "",
            "triggered_by": who,
            "deployed_at": dg.MetadataValue.timestamp(deployed_at),
            "previous_model_version": "" if current is None else current["model_version"],
            "deployments_in_history": len(pointer["history"]),
            **{key: float(value) for key, value in pointer["metrics"].items()},
        }
    )


def _latest_evaluated_version(context: dg.AssetExecutionContext) -> str:
    """The model evaluated for this run's day (a partitioned training run), else the latest
    evaluated of any day."""
    partition = context.run.tags.get("dagster/partition")
    version = latest_materialization_metadata(context.instance, "model_evaluation", partition).get(
        "model_version"
    )
    if not version:
        where = f" for {partition}" if partition else ""
        raise dg.Failure(
            description=f"No model has been evaluated{where} yet: materialize "
            "model_evaluation first",
            allow_retries=False,
        )
    return str(version)
