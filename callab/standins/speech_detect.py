"""Energy-based utterance detection over a live stream of 16-bit PCM.

Speech starts once the RMS of consecutive 10 ms windows stays at or above a threshold
for `speech_start_ms`; it ends after `speech_end_ms` of windows below it. Times are in
seconds of audio received, so detection does not depend on how fast audio arrives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WINDOW_MS = 10.0


@dataclass(frozen=True)
class SpeechStart:
    start: float


@dataclass(frozen=True)
class SpeechEnd:
    start: float
    end: float  # end of the last loud window, not the moment silence was confirmed


DetectorEvent = SpeechStart | SpeechEnd


class EnergyDetector:
    def __init__(
        self,
        *,
        sample_rate: int,
        channels: int = 1,
        threshold_dbfs: float = -40.0,
        speech_start_ms: float = 60.0,
        speech_end_ms: float = 400.0,
    ) -> None:
        self._channels = channels
        self._window = max(1, round(sample_rate * WINDOW_MS / 1000))
        self._window_s = self._window / sample_rate
        self._threshold = threshold_dbfs
        self._start_s = speech_start_ms / 1000
        self._end_s = speech_end_ms / 1000
        self._pending = b""
        self._windows_seen = 0
        self._loud_since: float | None = None
        self._speech_start: float | None = None
        self._last_loud_end = 0.0

    @property
    def stream_time(self) -> float:
        return self._windows_seen * self._window_s

    @property
    def speech_start(self) -> float | None:
        """Start of the ongoing utterance, None between utterances."""
        return self._speech_start

    def push(self, pcm: bytes) -> list[DetectorEvent]:
        data = self._pending + pcm
        frame_bytes = 2 * self._channels * self._window
        usable = len(data) - len(data) % frame_bytes
        self._pending = data[usable:]
        samples = np.frombuffer(data[:usable], dtype="<i2").reshape(-1, self._channels)[:, 0]
        events: list[DetectorEvent] = []
        for window in samples.reshape(-1, self._window):
            event = self._on_window(rms_dbfs(window))
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[DetectorEvent]:
        """End of stream: an utterance still going on ends at its last loud window."""
        if self._speech_start is None:
            return []
        event = SpeechEnd(start=self._speech_start, end=self._last_loud_end)
        self._speech_start = self._loud_since = None
        return [event]

    def _on_window(self, level_dbfs: float) -> DetectorEvent | None:
        start = self.stream_time
        self._windows_seen += 1
        end = self.stream_time
        loud = level_dbfs >= self._threshold
        if self._speech_start is None:
            if not loud:
                self._loud_since = None
                return None
            if self._loud_since is None:
                self._loud_since = start
            if end - self._loud_since + 1e-9 < self._start_s:
                return None
            self._speech_start, self._last_loud_end = self._loud_since, end
            return SpeechStart(start=self._speech_start)
        if loud:
            self._last_loud_end = end
            return None
        if end - self._last_loud_end + 1e-9 < self._end_s:
            return None
        event = SpeechEnd(start=self._speech_start, end=self._last_loud_end)
        self._speech_start = self._loud_since = None
        return event


def rms_dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))
    return 20 * math.log10(rms / 32768) if rms > 0 else -math.inf
