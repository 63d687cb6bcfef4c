"""Google Calendar behind the ``Calendar`` protocol, through google-api-python-client.

The client library blocks, so every request runs in a worker thread under an explicit
socket timeout. httplib2 connections are not thread-safe, so each request gets its own
connection; the discovery client itself is built once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import Credentials
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest

from integrations.errors import (
    IntegrationError,
    InvalidRequest,
    OutcomeUnknown,
    TemporarilyUnavailable,
)
from integrations.google_errors import translate_http_error, translate_refresh_error
from integrations.google_events import (
    PHONE_TAG,
    claim_order,
    event_body,
    event_from,
    hold_body,
    holds,
    meet_link,
    meet_request,
    parse_instant,
    parse_when,
    phone_tag,
    when,
)
from integrations.scheduling import (
    CalendarError,
    Event,
    EventConflict,
    EventRequest,
    Interval,
    SlotTaken,
)

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

# Google's rule for client-chosen event ids: base32hex digits, 5 to 1024 of them.
_EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")
# Answers proving a write was turned away; after any other failure it may have happened.
_REFUSAL_STATUSES = frozenset({403, 429, 503})


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
        claim_settle_s: float = 0.005,
        hold_ids: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._service = service
        self._event_api = service.events()
        self._freebusy_api = service.freebusy()
        self._credentials = credentials
        self._calendar_id = calendar_id
        self._timeout_s = timeout_s
        self._retry = retry
        self._claim_settle_s = claim_settle_s
        self._hold_ids = hold_ids

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
                Interval(parse_instant(b["start"]), parse_instant(b["end"]))
                for b in calendar.get("busy", [])
            ]
        except (KeyError, TypeError, ValueError) as err:
            raise CalendarError(f"unreadable free/busy answer: {err!r}") from err

    async def create_event(self, request: EventRequest) -> Event:
        """Insert, then claim the slot (see ``_claim_slot``), then invite the attendee: a
        booking withdrawn because another one won the slot never reached the invitee."""
        _require_event_id(request.event_id)
        _require_span(request.start, request.end)
        body = event_body(request)
        attendees = body.pop("attendees", None)
        insert = self._event_api.insert(
            calendarId=self._calendar_id,
            body=body,
            sendUpdates="none",
            conferenceDataVersion=1 if request.with_meet_link else 0,
        )
        try:
            created = await self._call("create event", insert, handled={409}, writes=True)
        except _Handled:
            # The id is taken: by an earlier attempt of this same booking, or another one.
            created = await self._settle_duplicate(request, body)
        try:
            await self._claim_slot(Interval(request.start, request.end), created)
        except IntegrationError:  # lost the slot, or cannot tell: never keep a maybe-double
            await self._withdraw(request.event_id)
            raise
        return await self._invite(created, attendees)

    async def get_event(self, event_id: str) -> Event | None:
        resource = await self._get_resource(event_id)
        return None if resource is None else event_from(resource)

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
        """Claim the new time with a silent hold event (inserted like a booking, so it races
        bookings and other moves by the same rule), then move the event and drop the hold. A
        lost claim leaves the meeting where it was and its attendee unaware of the attempt."""
        _require_span(start, end)
        resource = await self._get_resource(event_id)
        if resource is None or resource.get("status") == "cancelled":
            raise InvalidRequest(f"no live event {event_id} to move")
        current = event_from(resource)
        if (current.start, current.end) == (start, end):
            return current  # a retried move: no second round of notifications
        zone = resource["start"].get("timeZone", "UTC")
        span = Interval(start, end)
        hold = await self._hold(span, zone=zone, moving=event_id)
        try:
            await self._claim_slot(span, hold, ours={event_id})
            body = {"start": when(start, zone), "end": when(end, zone)}
            patch = self._event_api.patch(
                calendarId=self._calendar_id, eventId=event_id, body=body, sendUpdates="all"
            )
            return event_from(await self._call("move event", patch, writes=True))
        finally:
            await self._release(hold["id"])

    async def forget_phone(self, phone_e164: str, *, now: datetime) -> list[str]:
        """An erasure request: delete every booking made for this number (found by the hash
        ``event_body`` wrote). A meeting still to come is cancelled with notice to its guests,
        so nobody waits for it; a past one goes silently. A repeat finds nothing."""
        tag = f"{PHONE_TAG}={phone_tag(phone_e164)}"
        removed = []
        for resource in await self._list_events(privateExtendedProperty=tag):
            try:
                past = parse_when(resource["end"]) <= now
            except (KeyError, TypeError, ValueError):
                past = False
            await self._delete("forget event", resource["id"], notify=not past)
            removed.append(str(resource["id"]))
        return removed

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

    async def _settle_duplicate(
        self, request: EventRequest, body: dict[str, Any]
    ) -> dict[str, Any]:
        existing = await self._get_resource(request.event_id)
        if existing is None:
            raise EventConflict(f"event id {request.event_id} is taken but not readable")
        if existing.get("status") == "cancelled":
            return await self._reopen(request, body, existing)
        event = event_from(existing)
        if (event.start, event.end) != (request.start, request.end):
            raise EventConflict(f"event {request.event_id} exists at another time")
        return existing

    async def _reopen(
        self, request: EventRequest, body: dict[str, Any], existing: dict[str, Any]
    ) -> dict[str, Any]:
        """Bring a cancelled booking back (the caller re-booked it), at the requested time.
        Its old guests are dropped quietly; ``_invite`` invites them again once it holds."""
        body = {key: value for key, value in body.items() if key != "id"}
        body["attendees"] = []
        wants_meet = request.with_meet_link and meet_link(existing) is None
        if wants_meet:
            # Google ignores a repeated conference requestId, so this one must be new.
            stamp = int(request.start.timestamp())
            body["conferenceData"] = meet_request(f"{request.event_id}-{stamp}")
        else:
            body.pop("conferenceData", None)
        patch = self._event_api.patch(
            calendarId=self._calendar_id,
            eventId=request.event_id,
            body=body,
            sendUpdates="none",
            conferenceDataVersion=1 if wants_meet else 0,
        )
        resource: dict[str, Any] = await self._call("reopen event", patch, writes=True)
        return resource

    async def _hold(self, span: Interval, *, zone: str, moving: str) -> dict[str, Any]:
        body = hold_body(self._hold_ids(), span, zone=zone, moving=moving)
        insert = self._event_api.insert(calendarId=self._calendar_id, body=body, sendUpdates="none")
        try:
            resource: dict[str, Any] = await self._call(
                "hold slot", insert, handled={409}, writes=True
            )
        except _Handled:  # our own insert, answered on an earlier attempt
            existing = await self._get_resource(body["id"])
            if existing is None:
                raise EventConflict(f"hold id {body['id']} is taken but not readable") from None
            return existing
        return resource

    async def _release(self, hold_id: str) -> None:
        """Drop a hold; one left behind only blocks a slot, so a failure here is logged."""
        try:
            await self._withdraw(hold_id)
        except IntegrationError as err:
            logger.warning("google calendar: hold %s left in place: %s", hold_id, err)

    async def _claim_slot(
        self, span: Interval, mine: dict[str, Any], *, ours: Collection[str] = ()
    ) -> None:
        """Raise ``SlotTaken`` unless no other event in ``span`` was created before ``mine``
        (``ours``: events of the same claim, such as the meeting a hold is moving).

        Google has no conditional insert, so two callers booking one slot can both insert.
        Each then lists the events in the slot; the one created first (creation time, then
        id) stays, every later one is withdrawn. Both racers read the same facts, so they
        agree without talking to each other. Waiting ``claim_settle_s`` before listing puts
        the listing in a later millisecond than our creation, so an event inserted after it
        can never share our creation time.
        """
        await asyncio.sleep(self._claim_settle_s)
        listed = await self._list_events(timeMin=span.start.isoformat(),
                                         timeMax=span.end.isoformat())  # fmt: skip
        skip = {mine["id"], *ours}
        order = claim_order(mine)
        earlier = [
            e for e in listed
            if e.get("id") not in skip and holds(e, span) and claim_order(e) < order
        ]  # fmt: skip
        if earlier:
            raise SlotTaken(f"event {earlier[0].get('id')} holds {span.start.isoformat()}")

    async def _list_events(self, **filters: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page: str | None = None
        while True:
            listing = self._event_api.list(
                calendarId=self._calendar_id,
                singleEvents=True,
                showDeleted=False,
                maxResults=250,
                pageToken=page,
                **filters,
            )
            answer = await self._call("list events", listing)
            items.extend(answer.get("items", []))
            page = answer.get("nextPageToken")
            if not page:
                return items

    async def _withdraw(self, event_id: str) -> None:
        await self._delete("withdraw event", event_id, notify=False)

    async def _delete(self, what: str, event_id: str, *, notify: bool) -> None:
        delete = self._event_api.delete(
            calendarId=self._calendar_id,
            eventId=event_id,
            sendUpdates="all" if notify else "none",
        )
        try:
            await self._call(what, delete, handled={404, 410}, writes=True)
        except _Handled:
            return  # already gone

    async def _invite(
        self, resource: dict[str, Any], attendees: list[dict[str, str]] | None
    ) -> Event:
        invited = {a.get("email") for a in resource.get("attendees", [])}
        if not attendees or all(a["email"] in invited for a in attendees):
            return event_from(resource)  # nobody to invite, or a retry after the invite
        patch = self._event_api.patch(
            calendarId=self._calendar_id,
            eventId=resource["id"],
            body={"attendees": attendees},
            sendUpdates="all",
        )
        return event_from(await self._call("invite attendee", patch, writes=True))

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
                failure = translate_http_error(what, err)
                maybe_written |= err.resp.status not in _REFUSAL_STATUSES
            except auth_exceptions.RefreshError as err:
                failure = translate_refresh_error(what, err)
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


def _require_event_id(event_id: str) -> None:
    if not _EVENT_ID.fullmatch(event_id):
        raise InvalidRequest(f"event id {event_id!r} is not 5-1024 base32hex characters (a-v, 0-9)")


def _require_span(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("calendar times must be timezone-aware")
    if end <= start:
        raise InvalidRequest(f"empty time range {start.isoformat()} .. {end.isoformat()}")
