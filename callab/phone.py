"""The test phone: a caller on the line, speaking scripted lines and recording the agent.

It is a WebRTC participant (the livekit `rtc` SDK), standing in for the SIP leg. On a real
call the LiveKit SIP bridge (livekit-sip) answers the carrier's INVITE, joins the room as a
participant of kind SIP with `sip.*` attributes, and the dispatch rule dispatches the agent.
The bridge cannot be installed here (its Go modules are not downloadable), so this phone
joins with a token that carries what the bridge would set (kind `sip`, `sip.phoneNumber`,
`sip.trunkPhoneNumber`, `sip.callID`, `sip.ruleID` ...), and the harness dispatches the agent
explicitly, as the dispatch rule would. The agent cannot tell the difference; the SIP
signalling and the RTP/codec leg are what this does not exercise.

The phone keeps its microphone track fed (silence between lines, like an RTP stream), and
timestamps everything on `time.monotonic()`: when each line left the phone, and every 10 ms
window of agent audio as it arrived.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from livekit import api, rtc

from callab.audio import (
    SPEECH_DBFS,
    WINDOW_S,
    Span,
    level_dbfs,
    phone_line,
    speech_spans,
    write_wav,
)

TRUNK_NUMBER = "+14155550199"
MIC_RATE = 48000  # the bridge publishes 48 kHz Opus, upsampled from the 8 kHz line
EAR_RATE = 16000
FRAME_MS = 20
MIC_QUEUE_MS = 60  # small, so a captured frame leaves the phone almost at once
# A phone line is never digitally silent. The audio end-of-turn model notices: speech that
# stops into exact zeros reads as "not finished" far more often than speech into line noise.
LINE_NOISE_DBFS = -72.0
POLL_S = 0.02
_call_ids = itertools.count(1)


@dataclass(frozen=True)
class SaidLine:
    text: str
    started_at: float  # time.monotonic() when its first sample left the phone
    ended_at: float  # ... and its last one


@dataclass(frozen=True)
class HeardText:
    at: float
    text: str


def line_noise(frame_samples: int, *, seconds: float = 2.0) -> Iterator[np.ndarray]:
    """Frames of faint white noise at LINE_NOISE_DBFS, looping a fixed (seeded) buffer."""
    sigma = 32768 * 10 ** (LINE_NOISE_DBFS / 20)
    count = int(MIC_RATE * seconds) // frame_samples
    buffer = np.random.default_rng(7).normal(0, sigma, count * frame_samples)
    frames = np.round(buffer).astype(np.int16).reshape(count, frame_samples)
    return itertools.cycle(frames)


def sip_attributes(caller_number: str, *, trunk_number: str = TRUNK_NUMBER) -> dict[str, str]:
    """The participant attributes livekit-sip sets on an inbound caller."""
    call = next(_call_ids)
    return {
        "sip.phoneNumber": caller_number,
        "sip.trunkPhoneNumber": trunk_number,
        "sip.callID": f"SCL_e2e{call:05d}",
        "sip.callStatus": "active",
        "sip.trunkID": "ST_e2e-inbound",
        "sip.ruleID": "SDR_e2e-dispatch",
    }


def caller_token(
    *, api_key: str, api_secret: str, room: str, caller_number: str, identity: str | None = None
) -> str:
    return (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity or f"sip_{caller_number.lstrip('+')}")
        .with_name("Phone caller")
        .with_kind("sip")
        .with_attributes(sip_attributes(caller_number))
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .to_jwt()
    )


@dataclass
class Recording:
    """What the phone heard from the agent: 10 ms levels with arrival times, and the audio."""

    windows: list[tuple[float, float]] = field(default_factory=list)
    chunks: list[tuple[float, np.ndarray]] = field(default_factory=list)
    loud: list[float] = field(default_factory=list)  # start times of loud windows
    last_loud: float | None = None  # end of the latest loud window

    def add(self, at: float, samples: np.ndarray) -> None:
        self.chunks.append((at, samples))
        per_window = int(EAR_RATE * WINDOW_S)
        count = max(1, samples.size // per_window)
        for index in range(count):
            window = samples[index * per_window : (index + 1) * per_window]
            window_at = at - (count - 1 - index) * WINDOW_S
            level = level_dbfs(window)
            self.windows.append((window_at, level))
            if level >= SPEECH_DBFS:
                self.loud.append(window_at)
                self.last_loud = window_at + WINDOW_S

    def spans(self) -> list[Span]:
        return speech_spans(self.windows)

    def samples(self) -> np.ndarray:
        """The recording on one timeline; gaps in delivery become silence."""
        if not self.chunks:
            return np.zeros(0, dtype=np.int16)
        out: list[np.ndarray] = []
        clock = self.chunks[0][0]
        for at, chunk in self.chunks:
            gap = at - chunk.size / EAR_RATE - clock
            if gap > 0.05:
                out.append(np.zeros(int(gap * EAR_RATE), dtype=np.int16))
            out.append(chunk)
            clock = max(clock, at - chunk.size / EAR_RATE) + chunk.size / EAR_RATE
        return np.concatenate(out)

    def peak_dbfs(self) -> float:
        return max((level for _, level in self.windows), default=-np.inf)


class TestPhone:
    """One caller. `await dial()`, then `say()` lines and wait on what the agent does."""

    __test__ = False  # not a pytest class

    def __init__(
        self, *, url: str, token: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._url = url
        self._token = token
        self._clock = clock
        self.room = rtc.Room()
        self.recording = Recording()
        self.said: list[SaidLine] = []
        self.heard_text: list[HeardText] = []
        self.joined_at: float | None = None
        self.disconnected_at: float | None = None
        self.disconnect_reason: str | None = None
        self._source = rtc.AudioSource(MIC_RATE, 1, queue_size_ms=MIC_QUEUE_MS)
        self._lines: asyncio.Queue[tuple[str, np.ndarray, asyncio.Future[SaidLine]]] = (
            asyncio.Queue()
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._disconnected = asyncio.Event()

    # --- the call -------------------------------------------------------------------------

    async def dial(self) -> None:
        """Join the room (the call is answered) and start the microphone and the ear."""
        self.room.on("track_subscribed", self._on_track)
        self.room.on("disconnected", self._on_disconnected)
        self.room.register_text_stream_handler("lk.transcription", self._on_text_stream)
        await self.room.connect(self._url, self._token)
        self.joined_at = self._clock()
        track = rtc.LocalAudioTrack.create_audio_track("phone-mic", self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        self._spawn(self._mic())

    async def hang_up(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.room.disconnect()
        await self._source.aclose()

    async def say(self, text: str) -> SaidLine:
        """Speak `text` now (after any line still playing) and return once it has left."""
        done: asyncio.Future[SaidLine] = asyncio.get_running_loop().create_future()
        await self._lines.put((text, phone_line(text, sample_rate=MIC_RATE), done))
        return await done

    async def say_after_agent(
        self, text: str, *, since: float, quiet_s: float = 0.8, limit_s: float = 60.0
    ) -> SaidLine:
        """Speak once the agent has spoken (after `since`) and then paused for `quiet_s`."""
        await self.agent_starts_speaking(after=since, limit_s=limit_s)
        await self.agent_goes_quiet(for_s=quiet_s, limit_s=limit_s)
        return await self.say(text)

    async def say_over_agent(
        self, text: str, *, since: float, after_onset_s: float, limit_s: float = 60.0
    ) -> SaidLine:
        """Barge in: speak `after_onset_s` after the agent starts speaking (after `since`)."""
        onset = await self.agent_starts_speaking(after=since, limit_s=limit_s)
        await asyncio.sleep(max(0.0, onset + after_onset_s - self._clock()))
        return await self.say(text)

    # --- waiting on the agent -------------------------------------------------------------

    async def agent_starts_speaking(self, *, after: float, limit_s: float) -> float:
        """When the first agent speech window at or after `after` arrived."""
        deadline = self._clock() + limit_s
        while True:
            onset = self._first_loud_since(after)
            if onset is not None:
                return onset
            if self._clock() > deadline:
                raise TimeoutError(f"the agent did not speak within {limit_s:.1f} s")
            await asyncio.sleep(POLL_S)

    async def agent_goes_quiet(self, *, for_s: float, limit_s: float) -> float:
        """Once the agent has spoken and then been silent for `for_s`; returns when its
        audio stopped."""
        deadline = self._clock() + limit_s
        while True:
            last = self.recording.last_loud
            if last is not None and self._clock() - last >= for_s:
                return last
            if self._clock() > deadline:
                raise TimeoutError(f"the agent did not go quiet within {limit_s:.1f} s")
            await asyncio.sleep(POLL_S)

    async def line_closes(self, *, limit_s: float) -> float:
        await asyncio.wait_for(self._disconnected.wait(), limit_s)
        assert self.disconnected_at is not None
        return self.disconnected_at

    @property
    def is_connected(self) -> bool:
        return not self._disconnected.is_set()

    def write_recording(self, path: Path) -> Path:
        return write_wav(path, self.recording.samples(), EAR_RATE)

    # --- internals -----------------------------------------------------------------------

    def _first_loud_since(self, after: float) -> float | None:
        loud = self.recording.loud
        index = bisect.bisect_left(loud, after)
        return loud[index] if index < len(loud) else None

    async def _mic(self) -> None:
        step = MIC_RATE * FRAME_MS // 1000
        noise = line_noise(step)
        while True:
            try:
                text, samples, done = self._lines.get_nowait()
            except asyncio.QueueEmpty:
                await self._capture(next(noise))
                continue
            padded = np.concatenate([samples, np.zeros(-samples.size % step, dtype=np.int16)])
            started = None
            for offset in range(0, padded.size, step):
                frame = padded[offset : offset + step].astype(np.int32) + next(noise)
                await self._capture(np.clip(frame, -32768, 32767).astype(np.int16))
                if started is None:
                    started = self._clock() + self._source.queued_duration - FRAME_MS / 1000
            ended = self._clock() + self._source.queued_duration
            line = SaidLine(text=text, started_at=started or ended, ended_at=ended)
            self.said.append(line)
            if not done.done():
                done.set_result(line)

    async def _capture(self, samples: np.ndarray) -> None:
        frame = rtc.AudioFrame(
            data=samples.tobytes(),
            sample_rate=MIC_RATE,
            num_channels=1,
            samples_per_channel=samples.size,
        )
        await self._source.capture_frame(frame)

    def _on_track(
        self,
        track: rtc.Track,
        _publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind != rtc.TrackKind.KIND_AUDIO:
            return
        if participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            return
        self._spawn(self._listen(track))

    async def _listen(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream.from_track(
            track=track, sample_rate=EAR_RATE, num_channels=1, frame_size_ms=10
        )
        try:
            async for event in stream:
                samples = np.frombuffer(event.frame.data, dtype=np.int16).copy()
                self.recording.add(self._clock(), samples)
        finally:
            await stream.aclose()

    def _on_text_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        if identity == self.room.local_participant.identity:
            return
        self._spawn(self._read_text(reader))

    async def _read_text(self, reader: rtc.TextStreamReader) -> None:
        text = await reader.read_all()
        if (reader.info.attributes or {}).get("lk.transcription_final") == "true" and text.strip():
            self.heard_text.append(HeardText(at=self._clock(), text=text))

    def _on_disconnected(self, reason: object) -> None:
        self.disconnected_at = self._clock()
        self.disconnect_reason = str(reason)
        self._disconnected.set()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
