"""What one call knows, shared by the agent, its tools and the wrap-up through session userdata."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_timezones

from tools.crm import Contact, Crm
from tools.qualification import Criteria, Qualification
from tools.scheduling import Calendar, Event, Interval
from tools.slots import BusinessHours

logger = logging.getLogger("agent.state")
T = TypeVar("T")

Disposition = Literal[
    "booked", "qualified", "transferred", "nurture", "disqualified", "support", "hung_up"
]
DISPOSITIONS: tuple[str, ...] = (
    "booked", "qualified", "transferred", "nurture", "disqualified", "support", "hung_up",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BusinessProfile:
    company_name: str
    agent_name: str
    company_pitch: str
    product_summary: str
    meeting_title: str
    meeting_description: str
    meeting_minutes: int


@dataclass(frozen=True)
class Services:
    """Process-wide collaborators, built once by the composition root."""

    crm: Crm
    calendar: Calendar
    hours: BusinessHours
    criteria: Criteria
    business: BusinessProfile
    now: Callable[[], datetime]
    default_region: str = "US"
    tool_timeout_s: float = 20.0
    announce_ai: bool = True
    announce_recording: bool = True


@dataclass
class CallState:
    """Per call. Tools read and write it; the wrap-up turns it into CRM records."""

    call_id: str
    services: Services
    direction: Literal["inbound", "outbound"]
    started_at: datetime
    caller_phone: str | None = None
    our_number: str | None = None
    contact: Contact | None = None
    qualification: Qualification = field(init=False)
    caller_zone: ZoneInfo | None = None
    zone_confirmed: bool = False
    offered: list[Interval] = field(default_factory=list)
    booking: Event | None = None
    outcome: Disposition | None = None  # what the agent decided, via end_call or hand-off
    follow_up: str | None = None  # e.g. "email the caller a few times"
    handoff_reason: str | None = None
    support_issue: str | None = None
    hangup: Callable[[], Awaitable[None]] | None = None
    _pending: set[asyncio.Task[Any]] = field(default_factory=set)
    _background: set[asyncio.Task[Any]] = field(default_factory=set)
    _wrapped_up: asyncio.Lock = field(default_factory=asyncio.Lock)
    wrap_up_done: bool = False

    def __post_init__(self) -> None:
        self.qualification = Qualification(self.services.criteria)

    def now(self) -> datetime:
        return self.services.now()

    def set_contact(self, contact: Contact) -> None:
        self.contact = contact
        self.qualification.prefill_from_crm(contact.properties)

    def infer_zone_from_phone(self) -> None:
        """A first guess from the area code; the agent still confirms it with the caller."""
        if not self.caller_phone or self.caller_zone is not None:
            return
        try:
            zones = phone_timezones.time_zones_for_number(phonenumbers.parse(self.caller_phone))
        except phonenumbers.NumberParseException:
            return
        if len(zones) == 1 and zones[0] != "Etc/Unknown":
            self.caller_zone = ZoneInfo(zones[0])

    def shielded(self, work: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """Run a write so that a hang-up mid-tool cannot cancel it half-way; the wrap-up waits
        for these before it writes the call to the CRM."""
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return asyncio.shield(task)

    def hang_up_after(self, speech: Awaitable[Any]) -> None:
        """Hang up once ``speech`` (the goodbye) has played; a no-op where nothing can hang up."""

        async def later() -> None:
            try:
                await speech
            finally:
                if self.hangup is not None:
                    await self.hangup()

        task = asyncio.ensure_future(later())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle_pending(self, timeout_s: float) -> None:
        if not self._pending:
            return
        _done, still = await asyncio.wait(set(self._pending), timeout=timeout_s)
        for task in still:
            logger.error("a write was still running at wrap-up", extra={"call_id": self.call_id})
            task.cancel()

    def disposition(self) -> Disposition:
        if self.booking is not None and self.booking.status == "confirmed":
            return "booked"
        if self.outcome is not None:
            return self.outcome
        return "hung_up"
