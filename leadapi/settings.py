"""The lead API's settings: the groups `python -m leadapi` uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config import (
    BusinessSettings,
    DialerSettings,
    IntegrationSettings,
    LeadApiSettings,
    QueueSettings,
    load_settings,
)


@dataclass(frozen=True)
class LeadApiProcessSettings:
    leadapi: LeadApiSettings
    queue: QueueSettings
    dialer: DialerSettings
    business: BusinessSettings
    integrations: IntegrationSettings


def load_leadapi_settings(env_file: Path | None = Path(".env")) -> LeadApiProcessSettings:
    return load_settings(LeadApiProcessSettings, env_file)
