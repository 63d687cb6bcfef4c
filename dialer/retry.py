"""When to try a lead again, by how the last attempt ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

# Outcomes that end the call whatever attempts remain: a conversation happened, the number
# cannot be reached, or the person (or the do-not-call list) said no.
FINAL_OUTCOMES = frozenset({"completed", "invalid_number", "declined", "do_not_call"})


@dataclass(frozen=True)
class RetryPolicy:
    """Minutes before each retry, per outcome; the last number repeats, an empty schedule
    means no retry. ``max_attempts`` counts the first attempt."""

    max_attempts: int = 3
    busy: tuple[float, ...] = (10, 30, 60)
    no_answer: tuple[float, ...] = (60, 180, 1440)
    voicemail: tuple[float, ...] = (240, 1440)
    failed: tuple[float, ...] = (15, 60)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        schedules = (self.busy, self.no_answer, self.voicemail, self.failed)
        if any(m <= 0 for schedule in schedules for m in schedule):
            raise ValueError("retry minutes must be positive")

    def delay_after(
        self, outcome: str, *, attempt: int, unknown_before: bool = False
    ) -> timedelta | None:
        """How long after attempt number ``attempt`` (1-based) ended with ``outcome`` to try
        again, or ``None`` for no further attempt. An attempt whose outcome is unknown (no
        report after a crash) is retried once per call, never twice."""
        if outcome in FINAL_OUTCOMES or attempt >= self.max_attempts:
            return None
        if outcome == "unknown" and unknown_before:
            return None
        schedule = self._schedule(outcome)
        if not schedule:
            return None
        return timedelta(minutes=schedule[min(attempt, len(schedule)) - 1])

    def _schedule(self, outcome: str) -> tuple[float, ...]:
        if outcome == "busy":
            return self.busy
        if outcome == "no_answer":
            return self.no_answer
        if outcome == "voicemail":
            return self.voicemail
        return self.failed  # failed, unknown
