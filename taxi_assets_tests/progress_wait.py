"""Waiting on something that moves (a run, a backfill, a sensor's ticks) by its progress
rather than by a fixed deadline.

On a loaded machine a run can take three times as long as on a quiet one and still be
healthy; on a quiet one a hung daemon should not take five minutes to notice. So a wait
goes on while what it waits on keeps changing (new run events, statuses, ticks), fails
once nothing has changed for ``stall_s`` seconds, and gives up after ``cap_s`` seconds
whatever happens, so nothing hangs forever. Either failure says what was last seen.

The clock and the sleep are parameters so the rule itself is tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# A step of a small run on 2 busy cores writes an event at least every minute or two; a
# daemon iteration (backfill, sensor) is 30 s. Four minutes of silence is a stall.
DEFAULT_STALL_S = 240.0
# However much it moves, half an hour for one run, backfill or tick is a hang.
DEFAULT_CAP_S = 1800.0


@dataclass(frozen=True)
class Look(Generic[T]):
    """One look at what is waited on.

    ``done`` is the result once it is there (anything but None ends the wait);
    ``progress`` is any hashable value that changes whenever the thing moves (an event
    count, a tuple of statuses); ``summary`` says what was seen, for a failure message.
    """

    done: T | None
    progress: Hashable
    summary: str


class WaitStalled(AssertionError):
    """Nothing moved for the stall limit, or the overall cap passed."""


def wait_on_progress(
    look: Callable[[], Look[T]],
    what: str,
    *,
    stall_s: float = DEFAULT_STALL_S,
    cap_s: float = DEFAULT_CAP_S,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Look every ``interval_s`` until ``look().done`` is not None; return it.

    Raises ``WaitStalled`` when ``progress`` has not changed for ``stall_s`` seconds, or
    when ``cap_s`` seconds have passed since the first look.
    """
    if stall_s <= 0 or cap_s <= 0:
        raise ValueError(f"stall_s and cap_s must be positive, got {stall_s} and {cap_s}")
    started = clock()
    last_progress: Hashable = object()  # equal to nothing: the first look is progress
    last_change = started
    changes = 0
    while True:
        seen = look()
        if seen.done is not None:
            return seen.done
        now = clock()
        if seen.progress != last_progress:
            last_progress, last_change = seen.progress, now
            changes += 1
        moves = changes - 1  # the first look sets the baseline; it is not a move
        waited, still = now - started, now - last_change
        if still >= stall_s:
            raise WaitStalled(
                f"no progress for {still:.0f} s (stall limit {stall_s:.0f} s) waiting for "
                f"{what}, after {waited:.0f} s and {moves} change(s); "
                f"last seen: {seen.summary}"
            )
        if waited >= cap_s:
            raise WaitStalled(
                f"gave up after {waited:.0f} s (cap {cap_s:.0f} s) waiting for {what}, "
                f"although it changed {moves} time(s), last {still:.0f} s ago; "
                f"last seen: {seen.summary}"
            )
        sleep(interval_s)
