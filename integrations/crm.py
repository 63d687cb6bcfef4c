"""The CRM as the agent sees it: a small protocol with a HubSpot and an embedded implementation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from integrations.errors import IntegrationError, InvalidRequest

logger = logging.getLogger("integrations.crm")

# The only contact properties the agent may write. Anything else the LLM proposes is dropped,
# so a confused model cannot overwrite owner, lifecycle or consent fields.
WRITABLE_CONTACT_PROPERTIES: frozenset[str] = frozenset(
    {
        "firstname",
        "lastname",
        "email",
        "phone",
        "company",
        "jobtitle",
        "website",
        "city",
        "state",
        "country",
        "numemployees",
        "industry",
    }
)


class CrmError(IntegrationError):
    """The CRM could not complete a request."""


class CrmConflict(CrmError):
    """The write clashes with an existing record (e.g. the email belongs to another contact)."""


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    phone: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    email: str | None = None
    company: str | None = None
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def display_name(self) -> str | None:
        return self.firstname or None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What is written to the CRM once a call ends.

    ``call_id`` is the idempotency key: writing the same record twice must not create a
    second engagement or note.
    """

    call_id: str
    contact_id: str
    direction: str  # "inbound" | "outbound"
    started_at: datetime
    ended_at: datetime
    from_number: str | None
    to_number: str | None
    disposition: str
    summary: str
    transcript: str
    qualification: dict[str, str]
    recording: str | None = None  # the call's OGG file under DATA_DIR, e.g. "recordings/<id>.ogg"


@dataclass(frozen=True, slots=True)
class DealRequest:
    call_id: str
    contact_id: str
    name: str
    amount: float | None = None
    stage: str = "appointmentscheduled"
    pipeline: str = "default"


@dataclass(frozen=True, slots=True)
class LoggedCall:
    call_engagement_id: str
    note_id: str


class Crm(Protocol):
    """Everything the agent needs from a CRM. Implementations raise ``CrmError`` subclasses."""

    name: str

    async def find_contact_by_phone(self, phone_e164: str) -> Contact | None:
        """The contact whose phone or mobile phone is this number, or None."""
        ...

    async def upsert_contact(
        self, *, contact_id: str | None, phone_e164: str | None, properties: dict[str, str]
    ) -> Contact:
        """Create the contact (``contact_id`` None) or update it; returns the stored record.

        ``properties`` holds only keys from ``WRITABLE_CONTACT_PROPERTIES``.
        """
        ...

    async def log_call(self, record: CallRecord) -> LoggedCall:
        """Log the call as a call engagement and a note, both associated with the contact."""
        ...

    async def create_deal(self, request: DealRequest) -> str:
        """Create a deal associated with the contact; returns the deal id."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RecordedCall:
    record: CallRecord  # as written, with the contact it was associated with
    deal_id: str | None


async def record_call(
    crm: Crm,
    record: CallRecord,
    deal: DealRequest | None,
    *,
    contact_updates: dict[str, str] | None = None,
) -> RecordedCall:
    """Write a finished call: the contact first (created when the call has none, updated with
    what the caller told us), then the call and its note, then the deal. Every step is
    idempotent, so the wrap-up and an outbox replay share this one path."""
    if not record.contact_id or contact_updates:
        contact_id = await _write_contact(crm, record, dict(contact_updates or {}))
        record = replace(record, contact_id=contact_id)
        deal = replace(deal, contact_id=contact_id) if deal else None
    await crm.log_call(record)
    deal_id = await crm.create_deal(deal) if deal else None
    return RecordedCall(record, deal_id)


async def _write_contact(crm: Crm, record: CallRecord, updates: dict[str, str]) -> str:
    caller = record.from_number if record.direction == "inbound" else record.to_number
    existing = record.contact_id or None
    try:
        contact = await crm.upsert_contact(
            contact_id=existing, phone_e164=caller, properties=updates
        )
    except InvalidRequest as exc:
        if not updates:
            raise
        # A property the CRM refuses (say, not defined in the portal) must not cost the call.
        logger.warning("CRM refused the qualification write-back %s: %s", sorted(updates), exc)
        if existing:
            return existing
        contact = await crm.upsert_contact(contact_id=None, phone_e164=caller, properties={})
    return contact.id
