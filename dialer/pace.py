"""The trunk's pace: a token bucket whose state lives in the shared store, so every dialer
replica draws from the same calls-per-second budget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Pace:
    calls_per_second: float

    def __post_init__(self) -> None:
        if self.calls_per_second <= 0:
            raise ValueError("calls_per_second must be positive")

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=1 / self.calls_per_second)

    @property
    def burst(self) -> int:
        """At most one second's worth of calls at once (and at least one)."""
        return max(1, int(self.calls_per_second))

    def take(self, *, next_free: datetime | None, now: datetime, want: int) -> tuple[int, datetime]:
        """How many of ``want`` calls may start now, and the new ``next_free``: the moment the
        next call may start. Idle time accrues credit for at most ``burst`` calls."""
        floor = now - self.interval * (self.burst - 1)
        start = floor if next_free is None or next_free < floor else next_free
        if start > now or want <= 0:
            return 0, start
        available = int((now - start) / self.interval) + 1
        granted = min(want, available, self.burst)
        return granted, start + self.interval * granted
