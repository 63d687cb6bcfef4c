"""What ``HubSpotCrm`` writes to and reads from HubSpot records.

Phone lookup (the spellings people type, and the match that drops near misses), contacts
read back as ``Contact``, the per-call idempotency marker, and the HTML bodies of calls and
notes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any

import hubspot.crm.contacts as contacts_api
import phonenumbers

from integrations.crm import WRITABLE_CONTACT_PROPERTIES, CallRecord, Contact

logger = logging.getLogger(__name__)

# HubSpot-defined association type ids, from each object to a contact.
CALL_TO_CONTACT, NOTE_TO_CONTACT, DEAL_TO_CONTACT = 194, 202, 3
CONTACT_READ_PROPERTIES = WRITABLE_CONTACT_PROPERTIES | {
    "mobilephone",
    "lifecyclestage",
    "hs_lead_status",
}
_PHONE_PROPERTIES = ("phone", "mobilephone")
# HubSpot keeps these calculated: the stored number's digits without country code.
_SEARCHABLE_PHONE_PROPERTIES = (
    "hs_searchable_calculated_phone_number",
    "hs_searchable_calculated_mobile_number",
)


# contacts


def writable_properties(properties: dict[str, str], allowed: frozenset[str]) -> dict[str, str]:
    dropped = sorted(set(properties) - allowed)
    if dropped:
        logger.debug("hubspot: dropped contact properties outside the allowlist: %s", dropped)
    return {k: v for k, v in properties.items() if k in allowed}


def contact_from(obj: Any) -> Contact:
    props = {k: str(v) for k, v in (obj.properties or {}).items() if v}
    return Contact(
        id=str(obj.id),
        phone=props.get("phone") or props.get("mobilephone"),
        firstname=props.get("firstname"),
        lastname=props.get("lastname"),
        email=props.get("email"),
        company=props.get("company"),
        properties=props,
    )


def association_to_contact(models: Any, contact_id: str, type_id: int) -> Any:
    spec = models.AssociationSpec(
        association_category="HUBSPOT_DEFINED", association_type_id=type_id
    )
    return models.PublicAssociationsForObject(to=models.PublicObjectId(id=contact_id), types=[spec])


# phone lookup


def parse_e164(text: str) -> phonenumbers.PhoneNumber | None:
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return parsed if e164 == text else None


def phone_query(target: phonenumbers.PhoneNumber, *, properties: list[str]) -> Any:
    """A contact search for ``target`` in every phone property, however it was typed."""
    national = phonenumbers.national_significant_number(target)
    spellings = _spellings(target)
    m = contacts_api
    groups = [
        m.FilterGroup(filters=[m.Filter(property_name=p, operator="IN", values=spellings)])
        for p in _PHONE_PROPERTIES
    ] + [
        m.FilterGroup(filters=[m.Filter(property_name=p, operator="EQ", value=national)])
        for p in _SEARCHABLE_PHONE_PROPERTIES
    ]
    return m.PublicObjectSearchRequest(filter_groups=groups, properties=properties, limit=20)


def _spellings(number: phonenumbers.PhoneNumber) -> list[str]:
    """Ways people type this number into HubSpot, lowercased as the IN operator needs."""
    formats = phonenumbers.PhoneNumberFormat
    national = phonenumbers.national_significant_number(number)
    spelled = {phonenumbers.format_number(number, f) for f in (formats.E164, formats.NATIONAL)}
    spelled.add(phonenumbers.format_number(number, formats.INTERNATIONAL))
    spelled.update({national, f"{number.country_code}{national}"})
    return sorted(s.lower() for s in spelled)


def has_number(properties: dict[str, Any], phone_e164: str, region: str | None) -> bool:
    """Whether a stored phone or mobile phone, however formatted, is ``phone_e164``."""
    for name in _PHONE_PROPERTIES:
        value = properties.get(name)
        if not value:
            continue
        try:
            parsed = phonenumbers.parse(str(value), region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == phone_e164:
            return True
    return False


# calls, notes, deals


def call_marker(call_id: str) -> str:
    """One alphanumeric token per call id, so HubSpot's tokenised search finds it whole."""
    return "agentcall" + hashlib.sha256(call_id.encode()).hexdigest()[:16]


def call_properties(
    record: CallRecord, *, marker: str, dispositions: Mapping[str, str]
) -> dict[str, str]:
    """The call engagement's properties; a disposition the portal has no GUID for is left out."""
    duration = record.ended_at - record.started_at
    props = {
        "hs_timestamp": iso_utc(record.started_at),
        "hs_call_title": f"AI agent: {record.direction} call [{marker}]",
        "hs_call_body": _call_body(record),
        "hs_call_direction": "INBOUND" if record.direction == "inbound" else "OUTBOUND",
        "hs_call_status": "COMPLETED",
        "hs_call_duration": str(max(0, int(duration.total_seconds() * 1000))),
        "hs_call_from_number": record.from_number,
        "hs_call_to_number": record.to_number,
        "hs_call_disposition": dispositions.get(record.disposition),
    }
    return {k: v for k, v in props.items() if v}


def _call_body(record: CallRecord) -> str:
    parts = [f"<p>{escape(record.summary)}</p>", _qualification_html(record.qualification)]
    parts.append(f"<p>Outcome: {escape(record.disposition)}</p>")
    return "".join(parts)


def note_body(record: CallRecord, marker: str) -> str:
    transcript = escape(record.transcript).replace("\n", "<br>")
    return "".join(
        [
            f"<p><strong>AI agent call summary</strong></p><p>{escape(record.summary)}</p>",
            _qualification_html(record.qualification),
            f"<p><strong>Transcript</strong></p><p>{transcript}</p>",
            _recording_html(record.recording),
            f"<p>Call {escape(record.call_id)} [{marker}]</p>",
        ]
    )


def _recording_html(recording: str | None) -> str:
    # A file on the agent's host, not a URL HubSpot could fetch: named, not linked.
    if not recording:
        return ""
    return f"<p>Recording: {escape(recording)} (in the agent's data directory)</p>"


def _qualification_html(qualification: dict[str, str]) -> str:
    if not qualification:
        return ""
    items = "".join(
        f"<li>{escape(name)}: {escape(value)}</li>" for name, value in qualification.items()
    )
    return f"<p><strong>Qualification</strong></p><ul>{items}</ul>"


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
