"""One call as the tools see it (the session's userdata): its facts, the shared services, call
control and the writes in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from calls.business import BusinessProfile
from calls.control import CallControl
from calls.qualification import Criteria, Qualification
from calls.slots import BusinessHours
from calls.state import CallState, Direction
from calls.time_zones import zone_for_phone
from calls.writes import InFlightWrites
from integrations.crm import Crm
from integrations.do_not_call import DoNotCallList, NoDoNotCallList
from integrations.scheduling import Calendar


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
    do_not_call: DoNotCallList = field(default_factory=NoDoNotCallList)
    do_not_call_property: str = "do_not_call"  # the CRM contact property set to "true"
    languages: tuple[str, ...] = ("en",)  # the business's languages; the first greets


@dataclass
class Call:
    state: CallState
    services: Services
    control: CallControl
    writes: InFlightWrites = field(default_factory=InFlightWrites)
    # One calendar change at a time: tool calls of one LLM turn run concurrently.
    booking_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Where a tool notes a write it is about to make (the call journal, in the worker).
    effects: Callable[[str, dict[str, str]], None] | None = None

    def now(self) -> datetime:
        return self.services.now()

    @property
    def language(self) -> str:
        """The language the agent speaks on this call now."""
        state = self.state
        if state.language is not None and state.language_supported:
            return state.language
        return self.services.languages[0]

    def note_effect(self, kind: str, **data: str) -> None:
        """A vendor write about to be made (a booking's event id, say): noted first, so a crash
        in the middle of it can be reconciled with the vendor afterwards."""
        if self.effects is not None:
            self.effects(kind, data)


def new_call_state(
    services: Services,
    *,
    call_id: str,
    direction: Direction,
    caller_phone: str | None,
    our_number: str | None,
) -> CallState:
    """A call's first facts; the caller's zone is guessed from their number, to be confirmed."""
    return CallState(
        call_id=call_id,
        direction=direction,
        started_at=services.now(),
        qualification=Qualification(services.criteria),
        caller_phone=caller_phone,
        our_number=our_number,
        caller_zone=zone_for_phone(caller_phone),
    )
