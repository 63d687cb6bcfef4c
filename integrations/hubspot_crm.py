"""HubSpot as the agent's CRM, through the official (blocking) hubspot-api-client.

Requests go through ``HubSpotTransport``, which retries what is safe to retry and translates
every vendor failure into ``integrations.errors`` terms (see ``integrations.hubspot_transport``).

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
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import hubspot.crm.contacts as contacts_api
import hubspot.crm.deals as deals_api
import hubspot.crm.objects.calls as calls_api
import hubspot.crm.objects.notes as notes_api
import phonenumbers
from hubspot import HubSpot
from urllib3.util.retry import Retry

from integrations.crm import (
    WRITABLE_CONTACT_PROPERTIES,
    CallRecord,
    Contact,
    CrmConflict,
    DealRequest,
    LoggedCall,
)
from integrations.errors import InvalidRequest, OutcomeUnknown
from integrations.hubspot_records import (
    CALL_TO_CONTACT,
    CONTACT_READ_PROPERTIES,
    DEAL_TO_CONTACT,
    NOTE_TO_CONTACT,
    association_to_contact,
    call_marker,
    call_properties,
    contact_from,
    has_number,
    iso_utc,
    note_body,
    parse_e164,
    phone_query,
    writable_properties,
)
from integrations.hubspot_transport import HubSpotAuthError, HubSpotTransport
from integrations.masking import mask

__all__ = ["HubSpotAuthError", "HubSpotCrm"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _ObjectApi:
    name: str  # "calls": the HubSpot object type
    models: Any  # the generated package, for its model classes
    basic: Any
    search: Any
    marker_property: str | None  # where this object's idempotency marker is written


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
        # urllib3 must not retry on its own: only the transport knows which requests are safe.
        crm = HubSpot(
            access_token=access_token, host=base_url.rstrip("/"), retry=Retry(total=False)
        ).crm
        self._contacts = _object_api("contacts", contacts_api, crm.contacts, None)
        self._calls = _object_api("calls", calls_api, crm.objects.calls, "hs_call_title")
        self._notes = _object_api("notes", notes_api, crm.objects.notes, "hs_note_body")
        self._deals = _object_api("deals", deals_api, crm.deals, "description")
        self._associations = crm.associations.v4.basic_api
        self._transport = HubSpotTransport(
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            sleep=sleep,
            backoff_s=backoff_s,
            max_retry_after_s=max_retry_after_s,
        )
        self._sleep = sleep
        self._search_lag_s = search_lag_s
        self._monotonic = monotonic
        self._dispositions = dict(call_dispositions or {})
        # The business's own properties (named in its criteria file) are read and written too.
        self._writable = WRITABLE_CONTACT_PROPERTIES | frozenset(extra_contact_properties)
        self._read_properties = sorted(CONTACT_READ_PROPERTIES | self._writable)
        self._created: dict[tuple[str, str], str] = {}
        self._unknown: dict[tuple[str, str], float] = {}  # key -> when the outcome got lost
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # contacts

    async def find_contact_by_phone(self, phone_e164: str) -> Contact | None:
        target = parse_e164(phone_e164)
        if target is None:
            logger.info("hubspot: %s is not an E.164 number; no lookup", mask(phone_e164))
            return None
        page = await self._transport.request(
            "search contacts by phone",
            self._contacts.search.do_search,
            phone_query(target, properties=self._read_properties),
        )
        region = phonenumbers.region_code_for_number(target)
        matches = [r for r in page.results if has_number(r.properties or {}, phone_e164, region)]
        if len(page.results) > len(matches):
            logger.debug("hubspot: dropped %d near matches", len(page.results) - len(matches))
        if not matches:
            return None
        if len(matches) > 1:
            logger.info("hubspot: %d contacts share %s", len(matches), mask(phone_e164))
        return contact_from(min(matches, key=lambda r: int(r.id)))

    async def upsert_contact(
        self, *, contact_id: str | None, phone_e164: str | None, properties: dict[str, str]
    ) -> Contact:
        """On update ``phone_e164`` is not written: the contact was found by that number, and
        writing it could clobber a different number stored in ``phone``."""
        props = writable_properties(properties, self._writable)
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
            created = await self._transport.request(
                "create contact", self._contacts.basic.create, body, creates=True
            )
        except CrmConflict:
            # The email is another contact's: that contact is never updated (nor returned) from
            # a call it is not on, so a caller cannot reach someone else's record by naming
            # their address.
            logger.info("hubspot: %s belongs to another contact", mask(props.get("email")))
            raise
        except (OutcomeUnknown, asyncio.CancelledError):
            if phone_e164:
                self._unknown[("contacts", phone_e164)] = self._monotonic()
            raise
        return contact_from(created)

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
            found = await self._transport.request(
                "get contact",
                self._contacts.basic.get_by_id,
                contact_id,
                properties=self._read_properties,
            )
            return contact_from(found)
        body = contacts_api.SimplePublicObjectInput(properties=props)
        updated = await self._transport.request(
            "update contact", self._contacts.basic.update, contact_id, body
        )
        return contact_from(updated)

    async def forget_phone(self, phone_e164: str) -> dict[str, list[str]]:
        """A privacy request: every contact with this number is GDPR-deleted, after the calls
        and notes associated with it (ours hold the transcript) are deleted: HubSpot's GDPR
        delete removes the contact and its associations, not the other records. Deals stay,
        unlinked (they are the business's pipeline). Running it again finds nothing."""
        removed: dict[str, list[str]] = {"contacts": [], "calls": [], "notes": []}
        while (contact := await self.find_contact_by_phone(phone_e164)) is not None:
            if contact.id in removed["contacts"]:
                break  # search still shows it: HubSpot's index trails the delete
            for api in (self._calls, self._notes):
                for object_id in await self._associated(contact.id, api.name):
                    await self._gone_is_fine(f"delete {api.name}", api.basic.archive, object_id)
                    removed[api.name].append(object_id)
            request = contacts_api.PublicGdprDeleteInput(object_id=contact.id)
            await self._gone_is_fine("GDPR-delete contact", self._contacts.basic.purge, request)
            removed["contacts"].append(contact.id)
            logger.info("hubspot: contact %s deleted (GDPR)", contact.id)
        return removed

    async def _associated(self, contact_id: str, to_type: str) -> list[str]:
        page = await self._transport.request(
            f"list {to_type} of contact", self._associations.get_page, "contacts", contact_id,
            to_type, limit=500,
        )  # fmt: skip
        return [str(r.to_object_id) for r in page.results]

    async def _gone_is_fine(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            await self._transport.request(what, fn, *args)
        except InvalidRequest as exc:
            if "404" not in str(exc) and "not found" not in str(exc).lower():
                raise

    # calls, notes, deals

    async def log_call(self, record: CallRecord) -> LoggedCall:
        marker = call_marker(record.call_id)
        call = calls_api.SimplePublicObjectInputForCreate(
            properties=call_properties(record, marker=marker, dispositions=self._dispositions),
            associations=[association_to_contact(calls_api, record.contact_id, CALL_TO_CONTACT)],
        )
        note = notes_api.SimplePublicObjectInputForCreate(
            properties={
                "hs_timestamp": iso_utc(record.ended_at),
                "hs_note_body": note_body(record, marker),
            },
            associations=[association_to_contact(notes_api, record.contact_id, NOTE_TO_CONTACT)],
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
        marker = call_marker(request.call_id)
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
            associations=[association_to_contact(deals_api, request.contact_id, DEAL_TO_CONTACT)],
        )
        async with self._locks[f"deal:{request.call_id}"]:
            return await self._create_once(self._deals, request.call_id, deal)

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
            created = await self._transport.request(
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
            property_name=api.marker_property, operator="CONTAINS_TOKEN", value=call_marker(call_id)
        )
        query = m.PublicObjectSearchRequest(
            filter_groups=[m.FilterGroup(filters=[marker])], properties=["hs_object_id"], limit=10
        )
        page = await self._transport.request(
            f"search {api.name} by marker", api.search.do_search, query
        )
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
