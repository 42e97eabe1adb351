"""Blessing rules: each way a candidate is blocked, and the cases where it goes through."""

from __future__ import annotations

import polars as pl
import pytest

from taxi_assets.model.blessing import (
    BlessingRules,
    decide_blessing,
    decide_blessing_at_every_horizon,
    reasons_markdown,
)

# (mae, rmse, poisson_deviance) per predictor; the candidate beats everything by default.
GOOD = {
    "model": (1.00, 1.20, 0.90),
    "production": (1.05, 1.25, 0.95),
    "last_week": (1.40, 1.80, 1.30),
    "historical_average": (1.20, 1.50, 1.10),
}


def overall(metrics: dict[str, tuple[float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "predictor": predictor,
                "rows": 10_000,
                "mae": mae,
                "rmse": rmse,
                "poisson_deviance": deviance,
                "mape": 20.0,
                "mape_rows": 500,
            }
            for predictor, (mae, rmse, deviance) in metrics.items()
        ]
    )


def slices(
    metrics: dict[str, tuple[float, float, float]], hour_08: dict | None = None
) -> pl.DataFrame:
    """Two hour slices with the overall metrics; ``hour_08`` overrides that slice's rows
    and the model's (mae, rmse, deviance) there."""
    hour_08 = hour_08 or {}
    records = []
    for hour in ("07", "08"):
        for predictor, values in metrics.items():
            if hour == "08" and predictor == "model":
                values = hour_08.get("model", values)
            mae, rmse, deviance = values
            records.append(
                {
                    "slice_kind": "hour",
                    "slice": hour,
                    "predictor": predictor,
                    "rows": hour_08.get("rows", 1_000) if hour == "08" else 1_000,
                    "mae": mae,
                    "rmse": rmse,
                    "poisson_deviance": deviance,
                    "mape": None,
                }
            )
    return pl.DataFrame(records)


def decide(
    metrics: dict[str, tuple[float, float, float]],
    rules: BlessingRules | None = None,
    hour_08: dict | None = None,
):
    return decide_blessing(overall(metrics), slices(metrics, hour_08), rules or BlessingRules())


def test_a_candidate_better_than_everything_is_blessed() -> None:
    decision = decide(GOOD, BlessingRules(max_rmse=2.0, max_poisson_deviance=2.0))
    assert decision.blessed
    assert decision.failures == ()
    assert decision.decided_by == "production and baselines"
    assert "rmse 1.200 <= max 2.000: ok" in decision.reasons
    assert all(reason.endswith(": ok") for reason in decision.reasons)
    assert reasons_markdown(decision).startswith("**Blessed**")


def test_an_absolute_bound_blocks() -> None:
    decision = decide(GOOD, BlessingRules(max_rmse=1.0))
    assert not decision.blessed
    assert decision.failures == ("rmse 1.200 > max 1.000: FAIL",)


def test_worse_than_production_beyond_tolerance_blocks() -> None:
    metrics = {**GOOD, "model": (1.00, 1.30, 0.90), "production": (1.05, 1.20, 0.95)}
    decision = decide(metrics)
    assert not decision.blessed
    assert decision.failures[0] == (
        "rmse 1.300 vs production 1.200 (+8.3%) beyond tolerance 2%: FAIL"
    )
    markdown = reasons_markdown(decision)
    assert markdown.startswith("**Not blessed**")
    assert "- ❌ rmse 1.300 vs production 1.200 (+8.3%)" in markdown


def test_slightly_worse_than_production_within_tolerance_passes() -> None:
    metrics = {**GOOD, "model": (1.00, 1.22, 0.90), "production": (1.05, 1.20, 0.95)}
    decision = decide(metrics)
    assert decision.blessed
    assert "rmse 1.220 vs production 1.200 (+1.7%) within tolerance 2%: ok" in decision.reasons


def test_one_slice_beyond_tolerance_blocks() -> None:
    decision = decide(GOOD, hour_08={"model": (1.0, 1.50, 0.90)})
    assert not decision.blessed
    assert len(decision.failures) == 1
    assert decision.failures[0].startswith("hour 08: rmse 1.500 vs production 1.250 (+20.0%)")
    assert "poisson_deviance within 10% of production in all 2 judged slices" in "\n".join(
        decision.reasons
    )


def test_a_slice_with_too_few_rows_is_skipped_and_said_so() -> None:
    decision = decide(GOOD, hour_08={"model": (1.0, 1.50, 0.90), "rows": 100})
    assert decision.blessed
    skipped = [reason for reason in decision.reasons if "not judged" in reason]
    assert skipped == ["slices not judged (fewer than 400 rows, too noisy): hour 08 (100 rows)"]
    assert "ℹ️" in reasons_markdown(decision)


def test_without_production_the_baselines_decide() -> None:
    metrics = {name: values for name, values in GOOD.items() if name != "production"}
    metrics["model"] = (1.00, 1.55, 0.90)  # worse RMSE than the historical average
    decision = decide(metrics)
    assert decision.decided_by == "baselines (no production model yet)"
    assert "no production model yet: the baselines decide" in decision.reasons
    assert not decision.blessed
    assert decision.failures[0] == (
        "rmse 1.550 vs historical_average 1.500 (+3.3%) not better: FAIL"
    )


def test_mae_is_reported_but_gates_nothing() -> None:
    """In sparse cells predicting 0 wins MAE: a model better on RMSE and deviance but worse
    on MAE than every reference is still blessed."""
    metrics = {**GOOD, "model": (1.60, 1.20, 0.90)}
    decision = decide(metrics)
    assert decision.blessed
    assert not any(reason.startswith("mae") for reason in decision.reasons)
    with pytest.raises(ValueError, match="compared_metrics.*MAE is reported, never gated"):
        BlessingRules(compared_metrics=("mae", "rmse"))


def test_the_baselines_are_judged_on_rmse_and_deviance_overall_and_per_slice() -> None:
    worse_deviance = {**GOOD, "model": (1.00, 1.20, 1.15)}  # deviance above historical avg
    decision = decide(worse_deviance)
    assert not decision.blessed
    assert (
        "poisson_deviance 1.150 vs historical_average 1.100 (+4.5%) not better: FAIL"
        in decision.failures
    )
    # Better overall, but one judged hour far worse than the last-week baseline.
    decision = decide(GOOD, hour_08={"model": (1.0, 2.10, 0.90)})
    assert any(
        failure.startswith("hour 08: rmse 2.100 vs last_week 1.800")
        for failure in decision.failures
    )


def test_the_rules_fingerprint_changes_with_any_rule() -> None:
    rules = BlessingRules()
    assert rules.fingerprint() == BlessingRules().fingerprint()
    assert len(rules.fingerprint()) == 16
    for changed in (
        BlessingRules(production_tolerance=10.0),
        BlessingRules(must_beat_baselines=False),
        BlessingRules(slice_min_rows=1),
        BlessingRules(compared_metrics=("rmse",)),
    ):
        assert changed.fingerprint() != rules.fingerprint()


def test_without_production_a_candidate_beating_the_baselines_is_blessed() -> None:
    metrics = {name: values for name, values in GOOD.items() if name != "production"}
    decision = decide(metrics)
    assert decision.blessed
    assert decision.decided_by == "baselines (no production model yet)"


def test_baselines_can_be_waived() -> None:
    metrics = {**GOOD, "model": (1.00, 1.60, 0.90), "production": (1.05, 1.65, 0.95)}
    assert not decide(metrics).blessed
    assert decide(metrics, BlessingRules(must_beat_baselines=False)).blessed


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("production_tolerance", -0.01),
        ("slice_tolerance", -0.1),
        ("max_rmse", -1.0),
        ("slice_min_rows", -1),
        ("compared_metrics", ("rmse", "r2")),
        ("compared_metrics", ()),
    ],
)
def test_rules_reject_impossible_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        BlessingRules(**{field: value})


# Horizons ------------------------------------------------------------------------------------


def per_horizon(*metrics: dict[str, tuple[float, float, float]]) -> dict:
    return {h: (overall(m), slices(m)) for h, m in enumerate(metrics)}


def test_a_candidate_good_at_every_horizon_is_blessed_with_reasons_per_horizon() -> None:
    decision = decide_blessing_at_every_horizon(
        overall(GOOD), slices(GOOD), per_horizon(GOOD, GOOD, GOOD), BlessingRules()
    )
    assert decision.blessed, decision.failures
    for horizon in (0, 1, 2):
        assert any(r.startswith(f"horizon {horizon}: rmse") for r in decision.reasons)


def test_worse_than_production_at_one_horizon_blocks_although_better_pooled() -> None:
    worse_later = {**GOOD, "model": (1.00, 1.40, 0.90)}  # RMSE 1.40 vs production 1.25
    decision = decide_blessing_at_every_horizon(
        overall(GOOD), slices(GOOD), per_horizon(GOOD, GOOD, worse_later), BlessingRules()
    )
    assert not decision.blessed
    assert decision.failures
    assert all(f.startswith("horizon 2: ") for f in decision.failures), decision.failures
    assert any("production" in f and "rmse" in f for f in decision.failures)


def test_losing_to_a_baseline_at_one_horizon_blocks_without_production() -> None:
    no_production = {k: v for k, v in GOOD.items() if k != "production"}
    loses = {**no_production, "model": (1.00, 1.60, 0.90)}  # RMSE above historical 1.50
    decision = decide_blessing_at_every_horizon(
        overall(no_production),
        slices(no_production),
        per_horizon(no_production, loses, no_production),
        BlessingRules(),
    )
    assert not decision.blessed
    assert decision.decided_by == "baselines (no production model yet)"
    assert any(
        f.startswith("horizon 1: rmse") and "historical_average" in f for f in decision.failures
    )
