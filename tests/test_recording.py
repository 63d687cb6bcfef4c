"""The call recorder on a session's audio, in real time: LiveKit's recorder, our path and
channels, a reply cut where the caller cut it, the file closed and decodable, and each step
run once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from livekit import rtc
from livekit.agents.voice import io
from livekit.agents.voice.recorder_io import recorder_io as livekit_recorder

from callab.audio import ogg_channels, speech_spans_in
from calls.call_files import CallFiles
from recording import CallRecorder
from recording.recorder import HAND_OVER_FRAMES, RECORDER, BatchedRecorderIO

pytestmark = pytest.mark.integration

RATE = 16000
FRAME_S = 0.02


def tone(seconds: float, *, hz: float, loud: bool = True) -> list[rtc.AudioFrame]:
    n = int(RATE * FRAME_S)
    t = np.arange(int(RATE * seconds)) / RATE
    samples = (np.sin(2 * np.pi * hz * t) * (8000 if loud else 0)).astype(np.int16)
    return [
        rtc.AudioFrame(samples[i : i + n].tobytes(), RATE, 1, n)
        for i in range(0, samples.size - n + 1, n)
    ]


class Microphone(io.AudioInput):
    """The caller: 0.6 s of a tone, then silence, delivered in real time."""

    def __init__(self) -> None:
        super().__init__(label="test caller")
        self._frames = iter(tone(0.6, hz=300) + tone(5.0, hz=300, loud=False))

    async def __anext__(self) -> rtc.AudioFrame:
        await asyncio.sleep(FRAME_S)
        return next(self._frames)


class Speaker(io.AudioOutput):
    """The line to the caller: plays each segment in real time, stops when cleared."""

    def __init__(self) -> None:
        super().__init__(label="test line", capabilities=io.AudioOutputCapabilities(pause=False))
        self._queued = 0.0
        self._cleared = asyncio.Event()
        self._playing: asyncio.Task[None] | None = None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        self._queued += frame.duration

    def flush(self) -> None:
        super().flush()
        self._playing = asyncio.create_task(self._play(self._queued))
        self._queued = 0.0

    def clear_buffer(self) -> None:
        self._cleared.set()

    async def _play(self, seconds: float) -> None:
        started = time.time()
        self.on_playback_started(created_at=started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._cleared.wait(), seconds)
        played = min(seconds, time.time() - started)
        self.on_playback_finished(playback_position=played, interrupted=self._cleared.is_set())


def session_audio() -> SimpleNamespace:
    return SimpleNamespace(
        input=SimpleNamespace(audio=Microphone()), output=SimpleNamespace(audio=Speaker())
    )


async def test_both_sides_on_their_channels_and_the_cut_reply_cut(tmp_path: Path) -> None:
    files = CallFiles(tmp_path)
    recorder = CallRecorder(files, "AJ_call1")
    session = session_audio()
    await recorder.attach(session)
    await recorder.attach(session)  # once per call, whoever calls again
    listening = asyncio.create_task(_drain(session.input.audio))

    await asyncio.sleep(1.0)  # the caller speaks, then the agent answers at length ...
    for frame in tone(3.0, hz=1000):
        await session.output.audio.capture_frame(frame)
    session.output.audio.flush()
    await asyncio.sleep(0.8)
    session.output.audio.clear_buffer()  # ... and the caller cuts in 0.8 s into it
    await asyncio.sleep(0.5)
    stored = await recorder.finish()
    listening.cancel()

    assert stored == "recordings/AJ_call1.ogg" and await recorder.finish() is None
    left, right = ogg_channels(files.recording("AJ_call1"))
    (caller,), (agent,) = speech_spans_in(left), speech_spans_in(right)
    assert caller.start < 0.15 and abs(caller.duration - 0.6) < 0.1
    assert abs(agent.start - 1.0) < 0.15
    assert abs(agent.duration - 0.8) < 0.15  # what played, not the 3 s it was given


async def test_a_call_that_never_started_has_no_recording(tmp_path: Path) -> None:
    recorder = CallRecorder(CallFiles(tmp_path), "AJ_call2")
    assert await recorder.finish() is None
    await recorder.attach(session_audio())  # the call ended first: nothing starts after
    assert not (tmp_path / "recordings").exists()


def test_an_id_no_file_can_be_named_after_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot name a file"):
        CallRecorder(CallFiles(tmp_path), "../+14155550123")


async def test_frames_reach_the_encoder_in_batches_and_in_order_before_whatever_follows() -> None:
    recorder = BatchedRecorderIO(agent_session=SimpleNamespace(), sample_rate=RATE)
    (frame,) = tone(FRAME_S, hz=300)

    def captured(i: int) -> livekit_recorder._Captured:
        return livekit_recorder._Captured(channel=i % 2, started_at=float(i), frame=frame)

    for i in range(HAND_OVER_FRAMES - 1):
        recorder._put(captured(i))
    assert recorder._q.qsize() == 0  # held on the loop: no wake of the encoding thread yet
    recorder._put(captured(HAND_OVER_FRAMES - 1))
    assert recorder._q.qsize() == HAND_OVER_FRAMES
    recorder._put(captured(100))
    recorder._put(flush := livekit_recorder._Flush(until=101.0))  # hands over what it held first
    recorder._put(captured(102))
    recorder._put(end := livekit_recorder._EndRun(channel=0))
    recorder._put(None)

    handed = [recorder._q.get_nowait() for _ in range(recorder._q.qsize())]
    starts = [item.started_at for item in handed if isinstance(item, livekit_recorder._Captured)]
    assert starts == [*map(float, range(HAND_OVER_FRAMES)), 100.0, 102.0]
    assert handed[HAND_OVER_FRAMES + 1 :] == [flush, captured(102), end, None]


async def test_nothing_is_held_once_the_encoder_is_gone() -> None:
    recorder = BatchedRecorderIO(agent_session=SimpleNamespace(), sample_rate=RATE)
    (frame,) = tone(FRAME_S, hz=300)
    recorder._put(livekit_recorder._Captured(channel=0, started_at=0.0, frame=frame))
    recorder._close_fut.set_result(None)  # as the encoding thread does when it ends
    recorder._put(livekit_recorder._Flush(until=1.0))
    assert recorder._q.qsize() == 0 and recorder._held == []


def test_the_installed_livekit_recorder_is_the_one_it_batches_for() -> None:
    assert RECORDER is BatchedRecorderIO


async def _drain(audio: io.AudioInput) -> None:
    async for _frame in audio:
        pass
