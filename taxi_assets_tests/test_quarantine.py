"""The quarantine-share limits: a real feed's few bad pings pass, a bad share fails."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from taxi_assets.frames import REJECT_REASONS
from taxi_assets.quarantine import QuarantineLimits, judge_quarantine, quarantine_summary
from taxi_assets.settings import PipelineSettings

ROWS = 1_000_000


def test_a_real_feeds_few_bad_pings_pass_with_every_share_reported() -> None:
    # What a real feed showed: a few percent outside the area, ~0.15% absurd speeds.
    counts = {"outside_service_area": 40_000, "invalid_value": 1_500, "duplicate": 2_000}
    limits = QuarantineLimits()
    verdict = judge_quarantine(counts, ROWS, limits)
    assert verdict.passed
    assert verdict.share == pytest.approx(0.0435)
    assert list(verdict.shares) == list(REJECT_REASONS)
    assert verdict.shares["invalid_value"] == pytest.approx(0.0015)
    assert verdict.shares["gps_jump"] == 0.0
    assert quarantine_summary(verdict, limits) == (
        "4.35% of 1,000,000 pings quarantined (limit 30.0%): outside_service_area 4.00%, "
        "duplicate 0.20%, invalid_value 0.15%; every reason within its limit"
    )


def test_one_reason_over_its_limit_fails_and_is_named() -> None:
    limits = QuarantineLimits()
    verdict = judge_quarantine({"unknown_status": 120_000, "gps_jump": 1_000}, ROWS, limits)
    assert not verdict.passed
    assert verdict.breaches == ["unknown_status 12.0% > 5.00%"]
    summary = quarantine_summary(verdict, limits)
    assert summary.startswith("Too many pings quarantined: unknown_status 12.0% > 5.00%. ")
    assert "gps_jump 0.10%" in summary


def test_per_reason_limits_and_the_overall_limit() -> None:
    limits = QuarantineLimits(max_share=0.1, by_reason={"outside_service_area": 0.2})
    ok = judge_quarantine({"outside_service_area": 90_000}, ROWS, limits)
    assert ok.passed
    overall = judge_quarantine(
        {"outside_service_area": 60_000, "duplicate": 40_000, "gps_jump": 40_000}, ROWS, limits
    )
    assert overall.breaches == ["overall 14.0% > 10.0%"]
    assert judge_quarantine({}, 0, limits).passed  # an empty day has no share to judge


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_speed_kmh": 301.0}, "max_speed_kmh=301.0 must be in \\(0, 300\\]"),
        ({"max_quarantined_share": 1.5}, "must be a share in \\[0, 1\\]"),
        ({"max_quarantined_share_by_reason": {"speeding": 0.1}}, "unknown reason\\(s\\)"),
        ({"max_quarantined_share_by_reason": {"gps_jump": -0.1}}, "gps_jump"),
        ({"status_mapping": {"1": "hired"}}, "'1' maps to 'hired'"),
    ],
)
def test_settings_refuse_limits_and_mappings_that_make_no_sense(
    settings: dict, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        PipelineSettings(**settings)


def test_settings_reach_the_cleaning_rules_and_the_limits() -> None:
    settings = PipelineSettings(
        max_speed_kmh=120.0,
        status_mapping={"Hired": "occupied"},
        max_quarantined_share_by_reason={"gps_jump": 0.01},
    )
    rules = settings.cleaning_rules()
    assert rules.max_speed_kmh == 120.0
    assert dict(rules.status_mapping) == {
        "dispatched": "dispatched",
        "hired": "occupied",
        "occupied": "occupied",
        "off_duty": "off_duty",
        "vacant": "vacant",
    }
    limits = settings.quarantine_limits()
    # Overriding one reason keeps the other reasons' defaults.
    assert limits.limit("gps_jump") == 0.01 and limits.limit("duplicate") == 0.3
    assert limits.limit("stuck_status") == 0.05
