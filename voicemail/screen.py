"""Listening to an outbound callee until it is clear who answered: LiveKit's answering-machine
detector (``livekit.agents.AMD``) on the session's own STT transcripts and LLM, and our beep
detector on the callee's audio, combined by ``voicemail.decision.Screening``.

Off LiveKit Cloud, AMD reuses the session's STT and LLM: it hears the callee through the
session's audio pipeline (VAD speech starts and ends, final transcripts, end of turn) and asks
the LLM to classify the transcript. While it listens it holds back every word the agent would
say, so a mailbox never hears the opener; a person's verdict releases it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import AMD, AgentSession, AMDPredictionEvent, UserStateChangedEvent
from livekit.agents.utils.participant import wait_for_track_publication

from voicemail.beep import Beep, BeepDetector, BeepSettings
from voicemail.decision import Decision, Screening, ScreenTimings

logger = logging.getLogger("voicemail.screen")

BEEP_SAMPLE_RATE = 16000
CalleeAudio = Callable[[], AsyncIterator[rtc.AudioFrame]]
# AMD's timings, tuned for an outbound sales call: a callee who says nothing for 2 s is greeted
# (as before AMD); a person's short "Hello?" is released after 0.6 s of silence, about when our
# turn detector would end their turn anyway, so the opener comes no later than without AMD.
AMD_OPTIONS: dict[str, float] = {
    "no_speech_threshold": 2.0,
    "human_silence_threshold": 0.5,
    "machine_silence_threshold": 0.6,
    "timeout": 30.0,
}


def participant_audio(room: rtc.Room, identity: str) -> CalleeAudio:
    """The callee's own audio track, as 16 kHz mono frames, once it is subscribed."""

    async def frames() -> AsyncIterator[rtc.AudioFrame]:
        publication = await wait_for_track_publication(
            room, identity=identity, kind=rtc.TrackKind.KIND_AUDIO, wait_for_subscription=True
        )
        assert publication.track is not None
        stream = rtc.AudioStream.from_track(
            track=publication.track, sample_rate=BEEP_SAMPLE_RATE, num_channels=1
        )
        try:
            async for event in stream:
                yield event.frame
        finally:
            await stream.aclose()

    return frames


class CalleeScreen:
    """One outbound call's screening. ``start`` before dialing (AMD then holds the agent's
    speech back), ``decisions`` once the callee answered: the first decision, then possibly a
    revised one (a beep right after the opener). Any speech the agent queued is cancelled when
    a mailbox is decided, before the hold is released for the message."""

    def __init__(
        self,
        session: AgentSession[Any],
        *,
        callee_audio: CalleeAudio,
        participant_identity: str | None = None,
        timings: ScreenTimings | None = None,
        beep: BeepSettings | None = None,
        amd_options: dict[str, float] | None = None,
        on_machine: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``on_machine`` is called the moment AMD calls it a machine, before anything else
        runs, so the agent answers none of the machine's turns from then on."""
        self._session = session
        self._callee_audio = callee_audio
        self._identity = participant_identity
        self._timings = timings or ScreenTimings()
        self._beep = beep
        self._amd_options = amd_options or AMD_OPTIONS
        self._on_machine = on_machine
        self._clock = clock
        self._events: asyncio.Queue[tuple[str, Any, float]] = asyncio.Queue()
        self._amd: AMD | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._closed = False
        self.beeps: list[Beep] = []
        self.screening: Screening | None = None

    async def start(self) -> None:
        options: Any = dict(self._amd_options)
        kwargs: dict[str, Any] = {}
        if self._identity:
            kwargs["participant_identity"] = self._identity
        self._amd = AMD(
            self._session, llm=None, stt=None, interrupt_on_machine=True, ivr_detection=False,
            suppress_compatibility_warning=True, detection_options=options,
            wait_until_finished=True, **kwargs,
        )  # fmt: skip
        self._amd.on("amd_prediction", self._on_prediction)
        await self._amd.__aenter__()
        self._session.on("user_state_changed", self._on_user_state)
        self._tasks.append(asyncio.create_task(self._listen_for_beeps()))

    async def decisions(self) -> AsyncGenerator[Decision, None]:
        """What to do, as it is decided; it ends once nothing can change any more."""
        assert self._amd is not None, "start() the screen before the callee answers"
        screening = self.screening = Screening(answered_at=self._clock(), timings=self._timings)
        self._tasks.append(asyncio.create_task(self._verdict(self._amd)))
        try:
            while not screening.finished:
                decision = await self._next(screening)
                if decision is None:
                    continue
                if decision.action in ("leave_message", "hang_up"):
                    # the opener, queued or playing (a late beep), is not for a mailbox
                    self._session.interrupt(force=True)
                    await self._close_amd()  # releases the hold for the message
                elif decision.reason == "no_verdict":
                    await self._close_amd()
                yield decision
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._session.off("user_state_changed", self._on_user_state)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self._close_amd()

    async def _next(self, screening: Screening) -> Decision | None:
        due = screening.deadline()
        timeout = None if due is None else max(0.0, due - self._clock())
        try:
            kind, value, at = await asyncio.wait_for(self._events.get(), timeout)
        except TimeoutError:
            return screening.on_time(self._clock())
        if kind == "amd":
            logger.info("AMD verdict %s (%s)", value.category.value, value.reason)
            return screening.on_amd(value.category.value, at=at)
        if kind == "speech":
            screening.on_callee_speech(value, at=at)
            return None
        if at < screening.answered_at:
            return None  # before the answer: ringback or early media, not a mailbox
        logger.info("beep at %.0f Hz, %.0f ms", value.frequency_hz, 1000 * value.duration_s)
        return screening.on_beep(at=at)

    async def _verdict(self, amd: AMD) -> None:
        result = await amd.execute()
        self._events.put_nowait(("amd", result, self._clock()))

    async def _listen_for_beeps(self) -> None:
        detector = BeepDetector(sample_rate=BEEP_SAMPLE_RATE, settings=self._beep)
        async for frame in self._callee_audio():
            if frame.sample_rate != BEEP_SAMPLE_RATE:
                continue  # the stream is asked for 16 kHz; anything else is not ours to read
            samples = np.frombuffer(frame.data, dtype=np.int16)
            for beep in detector.push(samples[:: frame.num_channels]):
                self.beeps.append(beep)
                self._events.put_nowait(("beep", beep, self._clock()))

    def _on_prediction(self, result: AMDPredictionEvent) -> None:
        if result.is_machine and self._on_machine is not None:
            self._on_machine()

    def _on_user_state(self, event: UserStateChangedEvent) -> None:
        if event.new_state in ("speaking", "listening"):
            speaking = event.new_state == "speaking"
            self._events.put_nowait(("speech", speaking, self._clock()))

    async def _close_amd(self) -> None:
        amd, self._amd = self._amd, None
        if amd is not None:
            await amd.aclose()
