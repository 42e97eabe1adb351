"""The deployment rules on their own, without Dagster: every way the pointer may not move."""

from __future__ import annotations

from datetime import date

import pytest

from taxi_assets.model.deployment import (
    Candidate,
    DeploymentRefused,
    Verdict,
    days_seen_on_or_after,
    decide_deploy,
    decide_rollback,
    moved_pointer,
)

RULES = "rules-of-the-dep"
REASON = "Incident 4711: the blessed model's files were lost"


def verdict(blessed: bool = True, rules: str | None = RULES, day: str = "2026-05-01") -> Verdict:
    return Verdict("hash-b", "2026-05-01-bbbb", day, blessed, rules, "run-of-the-evaluation")


CANDIDATE = Candidate("2026-05-01-bbbb", "hash-b", "2026-05-01")
CURRENT = {
    "model_version": "2026-04-30-aaaa",
    "training_day": "2026-04-30",
    "action": "deploy",
    "history": [{"model_version": "2026-04-29-zzzz", "action": "override"}],
}


def test_a_blessed_verdict_under_the_deployments_rules_deploys() -> None:
    move = decide_deploy(CANDIDATE, verdict(), CURRENT, RULES)
    assert (move.action, move.reason, move.moved_backwards) == ("deploy", "", False)
    pointer = moved_pointer(CURRENT, {"model_version": CANDIDATE.model_version}, move)
    assert [h["model_version"] for h in pointer["history"]] == [
        "2026-04-30-aaaa",
        "2026-04-29-zzzz",
    ]
    assert "history" not in pointer["history"][0]


@pytest.mark.parametrize(
    ("recorded", "why"),
    [
        (None, "never evaluated"),
        (verdict(blessed=False), "did not bless it"),
        (verdict(rules="loosened-rules"), "other blessing rules"),
        (verdict(rules=None), "other blessing rules"),
    ],
)
def test_no_blessing_under_these_rules_is_refused_unless_overridden(
    recorded: Verdict | None, why: str
) -> None:
    with pytest.raises(DeploymentRefused, match=why):
        decide_deploy(CANDIDATE, recorded, CURRENT, RULES)
    with pytest.raises(DeploymentRefused, match="override_reason"):
        decide_deploy(CANDIDATE, recorded, CURRENT, RULES, override_reason="urgent")
    move = decide_deploy(CANDIDATE, recorded, CURRENT, RULES, override_reason=REASON)
    assert (move.action, move.reason) == ("override", REASON)
    assert why in move.note


def test_an_older_model_needs_explicit_config_and_a_reason() -> None:
    older = Candidate("2026-04-20-cccc", "hash-c", "2026-04-20")
    blessed = verdict(day="2026-04-20")
    with pytest.raises(DeploymentRefused, match="backwards.*allow_older_model"):
        decide_deploy(older, blessed, CURRENT, RULES)
    with pytest.raises(DeploymentRefused, match="backwards"):
        decide_deploy(older, blessed, CURRENT, RULES, allow_older_model=True)
    with pytest.raises(DeploymentRefused, match="backwards"):
        decide_deploy(older, blessed, CURRENT, RULES, override_reason=REASON)
    move = decide_deploy(
        older, blessed, CURRENT, RULES, override_reason=REASON, allow_older_model=True
    )
    assert (move.action, move.moved_backwards, move.reason) == ("deploy", True, REASON)


def test_a_backfill_of_an_older_day_keeps_production() -> None:
    older = Candidate("2026-04-20-cccc", "hash-c", "2026-04-20")
    move = decide_deploy(older, verdict(day="2026-04-20"), CURRENT, RULES, in_backfill=True)
    assert move.action == "keep" and "backfill" in move.note
    # A backfill of a newer day moves forward as any run does.
    assert decide_deploy(CANDIDATE, verdict(), CURRENT, RULES, in_backfill=True).action == "deploy"


def test_the_same_day_retrained_is_not_backwards() -> None:
    same_day = Candidate("2026-04-30-dddd", "hash-d", "2026-04-30")
    assert decide_deploy(same_day, verdict(day="2026-04-30"), CURRENT, RULES).action == "deploy"


def test_rollback_only_to_a_blessed_deployment_or_with_a_reason() -> None:
    target = CURRENT["history"][0]
    assert decide_rollback(target, verdict()).action == "rollback"
    for recorded in (None, verdict(blessed=False)):
        with pytest.raises(DeploymentRefused, match="deployed by override.*override_reason"):
            decide_rollback(target, recorded)
        move = decide_rollback(target, recorded, REASON)
        assert (move.action, move.reason) == ("rollback_override", REASON)
    pointer = moved_pointer(CURRENT, {"model_version": target["model_version"]}, move)
    assert pointer["history"] == [] and pointer["override_reason"] == REASON


def test_days_a_model_saw_on_or_after_a_day() -> None:
    manifest = {"partitions_used": ["2026-04-27", "2026-04-28", "2026-04-29", "2026-04-30"]}
    assert days_seen_on_or_after(manifest, date(2026, 5, 1)) == []
    assert days_seen_on_or_after(manifest, date(2026, 4, 29)) == ["2026-04-29", "2026-04-30"]
