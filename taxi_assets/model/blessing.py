"""Whether a candidate model may replace production: explicit rules, every verdict explained.

The candidate is the ``model`` predictor of :mod:`taxi_assets.model.evaluation`'s frames. It must
stay within absolute bounds, be no more than a tolerance worse than production overall and
in every slice big enough to judge, and beat the naive baselines overall (and not lose to
them by more than the slice tolerance in any slice). Before any model is in production the
baselines alone decide. With forecasts at several horizons, the rules apply to every horizon
pooled and to each horizon alone: the candidate must pass them all.

Counts are judged by what suits counts: RMSE and the Poisson deviance. MAE is reported but
gates nothing: in sparse cells the MAE-optimal prediction is 0, so a model that forecasts
rates well can lose on MAE to one that predicts nothing (on a real feed the model beat the
historical average by 16-24% on deviance and by only 1.4% on MAE).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import polars as pl

from taxi_assets.model.evaluation import BASELINES

COMPARABLE_METRICS = ("rmse", "poisson_deviance")
REPORTED_ONLY_METRICS = ("mae",)
OK, FAIL = ": ok", ": FAIL"


@dataclass(frozen=True)
class BlessingRules:
    """Absolute bounds (None: no bound) and tolerances relative to production (0.02 = 2%)."""

    max_rmse: float | None = None
    max_poisson_deviance: float | None = None
    production_tolerance: float = 0.02
    slice_tolerance: float = 0.10
    # Below this many rows a slice's error is too noisy to block a release on.
    slice_min_rows: int = 400
    compared_metrics: tuple[str, ...] = ("rmse", "poisson_deviance")
    must_beat_baselines: bool = True

    def __post_init__(self) -> None:
        for name in ("max_rmse", "max_poisson_deviance"):
            bound = getattr(self, name)
            if bound is not None and not (math.isfinite(bound) and bound > 0):
                raise ValueError(f"{name}={bound!r} must be a positive number or None")
        for name in ("production_tolerance", "slice_tolerance"):
            tolerance = getattr(self, name)
            if not (math.isfinite(tolerance) and tolerance >= 0):
                raise ValueError(
                    f"{name}={tolerance!r} must be a non-negative fraction (0.02 = 2% worse)"
                )
        if self.slice_min_rows < 0:
            raise ValueError(f"slice_min_rows={self.slice_min_rows!r} must be >= 0")
        unknown = set(self.compared_metrics) - set(COMPARABLE_METRICS)
        if unknown:
            raise ValueError(
                f"compared_metrics has unknown metrics {sorted(unknown)}: "
                f"choose from {list(COMPARABLE_METRICS)} (MAE is reported, never gated: "
                "on sparse counts predicting 0 wins it)"
            )
        if not self.compared_metrics:
            raise ValueError("compared_metrics is empty: a gate comparing nothing blesses anything")

    def fingerprint(self) -> str:
        """A short hash of every rule: recorded with each evaluation and deployment, so a
        verdict reached under other rules than the deployment's is seen and refused."""
        canonical = json.dumps(asdict(self), sort_keys=True, default=list)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BlessingDecision:
    blessed: bool
    reasons: tuple[str, ...]
    failures: tuple[str, ...]
    decided_by: str


def _change(candidate: float, reference: float) -> float:
    """Relative change of the candidate over the reference (+0.05 = 5% worse)."""
    if reference == 0:
        return 0.0 if candidate == 0 else math.inf
    return (candidate - reference) / reference


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _versus(metric: str, candidate: float, name: str, reference: float) -> str:
    return (
        f"{metric} {candidate:.3f} vs {name} {reference:.3f} ({_change(candidate, reference):+.1%})"
    )


def decide_blessing(
    overall: pl.DataFrame, slices: pl.DataFrame, rules: BlessingRules
) -> BlessingDecision:
    """Judge the ``model`` predictor of ``overall`` and ``slices`` (from evaluation.py)."""
    metrics = {row["predictor"]: row for row in overall.iter_rows(named=True)}
    if "model" not in metrics:
        raise ValueError("overall metrics have no 'model' predictor to judge")
    model = metrics["model"]
    reasons: list[str] = []

    bounds = {
        "rmse": rules.max_rmse,
        "poisson_deviance": rules.max_poisson_deviance,
    }
    for metric, bound in bounds.items():
        if bound is not None:
            value = model[metric]
            within = value <= bound
            verdict = f"<= max {bound:.3f}{OK}" if within else f"> max {bound:.3f}{FAIL}"
            reasons.append(f"{metric} {value:.3f} {verdict}")

    has_production = "production" in metrics
    if has_production:
        tolerance = rules.production_tolerance
        for metric in rules.compared_metrics:
            value, reference = model[metric], metrics["production"][metric]
            within = value <= reference * (1 + tolerance)
            verdict = f"{'within' if within else 'beyond'} tolerance {_percent(tolerance)}"
            verdict += OK if within else FAIL
            reasons.append(f"{_versus(metric, value, 'production', reference)} {verdict}")
        reasons.extend(_slice_reasons(slices, rules, "production", rules.compared_metrics))
    else:
        reasons.append("no production model yet: the baselines decide")

    if rules.must_beat_baselines:
        for baseline in BASELINES:
            if baseline not in metrics:
                reasons.append(f"baseline {baseline} missing from the evaluation{FAIL}")
                continue
            for metric in rules.compared_metrics:
                value, reference = model[metric], metrics[baseline][metric]
                verdict = "better" + OK if value < reference else "not better" + FAIL
                reasons.append(f"{_versus(metric, value, baseline, reference)} {verdict}")
            reasons.extend(_slice_reasons(slices, rules, baseline, rules.compared_metrics))

    reasons.extend(_skipped_slices_note(slices, rules))
    failures = tuple(r for r in reasons if r.endswith(FAIL))
    return BlessingDecision(
        blessed=not failures,
        reasons=tuple(reasons),
        failures=failures,
        decided_by="production and baselines"
        if has_production
        else "baselines (no production model yet)",
    )


def decide_blessing_at_every_horizon(
    overall: pl.DataFrame,
    slices: pl.DataFrame,
    per_horizon: Mapping[int, tuple[pl.DataFrame, pl.DataFrame]],
    rules: BlessingRules,
) -> BlessingDecision:
    """:func:`decide_blessing` on every horizon pooled (``overall``, ``slices``) and on each
    horizon alone (``per_horizon``: its overall and slice metrics): a candidate better on
    average but worse than production 30 minutes ahead is not blessed. Each horizon's
    reasons start with ``horizon <h>:``."""
    pooled = decide_blessing(overall, slices, rules)
    reasons = list(pooled.reasons)
    for horizon, (horizon_overall, horizon_slices) in sorted(per_horizon.items()):
        decision = decide_blessing(horizon_overall, horizon_slices, rules)
        reasons += [
            f"horizon {horizon}: {reason}"
            for reason in decision.reasons
            if not reason.startswith("no production model yet")
        ]
    failures = tuple(r for r in reasons if r.endswith(FAIL))
    return BlessingDecision(
        blessed=not failures,
        reasons=tuple(reasons),
        failures=failures,
        decided_by=pooled.decided_by,
    )


def _slice_reasons(
    slices: pl.DataFrame, rules: BlessingRules, reference_name: str, metrics: tuple[str, ...]
) -> list[str]:
    """Against one reference predictor: one line per failing slice and metric, and one
    summary line per metric."""
    keys = ["slice_kind", "slice"]
    paired = slices.filter(pl.col("predictor") == "model").join(
        slices.filter(pl.col("predictor") == reference_name),
        on=keys,
        suffix="_reference",
        maintain_order="left",
    )
    judged = paired.filter(pl.col("rows") >= rules.slice_min_rows)
    tolerance = _percent(rules.slice_tolerance)
    reasons = []
    for metric in metrics:
        worst_change, failed = -math.inf, 0
        for row in judged.iter_rows(named=True):
            value, reference = row[metric], row[f"{metric}_reference"]
            worst_change = max(worst_change, _change(value, reference))
            if not value <= reference * (1 + rules.slice_tolerance):
                failed += 1
                reasons.append(
                    f"{row['slice_kind']} {row['slice']}: "
                    f"{_versus(metric, value, reference_name, reference)} "
                    f"beyond slice tolerance {tolerance}{FAIL}"
                )
        if not failed:
            worst = f" (worst {worst_change:+.1%})" if judged.height else ""
            reasons.append(
                f"{metric} within {tolerance} of {reference_name} in all {judged.height} "
                f"judged slices{worst}{OK}"
            )
    return reasons


def _skipped_slices_note(slices: pl.DataFrame, rules: BlessingRules) -> list[str]:
    skipped = slices.filter(
        (pl.col("predictor") == "model") & (pl.col("rows") < rules.slice_min_rows)
    )
    if not skipped.height:
        return []
    names = ", ".join(
        f"{r['slice_kind']} {r['slice']} ({r['rows']} rows)" for r in skipped.iter_rows(named=True)
    )
    return [f"slices not judged (fewer than {rules.slice_min_rows} rows, too noisy): {names}"]


def reasons_markdown(decision: BlessingDecision) -> str:
    """The decision, then every rule's verdict as a bullet (✅ passed, ❌ failed, ℹ️ note)."""
    if decision.blessed:
        headline = f"**Blessed**: every rule passed (decided by {decision.decided_by})."
    else:
        headline = (
            f"**Not blessed**: {len(decision.failures)} rule(s) failed "
            f"(decided by {decision.decided_by})."
        )
    failures = set(decision.failures)

    def mark(reason: str) -> str:
        if reason in failures:
            return "❌"
        return "✅" if reason.endswith(OK) else "ℹ️"

    return "\n".join([headline, "", *(f"- {mark(r)} {r}" for r in decision.reasons)])
