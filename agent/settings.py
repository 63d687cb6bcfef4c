"""The worker's settings: the groups a process that answers and places calls uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config import (
    BusinessSettings,
    IntegrationSettings,
    LiveKitSettings,
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

    def with_livekit(self, livekit: LiveKitSettings) -> WorkerSettings:
        return WorkerSettings(livekit, self.voice, self.integrations, self.business, self.telephony)


def load_worker_settings(env_file: Path | None = Path(".env")) -> WorkerSettings:
    return load_settings(WorkerSettings, env_file)
