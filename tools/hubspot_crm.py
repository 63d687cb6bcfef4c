"""HubSpot as the agent's CRM, through the official (blocking) hubspot-api-client.

Every request runs in a worker thread with a socket timeout and an ``asyncio.wait_for``
guard, and every vendor failure is translated here into ``tools.errors`` terms:

- 429 is retried after ``Retry-After`` (or a backoff): HubSpot processed nothing.
- 5xx, timeouts and broken connections are retried for searches, reads and updates (a PATCH
  may be repeated safely). For a create they raise ``OutcomeUnknown`` at once: the record
  may exist, and a blind retry is how duplicates are made. A connection that was never
  opened is retried for any request, since nothing was sent.
- Retries exhausted: ``TemporarilyUnavailable``. 401/403: ``HubSpotAuthError``. 409:
  ``CrmConflict``. Other 4xx: ``InvalidRequest``.

Idempotency of ``log_call`` and ``create_deal``: the call id is the key. Each record carries
a marker token derived from it (in the call title, the note body, the deal description), and
is created only after a ``CONTAINS_TOKEN`` search for that marker finds nothing, so a replay
from another process (the wrap-up outbox) adopts what an earlier attempt wrote. Ids are also
kept in memory per (object type, call id): a repeat in this process sends nothing. After an
``OutcomeUnknown`` (or a cancelled create), the next attempt first waits until
``search_lag_s`` has passed since, because HubSpot's search index trails writes. A contact
create whose outcome is unknown is settled the same way in this process, by a phone lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

import hubspot.crm.contacts as contacts_api
import hubspot.crm.deals as deals_api
import hubspot.crm.objects.calls as calls_api
import hubspot.crm.objects.notes as notes_api
import phonenumbers
import urllib3
from hubspot import HubSpot
from urllib3.util.retry import Retry

from tools.crm import (
    WRITABLE_CONTACT_PROPERTIES,
    CallRecord,
    Contact,
    CrmConflict,
    CrmError,
    DealRequest,
    LoggedCall,
)
from tools.errors import IntegrationError, InvalidRequest, OutcomeUnknown, TemporarilyUnavailable
from tools.phone import mask_email, mask_phone

logger = logging.getLogger(__name__)

# HubSpot-defined association type ids, from each object to a contact.
_CALL_TO_CONTACT, _NOTE_TO_CONTACT, _DEAL_TO_CONTACT = 194, 202, 3
_PHONE_PROPERTIES = ("phone", "mobilephone")
# HubSpot keeps these calculated: the stored number's digits without country code.
_SEARCHABLE_PHONE_PROPERTIES = (
    "hs_searchable_calculated_phone_number",
    "hs_searchable_calculated_mobile_number",
)
_CONTACT_READ = WRITABLE_CONTACT_PROPERTIES | {"mobilephone", "lifecyclestage", "hs_lead_status"}
_PACKAGES = (contacts_api, calls_api, notes_api, deals_api)
_API_ERRORS = tuple(p.ApiException for p in _PACKAGES)
# Raised by the client's own checks of our input, before anything is sent.
_INPUT_ERRORS = tuple(p.exceptions.OpenApiException for p in _PACKAGES)
_TIMEOUT_GRACE_S = 1.0
_MAX_BACKOFF_S = 8.0
_AUTH_HINT = (
    "check the HubSpot access token and that the private app has the "
    "crm.objects.contacts.read/write and crm.objects.deals.read/write scopes"
)


class HubSpotAuthError(CrmError, InvalidRequest):
    """HubSpot refused the token (401) or its scopes (403); retrying will not help."""


@dataclass(frozen=True, slots=True)
class _ObjectApi:
    name: str  # "calls": the HubSpot object type
    models: Any  # the generated package, for its model classes
    basic: Any
    search: Any
    marker_property: str | None  # where this object's idempotency marker is written


class _Retryable(Exception):
    def __init__(self, reason: str, *, maybe_applied: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.maybe_applied, self.retry_after = reason, maybe_applied, retry_after


class HubSpotCrm:
    """The ``Crm`` protocol on a HubSpot portal, authenticated by a private app token."""

    name = "hubspot"

    def __init__(
        self,
        access_token: str,
        *,
        base_url: str = "https://api.hubapi.com",
        timeout_s: float = 10.0,
        max_attempts: int = 4,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 10.0,
        search_lag_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
        call_dispositions: Mapping[str, str] | None = None,
        extra_contact_properties: Iterable[str] = (),
    ) -> None:
        """``call_dispositions`` maps our dispositions to the portal's disposition GUIDs;
        unmapped ones are left out of the call. ``search_lag_s`` is how long HubSpot's
        search may trail a write."""
        # urllib3 must not retry on its own: only this class knows which requests are safe.
        crm = HubSpot(
            access_token=access_token, host=base_url.rstrip("/"), retry=Retry(total=False)
        ).crm
        self._contacts = _object_api("contacts", contacts_api, crm.contacts, None)
        self._calls = _object_api("calls", calls_api, crm.objects.calls, "hs_call_title")
        self._notes = _object_api("notes", notes_api, crm.objects.notes, "hs_note_body")
        self._deals = _object_api("deals", deals_api, crm.deals, "description")
        self._timeout_s = timeout_s
        self._max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._backoff_s = backoff_s
        self._max_retry_after_s = max_retry_after_s
        self._search_lag_s = search_lag_s
        self._monotonic = monotonic
        self._dispositions = dict(call_dispositions or {})
        self._read_properties = sorted(_CONTACT_READ | set(extra_contact_properties))
        self._created: dict[tuple[str, str], str] = {}
        self._unknown: dict[tuple[str, str], float] = {}  # key -> when the outcome got lost
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # contacts

    async def find_contact_by_phone(self, phone_e164: str) -> Contact | None:
        target = _parse_e164(phone_e164)
        if target is None:
            logger.info("hubspot: %s is not an E.164 number; no lookup", mask_phone(phone_e164))
            return None
        page = await self._request(
            "search contacts by phone", self._contacts.search.do_search, self._phone_query(target)
        )
        region = phonenumbers.region_code_for_number(target)
        matches = [r for r in page.results if _has_number(r.properties or {}, phone_e164, region)]
        if len(page.results) > len(matches):
            logger.debug("hubspot: dropped %d near matches", len(page.results) - len(matches))
        if not matches:
            return None
        if len(matches) > 1:
            logger.info("hubspot: %d contacts share %s", len(matches), mask_phone(phone_e164))
        return _contact(min(matches, key=lambda r: int(r.id)))

    async def upsert_contact(
        self, *, contact_id: str | None, phone_e164: str | None, properties: dict[str, str]
    ) -> Contact:
        """On update ``phone_e164`` is not written: the contact was found by that number, and
        writing it could clobber a different number stored in ``phone``."""
        props = _writable(properties)
        if contact_id is not None:
            return await self._update_contact(contact_id, props)
        async with self._locks[f"contact:{phone_e164}"]:
            existing = await self._settle_unknown_contact(phone_e164)
            if existing is not None:
                return await self._update_contact(existing, props)
            return await self._create_contact(phone_e164, props)

    async def _create_contact(self, phone_e164: str | None, props: dict[str, str]) -> Contact:
        body = contacts_api.SimplePublicObjectInputForCreate(
            properties={"phone": phone_e164, **props} if phone_e164 else props
        )
        try:
            created = await self._request(
                "create contact", self._contacts.basic.create, body, creates=True
            )
        except CrmConflict as exc:
            existing = re.search(r"Existing ID: (\d+)", str(exc))
            if existing is None:
                raise
            logger.info(
                "hubspot: %s belongs to contact %s; updating it instead",
                mask_email(props.get("email")),
                existing[1],
            )
            # The caller's number is not forced onto a contact found by email alone.
            return await self._update_contact(existing[1], props)
        except (OutcomeUnknown, asyncio.CancelledError):
            if phone_e164:
                self._unknown[("contacts", phone_e164)] = self._monotonic()
            raise
        return _contact(created)

    async def _settle_unknown_contact(self, phone_e164: str | None) -> str | None:
        """The contact an earlier create with an unknown outcome made, if it did."""
        lost_at = self._unknown.get(("contacts", phone_e164 or ""))
        if lost_at is None or phone_e164 is None:
            return None
        await self._wait_out_search_lag(lost_at)
        found = await self.find_contact_by_phone(phone_e164)
        self._unknown.pop(("contacts", phone_e164), None)
        return None if found is None else found.id

    async def _update_contact(self, contact_id: str, props: dict[str, str]) -> Contact:
        if not props:
            found = await self._request(
                "get contact",
                self._contacts.basic.get_by_id,
                contact_id,
                properties=self._read_properties,
            )
            return _contact(found)
        body = contacts_api.SimplePublicObjectInput(properties=props)
        updated = await self._request(
            "update contact", self._contacts.basic.update, contact_id, body
        )
        return _contact(updated)

    def _phone_query(self, target: phonenumbers.PhoneNumber) -> Any:
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
        return m.PublicObjectSearchRequest(
            filter_groups=groups, properties=self._read_properties, limit=20
        )

    # calls, notes, deals

    async def log_call(self, record: CallRecord) -> LoggedCall:
        marker = _marker(record.call_id)
        call = calls_api.SimplePublicObjectInputForCreate(
            properties=self._call_properties(record, marker),
            associations=[_to_contact(calls_api, record.contact_id, _CALL_TO_CONTACT)],
        )
        note = notes_api.SimplePublicObjectInputForCreate(
            properties={
                "hs_timestamp": _iso(record.ended_at),
                "hs_note_body": _note_body(record, marker),
            },
            associations=[_to_contact(notes_api, record.contact_id, _NOTE_TO_CONTACT)],
        )
        async with self._locks[f"call:{record.call_id}"]:
            call_id = await self._create_once(self._calls, record.call_id, call)
            note_id = await self._create_once(self._notes, record.call_id, note)
        logger.info(
            "hubspot: call logged as %s, note %s",
            call_id,
            note_id,
            extra={"call_id": record.call_id},
        )
        return LoggedCall(call_engagement_id=call_id, note_id=note_id)

    async def create_deal(self, request: DealRequest) -> str:
        marker = _marker(request.call_id)
        properties = {
            "dealname": request.name,
            "dealstage": request.stage,
            "pipeline": request.pipeline,
            "description": f"Opened by the AI phone agent on call {request.call_id} [{marker}]",
        }
        if request.amount is not None:
            properties["amount"] = f"{request.amount:.2f}"
        deal = deals_api.SimplePublicObjectInputForCreate(
            properties=properties,
            associations=[_to_contact(deals_api, request.contact_id, _DEAL_TO_CONTACT)],
        )
        async with self._locks[f"deal:{request.call_id}"]:
            return await self._create_once(self._deals, request.call_id, deal)

    def _call_properties(self, record: CallRecord, marker: str) -> dict[str, str]:
        duration = record.ended_at - record.started_at
        props = {
            "hs_timestamp": _iso(record.started_at),
            "hs_call_title": f"AI agent: {record.direction} call [{marker}]",
            "hs_call_body": _call_body(record),
            "hs_call_direction": "INBOUND" if record.direction == "inbound" else "OUTBOUND",
            "hs_call_status": "COMPLETED",
            "hs_call_duration": str(max(0, int(duration.total_seconds() * 1000))),
            "hs_call_from_number": record.from_number,
            "hs_call_to_number": record.to_number,
            "hs_call_disposition": self._dispositions.get(record.disposition),
        }
        return {k: v for k, v in props.items() if v}

    async def _create_once(self, api: _ObjectApi, call_id: str, body: Any) -> str:
        """This call's record of ``api``'s type: found by its marker, or else created."""
        key = (api.name, call_id)
        if key not in self._created:
            lost_at = self._unknown.get(key)
            if lost_at is not None:
                await self._wait_out_search_lag(lost_at)
            found = await self._find_marked(api, call_id)
            self._created[key] = found or await self._create(api, key, body)
        return self._created[key]

    async def _create(self, api: _ObjectApi, key: tuple[str, str], body: Any) -> str:
        try:
            created = await self._request(
                f"create {api.name}", api.basic.create, body, creates=True
            )
        except (OutcomeUnknown, asyncio.CancelledError):  # a cancelled create may still land
            self._unknown[key] = self._monotonic()
            raise
        self._unknown.pop(key, None)
        return str(created.id)

    async def _find_marked(self, api: _ObjectApi, call_id: str) -> str | None:
        m = api.models
        marker = m.Filter(
            property_name=api.marker_property, operator="CONTAINS_TOKEN", value=_marker(call_id)
        )
        query = m.PublicObjectSearchRequest(
            filter_groups=[m.FilterGroup(filters=[marker])], properties=["hs_object_id"], limit=10
        )
        page = await self._request(f"search {api.name} by marker", api.search.do_search, query)
        ids = sorted((str(r.id) for r in page.results), key=int)
        if ids:
            logger.info(
                "hubspot: %s of call already written: %s", api.name, ids, extra={"call_id": call_id}
            )
        return ids[0] if ids else None

    async def _wait_out_search_lag(self, lost_at: float) -> None:
        remaining = lost_at + self._search_lag_s - self._monotonic()
        if remaining > 0:
            await self._sleep(remaining)

    # transport

    async def _request(
        self, what: str, fn: Callable[..., Any], *args: Any, creates: bool = False, **kwargs: Any
    ) -> Any:
        """``fn(*args, **kwargs)`` in a thread, retried as the module docstring says."""
        backoff = self._backoff_s
        for attempt in range(1, self._max_attempts + 1):
            try:
                return await self._send(fn, *args, **kwargs)
            except _Retryable as exc:
                if creates and exc.maybe_applied:
                    raise OutcomeUnknown(f"HubSpot {what}: {exc.reason}") from exc
                wait = backoff if exc.retry_after is None else exc.retry_after
                if attempt == self._max_attempts or wait > self._max_retry_after_s:
                    message = f"HubSpot {what}: {exc.reason} ({attempt} attempts)"
                    raise TemporarilyUnavailable(message) from exc
                logger.warning(
                    "hubspot %s: %s; attempt %d of %d in %.1fs",
                    what, exc.reason, attempt + 1, self._max_attempts, wait,
                )  # fmt: skip
            await self._sleep(wait)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)
        raise AssertionError("unreachable")

    async def _send(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        call = asyncio.to_thread(fn, *args, _request_timeout=self._timeout_s, **kwargs)
        try:
            return await asyncio.wait_for(call, self._timeout_s + _TIMEOUT_GRACE_S)
        except _API_ERRORS as exc:
            raise _translate_status(exc) from exc
        except urllib3.exceptions.ConnectTimeoutError as exc:  # also refused: nothing was sent
            raise _Retryable("cannot connect", maybe_applied=False) from exc
        except (TimeoutError, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Retryable(f"no answer ({type(exc).__name__})", maybe_applied=True) from exc
        except _INPUT_ERRORS as exc:
            raise InvalidRequest(f"HubSpot request not sent: {exc}") from exc
        except ValueError as exc:  # an answer the client could not read; a write may have landed
            raise _Retryable("unreadable answer", maybe_applied=True) from exc

    async def aclose(self) -> None:
        await asyncio.to_thread(self._close_pools)

    def _close_pools(self) -> None:
        for api in (self._contacts, self._calls, self._notes, self._deals):
            api.basic.api_client.close()
            api.basic.api_client.rest_client.pool_manager.clear()


def _object_api(name: str, models: Any, discovery: Any, marker_property: str | None) -> _ObjectApi:
    """The basic and search APIs of one object type, sharing one ApiClient (one pool)."""
    basic = discovery.basic_api
    search = models.SearchApi(api_client=basic.api_client)
    return _ObjectApi(name, models, basic, search, marker_property)


def _translate_status(exc: Any) -> IntegrationError | _Retryable:
    status, message = int(exc.status or 0), _error_message(exc)
    if status == 429:
        if '"DAILY"' in str(exc.body):
            return TemporarilyUnavailable("HubSpot daily API limit reached")
        return _Retryable("rate limited", maybe_applied=False, retry_after=_retry_after(exc))
    if status >= 500:
        return _Retryable(f"HubSpot answered {status}", maybe_applied=True)
    if status in (401, 403):
        return HubSpotAuthError(f"HubSpot answered {status}: {_AUTH_HINT}")
    if status == 409:
        return CrmConflict(f"HubSpot answered 409: {message}")
    if status == 0:
        return CrmError(f"HubSpot request failed: {exc.reason}")
    return InvalidRequest(f"HubSpot answered {status}: {message}")


def _error_message(exc: Any) -> str:
    try:
        message = str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        message = str(exc.reason)
    return re.sub(r"[\w.+-]+@[\w-]+\.[\w.-]+", lambda m: mask_email(m[0]), message)[:300]


def _retry_after(exc: Any) -> float | None:
    value = (exc.headers or {}).get("Retry-After")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:  # an HTTP date: rare enough to use our own backoff
        return None


def _writable(properties: dict[str, str]) -> dict[str, str]:
    dropped = sorted(set(properties) - WRITABLE_CONTACT_PROPERTIES)
    if dropped:
        logger.debug("hubspot: dropped contact properties outside the allowlist: %s", dropped)
    return {k: v for k, v in properties.items() if k in WRITABLE_CONTACT_PROPERTIES}


def _contact(obj: Any) -> Contact:
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


def _parse_e164(text: str) -> phonenumbers.PhoneNumber | None:
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return parsed if e164 == text else None


def _spellings(number: phonenumbers.PhoneNumber) -> list[str]:
    """Ways people type this number into HubSpot, lowercased as the IN operator needs."""
    formats = phonenumbers.PhoneNumberFormat
    national = phonenumbers.national_significant_number(number)
    spelled = {phonenumbers.format_number(number, f) for f in (formats.E164, formats.NATIONAL)}
    spelled.add(phonenumbers.format_number(number, formats.INTERNATIONAL))
    spelled.update({national, f"{number.country_code}{national}"})
    return sorted(s.lower() for s in spelled)


def _has_number(properties: dict[str, Any], phone_e164: str, region: str | None) -> bool:
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


def _to_contact(models: Any, contact_id: str, type_id: int) -> Any:
    spec = models.AssociationSpec(
        association_category="HUBSPOT_DEFINED", association_type_id=type_id
    )
    return models.PublicAssociationsForObject(to=models.PublicObjectId(id=contact_id), types=[spec])


def _marker(call_id: str) -> str:
    """One alphanumeric token per call id, so HubSpot's tokenised search finds it whole."""
    return "agentcall" + hashlib.sha256(call_id.encode()).hexdigest()[:16]


def _call_body(record: CallRecord) -> str:
    parts = [f"<p>{escape(record.summary)}</p>", _qualification_html(record.qualification)]
    parts.append(f"<p>Outcome: {escape(record.disposition)}</p>")
    return "".join(parts)


def _note_body(record: CallRecord, marker: str) -> str:
    transcript = escape(record.transcript).replace("\n", "<br>")
    return "".join(
        [
            f"<p><strong>AI agent call summary</strong></p><p>{escape(record.summary)}</p>",
            _qualification_html(record.qualification),
            f"<p><strong>Transcript</strong></p><p>{transcript}</p>",
            f"<p>Call {escape(record.call_id)} [{marker}]</p>",
        ]
    )


def _qualification_html(qualification: dict[str, str]) -> str:
    if not qualification:
        return ""
    items = "".join(
        f"<li>{escape(name)}: {escape(value)}</li>" for name, value in qualification.items()
    )
    return f"<p><strong>Qualification</strong></p><ul>{items}</ul>"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
