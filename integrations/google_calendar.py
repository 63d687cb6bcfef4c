"""Google Calendar behind the ``Calendar`` protocol, through google-api-python-client.

The client library blocks, so every request runs in a worker thread under an explicit
socket timeout. httplib2 connections are not thread-safe, so each request gets its own
connection; the discovery client itself is built once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import google_auth_httplib2
import httplib2
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import Credentials
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest

from integrations.errors import InvalidRequest, OutcomeUnknown, TemporarilyUnavailable
from integrations.scheduling import CalendarError, Event, EventConflict, EventRequest, Interval

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

# Google's rule for client-chosen event ids: base32hex digits, 5 to 1024 of them.
_EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Google reports some rate limits as 403 rather than 429.
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
# Answers proving a write was turned away; after any other failure it may have happened.
_REFUSAL_STATUSES = frozenset({403, 429, 503})
_CREDENTIALS_HINT = (
    "check the service-account key, that domain-wide delegation grants it the calendar "
    "scope, and that the delegated user can edit the calendar"
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently transient failures (429, 5xx, timeouts) are retried."""

    attempts: int = 4
    first_delay_s: float = 0.5  # doubled after each failure
    sleep: Sleep = asyncio.sleep  # injectable so tests do not wait

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")


DEFAULT_RETRY = RetryPolicy()


class _Handled(Exception):
    """An HTTP status the calling method asked to deal with itself."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class GoogleCalendar:
    """One Google calendar, written to as a (delegated) Workspace user."""

    name = "google"

    def __init__(
        self,
        *,
        service: Any,
        credentials: Credentials,
        calendar_id: str,
        timeout_s: float = 10.0,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self._service = service
        self._event_api = service.events()
        self._freebusy_api = service.freebusy()
        self._credentials = credentials
        self._calendar_id = calendar_id
        self._timeout_s = timeout_s
        self._retry = retry

    @classmethod
    def from_service_account(
        cls,
        key_file: str | Path,
        *,
        delegated_user: str | None,
        calendar_id: str,
        base_url: str | None = None,
        timeout_s: float = 10.0,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> GoogleCalendar:
        """Act as ``delegated_user`` (domain-wide delegation) so invites come from a real
        person and Meet links can be created; ``None`` acts as the service account itself."""
        credentials = service_account.Credentials.from_service_account_file(
            str(key_file), scopes=[CALENDAR_SCOPE]
        )
        if delegated_user is not None:
            credentials = credentials.with_subject(delegated_user)
        return cls.from_credentials(
            credentials,
            calendar_id=calendar_id,
            base_url=base_url,
            timeout_s=timeout_s,
            retry=retry,
        )

    @classmethod
    def from_credentials(
        cls,
        credentials: Credentials,
        *,
        calendar_id: str,
        base_url: str | None = None,
        timeout_s: float = 10.0,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> GoogleCalendar:
        """``base_url`` is the API root (default ``https://www.googleapis.com``)."""
        endpoint = None if base_url is None else f"{base_url.rstrip('/')}/calendar/v3/"
        service = build(
            "calendar",
            "v3",
            http=_authorized_http(credentials, timeout_s),
            static_discovery=True,  # the bundled discovery document: no network at build
            cache_discovery=False,
            client_options=None if endpoint is None else {"api_endpoint": endpoint},
        )
        return cls(
            service=service,
            credentials=credentials,
            calendar_id=calendar_id,
            timeout_s=timeout_s,
            retry=retry,
        )

    async def busy(self, start: datetime, end: datetime) -> list[Interval]:
        _require_span(start, end)
        body = {
            "timeMin": start.isoformat(),
            "timeMax": end.isoformat(),
            "items": [{"id": self._calendar_id}],
        }
        answer = await self._call("read free/busy", self._freebusy_api.query(body=body))
        calendar = answer.get("calendars", {}).get(self._calendar_id)
        if calendar is None or calendar.get("errors"):
            # Never read "could not tell" as "free".
            reasons = [e.get("reason") for e in (calendar or {}).get("errors", [])]
            raise CalendarError(f"free/busy unavailable for the calendar: {reasons}")
        try:
            return [
                Interval(_parse_instant(b["start"]), _parse_instant(b["end"]))
                for b in calendar.get("busy", [])
            ]
        except (KeyError, TypeError, ValueError) as err:
            raise CalendarError(f"unreadable free/busy answer: {err!r}") from err

    async def create_event(self, request: EventRequest) -> Event:
        _require_event_id(request.event_id)
        _require_span(request.start, request.end)
        body = _event_body(request)
        insert = self._event_api.insert(
            calendarId=self._calendar_id,
            body=body,
            sendUpdates="all",
            conferenceDataVersion=1 if request.with_meet_link else 0,
        )
        try:
            created = await self._call("create event", insert, handled={409}, writes=True)
        except _Handled:
            # The id is taken: by an earlier attempt of this same booking, or another one.
            return await self._settle_duplicate(request, body)
        return _event_from(created)

    async def get_event(self, event_id: str) -> Event | None:
        resource = await self._get_resource(event_id)
        return None if resource is None else _event_from(resource)

    async def cancel_event(self, event_id: str) -> None:
        _require_event_id(event_id)
        delete = self._event_api.delete(
            calendarId=self._calendar_id, eventId=event_id, sendUpdates="all"
        )
        try:
            await self._call("cancel event", delete, handled={410}, writes=True)
        except _Handled:
            return  # 410 Gone: already cancelled, which is what was asked

    async def move_event(self, event_id: str, *, start: datetime, end: datetime) -> Event:
        _require_span(start, end)
        resource = await self._get_resource(event_id)
        if resource is None or resource.get("status") == "cancelled":
            raise InvalidRequest(f"no live event {event_id} to move")
        current = _event_from(resource)
        if (current.start, current.end) == (start, end):
            return current  # a retried move: no second round of notifications
        zone = resource["start"].get("timeZone", "UTC")
        body = {"start": _when(start, zone), "end": _when(end, zone)}
        patch = self._event_api.patch(
            calendarId=self._calendar_id, eventId=event_id, body=body, sendUpdates="all"
        )
        return _event_from(await self._call("move event", patch, writes=True))

    async def aclose(self) -> None:
        self._service.close()

    async def _get_resource(self, event_id: str) -> dict[str, Any] | None:
        _require_event_id(event_id)
        get = self._event_api.get(calendarId=self._calendar_id, eventId=event_id)
        try:
            resource: dict[str, Any] = await self._call("read event", get, handled={404})
        except _Handled:
            return None
        return resource

    async def _settle_duplicate(self, request: EventRequest, body: dict[str, Any]) -> Event:
        existing = await self._get_resource(request.event_id)
        if existing is None:
            raise EventConflict(f"event id {request.event_id} is taken but not readable")
        if existing.get("status") == "cancelled":
            return await self._reopen(request, body, existing)
        event = _event_from(existing)
        if (event.start, event.end) != (request.start, request.end):
            raise EventConflict(f"event {request.event_id} exists at another time")
        return event

    async def _reopen(
        self, request: EventRequest, body: dict[str, Any], existing: dict[str, Any]
    ) -> Event:
        """Bring a cancelled booking back (the caller re-booked it), at the requested time."""
        body = {key: value for key, value in body.items() if key != "id"}
        wants_meet = request.with_meet_link and _meet_link(existing) is None
        if wants_meet:
            # Google ignores a repeated conference requestId, so this one must be new.
            stamp = int(request.start.timestamp())
            body["conferenceData"] = _meet_request(f"{request.event_id}-{stamp}")
        else:
            body.pop("conferenceData", None)
        patch = self._event_api.patch(
            calendarId=self._calendar_id,
            eventId=request.event_id,
            body=body,
            sendUpdates="all",
            conferenceDataVersion=1 if wants_meet else 0,
        )
        return _event_from(await self._call("reopen event", patch, writes=True))

    async def _call(
        self,
        what: str,
        request: HttpRequest,
        *,
        handled: Collection[int] = (),
        writes: bool = False,
    ) -> Any:
        """Execute ``request``, retrying transient failures with exponential backoff.

        Retrying writes is safe: inserts carry deterministic ids (a repeat answers 409),
        patches and deletes are idempotent.
        """
        retry = self._retry
        delay, maybe_written = retry.first_delay_s, False
        for attempt in range(1, retry.attempts + 1):
            try:
                return await asyncio.to_thread(self._execute, request)
            except HttpError as err:
                if err.resp.status in handled:
                    raise _Handled(err.resp.status) from None
                failure = _translate_http_error(what, err)
                maybe_written |= err.resp.status not in _REFUSAL_STATUSES
            except auth_exceptions.RefreshError as err:
                failure = _translate_refresh_error(what, err)
            except auth_exceptions.TransportError as err:  # fetching a token: nothing sent
                failure = TemporarilyUnavailable(f"{what}: token endpoint unreachable: {err!r}")
            except (OSError, httplib2.HttpLib2Error) as err:  # timeouts included
                failure = TemporarilyUnavailable(f"{what}: no answer from Google: {err!r}")
                maybe_written |= not isinstance(err, ConnectionRefusedError)
            if not isinstance(failure, TemporarilyUnavailable):
                raise failure
            if attempt < retry.attempts:
                logger.warning("google calendar: %s failed, retrying: %s", what, failure)
                await retry.sleep(delay)
                delay *= 2
        if writes and maybe_written:
            raise OutcomeUnknown(f"{what}: gave up after {retry.attempts} attempts; {failure}")
        raise failure

    def _execute(self, request: HttpRequest) -> Any:
        http = _authorized_http(self._credentials, self._timeout_s)
        try:
            return request.execute(http=http, num_retries=0)
        finally:
            http.close()


def _authorized_http(
    credentials: Credentials, timeout_s: float
) -> google_auth_httplib2.AuthorizedHttp:
    return google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout_s))


def _translate_http_error(what: str, err: HttpError) -> Exception:
    status, reason = err.resp.status, _error_reason(err)
    detail = f"{what}: Google answered {status} ({reason})"
    if status in _RETRYABLE_STATUSES or (status == 403 and reason in _RATE_LIMIT_REASONS):
        return TemporarilyUnavailable(detail)
    if status in (401, 403):
        return CalendarError(f"{detail}; {_CREDENTIALS_HINT}")
    if 400 <= status < 500:
        return InvalidRequest(detail)
    return CalendarError(detail)


def _translate_refresh_error(what: str, err: auth_exceptions.RefreshError) -> Exception:
    if err.retryable:
        return TemporarilyUnavailable(f"{what}: token endpoint busy: {err}")
    return CalendarError(
        f"{what}: Google refused the service-account credentials ({err}); {_CREDENTIALS_HINT}"
    )


def _error_reason(err: HttpError) -> str:
    try:
        errors = json.loads(err.content)["error"].get("errors") or [{}]
        return str(errors[0].get("reason", "unknown"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "unknown"


def _require_event_id(event_id: str) -> None:
    if not _EVENT_ID.fullmatch(event_id):
        raise InvalidRequest(f"event id {event_id!r} is not 5-1024 base32hex characters (a-v, 0-9)")


def _require_span(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("calendar times must be timezone-aware")
    if end <= start:
        raise InvalidRequest(f"empty time range {start.isoformat()} .. {end.isoformat()}")


def _event_body(request: EventRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": request.event_id,
        "status": "confirmed",
        "summary": request.summary,
        "description": request.description,
        "start": _when(request.start, request.time_zone),
        "end": _when(request.end, request.time_zone),
    }
    if request.attendee_email:
        attendee = {"email": request.attendee_email}
        if request.attendee_name:
            attendee["displayName"] = request.attendee_name
        body["attendees"] = [attendee]
    if request.with_meet_link:
        body["conferenceData"] = _meet_request(request.event_id)
    return body


def _meet_request(request_id: str) -> dict[str, Any]:
    return {
        "createRequest": {
            "requestId": request_id,
            "conferenceSolutionKey": {"type": "hangoutsMeet"},
        }
    }


def _when(moment: datetime, zone_name: str) -> dict[str, str]:
    """The instant written with its offset in ``zone_name``: unambiguous across DST."""
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"unknown time zone {zone_name!r}") from None
    return {"dateTime": moment.astimezone(zone).isoformat(), "timeZone": zone_name}


def _event_from(resource: dict[str, Any]) -> Event:
    try:
        return Event(
            id=resource["id"],
            start=_parse_when(resource["start"]),
            end=_parse_when(resource["end"]),
            summary=resource.get("summary", ""),
            status="cancelled" if resource.get("status") == "cancelled" else "confirmed",
            attendee_emails=tuple(a["email"] for a in resource.get("attendees", [])),
            meet_link=_meet_link(resource),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CalendarError(f"unreadable event from Google: {err!r}") from err


def _parse_when(value: dict[str, str]) -> datetime:
    if "dateTime" in value:
        moment = datetime.fromisoformat(value["dateTime"])
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(value.get("timeZone", "UTC")))
        return moment
    # All-day bound; the calendar's own zone is not in the event, so read it as UTC.
    return datetime.combine(date.fromisoformat(value["date"]), datetime.min.time(), UTC)


def _parse_instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time without offset: {text}")
    return moment


def _meet_link(resource: dict[str, Any]) -> str | None:
    if resource.get("hangoutLink"):
        return str(resource["hangoutLink"])
    for entry in resource.get("conferenceData", {}).get("entryPoints", []):
        if entry.get("entryPointType") == "video" and entry.get("uri"):
            return str(entry["uri"])
    return None
