"""The model lifecycle through Dagster: train, evaluate, gate, deploy, forecast, roll back.

The city and the platform are ``lifecycle_city``'s; the refusals of the gate (forged
reports, loosened rules, backward moves, warm starts) and re-executions are in
``test_model_gate_refusals.py``.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from taxi_assets.model.experiments import model_versions
from taxi_assets.settings import ValidationSettings
from taxi_assets_tests.lifecycle_city import (  # noqa: F401 - fixtures, by name
    BLESS_NONE,
    DAYS,
    HELD_OUT,
    LOOSE_DRIFT,
    TICK,
    Platform,
    Trained,
    city,
    city_copy,
    data_path,
    failure_message,
    forge_blessing,
    materialized,
    platform,
    trained,
)


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


def test_second_model_is_judged_against_production(platform: Platform, trained: Trained) -> None:
    first = platform.deploy_trained(trained)
    second = platform.train()
    assert second.success
    evaluation = platform.metadata(second, "model_evaluation")
    assert evaluation["production_model_version"] == first
    assert isinstance(evaluation["mae_production"], float)
    assert evaluation["decided_by"] == "production and baselines"


def test_an_unblessed_model_never_becomes_production(platform: Platform, trained: Trained) -> None:
    production = platform.deploy_trained(trained)
    assert platform.pointer()["model_version"] == production

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
