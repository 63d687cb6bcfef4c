"""The rep's after-call notes in the CRM: logged as the rep's own call on the caller's contact
(a call engagement and a note), beside the agent's record of the same call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

from config import IntegrationSettings
from integrations.crm import CallRecord, Crm
from integrations.embedded import EmbeddedCrm, EmbeddedStore
from transfer.offers import Offer
from transfer.roster import Rep

RepDisposition = Literal["meeting_booked", "follow_up", "interested", "not_interested", "not_a_fit"]
REP_DISPOSITIONS: tuple[str, ...] = get_args(RepDisposition)


class NoContact(ValueError):
    pass


def build_crm(settings: IntegrationSettings, *, now: Callable[[], datetime]) -> Crm:
    """The CRM the agent writes to: HubSpot with a token, else the embedded one."""
    if settings.hubspot_access_token is None:
        store = EmbeddedStore(Path(settings.data_dir) / "embedded.sqlite3", now=now)
        return EmbeddedCrm(store, extra_contact_properties=frozenset())
    from integrations.hubspot_crm import HubSpotCrm

    return HubSpotCrm(
        settings.hubspot_access_token.get_secret_value(),
        base_url=settings.hubspot_base_url,
        extra_contact_properties=frozenset(),
    )


def rep_call_id(offer: Offer) -> str:
    """The rep's record's key: one per call and rep, so saving notes again updates nothing
    twice (the CRM's idempotency is by call id)."""
    return f"{offer.call_id}-rep-{offer.rep_id}"


async def write_notes(crm: Crm, *, offer: Offer, rep: Rep, now: datetime) -> str:
    """Log the rep's call with their notes on the caller's contact; returns the note's id."""
    phone = offer.brief.get("phone")
    if not phone:
        raise NoContact("the caller's number is unknown, so no CRM contact can be found")
    contact = await crm.find_contact_by_phone(phone)
    if contact is None:
        contact = await crm.upsert_contact(contact_id=None, phone_e164=phone, properties={})
    label = (offer.disposition or "").replace("_", " ")
    record = CallRecord(
        call_id=rep_call_id(offer),
        contact_id=contact.id,
        direction=str(offer.brief.get("direction") or "inbound"),
        started_at=offer.answered_at or offer.offered_at,
        ended_at=offer.ended_at or now,
        from_number=phone,
        to_number=None,
        disposition=offer.disposition or "",
        summary=f"Sales rep {rep.name} <{rep.email}> took the call: {label}.\n\n{offer.notes}",
        transcript="",
        qualification={},
    )
    logged = await crm.log_call(record)
    return logged.note_id
