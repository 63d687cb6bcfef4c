"""Joining a rep to the caller once they accept: LiveKit's MoveParticipant where the server
has it, otherwise our job carries the audio between the two rooms.

MoveParticipant is a LiveKit Cloud feature; livekit-server (v1.13.5) answers it with
500 "not implemented". Which path a call takes is decided by trying it: the first refusal is
remembered for the life of the process, so later transfers go straight to the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from livekit import api, rtc

logger = logging.getLogger("transfer.bridge")

RATE = 48000
MergePath = Literal["moved", "bridged"]
_move_unsupported = False


def _unsupported(exc: api.TwirpError) -> bool:
    text = f"{exc.code} {exc.message}".lower()
    return exc.status in (404, 500, 501) and ("implement" in text or exc.code == "unimplemented")


async def move_supported_and_done(
    lkapi: api.LiveKitAPI, *, identity: str, from_room: str, to_room: str
) -> bool:
    """Try MoveParticipant; False (and remembered) if the server does not implement it."""
    global _move_unsupported
    if _move_unsupported:
        return False
    try:
        await lkapi.room.move_participant(
            api.MoveParticipantRequest(room=from_room, identity=identity, destination_room=to_room)
        )
    except api.TwirpError as exc:
        if not _unsupported(exc):
            raise
        logger.info("MoveParticipant is not available on this server (%s); bridging", exc.message)
        _move_unsupported = True
        return False
    return True


class RoomBridge:
    """Carries one participant's microphone from each room into the other: the rep's voice
    into the caller's room, the caller's into the rep's. Runs until ``aclose()``."""

    def __init__(
        self,
        *,
        caller_room: rtc.Room,
        caller: rtc.RemoteParticipant,
        rep_room: rtc.Room,
        rep: rtc.RemoteParticipant,
    ) -> None:
        self._legs = ((rep_room, rep, caller_room, "rep-voice"), (caller_room, caller, rep_room,
                      "caller-voice"))  # fmt: skip
        self._tasks: list[asyncio.Task[None]] = []
        self._published: list[tuple[rtc.Room, str]] = []
        self._sources: list[rtc.AudioSource] = []

    async def start(self) -> None:
        for source_room, speaker, target_room, name in self._legs:
            del source_room  # the speaker's room; their stream is read from the participant
            audio = rtc.AudioSource(RATE, 1)
            track = rtc.LocalAudioTrack.create_audio_track(name, audio)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            publication = await target_room.local_participant.publish_track(track, options)
            self._published.append((target_room, publication.sid))
            self._sources.append(audio)
            self._tasks.append(asyncio.create_task(self._pump(speaker, audio), name=name))

    async def _pump(self, speaker: rtc.RemoteParticipant, out: rtc.AudioSource) -> None:
        stream = rtc.AudioStream.from_participant(
            participant=speaker,
            track_source=rtc.TrackSource.SOURCE_MICROPHONE,
            sample_rate=RATE,
            num_channels=1,
        )
        try:
            async for event in stream:
                await out.capture_frame(event.frame)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stream.aclose(), 1.0)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for room, sid in self._published:
            if room.isconnected():  # a room already gone took its tracks with it
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(room.local_participant.unpublish_track(sid), 1.0)
        for audio in self._sources:
            with contextlib.suppress(Exception):
                await audio.aclose()
