"""Drift distances against scipy, and compare_statistics on same-distribution vs shifted days."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from taxi_assets.frames import CELL_DEMAND_SCHEMA, ProbeStatus
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.settings import ValidationSettings
from taxi_assets.validation.drift import (
    COMPARISON_SCHEMA,
    DriftThresholds,
    compare_statistics,
    drift_description,
    drift_report_markdown,
    jensen_shannon_divergence,
    l_infinity_distance,
)
from taxi_assets.validation.onboarding import (
    calibrate_validation_thresholds,
    infer_validation_schemas,
    validation_folder_changes,
    write_validation_folder,
)
from taxi_assets.validation.schema import SCHEMA_DIR, DataSchema, find_anomalies, infer_schema
from taxi_assets.validation.statistics import compute_statistics
from taxi_assets.validation.thresholds import (
    DEFAULT_MARGIN,
    CalibratedThresholds,
    ThresholdFloors,
    calibrate_drift_thresholds,
    consecutive_day_distances,
    drift_thresholds_diff,
    load_drift_thresholds,
    save_drift_thresholds,
)

histograms = st.integers(1, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1_000), min_size=n, max_size=n),
        st.lists(st.integers(0, 1_000), min_size=n, max_size=n),
    )
)


@given(histograms)
def test_jensen_shannon_matches_scipy(pq: tuple[list[int], list[int]]) -> None:
    p, q = pq
    divergence = jensen_shannon_divergence(p, q)
    assert 0.0 <= divergence <= 1.0
    assert divergence == pytest.approx(jensen_shannon_divergence(q, p), abs=1e-12)
    if sum(p) and sum(q):
        assert divergence == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-9)


def test_jensen_shannon_edge_cases() -> None:
    assert jensen_shannon_divergence([1, 2, 3], [10, 20, 30]) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon_divergence([5, 0], [0, 7]) == pytest.approx(1.0)
    assert jensen_shannon_divergence([0, 0], [0, 0]) == 0.0
    assert jensen_shannon_divergence([0, 0], [0, 3]) == 1.0
    assert jensen_shannon_divergence([0.25, 0.75], [0.5, 0.5]) == pytest.approx(
        jensenshannon([0.25, 0.75], [0.5, 0.5], base=2) ** 2
    )
    with pytest.raises(ValueError, match="length"):
        jensen_shannon_divergence([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        jensen_shannon_divergence([1, -2], [1, 2])


def test_l_infinity_distance() -> None:
    assert l_infinity_distance({"a": 1, "b": 3}, {"a": 10, "b": 30}) == pytest.approx(0.0)
    assert l_infinity_distance({"a": 1, "b": 1}, {"a": 3, "b": 1}) == pytest.approx(0.25)
    # A category on one side only counts as frequency 0 on the other.
    assert l_infinity_distance({"a": 1}, {"b": 1}) == pytest.approx(1.0)
    assert l_infinity_distance({"a": 9, "c": 1}, {"a": 9, "b": 1}) == pytest.approx(0.1)
    assert l_infinity_distance({}, {}) == 0.0
    assert l_infinity_distance({}, {"a": 2}) == 1.0
    assert l_infinity_distance({"a": 0}, {"a": 2}) == 1.0


SPEED_EDGES = [0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0]
HEADING_EDGES = [30.0 * k for k in range(13)]


def _day(seed: int, rows: int = 20_000, speed_scale: float = 6.0, vacant: float = 0.6):
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "vehicle_id": rng.integers(1, 500, rows),
            "speed_kmh": rng.gamma(2.0, speed_scale, rows),
            "heading": rng.uniform(0, 360, rows),
            "status": rng.choice(
                ["vacant", "occupied", "dispatched"], rows, p=[vacant, 0.9 - vacant, 0.1]
            ),
            "cell": rng.choice([1, 2, 3, 4], rows),
        },
        schema_overrides={"status": ProbeStatus},
    )


def _stats(frame: pl.DataFrame) -> pl.DataFrame:
    edges = {"speed_kmh": SPEED_EDGES, "heading": HEADING_EDGES, "vehicle_id": [0.0, 250.0, 500.0]}
    return compute_statistics(frame, bin_edges=edges, categorical=["cell"])


@pytest.fixture(scope="module")
def reference() -> pl.DataFrame:
    return _stats(_day(1))


def test_same_distribution_does_not_drift(reference: pl.DataFrame) -> None:
    comparison = compare_statistics(_stats(_day(2)), reference)
    assert comparison.schema == COMPARISON_SCHEMA
    assert set(comparison["feature"]) == {
        "vehicle_id",
        "speed_kmh",
        "heading",
        "status",
        "cell",
        "__row_count__",
    }
    assert not comparison["crossed"].any()
    assert comparison.filter(pl.col("metric") != "row_count_ratio")["distance"].max() < 0.01
    row_count = comparison.filter(pl.col("feature") == "__row_count__").row(0, named=True)
    assert row_count["distance"] == 1.0
    assert (row_count["threshold_min"], row_count["threshold"]) == (0.5, 2.0)
    assert drift_description(comparison).startswith("No feature drifted beyond its threshold")


def test_shifted_day_drifts_and_is_named(reference: pl.DataFrame) -> None:
    shifted = _stats(_day(3, speed_scale=12.0, vacant=0.3))
    comparison = compare_statistics(shifted, reference)
    crossed = comparison.filter(pl.col("crossed"))
    assert set(crossed["feature"]) == {"speed_kmh", "status"}
    assert comparison["crossed"].to_list()[:2] == [True, True]  # crossed rows first
    assert dict(zip(crossed["feature"], crossed["metric"], strict=True)) == {
        "speed_kmh": "jensen_shannon",
        "status": "l_infinity",
    }
    status = comparison.filter(pl.col("feature") == "status")["distance"].item()
    assert status == pytest.approx(0.3, abs=0.03)
    description = drift_description(comparison)
    assert description.startswith("2 of 5 features drifted: ")
    assert "speed_kmh JS " in description and "status L-inf 0.3" in description
    assert "> 0.1" in description


def test_sorted_by_distance_over_threshold(reference: pl.DataFrame) -> None:
    comparison = compare_statistics(_stats(_day(3, speed_scale=12.0, vacant=0.3)), reference)
    severity = (comparison["distance"] / comparison["threshold"]).to_list()
    crossed = comparison.filter(pl.col("crossed")).height
    features = [s for s, f in zip(severity, comparison["feature"], strict=True) if f]
    assert features[:crossed] == sorted(features[:crossed], reverse=True)


def test_per_feature_override_and_ignore(reference: pl.DataFrame) -> None:
    shifted = _stats(_day(3, speed_scale=12.0, vacant=0.3))
    thresholds = DriftThresholds(per_feature={"status": 0.5}, ignore=frozenset({"speed_kmh"}))
    comparison = compare_statistics(shifted, reference, thresholds)
    assert "speed_kmh" not in comparison["feature"].to_list()
    status = comparison.filter(pl.col("feature") == "status").row(0, named=True)
    assert status["threshold"] == 0.5 and not status["crossed"]
    assert not comparison["crossed"].any()


def test_row_count_ratio_crosses_either_bound(reference: pl.DataFrame) -> None:
    for rows, ratio in ((5_000, 0.25), (50_000, 2.5)):
        comparison = compare_statistics(_stats(_day(2, rows=rows)), reference)
        row_count = comparison.filter(pl.col("feature") == "__row_count__").row(0, named=True)
        assert row_count["distance"] == pytest.approx(ratio)
        assert row_count["crossed"]
        assert "row count ratio" in drift_description(comparison)


def test_timestamps_and_one_sided_features_are_skipped(reference: pl.DataFrame) -> None:
    frame = _day(2).with_columns(ts=pl.datetime(2026, 5, 1, time_zone="UTC"), extra=pl.lit(1.0))
    current = _stats(frame)
    comparison = compare_statistics(current, reference)
    assert {"ts", "extra"}.isdisjoint(comparison["feature"].to_list())


def test_mismatched_or_self_binned_edges_raise_naming_the_feature(
    reference: pl.DataFrame,
) -> None:
    rebinned = compute_statistics(
        _day(2),
        bin_edges={"speed_kmh": [0.0, 10.0, 60.0], "heading": HEADING_EDGES},
        categorical=["cell"],
        exclude=["vehicle_id"],
    )
    with pytest.raises(ValueError, match="'speed_kmh'"):
        compare_statistics(rebinned, reference)
    # Two days self-binned over their own ranges: edges differ, so no comparison.
    today, yesterday = (compute_statistics(_day(seed), categorical=["cell"]) for seed in (1, 2))
    with pytest.raises(ValueError, match="self-binned"):
        compare_statistics(today, yesterday)


def test_empty_day_against_a_busy_one() -> None:
    busy = _stats(_day(1))
    empty = _stats(_day(1).head(0))
    comparison = compare_statistics(empty, busy)
    distances = dict(zip(comparison["feature"], comparison["distance"], strict=True))
    assert distances["__row_count__"] == 0.0
    assert distances["speed_kmh"] == 1.0 and distances["status"] == 1.0
    assert comparison["crossed"].all()
    assert not comparison["distance"].is_nan().any()
    both_empty = compare_statistics(empty, empty)
    assert not both_empty["crossed"].any()


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"numeric_js": 1.5}, "numeric_js"),
        ({"categorical_linf": -0.1}, "categorical_linf"),
        ({"numeric_js": math.nan}, "numeric_js"),
        ({"row_count_ratio_min": 1.5}, "row_count_ratio_min"),
        ({"row_count_ratio_max": 0.8}, "row_count_ratio_max"),
        ({"per_feature": {"speed_kmh": 2.0}}, "speed_kmh"),
        ({"ignore": "speed_kmh"}, "ignore"),
    ],
)
def test_thresholds_reject_impossible_settings(settings: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        DriftThresholds(**settings)


def test_markdown_report_and_description_name_features_and_numbers(
    reference: pl.DataFrame,
) -> None:
    comparison = compare_statistics(_stats(_day(3, speed_scale=12.0, vacant=0.3)), reference)
    report = drift_report_markdown(comparison, "clean_probes 2026-05-02 vs 2026-04-27")
    assert report.startswith("## clean_probes 2026-05-02 vs 2026-04-27")
    assert "2 of 5 features crossed their threshold" in report
    for row in comparison.iter_rows(named=True):
        assert f"| {row['feature']} | {row['metric']} | {row['distance']:.4g} |" in report
    assert "**yes**" in report
    assert "more rows not shown" in drift_report_markdown(comparison, "t", top=2)
    assert "and 1 more" in drift_description(comparison, max_features=1)


# ---------------------------------------------------------------------------------------------
# Thresholds of the deployment: the folder's file, overrides, calibration, onboarding blocks


def _days(n: int, **shift: float) -> dict[str, pl.DataFrame]:
    return {f"2026-05-0{i + 1}": _day(10 + i, **shift) for i in range(n)}


def _toy_schema(frames: dict[str, pl.DataFrame]) -> DataSchema:
    return infer_schema("toy", frames, categorical=["cell"], exclude=["vehicle_id"])


def test_the_committed_thresholds_file_holds_the_calibrated_values() -> None:
    committed = load_drift_thresholds(SCHEMA_DIR)
    assert committed.thresholds.per_feature["status"] == 0.15
    assert committed.thresholds.numeric_js == 0.015
    assert "rain_mm_per_h" in committed.thresholds.ignore
    assert committed.normal_max["status"] < 0.15  # the reviewer sees why the value is safe
    assert ValidationSettings(validation_dir=str(SCHEMA_DIR)).thresholds() == committed.thresholds


def test_a_per_feature_override_merges_with_the_calibrated_thresholds() -> None:
    settings = ValidationSettings(per_feature_thresholds={"lat": 0.05, "status": 0.2})
    thresholds = settings.thresholds()
    assert thresholds.per_feature["lat"] == 0.05
    assert thresholds.per_feature["status"] == 0.2
    # The other calibrated thresholds stay: one override does not drop them.
    assert thresholds.per_feature["street_hail_pickups"] == 0.005
    assert thresholds.numeric_js == 0.015

    scalars = ValidationSettings(numeric_js_threshold=0.5, ignored_features=["heading"])
    assert scalars.thresholds().numeric_js == 0.5
    assert {"heading", "vehicle_id"} <= scalars.thresholds().ignore
    bare = ValidationSettings(use_calibrated_per_feature=False, per_feature_thresholds={"x": 0.3})
    assert bare.thresholds().per_feature == {"x": 0.3}


def test_thresholds_come_from_the_configured_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FileNotFoundError, match="drift_thresholds.json.*taxi-assets onboard"):
        ValidationSettings(validation_dir=str(tmp_path)).thresholds()
    own = CalibratedThresholds(DriftThresholds(numeric_js=0.2, per_feature={"lat": 0.3}))
    save_drift_thresholds(own, tmp_path)
    monkeypatch.setenv("TAXI_ASSETS_VALIDATION_DIR", str(tmp_path))
    settings = ValidationSettings()
    assert settings.folder() == tmp_path
    assert settings.thresholds().numeric_js == 0.2
    assert settings.thresholds().per_feature == {"lat": 0.3}


def test_thresholds_json_round_trips_and_names_bad_fields(tmp_path: Path) -> None:
    calibrated = CalibratedThresholds(
        DriftThresholds(per_feature={"b": 0.2, "a": 0.01}, ignore=frozenset({"id"})),
        reference_partitions=["2026-05-02", "2026-05-01"],
        margin=2.0,
        normal_max={"a": 0.004},
    )
    path = save_drift_thresholds(calibrated, tmp_path)
    assert path == tmp_path / "drift_thresholds.json"
    loaded = load_drift_thresholds(tmp_path)
    assert loaded.to_json() == calibrated.to_json()
    assert loaded.thresholds == calibrated.thresholds
    document = json.loads(calibrated.to_json())
    document["per_feature"]["a"] = 1.5
    with pytest.raises(ValueError, match=r"t.json: .*per_feature\['a'\].*\[0, 1\]"):
        CalibratedThresholds.from_json(json.dumps(document), source="t.json")
    with pytest.raises(ValueError, match="t.json: numeric_js must be a number"):
        CalibratedThresholds.from_json(
            json.dumps({**document, "numeric_js": "low"}), source="t.json"
        )


def test_calibration_sits_above_normal_days_and_below_a_breakage() -> None:
    frames = _days(5)
    schema = _toy_schema(frames)
    distances = consecutive_day_distances(frames, schema)
    assert set(distances["day"]) == {"2026-05-02", "2026-05-03", "2026-05-04", "2026-05-05"}
    assert set(distances["compared_with"]) == {
        "2026-05-01",
        "2026-05-02",
        "2026-05-03",
        "2026-05-04",
    }
    assert "vehicle_id" not in set(distances["feature"])  # excluded by the schema

    calibrated = calibrate_drift_thresholds(distances, margin=2.0)
    thresholds = calibrated.thresholds
    normal = distances.filter(pl.col("feature") == "speed_kmh")["distance"].max()
    assert calibrated.normal_max["speed_kmh"] == pytest.approx(normal, abs=1e-6)
    assert thresholds.per_feature["speed_kmh"] >= max(2 * normal, ThresholdFloors().numeric_js)
    assert thresholds.per_feature["status"] >= ThresholdFloors().categorical_linf
    assert thresholds.row_count_ratio_min <= 0.8 and thresholds.row_count_ratio_max >= 1.25
    assert calibrated.reference_partitions == sorted(frames)

    # A normal sixth day passes; the same day with speeds in mph or a stuck status does not.
    edges, categorical = schema.bin_edges(), schema.categorical
    last = compute_statistics(frames["2026-05-05"], edges, categorical, schema.excluded)
    for shift, feature, crossed in (
        ({}, None, False),
        ({"speed_scale": 6.0 / 1.609}, "speed_kmh", True),
        ({"vacant": 0.85}, "status", True),
    ):
        day = compute_statistics(_day(99, **shift), edges, categorical, schema.excluded)
        comparison = compare_statistics(day, last, thresholds)
        assert bool(comparison["crossed"].any()) is crossed, (shift, comparison)
        if feature:
            assert comparison.row(0, named=True)["feature"] == feature


def test_calibration_floors_identical_days_and_refuses_too_few() -> None:
    same = {"2026-05-01": _day(1), "2026-05-02": _day(1), "2026-05-03": _day(1)}
    calibrated = calibrate_drift_thresholds(consecutive_day_distances(same, _toy_schema(same)))
    floors = ThresholdFloors()
    assert calibrated.thresholds.per_feature["speed_kmh"] == floors.numeric_js
    assert calibrated.thresholds.per_feature["status"] == floors.categorical_linf
    assert calibrated.thresholds.row_count_ratio_min == floors.row_count_ratio_min
    one = {"2026-05-01": _day(1)}
    with pytest.raises(ValueError, match="at least 2 stored days"):
        calibrate_drift_thresholds(consecutive_day_distances(one, _toy_schema(one)))
    with pytest.raises(ValueError, match="margin=0.5 must be at least 1"):
        calibrate_drift_thresholds(consecutive_day_distances(same, _toy_schema(same)), margin=0.5)


def test_thresholds_diff_is_readable() -> None:
    old = load_drift_thresholds(SCHEMA_DIR)
    assert drift_thresholds_diff(old, old) == []
    frames = _days(3)
    new = calibrate_drift_thresholds(consecutive_day_distances(frames, _toy_schema(frames)))
    lines = drift_thresholds_diff(old, new)
    assert any(line.startswith("reference window: 2026-04-20..2026-05-03 (14") for line in lines)
    assert "margin: None -> 2.0" in lines
    speed = new.thresholds.per_feature["speed_kmh"]
    assert any(
        line.startswith(f"~ speed_kmh: default -> {speed:.4g} (largest normal distance")
        for line in lines
    )
    assert any(line.startswith("~ pickups: 0.005 -> default") for line in lines)


def test_onboarding_blocks_infer_calibrate_review_and_write(tmp_path: Path) -> None:
    # Three stored days of a toy "cell_demand": what onboarding reads after the data path.
    rng = np.random.default_rng(3)
    cells = CENTRAL_TOKYO.cells()["cell"].head(50)
    frames = {
        "cell_demand": {
            f"2026-05-0{d}": pl.DataFrame(
                {
                    "cell": cells,
                    "bucket_start": [datetime(2026, 5, d, tzinfo=UTC)] * cells.len(),
                    **{
                        name: rng.poisson(2.0, cells.len()).astype(np.int32)
                        for name in CELL_DEMAND_SCHEMA.names()[2:]
                    },
                },
                schema=CELL_DEMAND_SCHEMA,
            )
            for d in (1, 2, 3)
        }
    }
    schemas = infer_validation_schemas(frames)
    assert schemas["cell_demand"].service_area_cells == ["cell"]
    thresholds = calibrate_validation_thresholds(frames, schemas)
    assert thresholds.margin == DEFAULT_MARGIN and "pickups" in thresholds.thresholds.per_feature

    folder = tmp_path / "validation"
    changes = validation_folder_changes(schemas, thresholds, folder)
    assert changes[0] == f"{folder / 'cell_demand.json'}: new schema (8 features)"
    assert f"{folder / 'drift_thresholds.json'}: new drift thresholds" in changes
    written = write_validation_folder(schemas, thresholds, folder)
    assert written == [folder / "cell_demand.json", folder / "drift_thresholds.json"]
    assert validation_folder_changes(schemas, thresholds, folder) == []

    wider = calibrate_validation_thresholds(frames, schemas, margin=3.0)
    assert any(
        "margin: 2.0 -> 3.0" in line for line in validation_folder_changes(schemas, wider, folder)
    )
    settings = ValidationSettings(validation_dir=str(folder))
    assert settings.thresholds() == thresholds.thresholds
    assert find_anomalies(
        frames["cell_demand"]["2026-05-02"], schemas["cell_demand"], CENTRAL_TOKYO
    ).is_empty()
    with pytest.raises(ValueError, match="no schema rules for asset"):
        infer_validation_schemas({"weather": {}})
