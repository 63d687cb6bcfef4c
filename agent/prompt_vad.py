"""Silero, with the agent stopped on the window that starts the caller's speech.

LiveKit stops the agent on a VAD inference whose speech has lasted ``MIN_INTERRUPTION_SECONDS``.
Silero reports each window's inference before the speech start that window decides, with the
speech not yet counted, so LiveKit first sees the speech on the window after: one Silero window
(32 ms) and up to one input frame after Silero knew. ``PromptVAD`` passes Silero's events on
unchanged and repeats the deciding inference right after the start, carrying the speech's
duration. Which sounds stop the agent is unchanged (a start still needs Silero's
``min_speech_duration`` of speech); they stop it one window sooner.
"""

from __future__ import annotations

import dataclasses

from livekit import rtc
from livekit.agents import vad


class PromptVAD(vad.VAD):
    def __init__(self, inner: vad.VAD) -> None:
        super().__init__(capabilities=inner.capabilities)
        self._inner = inner

    @property
    def inner(self) -> vad.VAD:
        return self._inner

    @property
    def model(self) -> str:
        return self._inner.model

    @property
    def provider(self) -> str:
        return self._inner.provider

    def stream(self) -> vad.VADStream:
        return _PromptStream(self, self._inner.stream())


class _PromptStream(vad.VADStream):
    def __init__(self, owner: PromptVAD, inner: vad.VADStream) -> None:
        self._inner = inner
        super().__init__(owner)

    # Input goes straight to Silero's stream (this stream's own input channel stays unused).
    def push_frame(self, frame: rtc.AudioFrame) -> None:
        self._check_input_not_ended()
        self._check_not_closed()
        self._inner.push_frame(frame)

    def flush(self) -> None:
        self._check_input_not_ended()
        self._check_not_closed()
        self._inner.flush()

    def end_input(self) -> None:
        self._inner.end_input()  # flushes Silero's stream first
        self._input_ch.close()

    async def aclose(self) -> None:
        await self._inner.aclose()
        await super().aclose()

    async def _main_task(self) -> None:
        deciding: vad.VADEvent | None = None  # the latest inference
        async for event in self._inner:
            self._event_ch.send_nowait(event)
            if event.type == vad.VADEventType.INFERENCE_DONE:
                deciding = event
            elif event.type == vad.VADEventType.START_OF_SPEECH and deciding is not None:
                self._event_ch.send_nowait(dataclasses.replace(
                    deciding, speaking=True, speech_duration=event.speech_duration,
                    silence_duration=0.0, raw_accumulated_speech=event.speech_duration,
                    raw_accumulated_silence=0.0, inference_duration=0.0, frames=[],
                ))  # fmt: skip
