"""Typed settings in groups, read from the environment and an optional ``.env``.

Each process composes only the groups it uses (see ``config.processes``), so a process that
never speaks does not need speech keys.
"""

from config.groups import (
    BusinessSettings,
    DialerSettings,
    IntegrationSettings,
    LeadApiSettings,
    LiveKitSettings,
    LlmSettings,
    QueueSettings,
    RetentionSettings,
    TelephonySettings,
    VoiceSettings,
)
from config.loading import SettingsError, load_settings

GROUPS = (
    LiveKitSettings,
    TelephonySettings,
    IntegrationSettings,
    BusinessSettings,
    VoiceSettings,
    QueueSettings,
    DialerSettings,
    LeadApiSettings,
    RetentionSettings,
)


def variable_names() -> frozenset[str]:
    """Every environment variable any settings group reads."""
    return frozenset(name.upper() for group in GROUPS for name in group.model_fields)


__all__ = [
    "GROUPS",
    "BusinessSettings",
    "DialerSettings",
    "IntegrationSettings",
    "LeadApiSettings",
    "LiveKitSettings",
    "LlmSettings",
    "QueueSettings",
    "RetentionSettings",
    "SettingsError",
    "TelephonySettings",
    "VoiceSettings",
    "load_settings",
    "variable_names",
]
