"""The worker's settings: the groups a process that answers and places calls uses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from config import (
    BusinessSettings,
    DialerSettings,
    IntegrationSettings,
    LiveKitSettings,
    QueueSettings,
    RetentionSettings,
    SettingsError,
    TelephonySettings,
    VoiceSettings,
    load_settings,
)


@dataclass(frozen=True)
class WorkerSettings:
    livekit: LiveKitSettings
    voice: VoiceSettings
    integrations: IntegrationSettings
    business: BusinessSettings
    telephony: TelephonySettings
    queue: QueueSettings
    dialer: DialerSettings  # outbound attempts the dialer placed report back to its queue
    retention: RetentionSettings  # the worker sweeps old transcripts and recordings

    def with_livekit(self, livekit: LiveKitSettings) -> WorkerSettings:
        return dataclasses.replace(self, livekit=livekit)


def load_worker_settings(env_file: Path | None = Path(".env")) -> WorkerSettings:
    return load_settings(WorkerSettings, env_file)


def require_livekit(livekit: LiveKitSettings, *, command: str) -> None:
    """``command`` runs against a configured LiveKit, never the local stack."""
    missing = [
        f"  {name.upper()} ({LiveKitSettings.model_fields[name].description}) is missing"
        for name in ("livekit_url", "livekit_api_key", "livekit_api_secret")
        if not getattr(livekit, name)
    ]
    if missing:
        raise SettingsError(
            "\n".join(
                [
                    f"`{command}` runs against a configured LiveKit; set these (environment or "
                    ".env), or use `dev` for a local stack:",
                    *missing,
                ]
            )
        )
