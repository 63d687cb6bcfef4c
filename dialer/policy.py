"""The dialer's rules as one value: hours, retries, caps, pace and timeouts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from config import BusinessSettings, DialerSettings
from config.groups import minutes_list
from dialer.hours import CallingHours, first_allowed
from dialer.model import Call, Campaign
from dialer.pace import Pace
from dialer.retry import RetryPolicy
from dialer.store import ClaimLimits

# How long past its deadline an attempt may stay unreported before the reconciler asks LiveKit
# about it: the worker reports from its shutdown callback, which can lag the hang-up a little.
RECONCILE_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class DialPolicy:
    hours: CallingHours
    retry: RetryPolicy
    max_concurrent: int
    pace: Pace
    ring_timeout: timedelta
    max_call: timedelta
    business_zone: str

    @classmethod
    def from_settings(cls, dialer: DialerSettings, business: BusinessSettings) -> DialPolicy:
        return cls(
            hours=CallingHours(
                start=dialer.dialer_calling_start,
                end=dialer.dialer_calling_end,
                weekdays=dialer.calling_days(),
            ),
            retry=RetryPolicy(
                max_attempts=dialer.dialer_max_attempts,
                busy=minutes_list(dialer.dialer_retry_busy_minutes),
                no_answer=minutes_list(dialer.dialer_retry_no_answer_minutes),
                voicemail=minutes_list(dialer.dialer_retry_voicemail_minutes),
                failed=minutes_list(dialer.dialer_retry_failed_minutes),
            ),
            max_concurrent=dialer.dialer_max_concurrent_calls,
            pace=Pace(dialer.dialer_calls_per_second),
            ring_timeout=timedelta(seconds=dialer.dialer_ring_timeout_seconds),
            max_call=timedelta(seconds=business.max_call_seconds),
            business_zone=business.business_time_zone,
        )

    def limits(self) -> ClaimLimits:
        return ClaimLimits(max_concurrent=self.max_concurrent, pace=self.pace)

    def hours_for(self, campaign: Campaign | None) -> CallingHours:
        return campaign.hours if campaign is not None and campaign.hours else self.hours

    def retry_for(self, campaign: Campaign | None) -> RetryPolicy:
        return campaign.retry if campaign is not None and campaign.retry else self.retry

    def first_allowed(self, call: Call, campaign: Campaign | None, at: datetime) -> datetime:
        return first_allowed(at, zone=ZoneInfo(call.zone), hours=self.hours_for(campaign))

    def overdue_since(self, state: str, now: datetime) -> datetime:
        """Attempts in ``state`` started before this have outlived any real call."""
        allowed = self.max_call if state == "answered" else self.ring_timeout
        return now - allowed - RECONCILE_MARGIN
