"""Event resources in the fake Google Calendar: what a write does to one, and busy time.

Insert and update replace an event's body, patch merges into it; start and end are stored as
Google returns them, a Meet link is made for a ``hangoutsMeet`` conference request, and
all-day events begin and end at midnight in the calendar's time zone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tests.fakes.google_http import BadRequest

# The fake's conference links: a reserved test domain, never a real meeting host.
MEET_LINK_PREFIX = "https://meet.fake-calendar.test/"


def write_event(
    resource: dict[str, Any],
    body: dict[str, Any],
    query: dict[str, str],
    *,
    replace: bool,
    time_zone: ZoneInfo,
) -> None:
    """Apply an insert/update (``replace``) or patch body to ``resource``."""
    if replace:
        for key in ("summary", "description", "attendees", "transparency"):
            resource.pop(key, None)
        resource["status"] = "confirmed"
        if "start" not in body or "end" not in body:
            raise BadRequest("Missing time.", "required")
    for key in ("summary", "description", "transparency", "status"):
        if key in body:
            resource[key] = body[key]
    if resource["status"] not in ("confirmed", "tentative", "cancelled"):
        raise BadRequest("Invalid value for: status", "invalid")
    for key in ("start", "end"):
        if key in body:
            resource[key] = _normalised_time(body[key])
    if bound(resource["end"], time_zone) <= bound(resource["start"], time_zone):
        raise BadRequest("The specified time range is empty.", "timeRangeEmpty")
    if "attendees" in body:
        resource["attendees"] = [_attendee(a) for a in body["attendees"]]
    if replace:
        resource.pop("extendedProperties", None)
    _write_properties(resource, body.get("extendedProperties"))
    if query.get("conferenceDataVersion") == "1":
        _write_conference(resource, body.get("conferenceData"), replace=replace)


def _write_properties(resource: dict[str, Any], given: dict[str, Any] | None) -> None:
    """Merge ``private`` and ``shared`` properties key by key, as a patch does."""
    for scope, values in (given or {}).items():
        if scope not in ("private", "shared") or not isinstance(values, dict):
            raise BadRequest("Invalid extended properties.", "invalid")
        stored = resource.setdefault("extendedProperties", {}).setdefault(scope, {})
        stored.update({str(k): str(v) for k, v in values.items()})


def has_properties(resource: dict[str, Any], constraints: list[str], scope: str) -> bool:
    """Google's ``privateExtendedProperty``/``sharedExtendedProperty`` filter: every
    ``name=value`` constraint must hold."""
    stored = resource.get("extendedProperties", {}).get(scope, {})
    for constraint in constraints:
        name, sep, value = constraint.partition("=")
        if not sep:
            raise BadRequest("Invalid extended property constraint.", "invalid")
        if stored.get(name) != value:
            return False
    return True


def _write_conference(
    resource: dict[str, Any], data: dict[str, Any] | None, *, replace: bool
) -> None:
    create = (data or {}).get("createRequest")
    if create is None:
        if replace:
            resource.pop("conferenceData", None)
            resource.pop("hangoutLink", None)
        return
    if create.get("conferenceSolutionKey", {}).get("type") != "hangoutsMeet":
        raise BadRequest("Invalid conference type value.", "invalid")
    code = _meet_code(create["requestId"])
    resource["hangoutLink"] = f"{MEET_LINK_PREFIX}{code}"
    resource["conferenceData"] = {
        "createRequest": {**create, "status": {"statusCode": "success"}},
        "entryPoints": [
            {
                "entryPointType": "video",
                "uri": resource["hangoutLink"],
                "label": f"{MEET_LINK_PREFIX.removeprefix('https://')}{code}",
            }
        ],
        "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
        "conferenceId": code,
    }


def busy_periods(
    events: Iterable[dict[str, Any]], start: datetime, end: datetime, *, time_zone: ZoneInfo
) -> Iterator[dict[str, str]]:
    """The merged times within [start, end) that confirmed, opaque ``events`` occupy."""
    spans = sorted(
        (bound(event["start"], time_zone), bound(event["end"], time_zone))
        for event in events
        if event["status"] != "cancelled" and event.get("transparency") != "transparent"
    )
    merged: list[list[datetime]] = []
    for span_start, span_end in spans:
        span_start, span_end = max(span_start, start), min(span_end, end)
        if span_start >= span_end:
            continue
        if merged and span_start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span_end)
        else:
            merged.append([span_start, span_end])
    for span_start, span_end in merged:
        yield {"start": _rfc3339_utc(span_start), "end": _rfc3339_utc(span_end)}


def bound(value: dict[str, str], time_zone: ZoneInfo) -> datetime:
    """The instant an event's ``start`` or ``end`` names; a date is midnight in ``time_zone``."""
    if "date" in value:
        midnight = datetime.combine(date.fromisoformat(value["date"]), datetime.min.time())
        return midnight.replace(tzinfo=time_zone)
    return instant(value["dateTime"])


def _normalised_time(value: dict[str, str]) -> dict[str, str]:
    """Store a start/end the way Google returns it: the instant written in its time zone."""
    if "date" in value:
        return {"date": date.fromisoformat(value["date"]).isoformat()}
    try:
        moment = datetime.fromisoformat(value["dateTime"])
        zone = ZoneInfo(value["timeZone"]) if "timeZone" in value else None
    except (KeyError, ValueError, ZoneInfoNotFoundError):
        raise BadRequest("Invalid start or end time.", "invalid") from None
    if moment.tzinfo is None and zone is None:
        raise BadRequest("Missing time zone definition for start time.", "required")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if zone is None:
        return {"dateTime": moment.isoformat()}
    return {"dateTime": moment.astimezone(zone).isoformat(), "timeZone": value["timeZone"]}


def seed_time(value: datetime | date) -> dict[str, str]:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("seeded datetimes must be timezone-aware")
        return {"dateTime": value.isoformat()}
    return {"date": value.isoformat()}


def _attendee(value: dict[str, Any]) -> dict[str, Any]:
    if not value.get("email"):
        raise BadRequest("Missing attendee email.", "required")
    return {**value, "responseStatus": value.get("responseStatus", "needsAction")}


def instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("time without offset")
    return moment


def _rfc3339_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meet_code(request_id: str) -> str:
    """A stable Meet code per conference request, shaped like ``abc-defg-hij``."""
    digest = hashlib.sha256(request_id.encode()).digest()
    letters = "".join(chr(ord("a") + b % 26) for b in digest[:10])
    return f"{letters[:3]}-{letters[3:7]}-{letters[7:]}"
