"""Training-serving skew: like-for-like comparison of a tick's features with training."""

from __future__ import annotations

import numpy as np
import polars as pl

from taxi_assets.validation.skew import SKEW_FEATURES, feature_skew, same_slot_reference

RNG = np.random.default_rng(5)


def feature_rows(n: int, rate: float, bucket_of_day: int = 72, day_type: str = "weekday"):
    """Rows of every skew feature drawn from Poisson counts at ``rate``; cells 0..n-1."""
    return pl.DataFrame(
        {
            "cell": range(n),
            "bucket_of_day": [bucket_of_day] * n,
            "day_type": [day_type] * n,
            **{name: RNG.poisson(rate, n).astype(np.float32) for name in SKEW_FEATURES},
        }
    )


def test_the_same_process_shows_no_skew() -> None:
    training = pl.concat([feature_rows(1520, 0.4) for _ in range(4)])  # 4 days, every cell
    skew = feature_skew(feature_rows(1520, 0.4), training, threshold=0.03)
    assert not skew["crossed"].any()
    assert skew["distance"].max() < 0.01


def test_a_feature_fed_twice_the_supply_is_skewed_and_named() -> None:
    serving = feature_rows(1520, 3.0).with_columns(pl.col("vacant_prev_1") * 2)
    skew = feature_skew(serving, feature_rows(6080, 3.0), threshold=0.03)
    assert skew.filter(pl.col("crossed"))["feature"].to_list() == ["vacant_prev_1"]
    assert skew["feature"][0] == "vacant_prev_1"  # worst first


def test_history_missing_at_serving_time_is_skew() -> None:
    serving = feature_rows(1520, 0.4).with_columns(hails_last_week=pl.lit(None, pl.Float32))
    skew = feature_skew(serving, feature_rows(6080, 0.4), threshold=0.03)
    row = skew.filter(pl.col("feature") == "hails_last_week").row(0, named=True)
    assert row["distance"] == 1.0 and row["crossed"]
    assert row["null_fraction_serving"] == 1.0 and row["null_fraction_training"] == 0.0


def test_reference_is_the_same_slot_and_kind_of_day() -> None:
    training = pl.concat(
        [
            feature_rows(10, 0.4, bucket_of_day=72, day_type="weekday"),
            feature_rows(20, 0.4, bucket_of_day=72, day_type="holiday"),
            feature_rows(30, 0.4, bucket_of_day=73, day_type="saturday"),
        ]
    ).lazy()
    holiday_tick = feature_rows(5, 0.4, bucket_of_day=72, day_type="saturday")
    assert same_slot_reference(training, holiday_tick).height == 20  # weekend or holiday
    weekday_tick = feature_rows(5, 0.4, bucket_of_day=73, day_type="weekday")
    # No weekday at that slot in the window: every kind of day at the slot instead.
    assert same_slot_reference(training, weekday_tick).height == 30


def test_a_tick_with_horizons_is_compared_horizon_by_horizon_at_each_target_slot() -> None:
    def at(horizon: int, n: int, bucket_of_day: int) -> pl.DataFrame:
        return feature_rows(n, 0.4, bucket_of_day=bucket_of_day).with_columns(
            horizon=pl.lit(horizon, pl.Int8)
        )

    # Training holds every slot at every horizon; sizes tell which rows were picked.
    training = pl.concat(
        [at(h, 10 + 100 * h + slot - 72, slot) for h in (0, 1, 2) for slot in (72, 73, 74)]
    ).lazy()
    # At 18:00 (slot 72) the tick forecasts slots 72, 73 and 74 at horizons 0, 1 and 2.
    tick = pl.concat([at(h, 5, 72 + h) for h in (0, 1, 2)])

    reference = same_slot_reference(training, tick)

    assert reference.group_by("horizon", "bucket_of_day").len().sort("horizon").rows() == [
        (0, 72, 10),
        (1, 73, 111),
        (2, 74, 212),
    ]
    # Training stored before horizons: each horizon's slot from all of it.
    old = training.drop("horizon")
    assert same_slot_reference(old, tick).height == (10 + 110 + 210) + (11 + 111 + 211) + (
        12 + 112 + 212
    )
