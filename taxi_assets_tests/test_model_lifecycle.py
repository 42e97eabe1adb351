"""The model lifecycle through Dagster: train, evaluate, gate, deploy, forecast, roll back.

The data of a small simulated city is materialized and validated once per module, in one
instance the tests share (training reads the validation results from it); every test gets
its own artifact store, so deployments of one test never leak into another.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

from taxi_assets.definitions import ASSET_MODULES, build_definitions
from taxi_assets.model.experiments import compare_versions, model_versions
from taxi_assets.model.registry import ArtifactStore
from taxi_assets.resources import local_resources
from taxi_assets.settings import EvaluationSettings, ValidationSettings
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets_tests.conftest import SMALL_FLEET

DAYS = ("2026-04-27", "2026-04-28", "2026-04-29", "2026-04-30", "2026-05-01")
HELD_OUT = DAYS[-1]
TICK = "2026-05-01T18:07:00+09:00"
FAST_TRAINING = {"iterations": 10, "supply_iterations": 5, "early_stopping_rounds": 5}
# The gate's outcome must not hinge on how well a tiny model does on a 60-taxi city:
# these settings bless any model (no bounds, no baselines to beat, wide tolerances)...
BLESS_ANY = EvaluationSettings(
    must_beat_baselines=False, production_tolerance=10.0, slice_tolerance=10.0
)
# ...and these bless none (an absolute RMSE bound no model meets).
BLESS_NONE = EvaluationSettings(max_rmse=1e-9)


# The drift thresholds are calibrated for 1,000 taxis; a 60-taxi city wanders more from
# day to day, so its validation here only catches gross breakage.
LOOSE_DRIFT = ValidationSettings(
    numeric_js_threshold=1.0,
    categorical_linf_threshold=1.0,
    row_count_ratio_min=0.0,
    row_count_ratio_max=100.0,
    use_calibrated_per_feature=False,
)


def source() -> SimulatedProbeSource:
    return SimulatedProbeSource(fleet_size=SMALL_FLEET, seed=7)


def data_path(
    data_dir: Path, instance: dg.DagsterInstance, day: str, validation: ValidationSettings
) -> dg.ExecuteInProcessResult:
    resources = local_resources(str(data_dir), str(data_dir / "unused_artifacts"), source())
    return dg.materialize(
        dg.load_assets_from_modules(list(ASSET_MODULES)),
        selection=dg.AssetSelection.groups(
            "ingestion", "cleaning", "demand", "validation", "features"
        ),
        partition_key=day,
        resources={**resources, "validation": validation},
        instance=instance,
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    """Five validated days of cell demand, weather and training features, and the instance
    that recorded their validation."""
    data_dir = tmp_path_factory.mktemp("lifecycle") / "data"
    with dg.instance_for_test() as instance:
        for day in DAYS:
            assert data_path(data_dir, instance, day, LOOSE_DRIFT).success
        yield data_dir, instance


class Platform:
    """The code location over the shared data and instance, with its own artifacts."""

    def __init__(self, data_dir: Path, artifacts_dir: Path, instance: dg.DagsterInstance):
        self.artifacts = ArtifactStore(base_dir=str(artifacts_dir))
        self.instance = instance
        self.resources = local_resources(str(data_dir), str(artifacts_dir), source())
        self.data_dir = data_dir

    def defs(self, evaluation: EvaluationSettings) -> dg.Definitions:
        return build_definitions({**self.resources, "evaluation": evaluation})

    def run(
        self,
        job: str,
        partition: str | None = None,
        ops: dict[str, Any] | None = None,
        evaluation: EvaluationSettings = BLESS_ANY,
        tags: dict[str, str] | None = None,
        run_resources: dict[str, Any] | None = None,
    ) -> dg.ExecuteInProcessResult:
        run_config: dict[str, Any] = {"ops": ops or {}}
        if run_resources:
            run_config["resources"] = run_resources
        return (
            self.defs(evaluation)
            .resolve_job_def(job)
            .execute_in_process(
                partition_key=partition,
                instance=self.instance,
                run_config=run_config,
                raise_on_error=False,
                tags=tags,
            )
        )

    def train(
        self,
        day: str = HELD_OUT,
        evaluation: EvaluationSettings = BLESS_ANY,
        tags: dict[str, str] | None = None,
        run_resources: dict[str, Any] | None = None,
        **config: Any,
    ) -> dg.ExecuteInProcessResult:
        training = {"window_days": 4, **FAST_TRAINING, **config}
        return self.run(
            "training_job",
            day,
            {"demand_model": {"config": training}},
            evaluation=evaluation,
            tags=tags,
            run_resources=run_resources,
        )

    def deploy(self, evaluation: EvaluationSettings = BLESS_ANY, **config: Any):
        defs = self.defs(evaluation)
        return dg.materialize(
            [spec for spec in dg.load_assets_from_modules(list(ASSET_MODULES))],
            selection="production_model",
            resources=defs.resources,
            instance=self.instance,
            run_config={"ops": {"production_model": {"config": config}}},
            raise_on_error=False,
        )

    def trained_version(self, result: dg.ExecuteInProcessResult) -> str:
        return self.metadata(result, "demand_model")["model_version"]

    def metadata(self, result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
        for event in result.get_asset_materialization_events():
            if event.asset_key.to_user_string() == asset:
                return {
                    k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()
                }
        raise AssertionError(f"{asset} was not materialized")

    def pointer(self) -> dict[str, Any] | None:
        return self.artifacts.production_pointer()


@pytest.fixture
def platform(city: tuple[Path, dg.DagsterInstance], tmp_path: Path) -> Platform:
    data_dir, instance = city
    return Platform(data_dir, tmp_path / "artifacts", instance)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    [failure] = result.get_step_failure_events()
    return failure.step_failure_data.error.message


def forge_blessing(platform: Platform, version: str, held_out_day: str = HELD_OUT) -> None:
    """What an attacker with write access to the artifact store does: a report that says
    the version was blessed on a day."""
    report_path = platform.artifacts.model_folder(version) / "evaluation.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    report.update(
        blessed=True,
        held_out_day=held_out_day,
        model_version=version,
        content_hash=platform.artifacts.stored_hash(version),
        reasons=[],
    )
    report_path.write_text(json.dumps(report))


def test_train_evaluate_deploy_and_forecast(platform: Platform) -> None:
    result = platform.train()
    assert result.success
    assert materialized(result) == {"demand_model", "model_evaluation", "production_model"}

    model = platform.metadata(result, "demand_model")
    version = model["model_version"]
    assert version.startswith(HELD_OUT)
    assert model["window_start"] == "2026-04-27" and model["window_end"] == "2026-04-30"
    assert model["partitions_used"] == list(DAYS[:-1])
    assert model["params"]["iterations"] == 10 and "hails_last_week" in model["features"]
    assert len(model["content_hash"]) == 64 and model["code_version"]
    manifest = platform.artifacts.manifest(version)
    assert manifest["content_hash"] == model["content_hash"]
    # The simulator delivers weather: the model, its manifest and its evaluation say so.
    assert model["weather_used"] is True and manifest["weather_used"] is True

    evaluation = platform.metadata(result, "model_evaluation")
    for key in (
        "mae",
        "rmse",
        "poisson_deviance",
        "mae_last_week",
        "mae_historical_average",
        "rmse_oracle",
        "poisson_deviance_oracle",
        # Every metric again per horizon, so the UI plots 15 and 30 minutes ahead too.
        "rmse_h0",
        "rmse_h2",
        "poisson_deviance_h1",
        "rmse_last_week_h2",
        "poisson_deviance_historical_average_h2",
        "rmse_oracle_h2",
    ):
        assert isinstance(evaluation[key], float), key
    assert evaluation["horizons"] == "0, 1, 2"
    assert "| 2 " in evaluation["metrics_per_horizon"]
    assert evaluation["blessed"] is True and evaluation["weather_used"] is True
    assert evaluation["decided_by"] == "baselines (no production model yet)"
    assert "mae_production" not in evaluation  # nothing in production to compare with yet
    assert (
        "| hour | 08 |" in evaluation["slices"] and "| busiest | busiest |" in evaluation["slices"]
    )
    assert "no production model yet" in evaluation["blessing_reasons"]

    assert platform.pointer()["model_version"] == version
    assert platform.metadata(result, "production_model")["action"] == "deploy"

    forecast_run = platform.run("forecast_job", ops={"demand_forecast": {"config": {"tick": TICK}}})
    assert forecast_run.success
    forecast = pl.read_parquet(platform.data_dir / "demand_forecast.parquet")
    assert forecast.height == 3 * 1520 and forecast["cell"].n_unique() == 1520
    assert forecast["model_version"].unique().to_list() == [version]
    # The 18:07 tick forecasts the bucket in progress, 18:00-18:15 Tokyo (09:00 UTC), and
    # the next two.
    assert forecast.group_by("horizon", "bucket_start").len().sort("horizon").select(
        "horizon", pl.col("bucket_start").dt.to_string("%H:%M"), "len"
    ).rows() == [(0, "09:00", 1520), (1, "09:15", 1520), (2, "09:30", 1520)]
    assert (forecast["expected_street_hails"] >= 0).all()
    assert platform.metadata(forecast_run, "demand_forecast")["model_version"] == version
    guidance = pl.read_parquet(platform.data_dir / "cruising_guidance.parquet")
    assert guidance.height == 1520 and guidance["route"].list.len().min() >= 1
    assert guidance["target_expected_hails"].is_between(0, 1).all()
    skew = platform.metadata(forecast_run, "serving_skew")
    assert skew["model_version"] == version and skew["serving_rows"] == 3 * 1520
    assert skew["training_rows_compared"] > 0  # the same slot on the window's days
    assert all(isinstance(skew[f"js_{name}"], float) for name in ("hails_prev_1", "vacant_prev_1"))
    [skew_check] = forecast_run.get_asset_check_evaluations()
    assert skew_check.check_name == "no_training_serving_skew"
    assert skew_check.severity == dg.AssetCheckSeverity.WARN

    accuracy_run = platform.run("monitoring_job", HELD_OUT)
    assert accuracy_run.success
    accuracy = platform.metadata(accuracy_run, "forecast_accuracy")
    assert accuracy["ticks"] == 1 and accuracy["rows"] == 3 * 1520
    assert isinstance(accuracy["mae"], float)
    assert all(isinstance(accuracy[f"rmse_h{h}"], float) for h in (0, 1, 2))
    assert accuracy["rmse_in_evaluation"] > 0 and accuracy["poisson_deviance_in_evaluation"] > 0
    replay = platform.metadata(accuracy_run, "guidance_accuracy")
    assert replay["ticks"] == 1 and replay["vacant_taxis"] > 0
    assert isinstance(replay["hails_per_vacant_taxi_following"], float)


def test_second_model_is_judged_against_production(platform: Platform) -> None:
    first = platform.train()
    second = platform.train()
    assert first.success and second.success
    evaluation = platform.metadata(second, "model_evaluation")
    assert (
        evaluation["production_model_version"]
        == platform.metadata(first, "demand_model")["model_version"]
    )
    assert isinstance(evaluation["mae_production"], float)
    assert evaluation["decided_by"] == "production and baselines"


def test_an_unblessed_model_never_becomes_production(platform: Platform) -> None:
    blessed = platform.train()
    assert blessed.success
    production = platform.pointer()["model_version"]

    rejected = platform.train(evaluation=BLESS_NONE)
    assert not rejected.success
    assert materialized(rejected) == {"demand_model", "model_evaluation"}
    checks = rejected.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("blessed", False)]
    assert "rmse" in checks[0].description and "FAIL" in checks[0].description
    assert platform.pointer()["model_version"] == production

    # A later run selecting only the deploy step, aimed at the rejected model, refuses too.
    candidate = platform.metadata(rejected, "demand_model")["model_version"]
    later = platform.deploy(evaluation=BLESS_NONE, model_version=candidate)
    assert not later.success
    failure = later.get_step_failure_events()[0].step_failure_data.error
    assert "Refusing to deploy" in failure.message and "not bless" in failure.message
    assert platform.pointer()["model_version"] == production

    # A short excuse is not a reason.
    assert not platform.deploy(model_version=candidate, override_reason="urgent").success
    assert platform.pointer()["model_version"] == production


def test_override_deploys_an_unblessed_model_and_records_why(platform: Platform) -> None:
    rejected = platform.train(evaluation=BLESS_NONE)
    candidate = platform.metadata(rejected, "demand_model")["model_version"]
    reason = "Incident 4711: production model files lost, any model beats none"
    result = platform.deploy(model_version=candidate, override_reason=reason)
    assert result.success
    metadata = platform.metadata(result, "production_model")
    assert metadata["action"] == "override" and metadata["blessed"] is False
    assert metadata["override_reason"] == reason
    assert metadata["triggered_by"].startswith("user ")
    assert isinstance(metadata["rmse"], float)  # the metrics it was deployed with
    pointer = platform.pointer()
    assert pointer["override_reason"] == reason and pointer["model_version"] == candidate


def test_rollback_is_one_materialization(platform: Platform) -> None:
    first = platform.metadata(platform.train(day="2026-04-30"), "demand_model")["model_version"]
    second = platform.metadata(platform.train(), "demand_model")["model_version"]
    assert platform.pointer()["model_version"] == second
    assert [entry["model_version"] for entry in platform.pointer()["history"]] == [first]

    result = platform.deploy(rollback=True)
    assert result.success
    assert platform.metadata(result, "production_model")["action"] == "rollback"
    assert platform.metadata(result, "production_model")["blessed"] is True
    assert platform.pointer()["model_version"] == first
    assert platform.pointer()["history"] == []
    # Nothing older to go back to.
    assert not platform.deploy(rollback=True).success


def test_a_model_changed_after_evaluation_is_not_deployed(platform: Platform) -> None:
    platform.train(evaluation=BLESS_NONE)  # evaluated (not blessed), files on disk
    assert platform.pointer() is None
    candidate = model_versions(platform.instance)["model_version"][0]
    forge_blessing(platform, candidate)  # someone edits the report by hand...
    result = platform.deploy(evaluation=BLESS_NONE, model_version=candidate)
    assert not result.success  # ...but Dagster's record of the evaluation is the verdict
    assert "did not bless it" in failure_message(result)

    (platform.artifacts.model_folder(candidate) / "demand.cbm").write_bytes(b"tampered")
    result = platform.deploy(model_version=candidate)
    assert not result.success
    assert "hash" in failure_message(result)
    assert platform.pointer() is None


def test_a_forged_report_of_a_model_never_evaluated_does_not_deploy(platform: Platform) -> None:
    assert platform.train().success  # a blessed model in production
    # A retrained model of the same day, never evaluated: only its training ran.
    defs = platform.defs(BLESS_ANY)
    only_trained = dg.materialize(
        dg.load_assets_from_modules(list(ASSET_MODULES)),
        selection="demand_model",
        partition_key=HELD_OUT,
        resources=defs.resources,
        instance=platform.instance,
        run_config={
            "ops": {"demand_model": {"config": {"window_days": 4, **FAST_TRAINING, "depth": 3}}}
        },
    )
    version = platform.trained_version(only_trained)
    production = platform.pointer()["model_version"]
    forge_blessing(platform, version)
    result = platform.deploy(model_version=version)
    assert not result.success
    assert "never evaluated" in failure_message(result)
    assert platform.pointer()["model_version"] == production


def test_a_forged_report_after_a_retrain_of_the_same_day_does_not_deploy(
    platform: Platform,
) -> None:
    """Dagster's latest evaluation of the day belongs to another version: the verdict is
    still found by the rejected model's own content hash."""
    rejected = platform.trained_version(platform.train(evaluation=BLESS_NONE))
    blessed = platform.train(depth=4)
    assert blessed.success
    production = platform.pointer()["model_version"]
    assert production == platform.trained_version(blessed)
    forge_blessing(platform, rejected)
    result = platform.deploy(evaluation=BLESS_NONE, model_version=rejected)
    assert not result.success
    assert "did not bless it" in failure_message(result)
    assert platform.pointer()["model_version"] == production


def test_rules_loosened_in_one_runs_config_are_refused(platform: Platform) -> None:
    loosened = {
        "evaluation": {
            "config": {
                "production_tolerance": 1000.0,
                "slice_tolerance": 1000.0,
                "must_beat_baselines": False,
            }
        }
    }
    attack = platform.train(evaluation=BLESS_NONE, run_resources=loosened)  # BLESS_NONE: strict
    assert not attack.success
    assert materialized(attack) == {"demand_model"}
    message = failure_message(attack)
    assert "blessing rules are the deployment's" in message
    assert "resources.evaluation.config" in message and "production_tolerance" in message
    assert platform.pointer() is None


def test_an_evaluation_under_other_rules_than_the_deployments_is_refused(
    platform: Platform,
) -> None:
    """Evaluated and blessed while the deployment had looser rules; deployed under today's
    (stricter) ones, the verdict no longer counts; the pointer records the fingerprint."""
    result = platform.train()
    assert result.success
    pointer = platform.pointer()
    assert pointer["rules_fingerprint"] == BLESS_ANY.rules().fingerprint()
    assert pointer["deployment_rules_fingerprint"] == BLESS_ANY.rules().fingerprint()
    assert pointer["evaluation_run_id"] == result.run_id

    strict = EvaluationSettings(production_tolerance=0.0)
    refused = platform.deploy(
        evaluation=strict,
        model_version=pointer["model_version"],
    )
    assert not refused.success
    assert "other blessing rules" in failure_message(refused)
    assert "re-run model_evaluation" in failure_message(refused)


def test_rollback_to_an_override_needs_a_reason(platform: Platform) -> None:
    rejected = platform.trained_version(platform.train(day="2026-04-30", evaluation=BLESS_NONE))
    reason = "Incident 4712: nothing else is trained yet, any model beats none"
    assert platform.deploy(model_version=rejected, override_reason=reason).success
    blessed = platform.trained_version(platform.train())
    assert platform.pointer()["model_version"] == blessed

    refused = platform.deploy(rollback=True)
    assert not refused.success
    assert "deployed by override" in failure_message(refused)
    assert platform.pointer()["model_version"] == blessed

    back = platform.deploy(rollback=True, override_reason=reason)
    assert back.success
    metadata = platform.metadata(back, "production_model")
    assert metadata["action"] == "rollback_override" and metadata["override_reason"] == reason
    assert metadata["blessed"] is False
    assert platform.pointer()["model_version"] == rejected


def test_the_pointer_moves_back_only_on_purpose_and_never_in_a_backfill(
    platform: Platform,
) -> None:
    production = platform.trained_version(platform.train())
    older_day = "2026-04-30"

    backfill = platform.train(day=older_day, window_days=3, tags={"dagster/backfill": "bf1"})
    assert backfill.success  # the backfill re-trains and re-evaluates history...
    assert materialized(backfill) == {"demand_model", "model_evaluation"}
    assert platform.pointer()["model_version"] == production  # ...and leaves production
    evaluation = platform.metadata(backfill, "model_evaluation")
    # Production trained on 2026-04-30: comparing it there would favour it.
    assert "on or after the held-out day" in evaluation["production_excluded"]
    assert evaluation["production_model_version"] == ""
    assert evaluation["decided_by"] == "baselines (no production model yet)"

    by_hand = platform.train(day=older_day, window_days=3)
    assert not by_hand.success
    assert "Refusing to move production backwards" in failure_message(by_hand)
    older = platform.trained_version(by_hand)
    assert platform.pointer()["model_version"] == production

    reason = "Incident 4713: the 05-01 model forecasts nonsense since the holiday"
    on_purpose = platform.deploy(
        model_version=older, allow_older_model=True, override_reason=reason
    )
    assert on_purpose.success
    metadata = platform.metadata(on_purpose, "production_model")
    assert metadata["moved_backwards"] is True and metadata["override_reason"] == reason
    assert platform.pointer()["model_version"] == older


def test_warm_start_refuses_a_production_model_that_saw_the_training_day(
    platform: Platform,
) -> None:
    production = platform.trained_version(platform.train())  # trained on 04-27..04-30
    warm = platform.train(day="2026-04-30", window_days=3, warm_start=True)
    assert not warm.success
    message = failure_message(warm)
    assert production in message and "2026-04-30" in message and "warm_start: false" in message


def test_the_default_rules_judge_rmse_and_deviance_never_mae(platform: Platform) -> None:
    """The deployment's real rules on a real model: a 60-taxi city's model does not beat
    the baselines everywhere, and the default rules refuse it on RMSE and Poisson deviance
    (overall or per slice), never on MAE; production does not move."""
    defaults = EvaluationSettings()
    result = platform.train(evaluation=defaults, iterations=60, early_stopping_rounds=20)
    assert not result.success
    evaluation = platform.metadata(result, "model_evaluation")
    assert evaluation["blessed"] is False
    assert evaluation["decided_by"] == "baselines (no production model yet)"
    assert evaluation["rules_fingerprint"] == defaults.rules().fingerprint()
    reasons = evaluation["blessing_reasons"].splitlines()
    failed = [line for line in reasons if line.startswith("- ❌")]
    assert failed and all(
        ("rmse" in line or "poisson_deviance" in line)
        and ("last_week" in line or "historical_average" in line)
        for line in failed
    )
    judged = [line for line in reasons if line.startswith(("- ✅", "- ❌"))]
    assert not any(line.split(" ", 2)[2].startswith("mae") for line in judged)
    assert any("poisson_deviance" in line and "historical_average" in line for line in judged)
    # Every horizon is judged on its own too.
    assert any(line.split(" ", 2)[2].startswith("horizon 2: rmse") for line in judged)
    [check] = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed) == ("blessed", False)
    assert platform.pointer() is None


def test_warm_start_continues_from_the_production_model(platform: Platform) -> None:
    production = platform.metadata(platform.train(), "demand_model")["model_version"]
    warm = platform.train(warm_start=True)
    assert warm.success
    model = platform.metadata(warm, "demand_model")
    assert model["warm_start_from"] == production
    trees = platform.artifacts.load_model(model["model_version"]).demand.tree_count_
    cold_trees = platform.artifacts.load_model(production).demand.tree_count_
    assert trees > cold_trees


def test_cross_validation_reports_mean_and_spread(platform: Platform) -> None:
    result = platform.train(cross_validation_folds=2)
    assert result.success
    model = platform.metadata(result, "demand_model")
    assert model["cv_folds"] == 2.0
    for metric in ("mae", "rmse", "poisson_deviance"):
        assert model[f"cv_{metric}_mean"] > 0 and model[f"cv_{metric}_std"] >= 0
    assert "test_day" in model["cv_folds_table"]


def test_comparison_tool_on_two_real_training_runs(platform: Platform) -> None:
    a = platform.metadata(platform.train(), "demand_model")["model_version"]
    b = platform.metadata(platform.train(depth=4, window_days=3), "demand_model")["model_version"]
    listed = model_versions(platform.instance).filter(pl.col("model_version").is_in([a, b]))
    assert listed.height == 2
    assert listed["mae"].is_not_null().all()  # both evaluated

    report = compare_versions(platform.instance, a, b)
    params = {row["param"]: (row["a"], row["b"]) for row in report.params.iter_rows(named=True)}
    assert params == {"depth": ("6", "4")}
    assert report.partitions_only_in_a == ["2026-04-27"]
    metrics = {row["metric"] for row in report.metrics.iter_rows(named=True)}
    assert {"mae", "rmse", "poisson_deviance"} <= metrics


def test_training_without_enough_history_fails_clearly(platform: Platform) -> None:
    result = platform.train(day="2026-04-28")
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "1 validated day(s) of training_features" in message and "backfill" in message


def test_training_refuses_a_window_with_a_day_that_failed_validation(
    platform: Platform, tmp_path: Path
) -> None:
    # Re-validate one day with thresholds nothing passes: its drift check now fails.
    bad_day = "2026-04-29"
    strict = ValidationSettings(numeric_js_threshold=1e-9, per_feature_thresholds={})
    assert not data_path(platform.data_dir, platform.instance, bad_day, strict).success

    refused = platform.train()
    assert not refused.success
    message = refused.get_step_failure_events()[0].step_failure_data.error.message
    assert f"{bad_day}: clean_probes_statistics:drift_vs_previous_day failed" in message
    assert "skip_unvalidated_days" in message

    skipping = platform.train(skip_unvalidated_days=True)
    assert skipping.success
    model = platform.metadata(skipping, "demand_model")
    assert model["days_skipped_unvalidated"] == [bad_day]
    assert bad_day not in model["partitions_used"]

    # Validated again with the normal thresholds, the day is back in the window.
    assert data_path(platform.data_dir, platform.instance, bad_day, LOOSE_DRIFT).success
    assert platform.train().success


# Re-execution rebuilds the job from a pointer (Dagster re-executes reconstructable jobs
# only), so the job comes from a module-level function; these variables name its platform.
JOB_ENV, DATA_DIR_ENV, ARTIFACTS_DIR_ENV = (
    "TAXI_ASSETS_TEST_JOB",
    "TAXI_ASSETS_TEST_DATA_DIR",
    "TAXI_ASSETS_TEST_ARTIFACTS_DIR",
)
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def platform_job() -> dg.JobDefinition:
    resources = local_resources(os.environ[DATA_DIR_ENV], os.environ[ARTIFACTS_DIR_ENV], source())
    defs = build_definitions({**resources, "evaluation": BLESS_ANY})
    return defs.resolve_job_def(os.environ[JOB_ENV])


def execute(
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    job: str,
    run_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    from_failure_of: str | None = None,
    steps_of: tuple[str, list[str]] | None = None,
) -> tuple[bool, str, set[str]]:
    """Run ``job``, or re-execute a failed run of it from failure; returns whether it
    succeeded, its run id and the steps that started. Unlike the UI, Dagster's Python API
    does not copy the parent's config and tags into a re-execution: pass the same ones."""
    monkeypatch.setenv(JOB_ENV, job)
    monkeypatch.setenv(DATA_DIR_ENV, str(platform.data_dir))
    monkeypatch.setenv(ARTIFACTS_DIR_ENV, platform.artifacts.base_dir)
    options = (
        dg.ReexecutionOptions.from_failure(from_failure_of, platform.instance)
        if from_failure_of
        else None
    )
    if steps_of:
        options = dg.ReexecutionOptions(parent_run_id=steps_of[0], step_selection=steps_of[1])
    with dg.execute_job(
        dg.reconstructable(platform_job),
        instance=platform.instance,
        run_config={**IN_PROCESS, **(run_config or {})},
        tags=tags,
        reexecution_options=options,
        raise_on_error=False,
    ) as result:
        started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
        return result.success, result.run_id, started


def test_training_reexecuted_from_failure_reuses_the_model_the_failed_run_trained(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The held-out day's features file is broken after training started: the evaluation
    fails; once the file is restored, re-executing from failure evaluates and deploys the
    model the failed run trained, without training again."""
    held_out = platform.data_dir / "training_features" / f"{HELD_OUT}.parquet"
    intact = held_out.read_bytes()
    held_out.write_bytes(intact[: len(intact) // 2])
    training = {"ops": {"demand_model": {"config": {"window_days": 4, **FAST_TRAINING}}}}
    try:
        ok, parent, started = execute(
            platform, monkeypatch, "training_job", training, {"dagster/partition": HELD_OUT}
        )
    finally:
        held_out.write_bytes(intact)
    assert not ok and started == {"demand_model", "model_evaluation"}
    assert platform.pointer() is None
    trained = platform.instance.get_latest_materialization_event(dg.AssetKey("demand_model"))
    assert trained is not None and trained.run_id == parent
    version = trained.asset_materialization.metadata["model_version"].value

    ok, child, started = execute(
        platform,
        monkeypatch,
        "training_job",
        training,
        {"dagster/partition": HELD_OUT},
        from_failure_of=parent,
    )

    assert ok and started == {"model_evaluation", "production_model"}
    assert platform.pointer()["model_version"] == version
    child_run = platform.instance.get_run_by_id(child)
    assert child_run.parent_run_id == parent and child_run.tags["dagster/partition"] == HELD_OUT


def test_a_forecast_reexecuted_from_failure_forecasts_its_own_tick(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No model is deployed yet, so the tick fails; once one is, re-executing the failed
    tick from failure forecasts the instant it was scheduled for, with every step after."""
    tick = {"ops": {"demand_forecast": {"config": {"tick": TICK}}}}
    ok, parent, started = execute(platform, monkeypatch, "forecast_job", tick)
    assert not ok and started == {"demand_forecast"}

    assert platform.train().success  # deploys a blessed model
    ok, _, started = execute(platform, monkeypatch, "forecast_job", tick, from_failure_of=parent)

    assert ok and started == {"demand_forecast", "cruising_guidance", "serving_skew"}
    forecast = pl.read_parquet(platform.data_dir / "demand_forecast.parquet")
    in_progress = forecast.filter(pl.col("horizon") == 0)
    assert in_progress["bucket_start"].unique().dt.to_string("%H:%M").to_list() == ["09:00"]
    assert forecast["model_version"].unique().to_list() == [platform.pointer()["model_version"]]


def test_overlapping_forecast_ticks_each_read_their_own_forecast(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tick B's forecast lands while tick A's guidance and skew are still to run (a slow
    run, or one re-executed): they read tick A's forecast, not the latest one."""
    assert platform.train().success
    tick_a = {"ops": {"demand_forecast": {"config": {"tick": TICK}}}}
    tick_b = {"ops": {"demand_forecast": {"config": {"tick": "2026-05-01T18:12:00+09:00"}}}}
    ok, run_a, _ = execute(platform, monkeypatch, "forecast_job", tick_a)
    assert ok
    ok, _, _ = execute(platform, monkeypatch, "forecast_job", tick_b)
    assert ok
    latest = pl.read_parquet(platform.data_dir / "demand_forecast.parquet")
    assert latest["tick"].dt.to_string("%H:%M").unique().to_list() == ["09:12"]

    downstream = ["cruising_guidance", "serving_skew"]
    ok, rerun, started = execute(
        platform, monkeypatch, "forecast_job", tick_a, steps_of=(run_a, downstream)
    )
    assert ok and started == set(downstream)
    skew = platform.instance.fetch_materializations(dg.AssetKey("serving_skew"), limit=1)
    [record] = skew.records
    assert record.run_id == rerun
    tick = record.asset_materialization.metadata["tick"].value
    assert pl.Series([tick * 1e6]).cast(pl.Datetime("us", "UTC")).dt.to_string("%H:%M")[0] == (
        "09:07"
    )
