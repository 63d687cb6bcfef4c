"""The lead API process: settings, the store, the app."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from console import ConsoleDeps
from dialer.policy import DialPolicy
from dialer.service import build_reporter
from dialer.sql_store import SqlStore
from leadapi.admission import AdmissionRules
from leadapi.app import ApiDeps, build_app
from leadapi.keys import KeyRing
from leadapi.rate_limits import RateLimiter
from leadapi.settings import LeadApiProcessSettings
from privacy.settings import eraser_for


def utc_now() -> datetime:
    return datetime.now(UTC)


def admission_rules(settings: LeadApiProcessSettings) -> AdmissionRules:
    """What a lead must satisfy, the same for the API and a CSV import."""
    return AdmissionRules(
        policy=DialPolicy.from_settings(settings.dialer, settings.business),
        default_region=settings.business.default_region,
        consent_required=settings.leadapi.lead_consent_required,
        dedupe_window=timedelta(hours=settings.leadapi.lead_dedupe_hours),
    )


def app_for(
    settings: LeadApiProcessSettings,
    *,
    store: SqlStore,
    now: Callable[[], datetime] = utc_now,
    console: ConsoleDeps | None = None,
) -> FastAPI:
    rules = admission_rules(settings)
    deps = ApiDeps(
        store=store,
        keys=KeyRing(store, now=now),
        reporter=build_reporter(settings.dialer, settings.business, queue=store, now=now),
        rules=rules,
        now=now,
        limiter=RateLimiter(
            per_minute=settings.leadapi.leadapi_rate_limit_per_minute,
            burst=settings.leadapi.leadapi_rate_limit_burst,
        ),
        eraser=eraser_for(
            settings.integrations, queue=store, default_region=settings.business.default_region
        ),
        console=console,
    )
    return build_app(deps)
