"""When quarantined pings are too many: a few bad rows never block a day, a bad share does.

Real feeds always carry some bad pings (a few percent outside any service area, ~0.15% with
absurd speeds); cleaning quarantines them and the day goes on. What must stop a day is a
share of quarantined rows no healthy feed shows, overall or for one reason: a feed whose
ids or statuses changed spelling, a service area that no longer matches the fleet, an
uploader delivering every file twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from taxi_assets.frames import REJECT_REASONS

# Defaults, as shares of the day's raw rows. Any single reason: 5%, about 30x the share of
# absurd speeds in a real feed and 10x the simulator's busiest fault (clock_skew and
# stuck_status, ~0.5% each), so a systematic fault crosses and normal noise does not.
DEFAULT_MAX_SHARE_PER_REASON = 0.05
# Two reasons are larger by nature: taxis leave the area (a real feed had a few percent of
# pings outside it, more on days of airport runs), and uploaders re-send batches (copies are
# harmless, but a third of the day being copies means the uploader loops).
DEFAULT_MAX_SHARE_BY_REASON = {"outside_service_area": 0.15, "duplicate": 0.3}
# Overall: even if each reason stays under its limit, losing a third of a day leaves too
# little to count demand from.
DEFAULT_MAX_SHARE = 0.3


def _validated_share(name: str, value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a share in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class QuarantineLimits:
    """The largest quarantined share a day may have, overall and per reason."""

    max_share: float = DEFAULT_MAX_SHARE
    max_share_per_reason: float = DEFAULT_MAX_SHARE_PER_REASON
    # Reasons with their own limit; any other reason gets max_share_per_reason.
    by_reason: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_MAX_SHARE_BY_REASON)
    )

    def __post_init__(self) -> None:
        _validated_share("max_quarantined_share", self.max_share)
        _validated_share("max_quarantined_share_per_reason", self.max_share_per_reason)
        unknown = sorted(set(self.by_reason) - set(REJECT_REASONS))
        if unknown:
            raise ValueError(
                f"max_quarantined_share_by_reason: unknown reason(s) {unknown}; "
                f"reasons are {list(REJECT_REASONS)}"
            )
        for reason, share in self.by_reason.items():
            _validated_share(f"max_quarantined_share_by_reason[{reason!r}]", share)

    def limit(self, reason: str) -> float:
        return self.by_reason.get(reason, self.max_share_per_reason)


@dataclass(frozen=True)
class QuarantineVerdict:
    raw_rows: int
    quarantined_rows: int
    share: float
    shares: dict[str, float]  # every reason of REJECT_REASONS, zeros included
    breaches: list[str]  # "gps_jump 7.1% > 5%", ...

    @property
    def passed(self) -> bool:
        return not self.breaches


def _percent(share: float) -> str:
    return f"{share:.2%}" if share < 0.1 else f"{share:.1%}"


def judge_quarantine(
    counts: Mapping[str, int], raw_rows: int, limits: QuarantineLimits
) -> QuarantineVerdict:
    """Shares of the day's raw rows quarantined, overall and per reason, against limits."""
    quarantined = sum(counts.values())
    shares = {
        reason: counts.get(reason, 0) / raw_rows if raw_rows else 0.0 for reason in REJECT_REASONS
    }
    share = quarantined / raw_rows if raw_rows else 0.0
    breaches = [
        f"{reason} {_percent(value)} > {_percent(limits.limit(reason))}"
        for reason, value in shares.items()
        if value > limits.limit(reason)
    ]
    if share > limits.max_share:
        breaches.insert(0, f"overall {_percent(share)} > {_percent(limits.max_share)}")
    return QuarantineVerdict(raw_rows, quarantined, share, shares, breaches)


def quarantine_summary(verdict: QuarantineVerdict, limits: QuarantineLimits) -> str:
    """E.g. "0.62% of 2,832,872 pings quarantined (limit 30.0%): clock_skew 0.49%, ...;
    every reason within its limit"."""
    by_share = sorted(
        ((reason, share) for reason, share in verdict.shares.items() if share),
        key=lambda item: -item[1],
    )
    reasons = ", ".join(f"{reason} {_percent(share)}" for reason, share in by_share) or "none"
    head = (
        f"{_percent(verdict.share)} of {verdict.raw_rows:,} pings quarantined "
        f"(limit {_percent(limits.max_share)}): {reasons}"
    )
    if verdict.passed:
        return f"{head}; every reason within its limit"
    return f"Too many pings quarantined: {'; '.join(verdict.breaches)}. {head}"
