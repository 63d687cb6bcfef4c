"""The groups `python -m privacy` uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config import (
    BusinessSettings,
    IntegrationSettings,
    QueueSettings,
    RetentionSettings,
    load_settings,
)
from privacy.forget import ContactEraser, CrmErasure, QueueErasure


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


def eraser_for(
    integrations: IntegrationSettings, *, queue: QueueErasure, default_region: str
) -> ContactEraser:
    return ContactEraser(
        queue=queue,
        data_dir=integrations.data_dir,
        crm=crm_for(integrations),
        default_region=default_region,
    )
