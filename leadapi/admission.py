"""A posted lead as a queued call: its number in E.164, its zone, consent, and when to dial."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from calls.time_zones import InvalidTimeZone
from dialer.hours import first_allowed, lead_zone
from dialer.model import Call, Campaign, Consent, Lead
from dialer.policy import DialPolicy
from integrations.phone import InvalidPhoneNumber, normalise_phone
from leadapi.schemas import LeadIn


class LeadRejected(Exception):
    """A field's value cannot make a call; ``field`` names it, the message says why."""

    def __init__(self, field: str, message: str, *, kind: str = "value_error") -> None:
        super().__init__(message)
        self.field = field
        self.kind = kind


@dataclass(frozen=True)
class AdmissionRules:
    policy: DialPolicy
    default_region: str
    consent_required: bool
    dedupe_window: timedelta


def phone_or_reject(raw: str, *, region: str, field: str = "phone") -> str:
    try:
        return normalise_phone(raw, default_region=region)
    except InvalidPhoneNumber as exc:
        raise LeadRejected(field, f"{exc}; use E.164, e.g. +14155550100") from None


def call_for(
    lead_in: LeadIn,
    *,
    rules: AdmissionRules,
    campaign: Campaign | None,
    call_id: str,
    now: datetime,
) -> Call:
    """The call to queue, or LeadRejected naming the field at fault."""
    phone = phone_or_reject(lead_in.phone, region=rules.default_region)
    _check_consent(lead_in, required=rules.consent_required)
    zone = _zone(lead_in, phone=phone, business_zone=rules.policy.business_zone)
    due = first_allowed(now, zone=zone, hours=rules.policy.hours_for(campaign))
    return Call(
        id=call_id, lead=_lead(lead_in, phone), zone=zone.key, campaign=lead_in.campaign,
        status="queued" if due == now else "scheduled", created_at=now, updated_at=now,
        next_at=due,
    )  # fmt: skip


def fingerprint(lead_in: LeadIn) -> str:
    canonical = json.dumps(lead_in.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_call_id(random_hex: Callable[[], str]) -> str:
    return f"call_{random_hex()}"


def _check_consent(lead_in: LeadIn, *, required: bool) -> None:
    if required and (lead_in.consent is None or not lead_in.consent.given):
        raise LeadRejected(
            "consent",
            "consent to be called is required: send consent.given=true with its wording",
            kind="consent_required",
        )


def _zone(lead_in: LeadIn, *, phone: str, business_zone: str) -> ZoneInfo:
    try:
        return lead_zone(time_zone=lead_in.time_zone, phone=phone, business_zone=business_zone)
    except InvalidTimeZone:
        raise LeadRejected(
            "time_zone", f"unknown time zone {lead_in.time_zone!r}; use e.g. America/Chicago"
        ) from None


def _lead(lead_in: LeadIn, phone: str) -> Lead:
    consent = lead_in.consent
    return Lead(
        phone=phone,
        name=lead_in.name,
        email=lead_in.email,
        company=lead_in.company,
        source=lead_in.source,
        fields=lead_in.fields,
        consent=Consent(
            given=consent.given, wording=consent.wording, time=consent.time, source=consent.source
        )
        if consent is not None
        else None,
        time_zone=lead_in.time_zone,
    )
