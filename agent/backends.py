"""The composition root's choices: real HubSpot and Google Calendar when configured, the
embedded CRM and calendar otherwise."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from agent.sales_agent import load_business_profile
from agent.settings import Settings, SettingsError
from agent.state import Services
from tools.crm import Crm
from tools.embedded import EmbeddedCalendar, EmbeddedCrm, EmbeddedStore
from tools.qualification import load_criteria
from tools.scheduling import Calendar

logger = logging.getLogger("agent.backends")


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_services(settings: Settings, *, now: Callable[[], datetime] = utc_now) -> Services:
    store: EmbeddedStore | None = None

    def embedded() -> EmbeddedStore:
        nonlocal store
        if store is None:
            store = EmbeddedStore(settings.data_dir / "embedded.sqlite3", now=now)
        return store

    crm = _build_crm(settings, embedded)
    calendar = _build_calendar(settings, embedded)
    logger.info("CRM backend: %s; calendar backend: %s", crm.name, calendar.name)
    return Services(
        crm=crm,
        calendar=calendar,
        hours=settings.business_hours(),
        criteria=load_criteria(),
        business=load_business_profile(),
        now=now,
        default_region=settings.default_region,
        announce_ai=settings.announce_ai,
        announce_recording=settings.announce_recording,
    )


def _build_crm(settings: Settings, embedded: Callable[[], EmbeddedStore]) -> Crm:
    if settings.hubspot_access_token is None:
        return EmbeddedCrm(embedded())
    from tools.hubspot_crm import HubSpotCrm

    return HubSpotCrm(
        settings.hubspot_access_token.get_secret_value(), base_url=settings.hubspot_base_url
    )


def _build_calendar(settings: Settings, embedded: Callable[[], EmbeddedStore]) -> Calendar:
    if settings.google_service_account_file is None:
        return EmbeddedCalendar(embedded())
    if not settings.google_service_account_file.exists():
        raise SettingsError(
            f"GOOGLE_SERVICE_ACCOUNT_FILE points at {settings.google_service_account_file}, "
            "which does not exist."
        )
    from tools.google_calendar import GoogleCalendar

    return GoogleCalendar.from_service_account(
        settings.google_service_account_file,
        delegated_user=settings.google_delegated_user,
        calendar_id=settings.google_calendar_id,
        base_url=settings.google_base_url,
    )
