"""The calendar as the agent sees it: a protocol with a Google and an embedded implementation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from integrations.errors import IntegrationError


class CalendarError(IntegrationError):
    """The calendar could not complete a request."""


class EventConflict(CalendarError):
    """An event with this id exists but differs from the request (another booking owns the id)."""


class SlotTaken(CalendarError):
    """Another event holds the time: the booking was not made (or was withdrawn at once)."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A half-open span of time, [start, end), with timezone-aware datetimes."""

    start: datetime
    end: datetime

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True, slots=True)
class EventRequest:
    event_id: str  # deterministic: a retried booking reuses it, so it can never double-book
    start: datetime
    end: datetime
    time_zone: str  # IANA name the attendee sees the invite in
    summary: str
    description: str
    attendee_email: str | None = None
    attendee_name: str | None = None
    with_meet_link: bool = True
    # E.164. Google keeps only a hash of it on the event, to find it on an erasure request.
    caller_phone: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    start: datetime
    end: datetime
    summary: str
    status: str  # "confirmed" | "cancelled"
    attendee_emails: tuple[str, ...] = ()
    meet_link: str | None = None


class Calendar(Protocol):
    """Everything the agent needs from a calendar. Implementations raise ``IntegrationError``
    subclasses (``CalendarError``, ``TemporarilyUnavailable``, ``OutcomeUnknown`` ...)."""

    name: str

    async def busy(self, start: datetime, end: datetime) -> list[Interval]:
        """Busy intervals overlapping [start, end), all-day events included."""
        ...

    async def create_event(self, request: EventRequest) -> Event:
        """Create the event. Creating the same ``event_id`` again returns the existing event
        when it matches the request, and raises ``EventConflict`` when it does not.

        Raises ``SlotTaken`` when another event holds any of the time: of two bookings racing
        for one slot, exactly one is kept."""
        ...

    async def get_event(self, event_id: str) -> Event | None: ...

    async def cancel_event(self, event_id: str) -> None: ...

    async def move_event(self, event_id: str, *, start: datetime, end: datetime) -> Event:
        """Move the event. Raises ``SlotTaken`` (and changes nothing) when another event holds
        the time: of a move and a booking (or two moves) racing for one slot, exactly one
        gets it."""
        ...

    async def aclose(self) -> None: ...
