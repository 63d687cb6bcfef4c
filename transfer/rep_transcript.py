"""What a console rep says once they have the caller, written down: the agent stays in the room
as a silent note-taker, and transcribes the rep as it transcribes the caller, so the rep's
screen shows both sides live and the call record has the whole conversation.

    notes = RepTranscript(room, identity="rep-sam", label="Rep (Sam)", stt_engine=stt,
                          history=session.history)
    notes.start()
    ...
    await notes.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from livekit import rtc
from livekit.agents import ChatContext, ChatMessage, stt, utils

from calls.transcript import SPEAKER

logger = logging.getLogger("transfer.rep_transcript")

SAMPLE_RATE = 16000
TRACK_WAIT_S = 10.0


class RepTranscript:
    def __init__(
        self,
        room: rtc.Room,
        *,
        identity: str,
        label: str,
        stt_engine: stt.STT,
        history: ChatContext,
    ) -> None:
        self._room = room
        self._identity = identity
        self._label = label
        self._stt = stt_engine
        self._history = history
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rep-transcript")

    async def aclose(self) -> None:
        if self._task is not None:
            await utils.aio.cancel_and_wait(self._task)

    async def _run(self) -> None:
        try:
            track = await self._rep_audio()
        except TimeoutError:
            logger.warning("the rep's microphone never reached the call: no rep transcript")
            return
        audio = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        recognizer = self._stt.stream()
        feeding = asyncio.create_task(self._feed(audio, recognizer))
        try:
            async for event in recognizer:
                if event.type == stt.SpeechEventType.FINAL_TRANSCRIPT and event.alternatives:
                    text = event.alternatives[0].text.strip()
                    if text:
                        await self._write(text, track_sid=track.sid)
        finally:
            await utils.aio.cancel_and_wait(feeding)
            with contextlib.suppress(Exception):
                await recognizer.aclose()
            with contextlib.suppress(Exception):
                await audio.aclose()

    async def _rep_audio(self) -> rtc.Track:
        """The rep's microphone track in the caller's room, subscribed."""
        deadline = asyncio.get_running_loop().time() + TRACK_WAIT_S
        while True:
            participant = self._room.remote_participants.get(self._identity)
            for publication in participant.track_publications.values() if participant else ():
                if publication.kind != rtc.TrackKind.KIND_AUDIO:
                    continue
                if not publication.subscribed:
                    publication.set_subscribed(True)
                if publication.track is not None:
                    return publication.track
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError
            await asyncio.sleep(0.1)

    async def _feed(self, audio: rtc.AudioStream, recognizer: Any) -> None:
        async for event in audio:
            recognizer.push_frame(event.frame)

    async def _write(self, text: str, *, track_sid: str) -> None:
        """On the rep's screen (LiveKit's transcription text stream, attributed to the rep's
        track), and in the call's history, marked as the rep's."""
        line = ChatMessage(role="user", content=[text], extra={SPEAKER: self._label})
        self._history.insert(line)
        logger.info("the rep said a line (%d characters)", len(text))
        with contextlib.suppress(Exception):
            await self._room.local_participant.send_text(
                text,
                topic="lk.transcription",
                attributes={
                    "lk.transcribed_track_id": track_sid,
                    "lk.segment_id": line.id,
                    "lk.transcription_final": "true",
                },
            )
