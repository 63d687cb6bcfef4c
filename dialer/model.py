"""The queue's plain data: leads, calls, attempts, campaigns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from dialer.hours import CallingHours
from dialer.retry import RetryPolicy

CallStatus = Literal[
    "queued",
    "scheduled",
    "dialing",
    "ringing",
    "answered",
    "voicemail",
    "no_answer",
    "busy",
    "failed",
    "completed",
]
CALL_STATUSES: tuple[str, ...] = (
    "queued", "scheduled", "dialing", "ringing", "answered", "voicemail", "no_answer", "busy",
    "failed", "completed",
)  # fmt: skip
# An attempt in flight: between the claim and the worker's last report.
IN_FLIGHT: tuple[str, ...] = ("dialing", "ringing", "answered")

# How an attempt ended. "unknown": no report came and LiveKit no longer has the room (a crash);
# "not_dispatched": claimed but never handed to LiveKit (a crash before the dispatch);
# "do_not_call": the number was put on the list after the lead was queued.
AttemptOutcome = Literal[
    "completed",
    "busy",
    "no_answer",
    "voicemail",
    "failed",
    "invalid_number",
    "declined",
    "unknown",
    "not_dispatched",
    "do_not_call",
    "callback",
]
ATTEMPT_OUTCOMES: tuple[str, ...] = (
    "completed", "busy", "no_answer", "voicemail", "failed", "invalid_number", "declined",
    "unknown", "not_dispatched", "do_not_call", "callback",
)  # fmt: skip
Progress = Literal["ringing", "answered"]


@dataclass(frozen=True)
class Consent:
    given: bool
    wording: str | None = None
    time: datetime | None = None
    source: str | None = None


@dataclass(frozen=True)
class Lead:
    """Who to call, as the lead API accepted it; ``phone`` is E.164."""

    phone: str
    name: str | None = None
    email: str | None = None
    company: str | None = None
    source: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    consent: Consent | None = None
    time_zone: str | None = None


# active: its calls are dialed; paused: they wait (calls already dialing go on); cancelled:
# final, its waiting calls ended and no new lead accepted.
CampaignState = Literal["active", "paused", "cancelled"]
CAMPAIGN_CANCELLED = "campaign_cancelled"  # the reason a cancelled campaign's calls end with


@dataclass(frozen=True)
class Campaign:
    """A campaign's own hours, cap and retry rules; ``None`` means the dialer's default."""

    name: str
    hours: CallingHours | None = None
    max_concurrent: int | None = None
    retry: RetryPolicy | None = None


@dataclass(frozen=True)
class Attempt:
    call_id: str
    number: int
    room: str
    state: str  # dialing | ringing | answered | ended
    started_at: datetime
    dispatch_id: str | None = None
    outcome: AttemptOutcome | None = None
    sip_status: int | None = None
    detail: str | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class CallResult:
    """What an answered call produced, from the worker's report."""

    disposition: str | None = None
    summary: str | None = None
    qualification: dict[str, Any] = field(default_factory=dict)
    booking: dict[str, Any] | None = None


@dataclass(frozen=True)
class Call:
    """One lead's way through the queue: attempts until an answer, a final outcome or the
    attempt limit. ``next_at`` is set while it waits to be dialed."""

    id: str
    lead: Lead
    zone: str
    campaign: str | None
    status: CallStatus
    created_at: datetime
    updated_at: datetime
    attempts: int = 0
    next_at: datetime | None = None
    reason: str | None = None
    result: CallResult | None = None

    @property
    def final(self) -> bool:
        return self.next_at is None and self.status not in IN_FLIGHT


@dataclass(frozen=True)
class Claim:
    """An attempt the store handed to this dialer: it must be dispatched or closed."""

    call: Call
    attempt: Attempt
