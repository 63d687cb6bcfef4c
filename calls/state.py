"""What one call knows, as plain data: the tools write it, the wrap-up records it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from calls.qualification import Outcome, Qualification
from integrations.crm import Contact
from integrations.scheduling import Event, Interval

Direction = Literal["inbound", "outbound"]
Disposition = Literal[
    "booked",
    "qualified",
    "transferred",
    "nurture",
    "disqualified",
    "support",
    "hung_up",
    "not_reached",
    "voicemail",
]
DISPOSITIONS: tuple[str, ...] = (
    "booked", "qualified", "transferred", "nurture", "disqualified", "support", "hung_up",
    "not_reached", "voicemail",
)  # fmt: skip
# The dispositions the agent says goodbye with: a caller who hung up, an outbound call never
# answered ("not_reached") and a mailbox ("voicemail": the message is its own ending) hear none.
SPOKEN_DISPOSITIONS: tuple[str, ...] = DISPOSITIONS[:-3]
# What happened when a machine answered an outbound call.
VoicemailOutcome = Literal["message_left", "no_message"]
TransferOutcome = Literal[
    "rep_accepted",
    "rep_declined",
    "no_answer",
    "no_rep_available",
    "caller_hung_up",
    "failed",
    "cold_transferred",  # sent on to a number with SIP REFER, no hand-off
]
# What each route the criteria decide means for the call record, when nothing more happened.
_ROUTE_DISPOSITIONS: dict[Outcome, Disposition] = {
    "book_meeting": "qualified",
    "hand_to_rep": "qualified",
    "nurture": "nurture",
    "support": "support",
    "disqualify": "disqualified",
}


@dataclass(frozen=True, slots=True)
class Lead:
    """Who an outbound call is for, as the dialer sent it."""

    name: str | None = None
    company: str | None = None
    reason: str | None = None  # what they asked about, said in the opener

    @property
    def first_name(self) -> str | None:
        return self.name.split()[0] if self.name and self.name.strip() else None


@dataclass
class CallState:
    """The facts of one call."""

    call_id: str
    direction: Direction
    started_at: datetime
    qualification: Qualification
    caller_phone: str | None = None
    our_number: str | None = None
    lead: Lead | None = None
    contact: Contact | None = None
    caller_zone: ZoneInfo | None = None
    zone_confirmed: bool = False
    offered: list[Interval] = field(default_factory=list)
    booking: Event | None = None
    bookings_made: int = 0  # meetings this call created, cancelled ones included
    ended_by_agent: bool = False  # the agent said goodbye (end_call), not the caller's hang-up
    follow_up: str | None = None  # e.g. "email the caller a few times"
    handoff_reason: str | None = None
    support_issue: str | None = None
    transfer: TransferOutcome | None = None
    transfer_rep: str | None = None  # "Sam Lee <sam@example.com>": who was offered or took it
    transfer_detail: str | None = None  # why it ended that way, e.g. "486 Busy Here"
    on_hold: bool = False  # waiting for a rep, with music
    do_not_call: bool = False  # the caller asked us never to call again
    callback_at: datetime | None = None  # the caller asked to be called back then
    dial_failure: str | None = None  # why an outbound call never connected, e.g. "486 Busy Here"
    voicemail: VoicemailOutcome | None = None  # a machine answered, not the lead
    voicemail_reason: str | None = None  # how it was told apart, e.g. "beep", "amd:machine-vm"
    recording: str | None = None  # the call's recording under DATA_DIR, once closed
    cut_short: str | None = None  # we ended the call early, e.g. "provider outage (LLM)"
    language: str | None = None  # the caller's language, once it is not the business's first
    language_supported: bool = True  # False: nobody here speaks it, a colleague calls back

    @property
    def agent_stepped_aside(self) -> bool:
        """On hold for a rep, or handed to one: the agent's own timers must stay quiet."""
        return self.on_hold or self.transfer == "rep_accepted"

    def set_contact(self, contact: Contact) -> None:
        self.contact = contact
        self.qualification.prefill_from_crm(contact.properties)

    def disposition(self) -> Disposition:
        """How the call ended, from what happened and what the routing rules decided; the LLM's
        opinion never makes a lead booked, qualified or disqualified."""
        if self.booking is not None and self.booking.status == "confirmed":
            return "booked"
        if self.dial_failure is not None:
            return "not_reached"
        if self.voicemail is not None:
            return "voicemail"
        if self.transfer in ("rep_accepted", "cold_transferred"):
            return "transferred"
        if self.support_issue:
            return "support"
        decided = self.qualification.route()
        if decided is not None:
            return _ROUTE_DISPOSITIONS[decided[0]]
        # Undecided: the agent wrapping up politely is at most a lead to nurture.
        return "nurture" if self.ended_by_agent else "hung_up"
