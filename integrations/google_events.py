"""Google Calendar event resources: the bodies we send and what we read back.

``claim_order`` and ``holds`` decide which of two bookings racing for one slot keeps it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from integrations.errors import InvalidRequest
from integrations.scheduling import CalendarError, Event, EventRequest, Interval

# Private extended properties: seen only through this calendar, never by attendees.
PHONE_TAG = "agentCallerPhoneSha256"  # the booking's caller, hashed, for erasure requests
HOLD_TAG = "agentHoldFor"  # a slot held while this event id is moved into it


def event_body(request: EventRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": request.event_id,
        "status": "confirmed",
        "summary": request.summary,
        "description": request.description,
        "start": when(request.start, request.time_zone),
        "end": when(request.end, request.time_zone),
    }
    if request.attendee_email:
        attendee = {"email": request.attendee_email}
        if request.attendee_name:
            attendee["displayName"] = request.attendee_name
        body["attendees"] = [attendee]
    if request.with_meet_link:
        body["conferenceData"] = meet_request(request.event_id)
    if request.caller_phone:
        body["extendedProperties"] = {"private": {PHONE_TAG: phone_tag(request.caller_phone)}}
    return body


def phone_tag(phone_e164: str) -> str:
    """A hash, so the calendar never holds the number itself. It is not anonymous: phone
    numbers are few enough to hash them all and compare."""
    return hashlib.sha256(f"sales-agent caller {phone_e164}".encode()).hexdigest()


def hold_body(hold_id: str, span: Interval, *, zone: str, moving: str) -> dict[str, Any]:
    """A silent, attendee-less event that claims ``span`` for a move (see ``move_event``)."""
    return {
        "id": hold_id,
        "status": "confirmed",
        "summary": "Held while a meeting is moved here",
        "start": when(span.start, zone),
        "end": when(span.end, zone),
        "extendedProperties": {"private": {HOLD_TAG: moving}},
    }


def meet_request(request_id: str) -> dict[str, Any]:
    return {
        "createRequest": {
            "requestId": request_id,
            "conferenceSolutionKey": {"type": "hangoutsMeet"},
        }
    }


def when(moment: datetime, zone_name: str) -> dict[str, str]:
    """The instant written with its offset in ``zone_name``: unambiguous across DST."""
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"unknown time zone {zone_name!r}") from None
    return {"dateTime": moment.astimezone(zone).isoformat(), "timeZone": zone_name}


def event_from(resource: dict[str, Any]) -> Event:
    try:
        return Event(
            id=resource["id"],
            start=parse_when(resource["start"]),
            end=parse_when(resource["end"]),
            summary=resource.get("summary", ""),
            status="cancelled" if resource.get("status") == "cancelled" else "confirmed",
            attendee_emails=tuple(a["email"] for a in resource.get("attendees", [])),
            meet_link=meet_link(resource),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CalendarError(f"unreadable event from Google: {err!r}") from err


def claim_order(resource: dict[str, Any]) -> tuple[datetime, str]:
    """Who was first in a slot: creation time, then id. Unreadable counts as first."""
    try:
        created = parse_instant(str(resource["created"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        created = datetime.min.replace(tzinfo=UTC)
    return created, str(resource.get("id", ""))


def holds(resource: dict[str, Any], span: Interval) -> bool:
    """Whether an event listed in ``span`` makes it busy, as free/busy would say."""
    if resource.get("status") == "cancelled" or resource.get("transparency") == "transparent":
        return False
    try:
        held = Interval(parse_when(resource["start"]), parse_when(resource["end"]))
    except (KeyError, TypeError, ValueError):
        return True  # cannot tell: count it, never double-book on a guess
    return held.overlaps(span)


def parse_when(value: dict[str, str]) -> datetime:
    if "dateTime" in value:
        moment = datetime.fromisoformat(value["dateTime"])
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(value.get("timeZone", "UTC")))
        return moment
    # All-day bound; the calendar's own zone is not in the event, so read it as UTC.
    return datetime.combine(date.fromisoformat(value["date"]), datetime.min.time(), UTC)


def parse_instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time without offset: {text}")
    return moment


def meet_link(resource: dict[str, Any]) -> str | None:
    if resource.get("hangoutLink"):
        return str(resource["hangoutLink"])
    for entry in resource.get("conferenceData", {}).get("entryPoints", []):
        if entry.get("entryPointType") == "video" and entry.get("uri"):
            return str(entry["uri"])
    return None
