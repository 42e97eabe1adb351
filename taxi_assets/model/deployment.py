"""Where the production pointer may move: the deployment rules, pure (no Dagster, no storage).

A model reaches production only if Dagster's record of an evaluation of its exact files
(:class:`Verdict`, found by content hash) blessed it under the deployment's own rules, or an
override gives a reason. The pointer only moves forward in training day unless someone
says why; a backfill of older days never moves it. Rolling back goes to the previous
deployment only if it was blessed, or with a reason. Every move says what it was.

:func:`decide_deploy` and :func:`decide_rollback` either return a :class:`Move` or raise
:class:`DeploymentRefused` with a message that says what to do instead;
:func:`moved_pointer` builds the new pointer with its history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

# An override reason short enough to be "x" or "asdf" explains nothing to the next person.
MIN_REASON_CHARS = 15


class DeploymentRefused(ValueError):
    """The pointer may not move there; the message says why and what would allow it."""


@dataclass(frozen=True)
class Verdict:
    """Dagster's record of the latest evaluation of one model's exact files."""

    content_hash: str
    model_version: str
    held_out_day: str
    blessed: bool
    rules_fingerprint: str | None  # None: recorded before evaluations carried one
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """A model version as stored now: ``content_hash`` is of its files' bytes."""

    model_version: str
    content_hash: str
    training_day: str  # ISO date of the day the model was trained for (its held-out day)


@dataclass(frozen=True)
class Move:
    """What the pointer does: ``keep`` leaves production as it is."""

    action: str  # deploy, override, rollback, rollback_override, keep
    reason: str = ""
    moved_backwards: bool = False
    note: str = ""


def _reason(override_reason: str | None) -> str:
    return (override_reason or "").strip()


def _has_reason(reason: str) -> bool:
    return len(reason) >= MIN_REASON_CHARS


def training_day_of(pointer: dict[str, Any]) -> str:
    """A deployment's training day (pointers written before it was recorded: the day its
    version starts with)."""
    return str(pointer.get("training_day") or pointer["model_version"][:10])


def days_seen_on_or_after(manifest: dict[str, Any], day: date) -> list[str]:
    """The days a model's manifest says it trained on that are ``day`` or later: a model
    that saw them may not judge, nor seed, a model for ``day``."""
    return [seen for seen in manifest.get("partitions_used", []) if seen >= day.isoformat()]


def why_not_blessed(verdict: Verdict | None, rules_fingerprint: str) -> str | None:
    """None when the verdict lets the model deploy under these rules; else why not."""
    if verdict is None:
        return "Dagster has no evaluation of these model files (it was never evaluated)"
    if verdict.rules_fingerprint != rules_fingerprint:
        return (
            f"its evaluation on {verdict.held_out_day} (run {verdict.run_id[:8]}) was judged "
            f"by other blessing rules ({verdict.rules_fingerprint or 'unrecorded'}) than this "
            f"deployment's ({rules_fingerprint}): re-run model_evaluation for that day"
        )
    if not verdict.blessed:
        return (
            f"its evaluation on {verdict.held_out_day} (run {verdict.run_id[:8]}) did not bless it"
        )
    return None


def decide_deploy(
    candidate: Candidate,
    verdict: Verdict | None,
    current: dict[str, Any] | None,
    rules_fingerprint: str,
    override_reason: str | None = None,
    allow_older_model: bool = False,
    in_backfill: bool = False,
) -> Move:
    """Whether ``candidate`` may replace ``current`` (the pointer, or None)."""
    reason = _reason(override_reason)
    moved_backwards = current is not None and candidate.training_day < training_day_of(current)
    if moved_backwards and not (allow_older_model and _has_reason(reason)):
        older = (
            f"{candidate.model_version} was trained for {candidate.training_day}, before "
            f"production's {current['model_version']} ({training_day_of(current)})"  # type: ignore[index]
        )
        if in_backfill:
            return Move("keep", note=f"a backfill never moves production back: {older}")
        raise DeploymentRefused(
            f"Refusing to move production backwards: {older}. To do it on purpose set "
            f"allow_older_model: true and override_reason (at least {MIN_REASON_CHARS} "
            "characters), or roll back with rollback: true."
        )
    problem = why_not_blessed(verdict, rules_fingerprint)
    if problem is None:
        return Move("deploy", reason, moved_backwards)
    if _has_reason(reason):
        return Move("override", reason, moved_backwards, note=problem)
    raise DeploymentRefused(
        f"Refusing to deploy {candidate.model_version}: {problem}. An emergency override "
        f"needs override_reason (at least {MIN_REASON_CHARS} characters)."
    )


def decide_rollback(
    target: dict[str, Any], verdict: Verdict | None, override_reason: str | None = None
) -> Move:
    """Whether the previous deployment ``target`` may come back: only if Dagster's record
    blessed its files (under the rules of its day), or with a reason."""
    reason = _reason(override_reason)
    if verdict is not None and verdict.blessed:
        return Move("rollback", reason, moved_backwards=True)
    problem = (
        "Dagster has no evaluation of its files"
        if verdict is None
        else f"its evaluation on {verdict.held_out_day} did not bless it"
    )
    if _has_reason(reason):
        return Move("rollback_override", reason, moved_backwards=True, note=problem)
    was = f" (it was deployed by {target['action']})" if target.get("action") else ""
    raise DeploymentRefused(
        f"Refusing to roll back to {target['model_version']}: {problem}{was}. Rolling back "
        f"to an unblessed model needs override_reason (at least {MIN_REASON_CHARS} "
        "characters)."
    )


def without_history(pointer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in pointer.items() if key not in ("history", "generation")}


def moved_pointer(
    current: dict[str, Any] | None, entry: dict[str, Any], move: Move
) -> dict[str, Any]:
    """The new pointer: ``entry`` with the history that goes with the move. A rollback pops
    the entry it returns to; a re-deploy of the current version does not push itself."""
    if current is None:
        history: list[dict[str, Any]] = []
    elif move.action.startswith("rollback"):
        history = list(current["history"][1:])
    elif current["model_version"] == entry["model_version"]:
        history = list(current["history"])
    else:
        history = [without_history(current), *current["history"]]
    return {
        **entry,
        "action": move.action,
        "override_reason": move.reason,
        "moved_backwards": move.moved_backwards,
        "history": history,
    }
