"""The composition root's choices: real HubSpot and Google Calendar when configured, the
embedded CRM and calendar otherwise."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from calls.business import load_business_profile
from calls.call import Services
from calls.qualification import load_criteria
from config import BusinessSettings, IntegrationSettings, SettingsError
from dialer.sql_store import SqlStore
from integrations.crm import Crm
from integrations.do_not_call import DoNotCallList, NoDoNotCallList
from integrations.embedded import EmbeddedCalendar, EmbeddedCrm, EmbeddedStore
from integrations.scheduling import Calendar
from prompts.lines import check_languages

logger = logging.getLogger("agent.backends")


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_services(
    integrations: IntegrationSettings,
    business: BusinessSettings,
    *,
    now: Callable[[], datetime] = utc_now,
    do_not_call: DoNotCallList | None = None,
) -> Services:
    store: EmbeddedStore | None = None

    def embedded() -> EmbeddedStore:
        nonlocal store
        if store is None:
            store = EmbeddedStore(integrations.data_dir / "embedded.sqlite3", now=now)
        return store

    criteria = load_criteria()
    check_languages(business.languages())
    opt_out = integrations.crm_do_not_call_property
    crm = build_crm(integrations, criteria.crm_properties() | {opt_out}, embedded)
    calendar = _build_calendar(integrations, embedded)
    logger.info("CRM backend: %s; calendar backend: %s", crm.name, calendar.name)
    return Services(
        crm=crm,
        calendar=calendar,
        hours=business.business_hours(),
        criteria=criteria,
        business=load_business_profile(),
        now=now,
        default_region=business.default_region,
        announce_ai=business.announce_ai,
        announce_recording=business.announce_recording,
        do_not_call=do_not_call or NoDoNotCallList(),
        do_not_call_property=opt_out,
        languages=business.languages(),
    )


def build_crm(
    settings: IntegrationSettings,
    criteria_properties: frozenset[str],
    embedded: Callable[[], EmbeddedStore],
) -> Crm:
    """The CRM; the properties the criteria file names are read and written besides the
    standard allowlist."""
    if settings.hubspot_access_token is None:
        return EmbeddedCrm(embedded(), extra_contact_properties=criteria_properties)
    from integrations.hubspot_crm import HubSpotCrm

    return HubSpotCrm(
        settings.hubspot_access_token.get_secret_value(),
        base_url=settings.hubspot_base_url,
        extra_contact_properties=criteria_properties,
    )


def _build_calendar(
    settings: IntegrationSettings, embedded: Callable[[], EmbeddedStore]
) -> Calendar:
    if settings.google_service_account_file is None:
        return EmbeddedCalendar(embedded())
    if not settings.google_service_account_file.exists():
        raise SettingsError(
            f"GOOGLE_SERVICE_ACCOUNT_FILE points at {settings.google_service_account_file}, "
            "which does not exist."
        )
    from integrations.google_calendar import GoogleCalendar

    return GoogleCalendar.from_service_account(
        settings.google_service_account_file,
        delegated_user=settings.google_delegated_user,
        calendar_id=settings.google_calendar_id,
        base_url=settings.google_base_url,
    )


class DialerDoNotCall:
    """The do-not-call list is the dialer's, so an opt-out on any call stops every later
    dial; its store calls block, so they run in a thread."""

    def __init__(self, store: SqlStore, *, now: Callable[[], datetime] = utc_now) -> None:
        self._store = store
        self._now = now

    async def add(self, phone_e164: str, *, reason: str) -> None:
        await asyncio.to_thread(self._store.add_dnc, phone_e164, reason=reason, now=self._now())
