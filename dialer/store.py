"""What the dialer and the lead API keep: the protocols, and the records that cross them.

One store (``dialer.sql_store.SqlStore``, composed from the modules of ``dialer.sql``)
implements all of them, on SQLite or PostgreSQL. Every method is one transaction; the
callbacks some take (``plan``, ``decide``, ``notify``) run inside it, on rows it holds locked,
so a decision and its write cannot be split by another replica.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from dialer.model import (
    Attempt,
    AttemptOutcome,
    Call,
    CallResult,
    CallStatus,
    Campaign,
    CampaignState,
    Claim,
)
from dialer.pace import Pace


class IdempotencyConflict(Exception):
    """The idempotency key was used before, for a different request."""


@dataclass(frozen=True)
class IdempotencyKey:
    scope: str  # whose key: the API key id, so clients cannot collide
    key: str
    fingerprint: str  # digest of the request body


@dataclass(frozen=True)
class Admission:
    """What became of a lead: a new call, the call an earlier lead for the same number made,
    or a refusal because the number is on the do-not-call list or its campaign was
    cancelled."""

    outcome: Literal["created", "duplicate", "do_not_call", "campaign_cancelled"]
    call_id: str | None
    status: str | None = None
    next_at: datetime | None = None
    replayed: bool = False  # answered from the idempotency record


@dataclass(frozen=True)
class ClaimLimits:
    max_concurrent: int
    pace: Pace
    batch: int = 10


@dataclass(frozen=True)
class Ending:
    """How an attempt ends and what it means for its call. ``next_at`` set: the call waits for
    another attempt; ``counts=False`` gives the attempt back (it never left us)."""

    outcome: AttemptOutcome
    status: CallStatus
    next_at: datetime | None
    ended_at: datetime
    sip_status: int | None = None
    detail: str | None = None
    reason: str | None = None
    result: CallResult | None = None
    counts: bool = True


@dataclass(frozen=True)
class StateChange:
    """What a pause, resume or cancel did: ``changed``; ``unknown``: no such campaign;
    ``cancelled``: the campaign was cancelled before, and that is final."""

    outcome: Literal["changed", "unknown", "cancelled"]
    state: CampaignState | None
    ended: int = 0  # calls a cancel ended


@dataclass(frozen=True)
class CampaignSummary:
    """A campaign as the list shows it: its config, state and calls by status."""

    campaign: Campaign
    state: CampaignState
    calls: dict[str, int]


@dataclass(frozen=True)
class WebhookMessage:
    event_id: str
    url: str
    body: str


@dataclass(frozen=True)
class WebhookDelivery:
    id: str
    event_id: str
    url: str
    body: str
    attempts: int
    next_at: datetime | None
    delivered_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class DncEntry:
    phone: str
    reason: str | None
    added_at: datetime


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    token_hash: str
    created_at: datetime
    revoked_at: datetime | None = None


Planner = Callable[[Call, Campaign | None], datetime]
Decider = Callable[[Call, Sequence[Attempt], Campaign | None], Ending]
Notifier = Callable[[Call, Sequence[Attempt]], Sequence[WebhookMessage]]


class CallQueue(Protocol):
    def admit(
        self,
        call: Call,
        *,
        idempotency: IdempotencyKey | None,
        dedupe_since: datetime | None,
    ) -> Admission: ...

    def admit_many(
        self, calls: Sequence[Call], *, dedupe_since: datetime | None
    ) -> list[Admission]: ...

    def call(self, call_id: str) -> Call | None: ...

    def attempts(self, call_id: str) -> list[Attempt]: ...

    def claim(
        self,
        *,
        now: datetime,
        limits: ClaimLimits,
        plan: Planner,
        room_for: Callable[[str, int], str],
    ) -> list[Claim]: ...

    def mark_dispatched(self, call_id: str, number: int, dispatch_id: str) -> None: ...

    def record_progress(
        self, call_id: str, number: int, state: Literal["ringing", "answered"], *, now: datetime
    ) -> bool: ...

    def finish_attempt(
        self, call_id: str, number: int, *, decide: Decider, notify: Notifier
    ) -> bool: ...

    def in_flight(self) -> list[Attempt]: ...

    def cancel_campaign(self, name: str, *, now: datetime, notify: Notifier) -> StateChange: ...


class Campaigns(Protocol):
    def put_campaign(self, campaign: Campaign) -> StateChange: ...

    def create_campaign(self, campaign: Campaign) -> bool: ...

    def campaign_state(self, name: str) -> CampaignState | None: ...

    def campaign_progress(self, name: str) -> dict[str, int]: ...

    def pause_campaign(self, name: str, *, now: datetime) -> StateChange: ...

    def resume_campaign(self, name: str, *, now: datetime) -> StateChange: ...

    def campaign(self, name: str) -> Campaign | None: ...

    def campaigns(self) -> list[Campaign]: ...

    def campaign_summaries(self) -> list[CampaignSummary]: ...


class DoNotCall(Protocol):
    def add_dnc(self, phone: str, *, reason: str | None, now: datetime) -> bool: ...

    def remove_dnc(self, phone: str) -> bool: ...

    def is_dnc(self, phone: str) -> bool: ...

    def dnc_entries(self) -> list[DncEntry]: ...


class ApiKeys(Protocol):
    def add_key(self, key: ApiKey) -> None: ...

    def key(self, key_id: str) -> ApiKey | None: ...

    def keys(self) -> list[ApiKey]: ...

    def revoke_key(self, name_or_id: str, *, now: datetime) -> bool: ...


class WebhookQueue(Protocol):
    def claim_webhooks(
        self, *, now: datetime, lease: timedelta, limit: int
    ) -> list[WebhookDelivery]: ...

    def webhook_delivered(self, delivery_id: str, *, now: datetime) -> None: ...

    def webhook_failed(
        self, delivery_id: str, *, attempts: int, next_at: datetime | None, error: str
    ) -> None: ...

    def webhooks(self, event_id: str | None = None) -> list[WebhookDelivery]: ...


class Store(CallQueue, Campaigns, DoNotCall, ApiKeys, WebhookQueue, Protocol):
    """Everything at once, as the processes open it."""

    def close(self) -> None: ...
