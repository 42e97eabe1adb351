"""The artifact store, training (split, parameters, folds, warm start) and scoring."""

from __future__ import annotations

import dataclasses
import threading
import types
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from catboost import CatBoostRegressor
from polars.testing import assert_frame_equal

from taxi_assets.calendar import TOKYO, bucket_starts, day_window_utc
from taxi_assets.features import FEATURES, HORIZONS, TARGET, build_features, with_horizons
from taxi_assets.frames import CELL_DEMAND_SCHEMA, WEATHER_SCHEMA
from taxi_assets.model.evaluation import (
    historical_average_predictions,
    historical_average_table,
    overall_metrics,
)
from taxi_assets.model.registry import NO_POINTER, ArtifactStore, PointerConflict, RegistryError
from taxi_assets.model.scoring import SCORED_KEYS, cross_validate, fold_summary, score_held_out
from taxi_assets.model.training import (
    EarlyStopping,
    TrainedModel,
    TrainingParams,
    _pool,
    predict_demand,
    rolling_origin_folds,
    sample_horizons,
    sample_no_hail_rows,
    split_by_time,
    tokyo_day,
    train_model,
)

FIRST_DAY = date(2026, 4, 6)  # a Monday
# Nine days: the two cross-validation test days are a Monday and a Tuesday.
DAYS = [FIRST_DAY + timedelta(days=i) for i in range(9)]
CELLS = list(range(100, 120))
PARAMS = TrainingParams(iterations=20, supply_iterations=10)


def synthetic_cell_demand(seed: int = 0) -> pl.DataFrame:
    """Poisson counts whose rate depends on the cell and the Tokyo hour, over DAYS."""
    rng = np.random.default_rng(seed)
    grid = (
        pl.concat([bucket_starts(day, 15) for day in DAYS])
        .to_frame()
        .join(pl.DataFrame({"cell": CELLS}, schema={"cell": pl.Int64}), how="cross")
    )
    hour = grid["bucket_start"].dt.convert_time_zone("Asia/Tokyo").dt.hour().to_numpy()
    rate = (1 + grid["cell"].to_numpy() % 5) * (1.1 + np.sin(hour / 24 * 2 * np.pi))
    n = grid.height
    return (
        grid.with_columns(
            street_hail_pickups=rng.poisson(rate),
            app_booking_pickups=rng.poisson(1.0, n),
            pickups=0,
            dropoffs=rng.poisson(2.0, n),
            vacant_taxis=rng.poisson(2 * rate),
            occupied_taxis=rng.poisson(3.0, n),
        )
        .select(CELL_DEMAND_SCHEMA.names())
        .cast(dict(CELL_DEMAND_SCHEMA))
    )


@pytest.fixture(scope="module")
def rows() -> pl.DataFrame:
    """Feature rows of every bucket of DAYS (the first week's daily features are null)."""
    demand = synthetic_cell_demand()
    first, _ = day_window_utc(DAYS[0])
    weather = pl.DataFrame(
        [(first + timedelta(hours=h), float(h % 7 == 0)) for h in range(24 * len(DAYS))],
        schema=WEATHER_SCHEMA,
        orient="row",
    )
    return build_features(demand, weather, demand, 15)


@pytest.fixture(scope="module")
def rows_at_every_horizon() -> pl.DataFrame:
    demand = synthetic_cell_demand()
    return build_features(demand, None, with_horizons(demand, HORIZONS), 15)


@pytest.fixture(scope="module")
def model(rows: pl.DataFrame) -> TrainedModel:
    return train_model(rows, PARAMS)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(base_dir=str(tmp_path / "artifacts"))


def manifest_of(model: TrainedModel) -> dict[str, object]:
    return {"params": model.params.as_dict(), "features": list(model.features), "note": "test"}


# The artifact store ----------------------------------------------------------------------------


def test_a_saved_model_loads_back_and_predicts_identically(
    store: ArtifactStore, model: TrainedModel, rows: pl.DataFrame
) -> None:
    digest = store.save_model("v1", model, manifest_of(model))

    manifest = store.manifest("v1")
    assert manifest["content_hash"] == digest == store.stored_hash("v1")
    assert len(digest) == 64
    assert (manifest["model_version"], manifest["note"]) == ("v1", "test")
    loaded = store.load_model("v1")
    assert loaded.params == model.params
    assert loaded.features == FEATURES
    assert_frame_equal(loaded.predict(rows), model.predict(rows))


def test_two_different_models_hash_differently(
    store: ArtifactStore, model: TrainedModel, rows: pl.DataFrame
) -> None:
    other = train_model(rows, dataclasses.replace(PARAMS, random_seed=1, depth=3))
    assert store.save_model("v1", model, manifest_of(model)) != store.save_model(
        "v2", other, manifest_of(other)
    )


@pytest.mark.parametrize("name", ["demand.cbm", "supply.cbm"])
def test_a_model_file_changed_after_saving_is_refused(
    store: ArtifactStore, model: TrainedModel, name: str
) -> None:
    store.save_model("v1", model, manifest_of(model))
    path = Path(store.base_dir) / "models" / "v1" / name
    path.write_bytes(path.read_bytes() + b"\0")

    with pytest.raises(RegistryError, match="model version 'v1'.*changed after training"):
        store.load_model("v1")


def test_a_model_file_deleted_after_saving_is_refused(
    store: ArtifactStore, model: TrainedModel
) -> None:
    store.save_model("v1", model, manifest_of(model))
    (Path(store.base_dir) / "models" / "v1" / "supply.cbm").unlink()

    with pytest.raises(RegistryError, match="model version 'v1' is missing .*supply.cbm"):
        store.load_model("v1")


def test_an_unknown_version_is_refused(store: ArtifactStore, model: TrainedModel) -> None:
    store.save_model("v1", model, manifest_of(model))
    with pytest.raises(RegistryError, match="model version 'v9' has no manifest"):
        store.load_model("v9")


def test_evaluation_and_production_pointer_round_trip(store: ArtifactStore) -> None:
    assert store.production_pointer() is None
    assert store.evaluation("v1") is None
    assert store.read_production_pointer() == (None, NO_POINTER)

    store.save_evaluation("v1", {"blessed": True, "mae": 0.5})
    first = store.swap_production_pointer({"model_version": "v1", "history": []}, NO_POINTER)
    store.swap_production_pointer({"model_version": "v2", "history": ["v1"]}, first)

    assert store.evaluation("v1") == {"blessed": True, "mae": 0.5}
    pointer, generation = store.read_production_pointer()
    assert pointer == {"model_version": "v2", "history": ["v1"], "generation": generation}
    assert generation == first + 1


def test_of_two_deploys_from_the_same_pointer_one_wins_and_no_history_is_lost(
    store: ArtifactStore,
) -> None:
    store.swap_production_pointer({"model_version": "v1", "history": []}, NO_POINTER)
    _, generation = store.read_production_pointer()
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def deploy(version: str) -> None:
        barrier.wait()
        try:
            store.swap_production_pointer(
                {"model_version": version, "history": [{"model_version": "v1"}]}, generation
            )
            outcomes[version] = "won"
        except PointerConflict as conflict:
            outcomes[version] = str(conflict)

    threads = [threading.Thread(target=deploy, args=(v,)) for v in ("v2", "v3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [winner] = [version for version, outcome in outcomes.items() if outcome == "won"]
    [lost] = [outcome for outcome in outcomes.values() if outcome != "won"]
    assert (
        f"another deploy moved production_model while this one ran (it now points to {winner}"
        in lost
    )
    assert "nothing was changed" in lost
    pointer = store.production_pointer()
    assert pointer["model_version"] == winner
    assert pointer["history"] == [{"model_version": "v1"}]
    # A deploy that read the pointer before the winner moved it fails too.
    with pytest.raises(PointerConflict):
        store.swap_production_pointer({"model_version": "v4", "history": []}, generation)


def test_a_model_version_is_never_overwritten(
    store: ArtifactStore, model: TrainedModel, rows: pl.DataFrame
) -> None:
    digest = store.save_model("v1", model, manifest_of(model))
    other = train_model(rows, dataclasses.replace(PARAMS, random_seed=1, depth=3))
    with pytest.raises(RegistryError, match="'v1' already exists.*never overwritten"):
        store.save_model("v1", other, manifest_of(other))
    assert store.manifest("v1")["content_hash"] == digest == store.stored_hash("v1")


def forecast_at(tick: datetime, value: float) -> pl.DataFrame:
    return pl.DataFrame(
        {"tick": [tick, tick], "cell": [1, 2], "expected_street_hails": [value, value + 1]},
        schema={
            "tick": pl.Datetime("us", "UTC"),
            "cell": pl.Int64,
            "expected_street_hails": pl.Float64,
        },
    )


def test_forecasts_are_stored_under_the_tokyo_day_of_their_tick(store: ArtifactStore) -> None:
    late_evening = datetime(2026, 4, 28, 14, 50, tzinfo=UTC)  # 23:50 Tokyo, the 28th
    after_midnight = datetime(2026, 4, 28, 15, 5, tzinfo=UTC)  # 00:05 Tokyo, the 29th
    later = datetime(2026, 4, 29, 10, 0, tzinfo=TOKYO)

    store.save_forecast(late_evening, forecast_at(late_evening, 1.0))
    path = store.save_forecast(after_midnight, forecast_at(after_midnight, 2.0))
    store.save_forecast(later, forecast_at(later, 3.0))
    store.save_forecast(later, forecast_at(later, 4.0))  # a rerun replaces its tick

    assert path.parts[-2:] == ("2026-04-29", "000500.parquet")
    day = store.forecasts_for_day(date(2026, 4, 29))
    assert day is not None
    assert day.sort("tick", "cell").rows() == [
        (after_midnight, 1, 2.0),
        (after_midnight, 2, 3.0),
        (later, 1, 4.0),
        (later, 2, 5.0),
    ]
    evening = store.forecasts_for_day(date(2026, 4, 28))
    assert evening is not None and evening["tick"].unique().to_list() == [late_evening]
    assert store.forecasts_for_day(date(2026, 4, 30)) is None


# Training --------------------------------------------------------------------------------------


def test_split_by_time_holds_out_the_last_tokyo_days() -> None:
    instants = [
        datetime(2026, 4, 20, 14, 45, tzinfo=UTC),  # 23:45 Tokyo, the 20th
        datetime(2026, 4, 20, 15, 0, tzinfo=UTC),  # 00:00 Tokyo, the 21st
        datetime(2026, 4, 21, 15, 0, tzinfo=UTC),  # 00:00 Tokyo, the 22nd
        datetime(2026, 4, 22, 3, 0, tzinfo=UTC),  # 12:00 Tokyo, the 22nd
    ]
    frame = pl.DataFrame(
        {"row": range(4), "bucket_start": instants},
        schema={"row": pl.Int64, "bucket_start": pl.Datetime("us", "UTC")},
    )

    train, valid = split_by_time(frame, validation_days=1)
    assert (train["row"].to_list(), valid["row"].to_list()) == ([0, 1], [2, 3])
    train, valid = split_by_time(frame, validation_days=2)
    assert (train["row"].to_list(), valid["row"].to_list()) == ([0], [1, 2, 3])
    with pytest.raises(ValueError, match=r"3 day\(s\).*hold out 3 validation.*widen the window"):
        split_by_time(frame, validation_days=3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"objective": "Tweedie"}, "objective='Tweedie' is unknown.*Poisson.*RMSE"),
        ({"iterations": 0}, "iterations=0 must be at least 1"),
        ({"supply_iterations": 0}, "supply_iterations=0"),
        ({"learning_rate": 0.0}, r"learning_rate=0.0 must be in \(0, 1\]"),
        ({"learning_rate": 1.5}, "learning_rate=1.5"),
        ({"horizons_per_target": 0}, "horizons_per_target=0"),
        ({"horizons_per_target": 4}, r"horizons_per_target=4 must be in \[1, 3\]"),
        ({"no_hail_row_share": 0.0}, r"no_hail_row_share=0.0 must be in \(0, 1\]"),
        ({"leaf_estimation_iterations": 0}, "leaf_estimation_iterations=0 must be at least 1"),
        ({"early_stopping_min_gain": -0.1}, "early_stopping_min_gain=-0.1 must be in"),
    ],
)
def test_training_params_reject_impossible_values_naming_them(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TrainingParams(**change)  # type: ignore[arg-type]


def test_training_params_accept_rmse() -> None:
    assert TrainingParams(objective="RMSE").as_dict()["objective"] == "RMSE"


def test_rolling_origin_folds_test_on_the_last_days() -> None:
    days = [FIRST_DAY + timedelta(days=i) for i in (4, 0, 5, 2, 1, 3)]
    assert rolling_origin_folds(days, folds=2) == [DAYS[4], DAYS[5]]
    assert rolling_origin_folds(days, folds=3) == DAYS[3:6]
    # min_train_days counts every day before the first test day.
    assert rolling_origin_folds(days, folds=4, min_train_days=2) == DAYS[2:6]
    with pytest.raises(ValueError, match="cross_validation_folds=5 needs at least 7 days.*has 6"):
        rolling_origin_folds(days, folds=5, min_train_days=2)
    with pytest.raises(ValueError, match="at least 1"):
        rolling_origin_folds(days, folds=0)


def test_training_drops_unlabelled_rows_and_validates_on_the_last_day(
    rows: pl.DataFrame, model: TrainedModel
) -> None:
    after = datetime.combine(DAYS[-1] + timedelta(days=1), datetime.min.time(), tzinfo=TOKYO)
    unlabelled = rows.filter(pl.col("bucket_start") == rows["bucket_start"].max()).with_columns(
        bucket_start=pl.lit(after).dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
        street_hail_pickups=pl.lit(None, pl.Int32),
    )

    retrained = train_model(pl.concat([rows, unlabelled]), PARAMS)

    last_day = rows.filter(tokyo_day() == DAYS[-1]).height
    assert (model.training_rows, model.validation_rows) == (rows.height - last_day, last_day)
    assert (retrained.training_rows, retrained.validation_rows) == (
        model.training_rows,
        model.validation_rows,
    )
    assert np.isfinite(model.validation_rmse)


def test_rows_without_a_hail_are_sampled_and_weighted_so_the_loss_is_unbiased() -> None:
    rng = np.random.default_rng(3)
    hails = rng.poisson(0.1, 200_000)
    rows = pl.DataFrame({TARGET: hails, "vacant_taxis": rng.poisson(2.0, hails.size)})

    sampled = sample_no_hail_rows(rows, 0.1, seed=0)

    with_hail = sampled.filter(pl.col(TARGET) > 0)
    assert with_hail.height == int((hails > 0).sum())  # every row with a hail is kept
    assert (with_hail["_row_weight"] == 1.0).all()
    without = sampled.filter(pl.col(TARGET) == 0)
    assert without.height == pytest.approx(0.1 * (hails == 0).sum(), rel=0.05)
    assert (without["_row_weight"] == 10.0).all()
    # The weighted totals estimate the full data's, for the supply target as well.
    for column in ("vacant_taxis", TARGET):
        weighted = (sampled[column] * sampled["_row_weight"]).sum()
        assert weighted == pytest.approx(rows[column].sum(), rel=0.02)
    assert_frame_equal(sampled, sample_no_hail_rows(rows, 0.1, seed=0))
    assert sample_no_hail_rows(rows, 1.0, seed=0).height == rows.height


def test_training_samples_rows_without_a_hail_and_records_how_many_trained(
    rows: pl.DataFrame, model: TrainedModel
) -> None:
    every_row = train_model(rows, dataclasses.replace(PARAMS, no_hail_row_share=1.0))
    assert every_row.sampled_rows == every_row.training_rows == model.training_rows
    without_hail = rows.filter(tokyo_day() < DAYS[-1], pl.col(TARGET) == 0).height
    assert model.training_rows - model.sampled_rows == pytest.approx(0.9 * without_hail, rel=0.1)
    # Weighted, the sampled model predicts about as many hails as the one on every row.
    totals = [m.predict(rows)["expected_street_hails"].sum() for m in (model, every_row)]
    assert totals[0] == pytest.approx(totals[1], rel=0.1)


def stopping_tree(losses: list[float], rounds: int, min_gain: float) -> tuple[int, str]:
    """The tree after which EarlyStopping stops on these validation losses, and why."""
    stopping, seen = EarlyStopping("Poisson", rounds, min_gain, log=lambda _: None), []
    for loss in losses:
        seen.append(loss)
        info = types.SimpleNamespace(metrics={"validation": {"Poisson": list(seen)}})
        if not stopping.after_iteration(info):
            break
    return stopping.trees, stopping.reason


def test_early_stopping_stops_when_the_validation_loss_falls_too_slowly() -> None:
    # Falls 1% a tree for 30 trees, then 0.001% a tree.
    losses = [1.0 * 0.99**k for k in range(30)]
    losses += [losses[-1] * (1 - 1e-5) ** k for k in range(1, 200)]
    trees, reason = stopping_tree(losses, rounds=5, min_gain=1e-3)
    assert trees == 35  # the first 5 slow trees fall 5e-5 in all, under 1e-3
    assert "under early_stopping_min_gain 0.001" in reason
    # With no minimum gain it stops only once the loss stops falling at all.
    assert stopping_tree(losses, rounds=5, min_gain=0.0)[0] == len(losses)
    flat_after_10 = losses[:10] + [losses[9] + 0.1] * 50
    assert stopping_tree(flat_after_10, rounds=5, min_gain=0.0)[0] == 15
    assert stopping_tree(losses[:12], rounds=5, min_gain=1e-3) == (12, "the cap was reached")


def test_training_stops_early_and_keeps_the_best_trees(rows: pl.DataFrame) -> None:
    eager = train_model(
        rows, dataclasses.replace(PARAMS, iterations=300, early_stopping_min_gain=0.05)
    )
    assert eager.demand.tree_count_ < 300
    assert eager.demand.tree_count_ == eager.best_iteration + 1
    patient = train_model(
        rows, dataclasses.replace(PARAMS, iterations=300, early_stopping_min_gain=0.0)
    )
    assert patient.demand.tree_count_ > eager.demand.tree_count_


def test_warm_start_continues_from_the_previous_trees(
    rows: pl.DataFrame, model: TrainedModel
) -> None:
    warm = train_model(rows, PARAMS, warm_start=model)

    # Early stopping keeps the best of the new trees: best_iteration counts new trees only.
    assert warm.demand.tree_count_ == model.demand.tree_count_ + warm.best_iteration + 1
    assert warm.demand.tree_count_ > model.demand.tree_count_
    assert warm.supply.tree_count_ > model.supply.tree_count_
    pool = _pool(rows, None)
    for new, old in ((warm.demand, model.demand), (warm.supply, model.supply)):
        np.testing.assert_allclose(
            new.predict(pool, ntree_end=old.tree_count_), old.predict(pool), rtol=1e-9
        )
    assert not np.allclose(warm.demand.predict(pool), model.demand.predict(pool))


def test_warm_start_from_a_model_with_other_features_is_refused(
    rows: pl.DataFrame, model: TrainedModel
) -> None:
    older = dataclasses.replace(model, features=FEATURES[:-1])
    with pytest.raises(ValueError, match="warm start needs the same features"):
        train_model(rows, PARAMS, warm_start=older)


# Scoring ---------------------------------------------------------------------------------------


def test_score_held_out_puts_every_predictor_side_by_side(
    rows: pl.DataFrame, model: TrainedModel
) -> None:
    training = rows.filter(tokyo_day() < DAYS[-1])
    held_out = rows.filter(tokyo_day() == DAYS[-1])
    unlabelled = held_out.head(3).with_columns(street_hail_pickups=pl.lit(None, pl.Int32))
    production = train_model(rows, dataclasses.replace(PARAMS, objective="RMSE", depth=3))
    # The simulator's true rate comes in 5-minute slices, three to a 15-minute bucket.
    true_demand = (
        held_out.select("cell", "bucket_start")
        .join(pl.DataFrame({"minutes": [0, 5, 10]}), how="cross")
        .select(
            "cell",
            slice_start=pl.col("bucket_start") + pl.duration(minutes=pl.col("minutes")),
            expected_street_hails=pl.lit(0.5),
        )
    )

    bare = score_held_out(pl.concat([held_out, unlabelled]), model, training)
    full = score_held_out(held_out, model, training, production, true_demand)

    assert bare.columns == [
        *SCORED_KEYS,
        "actual",
        "pred_model",
        "pred_historical_average",
        "pred_last_week",
    ]
    assert bare.height == held_out.height  # the unlabelled rows are not scored
    assert set(full.columns) == {*bare.columns, "pred_production", "pred_oracle"}
    assert full["actual"].to_list() == held_out[TARGET].cast(pl.Float64).to_list()
    np.testing.assert_allclose(
        full["pred_model"].to_numpy(), predict_demand(model.demand, model.params, held_out)
    )
    np.testing.assert_allclose(
        full["pred_production"].to_numpy(),
        predict_demand(production.demand, production.params, held_out),
    )
    assert not np.allclose(full["pred_production"].to_numpy(), full["pred_model"].to_numpy())
    # The held-out day has its whole week of history: last week is that day's count.
    assert (
        full["pred_last_week"].to_list() == held_out["hails_last_week"].cast(pl.Float64).to_list()
    )
    assert full["pred_oracle"].to_list() == [1.5] * held_out.height
    # The historical average knows the training days only: cell 100, 10:00, weekdays.
    slot = training.filter(
        (pl.col("cell") == 100)
        & (pl.col("bucket_of_day") == 40)
        & (pl.col("day_type") == "weekday")
    )
    scored_slot = full.filter((pl.col("cell") == 100) & (pl.col("bucket_of_day") == 40))
    assert scored_slot["pred_historical_average"].to_list() == pytest.approx([slot[TARGET].mean()])


def test_cross_validation_one_row_per_fold_and_predictor(rows: pl.DataFrame) -> None:
    folds = cross_validate(rows, PARAMS, folds=2)

    assert folds.height == 6
    assert sorted(folds.select("fold", "predictor").rows()) == [
        (fold, predictor)
        for fold in (1, 2)
        for predictor in ("historical_average", "last_week", "model")
    ]
    assert (
        folds.filter(pl.col("predictor") == "model").sort("fold")["test_day"].to_list()
        == (DAYS[-2:])
    )
    # Fold 1's baseline knows only the days before its test day.
    before, test = rows.filter(tokyo_day() < DAYS[-2]), rows.filter(tokyo_day() == DAYS[-2])
    baseline = historical_average_predictions(
        test.with_columns(actual=pl.col(TARGET).cast(pl.Float64)), historical_average_table(before)
    )
    expected = overall_metrics(baseline, ("historical_average",))
    fold_1 = folds.filter((pl.col("fold") == 1) & (pl.col("predictor") == "historical_average"))
    assert fold_1["mae"].item() == pytest.approx(expected["mae"].item())
    assert fold_1["rmse"].item() == pytest.approx(expected["rmse"].item())

    summary = fold_summary(folds)

    model_rows = folds.filter(pl.col("predictor") == "model").sort("fold")
    assert summary["cv_folds"] == 2.0
    assert summary["cv_mae_mean"] == pytest.approx(model_rows["mae"].mean())
    assert summary["cv_mae_std"] == pytest.approx(model_rows["mae"].std(ddof=1))
    assert summary["cv_rmse_mean"] == pytest.approx(model_rows["rmse"].mean())
    assert {"cv_poisson_deviance_mean", "cv_poisson_deviance_std"} <= summary.keys()
    for baseline in ("last_week", "historical_average"):
        reference = folds.filter(pl.col("predictor") == baseline).sort("fold")["rmse"]
        beaten = float((model_rows["rmse"] < reference).sum())
        assert summary[f"cv_folds_beating_{baseline}"] == beaten


def test_cross_validation_refuses_a_window_too_short(rows: pl.DataFrame) -> None:
    # Two folds and one validation day need two days before the first test day.
    with pytest.raises(ValueError, match="cross_validation_folds=2 needs at least 4 days.*has 3"):
        cross_validate(rows.filter(tokyo_day() < DAYS[3]), PARAMS, folds=2)
    assert cross_validate(rows.filter(tokyo_day() < DAYS[4]), PARAMS, folds=2).height == 6


def test_fold_summary_of_one_fold_has_no_spread() -> None:
    folds = pl.DataFrame(
        {
            "fold": [1, 1, 1],
            "predictor": ["model", "last_week", "historical_average"],
            "mae": [1.0, 2.0, 0.5],
            "rmse": [1.0, 2.0, 0.5],
            "poisson_deviance": [1.0, 2.0, 0.5],
        }
    )
    summary = fold_summary(folds)
    assert summary["cv_mae_std"] == 0.0
    assert (
        summary["cv_folds_beating_last_week"],
        summary["cv_folds_beating_historical_average"],
    ) == (
        1.0,
        0.0,
    )


# Horizons --------------------------------------------------------------------------------------


def test_sampling_keeps_the_asked_horizons_of_each_cell_and_bucket(
    rows_at_every_horizon: pl.DataFrame,
) -> None:
    rows = rows_at_every_horizon
    one = sample_horizons(rows, 1, seed=0)
    assert one.height * 3 == rows.height
    assert not one.select("cell", "bucket_start").is_duplicated().any()
    # Each horizon gets about a third of the buckets, drawn at random, not by a pattern.
    shares = one.group_by("horizon").len().sort("horizon")["len"].to_numpy() / one.height
    assert np.allclose(shares, 1 / 3, atol=0.02)
    by_slot = one.group_by("bucket_of_day").agg(pl.col("horizon").n_unique())
    assert (by_slot["horizon"] == 3).all()
    assert_frame_equal(one, sample_horizons(rows, 1, seed=0))
    assert not one.equals(sample_horizons(rows, 1, seed=1))
    assert sample_horizons(rows, 2, seed=0).height * 3 == rows.height * 2
    assert sample_horizons(rows, 3, seed=0).height == rows.height


def test_training_draws_horizons_per_target(rows_at_every_horizon: pl.DataFrame) -> None:
    labelled = rows_at_every_horizon.drop_nulls(["street_hail_pickups", "vacant_taxis"]).height
    one = train_model(rows_at_every_horizon, dataclasses.replace(PARAMS, iterations=5))
    every = train_model(
        rows_at_every_horizon, dataclasses.replace(PARAMS, iterations=5, horizons_per_target=3)
    )
    assert (one.training_rows + one.validation_rows) * 3 == labelled
    assert every.training_rows + every.validation_rows == labelled
    # One model answers every horizon, and the horizon changes its answer.
    predicted = one.predict(rows_at_every_horizon)["expected_street_hails"]
    assert predicted.is_finite().all()
    assert "horizon" in one.demand.feature_names_


def test_a_model_trained_before_the_horizon_feature_still_predicts(
    rows_at_every_horizon: pl.DataFrame,
) -> None:
    """A production model from before horizons reads only the features it knows, so the
    evaluation can still compare a new candidate with it."""
    older_features = tuple(name for name in FEATURES if name != "horizon")
    labelled = rows_at_every_horizon.drop_nulls(TARGET)
    older = CatBoostRegressor(
        iterations=5, loss_function="Poisson", verbose=False, allow_writing_files=False
    )
    older.fit(_pool(labelled, TARGET, older_features))

    predicted = predict_demand(older, PARAMS, labelled)

    assert len(predicted) == labelled.height and np.isfinite(predicted).all()
