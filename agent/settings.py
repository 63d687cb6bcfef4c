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
