"""The progress-based wait the live-service tests use, on a fake clock and a scripted
source of progress: it waits as long as things move, fails after a stall or the cap, and
says what it last saw."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from taxi_assets_tests.progress_wait import Look, WaitStalled, wait_on_progress


class FakeClock:
    """A clock that moves only when the wait sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedRun:
    """A run seen once per look: its event count at each look, then done at ``done_at``."""

    def __init__(self, event_counts: Sequence[int], done_at: int | None = None) -> None:
        self.event_counts = list(event_counts)
        self.done_at = done_at
        self.looks = 0

    def look(self) -> Look[str]:
        index = min(self.looks, len(self.event_counts) - 1)
        self.looks += 1
        events = self.event_counts[index]
        done = "SUCCESS" if self.done_at is not None and index >= self.done_at else None
        return Look(done=done, progress=events, summary=f"STARTED with {events} events")


def wait(run: ScriptedRun, clock: FakeClock, stall_s: float, cap_s: float) -> str:
    return wait_on_progress(
        run.look,
        "the run",
        stall_s=stall_s,
        cap_s=cap_s,
        interval_s=10.0,
        clock=clock,
        sleep=clock.sleep,
    )


def test_a_slow_run_that_keeps_moving_is_waited_for_past_any_fixed_deadline() -> None:
    # One new event every 10 s for 100 looks: 1,000 s, far past a 300 s deadline, but never
    # 60 s without a change.
    clock = FakeClock()
    run = ScriptedRun(event_counts=list(range(101)), done_at=100)
    assert wait(run, clock, stall_s=60, cap_s=3600) == "SUCCESS"
    assert clock.now - 1000.0 == pytest.approx(1000.0)
    assert run.looks == 101


def test_quiet_spells_shorter_than_the_stall_limit_are_waited_through() -> None:
    # Five looks (50 s) without a change, then a move, twice: the limit is 60 s.
    counts = [1] * 6 + [2] * 6 + [3]
    run = ScriptedRun(event_counts=counts, done_at=len(counts) - 1)
    assert wait(run, FakeClock(), stall_s=60, cap_s=3600) == "SUCCESS"


def test_a_stalled_run_fails_after_the_stall_limit_and_says_what_it_last_saw() -> None:
    clock = FakeClock()
    run = ScriptedRun(event_counts=[1, 2, 3, 7])  # stops moving at 7 events, 30 s in
    with pytest.raises(WaitStalled) as failure:
        wait(run, clock, stall_s=60, cap_s=3600)
    message = str(failure.value)
    assert "no progress for 60 s (stall limit 60 s) waiting for the run" in message
    assert "after 90 s and 3 change(s)" in message
    assert message.endswith("last seen: STARTED with 7 events")
    assert clock.now - 1000.0 == 90.0  # 30 s to reach 7 events, then the 60 s stall


def test_a_wait_that_never_moves_fails_after_the_stall_limit_not_the_cap() -> None:
    clock = FakeClock()
    with pytest.raises(WaitStalled, match="no progress for 120 s"):
        wait(ScriptedRun(event_counts=[0]), clock, stall_s=120, cap_s=3600)
    assert clock.now - 1000.0 == 120.0


def test_something_that_moves_forever_is_given_up_at_the_cap() -> None:
    clock = FakeClock()
    run = ScriptedRun(event_counts=list(range(10_000)))  # always moving, never done
    with pytest.raises(WaitStalled) as failure:
        wait(run, clock, stall_s=60, cap_s=600)
    message = str(failure.value)
    assert "gave up after 600 s (cap 600 s) waiting for the run" in message
    assert "although it changed 60 time(s), last 0 s ago" in message
    assert "last seen: STARTED with 60 events" in message
    assert clock.now - 1000.0 == 600.0


def test_a_result_already_there_returns_at_the_first_look_without_sleeping() -> None:
    clock = FakeClock()
    assert wait(ScriptedRun(event_counts=[5], done_at=0), clock, 60, 600) == "SUCCESS"
    assert clock.sleeps == []


def test_a_change_of_any_part_of_the_progress_counts_as_a_move() -> None:
    # A backfill's progress is a tuple: its status, then its runs' statuses. Only the second
    # part moves here, every 30 s, which is within the 45 s stall limit.
    states = [
        ("REQUESTED", ()),
        ("REQUESTED", ("QUEUED",)),
        ("REQUESTED", ("STARTED",)),
        ("REQUESTED", ("SUCCESS",)),
    ]
    looks = iter(states * 3 + [("COMPLETED_SUCCESS", ("SUCCESS",))] * 2)

    def look() -> Look[str]:
        status, runs = next(looks)
        done = status if status.startswith("COMPLETED") else None
        return Look(done=done, progress=(status, runs), summary=f"{status} {runs}")

    clock = FakeClock()
    result = wait_on_progress(
        look,
        "the backfill",
        stall_s=45,
        cap_s=3600,
        interval_s=30.0,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result == "COMPLETED_SUCCESS"


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        wait(ScriptedRun(event_counts=[0]), FakeClock(), stall_s=0, cap_s=600)
