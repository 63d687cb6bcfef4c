"""Retry schedule by outcome, SIP status mapping, and the trunk's pace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dialer.pace import Pace
from dialer.retry import RetryPolicy
from dialer.sip import outcome_for_sip

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, busy=(10, 30), no_answer=(60,), voicemail=(), failed=(15,))


def test_busy_follows_its_schedule_until_the_attempts_run_out() -> None:
    assert POLICY.delay_after("busy", attempt=1) == timedelta(minutes=10)
    assert POLICY.delay_after("busy", attempt=2) == timedelta(minutes=30)
    assert POLICY.delay_after("busy", attempt=3) is None


def test_the_last_delay_repeats() -> None:
    long = RetryPolicy(max_attempts=5, no_answer=(60,))
    assert [long.delay_after("no_answer", attempt=n) for n in (1, 2, 3, 4)] == [
        timedelta(minutes=60)
    ] * 4


def test_an_empty_schedule_means_no_retry() -> None:
    assert POLICY.delay_after("voicemail", attempt=1) is None


@pytest.mark.parametrize("outcome", ["completed", "invalid_number", "declined", "do_not_call"])
def test_final_outcomes_never_retry(outcome: str) -> None:
    assert POLICY.delay_after(outcome, attempt=1) is None


def test_an_unknown_outcome_is_retried_once_per_call() -> None:
    assert POLICY.delay_after("unknown", attempt=1) == timedelta(minutes=15)
    assert POLICY.delay_after("unknown", attempt=2, unknown_before=True) is None


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(busy=(0,))


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (486, "busy"),
        (600, "busy"),
        (480, "no_answer"),
        (408, "no_answer"),
        (487, "no_answer"),
        (404, "invalid_number"),
        (484, "invalid_number"),
        (603, "declined"),
        (503, "failed"),
        (401, "failed"),
        (None, "failed"),
        (200, "completed"),
    ],
)
def test_sip_status_codes_map_to_outcomes(code: int | None, outcome: str) -> None:
    assert outcome_for_sip(code) == outcome


def test_pace_one_per_second() -> None:
    pace = Pace(1.0)
    granted, next_free = pace.take(next_free=None, now=T0, want=5)
    assert (granted, next_free) == (1, T0 + timedelta(seconds=1))
    assert pace.take(next_free=next_free, now=T0 + timedelta(milliseconds=999), want=5)[0] == 0
    assert pace.take(next_free=next_free, now=T0 + timedelta(seconds=1), want=5)[0] == 1


def test_pace_bursts_at_most_one_second_of_calls_after_idling() -> None:
    pace = Pace(4.0)
    granted, next_free = pace.take(next_free=T0 - timedelta(hours=1), now=T0, want=10)
    assert granted == 4
    assert next_free == T0 + timedelta(milliseconds=250)
    assert pace.take(next_free=next_free, now=T0 + timedelta(milliseconds=100), want=10)[0] == 0


def test_pace_holds_its_rate_over_a_minute() -> None:
    pace = Pace(2.5)
    next_free: datetime | None = None
    started = 0
    for tick in range(600):  # every 100 ms for a minute
        granted, next_free = pace.take(
            next_free=next_free, now=T0 + timedelta(milliseconds=100 * tick), want=100
        )
        started += granted
    assert 148 <= started <= 152  # 2.5/s for 60 s, plus the first burst
