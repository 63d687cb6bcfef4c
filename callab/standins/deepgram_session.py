"""One Deepgram live-transcription connection: what it asked for, heard and answered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import deepgram_messages as dg
from ._server import WebSocketSender
from .deepgram_messages import Transcript
from .speech_detect import EnergyDetector, SpeechEnd, SpeechStart


@dataclass(frozen=True)
class ListenOptions:
    model: str
    sample_rate: int
    channels: int
    interim_results: bool
    vad_events: bool
    endpointing: bool
    punctuated: bool
    utterance_end_ms: int | None
    tags: tuple[str, ...]
    language: str = "en"

    @classmethod
    def from_query(cls, query: Mapping[str, str], tags: Sequence[str]) -> ListenOptions:
        encoding = query.get("encoding", "linear16")
        if encoding != "linear16":
            raise ValueError(f"this stand-in only decodes linear16, not {encoding}")

        def flag(name: str, default: bool) -> bool:
            return query.get(name, str(default)).lower() == "true"

        utterance_end = query.get("utterance_end_ms")
        return cls(
            model=query.get("model", "nova-3"),
            sample_rate=int(query.get("sample_rate", "16000")),
            channels=int(query.get("channels", "1")),
            interim_results=flag("interim_results", False),
            vad_events=flag("vad_events", False),
            endpointing=query.get("endpointing", "10").lower() != "false",
            punctuated=flag("punctuate", False) or flag("smart_format", False),
            utterance_end_ms=int(utterance_end) if utterance_end else None,
            tags=tuple(tags),
            language=query.get("language", "en"),
        )


@dataclass
class DetectedUtterance:
    start: float
    end: float
    text: str | None  # None once the script ran out; "" heard but not recognised
    # When its text went out, in seconds of audio received (as start and end): on its own
    # final, or on a Finalize from the client, whichever came first.
    delivered_at: float | None = None

    @property
    def transcription_s(self) -> float | None:
        """The provider time this utterance cost: its speech end to its text sent."""
        return None if self.delivered_at is None else max(0.0, self.delivered_at - self.end)


@dataclass
class ListenRecord:
    """What one websocket (or REST request) received and answered, for assertions."""

    request_id: str
    params: dict[str, list[str]]
    utterances: list[DetectedUtterance] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    control_messages: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0
    closed: bool = False

    @property
    def final_texts(self) -> list[str]:
        return [
            alt["transcript"]
            for m in self.sent
            if m.get("type") == "Results" and m["is_final"]
            for alt in m["channel"]["alternatives"][:1]
            if alt["transcript"]
        ]


@dataclass
class _Utterance:
    start: float
    text: str | None
    interims_sent: int = 0
    finalized: bool = False  # a Finalize already delivered its text
    delivered_at: float | None = None


class LiveSession:
    def __init__(
        self,
        *,
        opts: ListenOptions,
        record: ListenRecord,
        sender: WebSocketSender,
        detector: EnergyDetector,
        next_text: Callable[[], str | None],
        language_of: Callable[[str], str],
        final_delay_s: float,
        interim_interval_s: float,
        confidence: float,
    ) -> None:
        """`next_text` hands out the call's next scripted utterance (None once used up)."""
        self._opts = opts
        self._record = record
        self._sender = sender
        self._detector = detector
        self._next_text = next_text
        self._language_of = language_of
        self._final_delay_s = final_delay_s
        self._interim_interval_s = interim_interval_s
        self._confidence = confidence
        self._current: _Utterance | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def on_audio(self, pcm: bytes) -> None:
        for event in self._detector.push(pcm):
            if isinstance(event, SpeechStart):
                await self._begin(event)
            else:
                self._end(event)
        self._record.audio_seconds = self._detector.stream_time
        await self._maybe_send_interim()

    async def on_finalize(self) -> None:
        now = self._detector.stream_time
        current = self._current
        transcript = None
        if current is not None and current.text and not current.finalized:
            transcript = self._transcript(current.text, current.start, now)
            current.finalized = True
            current.delivered_at = now
        await self._send(
            dg.results(
                request_id=self._record.request_id,
                transcript=transcript,
                start=current.start if current else now,
                end=now,
                is_final=True,
                speech_final=False,
                from_finalize=True,
            )
        )

    async def finish(self) -> None:
        for event in self._detector.flush():
            if isinstance(event, SpeechEnd):
                self._end(event)
        if self._pending:
            await asyncio.gather(*self._pending)
        await self._send(
            dg.metadata(
                request_id=self._record.request_id,
                duration=self._detector.stream_time,
                channels=self._opts.channels,
            )
        )

    async def _begin(self, event: SpeechStart) -> None:
        self._current = _Utterance(start=event.start, text=self._next_text())
        if self._opts.vad_events:
            await self._send(dg.speech_started(event.start))

    def _end(self, event: SpeechEnd) -> None:
        current, self._current = self._current, None
        if current is None:
            return
        detected = DetectedUtterance(event.start, event.end, current.text, current.delivered_at)
        self._record.utterances.append(detected)
        task = asyncio.create_task(self._send_final(current, event, detected))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_final(
        self, utterance: _Utterance, event: SpeechEnd, detected: DetectedUtterance
    ) -> None:
        # The final is due `final_delay` after the speech ended, not after the end was
        # confirmed: the silence this detector waits for is not added on top.
        waited = self._detector.stream_time - event.end
        await asyncio.sleep(max(0.0, self._final_delay_s - waited))
        transcript = None
        if utterance.text and not utterance.finalized:
            transcript = self._transcript(utterance.text, event.start, event.end)
            detected.delivered_at = self._detector.stream_time
        await self._send(
            dg.results(
                request_id=self._record.request_id,
                transcript=transcript,
                start=event.start,
                end=event.end,
                is_final=True,
                speech_final=self._opts.endpointing,
            )
        )
        if self._opts.utterance_end_ms is not None:
            await self._send(dg.utterance_end(event.end))

    async def _maybe_send_interim(self) -> None:
        current = self._current
        interval = self._interim_interval_s
        if not (self._opts.interim_results and interval > 0 and current and current.text):
            return
        if current.finalized:
            return
        now = self._detector.stream_time
        due = int((now - current.start) / interval)
        if due <= current.interims_sent:
            return
        current.interims_sent = due
        full = self._transcript(current.text, current.start, now)
        await self._send(
            dg.results(
                request_id=self._record.request_id,
                transcript=full.head(due),
                start=current.start,
                end=now,
                is_final=False,
                speech_final=False,
            )
        )

    async def _send(self, message: dict[str, Any]) -> None:
        if await self._sender.send_json(message):
            self._record.sent.append(message)

    def _transcript(self, text: str, start: float, end: float) -> Transcript:
        return Transcript(
            text=text,
            start=start,
            end=end,
            confidence=self._confidence,
            punctuated=self._opts.punctuated,
            language=self._language_of(text) if self._opts.language == "multi" else None,
        )
