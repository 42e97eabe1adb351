"""`taxi-assets models`: training runs read back from what the instance recorded."""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from typing import Any

import dagster as dg
import polars as pl
import pytest

from taxi_assets.model.experiments import (
    UnknownModelVersion,
    add_models_parser,
    compare_versions,
    format_comparison,
    main,
    model_versions,
    models_command,
)

A, B, C = "2026-05-03-aaaa1111", "2026-05-04-bbbb2222", "2026-05-05-cccc3333"
BASE_PARAMS = {"iterations": 500, "depth": 6, "learning_rate": 0.05, "loss_function": "Poisson"}
BASE_FEATURES = ["hour", "weekday", "is_holiday", "lag_1d"]


def days(first: str, n: int) -> list[str]:
    start = date.fromisoformat(first)
    return [(start + timedelta(days=i)).isoformat() for i in range(n)]


def record_training(
    instance: dg.DagsterInstance,
    version: str,
    partition: str,
    window: list[str],
    params: dict[str, Any] = BASE_PARAMS,
    features: list[str] = BASE_FEATURES,
    **extra: Any,
) -> None:
    metadata = {
        "model_version": version,
        "params": dg.MetadataValue.json(params),
        "features": dg.MetadataValue.json(features),
        "window_start": window[0],
        "window_end": window[-1],
        "partitions_used": dg.MetadataValue.json(window),
        "training_rows": 24 * 1_500 * len(window),
        "content_hash": "f" * 64,
        "code_version": "abc123",
        "training_seconds": 12.5,
        "best_iteration": 420,
        "objective": "Poisson",
        "warm_start_from": "",
        "trained_at": dg.MetadataValue.timestamp(time.time()),
        **extra,
    }
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="demand_model", partition=partition, metadata=metadata)
    )


def record_evaluation(
    instance: dg.DagsterInstance, version: str, partition: str, **metrics: Any
) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key="model_evaluation",
            partition=partition,
            metadata={"model_version": version, **metrics},
        )
    )


@pytest.fixture
def recorded(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """Three versions: A and B evaluated, the newest, C, not yet."""
    record_training(instance, A, "2026-05-03", days("2026-04-05", 28), cv_mae_mean=2.1)
    record_evaluation(
        instance, A, "2026-05-03", mae=2.0, rmse=3.0, poisson_deviance=1.5, blessed=True
    )
    record_training(
        instance,
        B,
        "2026-05-04",
        days("2026-04-06", 28),
        params={**BASE_PARAMS, "depth": 8, "l2_leaf_reg": 3},
        features=["hour", "weekday", "is_holiday", "lag_7d"],
        cv_mae_mean=1.9,
    )
    record_evaluation(
        instance, B, "2026-05-04", mae=1.8, rmse=3.3, poisson_deviance=1.5, mape=0.2, blessed=False
    )
    record_training(instance, C, "2026-05-05", days("2026-04-07", 28))
    return instance


def test_lists_versions_newest_first_with_their_evaluation(recorded: dg.DagsterInstance) -> None:
    versions = model_versions(recorded)

    assert versions["model_version"].to_list() == [C, B, A]
    newest, _, oldest = versions.iter_rows(named=True)
    assert newest["blessed"] is None and newest["mae"] is None  # not evaluated yet
    assert (oldest["partition"], oldest["mae"], oldest["blessed"]) == ("2026-05-03", 2.0, True)
    assert oldest["window"] == "2026-04-05..2026-05-02"
    assert oldest["training_rows"] == 24 * 1_500 * 28
    assert oldest["content_hash"] == "ffffffff"
    assert versions.schema["trained_at"] == pl.Datetime("us", "Asia/Tokyo")
    assert model_versions(recorded, limit=2)["model_version"].to_list() == [C, B]


def test_a_version_materialized_twice_is_listed_once(recorded: dg.DagsterInstance) -> None:
    record_training(recorded, A, "2026-05-03", days("2026-04-05", 28))

    assert model_versions(recorded)["model_version"].to_list() == [A, C, B]


def test_diff_shows_changed_params_features_data_and_metrics(
    recorded: dg.DagsterInstance,
) -> None:
    report = compare_versions(recorded, A, B)

    assert report.params.rows() == [("depth", "6", "8"), ("l2_leaf_reg", None, "3")]
    assert (report.features_only_in_a, report.features_only_in_b) == (["lag_1d"], ["lag_7d"])
    assert (report.partitions_only_in_a, report.partitions_only_in_b) == (
        ["2026-04-05"],
        ["2026-05-03"],
    )
    runs = {row["field"]: row for row in report.runs.iter_rows(named=True)}
    assert (runs["window"]["a"], runs["window"]["b"]) == (
        "2026-04-05..2026-05-02",
        "2026-04-06..2026-05-03",
    )
    assert runs["window"]["changed"] and not runs["training_rows"]["changed"]
    metrics = {row["metric"]: row for row in report.metrics.iter_rows(named=True)}
    assert report.metrics["metric"].to_list()[:4] == ["mae", "rmse", "poisson_deviance", "mape"]
    assert metrics["mae"]["delta"] == pytest.approx(-0.2)
    assert metrics["mae"]["relative_change_pct"] == pytest.approx(-10.0)
    assert metrics["rmse"]["delta"] == pytest.approx(0.3)
    assert metrics["poisson_deviance"]["delta"] == 0.0
    assert (metrics["mape"]["a"], metrics["mape"]["b"], metrics["mape"]["delta"]) == (
        None,
        0.2,
        None,
    )
    assert metrics["cv_mae_mean"]["delta"] == pytest.approx(-0.2)
    assert "blessed" not in metrics  # a verdict, not a number

    text = format_comparison(report)
    assert f"A = {A}" in text and "depth" in text and "lag_7d" in text


def test_diff_against_an_unevaluated_version_keeps_the_training_side(
    recorded: dg.DagsterInstance,
) -> None:
    report = compare_versions(recorded, B, C)

    runs = {row["field"]: row for row in report.runs.iter_rows(named=True)}
    assert runs["blessed"]["b"] == "not evaluated"
    assert report.metrics.filter(pl.col("metric") == "mae")["b"].to_list() == [None]


def test_unknown_version_lists_the_known_ones(recorded: dg.DagsterInstance) -> None:
    with pytest.raises(UnknownModelVersion, match="2026-01-01-nope") as raised:
        compare_versions(recorded, A, "2026-01-01-nope")

    assert isinstance(raised.value, ValueError)
    assert raised.value.known == [C, B, A]
    assert all(version in str(raised.value) for version in (A, B, C))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="taxi-assets")
    add_models_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_models_command_prints_the_tables(
    recorded: dg.DagsterInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    assert models_command(parse("models", "list", "--limit", "2"), recorded) == 0
    out = capsys.readouterr().out
    assert C in out and B in out and A not in out

    assert models_command(parse("models", "diff", A, B), recorded) == 0
    out = capsys.readouterr().out
    assert "l2_leaf_reg" in out and "lag_1d" in out and "relative_change_pct" in out


def test_main_reads_the_instance_at_dagster_home(
    recorded: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", recorded.root_directory)

    assert main(["models", "list"]) == 0
    assert A in capsys.readouterr().out

    assert main(["models", "diff", A, "2026-01-01-nope"]) == 2
    captured = capsys.readouterr()
    assert "2026-01-01-nope" in captured.err and C in captured.err and captured.out == ""


def test_main_needs_dagster_home(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["models", "list"]) == 2
    assert "DAGSTER_HOME is not set" in capsys.readouterr().err

    monkeypatch.setenv("DAGSTER_HOME", "/nonexistent/dagster_home")
    assert main(["models", "list"]) == 2
    assert "DAGSTER_HOME=/nonexistent/dagster_home" in capsys.readouterr().err


def test_an_empty_instance_says_so(
    instance: dg.DagsterInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    assert models_command(parse("models", "list"), instance) == 0
    assert "No demand_model materializations" in capsys.readouterr().out
    with pytest.raises(UnknownModelVersion, match="none recorded yet"):
        compare_versions(instance, A, B)
