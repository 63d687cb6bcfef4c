"""The groups `python -m privacy` uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config import (
    BusinessSettings,
    IntegrationSettings,
    QueueSettings,
    RetentionSettings,
    SettingsError,
    load_settings,
)
from privacy.forget import CalendarErasure, ContactEraser, CrmErasure, QueueErasure


@dataclass(frozen=True)
class PrivacySettings:
    integrations: IntegrationSettings
    queue: QueueSettings
    business: BusinessSettings
    retention: RetentionSettings


def load_privacy_settings(env_file: Path | None = Path(".env")) -> PrivacySettings:
    return load_settings(PrivacySettings, env_file)


def crm_for(integrations: IntegrationSettings) -> CrmErasure | None:
    """HubSpot when configured; the embedded CRM is one of our own stores, erased directly."""
    if integrations.hubspot_access_token is None:
        return None
    from integrations.hubspot_crm import HubSpotCrm

    return HubSpotCrm(
        integrations.hubspot_access_token.get_secret_value(),
        base_url=integrations.hubspot_base_url,
    )


def calendar_for(integrations: IntegrationSettings) -> CalendarErasure | None:
    """Google Calendar when configured; the embedded calendar is erased with the embedded CRM."""
    key_file = integrations.google_service_account_file
    if key_file is None:
        return None
    if not key_file.exists():
        raise SettingsError(
            f"GOOGLE_SERVICE_ACCOUNT_FILE points at {key_file}, which does not exist."
        )
    from integrations.google_calendar import GoogleCalendar

    return GoogleCalendar.from_service_account(
        key_file,
        delegated_user=integrations.google_delegated_user,
        calendar_id=integrations.google_calendar_id,
        base_url=integrations.google_base_url,
    )


def eraser_for(
    integrations: IntegrationSettings, *, queue: QueueErasure, default_region: str
) -> ContactEraser:
    return ContactEraser(
        queue=queue,
        data_dir=integrations.data_dir,
        crm=crm_for(integrations),
        calendar=calendar_for(integrations),
        default_region=default_region,
    )
