"""One call's recording, written by LiveKit Agents' own recorder (``RecorderIO``) to our path:
Opus in OGG, stereo, the caller on the left as the session heard them, the agent on the right
as it was played (a reply cut off by the caller is cut off here too), both on the call's
clock. Nothing is uploaded anywhere: the session's own ``record`` option is never used, so
LiveKit Cloud's session reports stay off."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from livekit.agents.voice.recorder_io import RecorderIO
from livekit.agents.voice.recorder_io import recorder_io as livekit_recorder

from calls.call_files import CallFiles

logger = logging.getLogger("recording")

# Phone speech: the caller's line is 8 kHz narrowband, so 16 kHz keeps all of it and the
# agent's voice as far as the caller could hear it.
SAMPLE_RATE = 16000
CHANNELS = ("caller", "agent")  # left, right
# The encoder drains in well under a second; a stuck one must not hold the call's record up.
FINISH_TIMEOUT_S = 5.0
# Frames the call's loop holds before it hands them to the encoding thread: half a second of
# the caller's 20 ms frames. The file is written in 2.5 s blocks, so nothing waits for them.
HAND_OVER_FRAMES = 25


class BatchedRecorderIO(RecorderIO):
    """LiveKit's recorder, the audio handed to its encoding thread `HAND_OVER_FRAMES` frames at
    a time instead of one by one. LiveKit puts every frame on a `queue.Queue`, which wakes the
    waiting thread each time: 50 times a second per call, each wake a switch of the GIL away
    from the call's loop. In a live job process with three calls on a core that hand-off was
    12 % of the samples holding the GIL (py-spy); `bench/recorder_handoff.py` measures the
    recorder alone at 2.0-2.7 % of a core per call against 1.2-1.4 % batched on a busy
    machine, 1.2-1.5 % against 0.8-1.0 % on an idle one.

    Everything keeps its order: anything but a frame (the writer's flush, a run's end, the
    close) hands over the frames held before it, so a flush still covers every frame before
    its time. All of it is put from the call's loop, so the list needs no lock."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._held: list[Any] = []

    async def start(self, *, output_path: str | Path) -> None:
        self._held = []  # as LiveKit starts each run on a fresh queue
        await super().start(output_path=output_path)

    def _put(self, item: Any) -> None:
        if not self._encoding:  # nothing takes audio any more
            self._held = []
            return
        frame = isinstance(item, livekit_recorder._Captured)
        if frame:
            self._held.append(item)
            if len(self._held) < HAND_OVER_FRAMES:
                return
        held, self._held = self._held, []
        for one in held:
            super()._put(one)
        if not frame:
            super()._put(item)


def _hands_over_in_batches() -> bool:
    """Whether this LiveKit's recorder has what `BatchedRecorderIO` was written against."""
    return (
        hasattr(RecorderIO, "_put")
        and hasattr(RecorderIO, "_encoding")
        and hasattr(livekit_recorder, "_Captured")
    )


RECORDER = BatchedRecorderIO if _hands_over_in_batches() else RecorderIO


class CallRecorder:
    """Records one call from ``attach`` to ``finish``; each runs once, whatever calls it again."""

    def __init__(self, files: CallFiles, call_id: str) -> None:
        self._files = files
        self.path: Path = files.recording(call_id)  # raises for an id no file can be named after
        self._recorder: RecorderIO | None = None
        self._finished = False

    async def attach(self, session: Any) -> None:
        """Start recording the session's audio. Called before the agent's first word, so the
        greeting (and its recording notice) is in the file."""
        if self._recorder is not None or self._finished:
            return
        if session.input.audio is None or session.output.audio is None:
            logger.warning("the session has no audio in or out; the call is not recorded")
            return
        recorder = RECORDER(agent_session=session, sample_rate=SAMPLE_RATE)
        session.input.audio = recorder.record_input(session.input.audio)
        session.output.audio = recorder.record_output(session.output.audio)
        self._recorder = recorder  # before starting: a finish() meanwhile still closes it
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await recorder.start(output_path=self.path)
        logger.info("recording the call to %s", self.stored_as)

    async def finish(self) -> str | None:
        """Stop recording and close the file (its last pages written, so it plays to the end).
        Returns the file's path under the data directory, or None when nothing was recorded."""
        self._finished = True
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        try:
            async with asyncio.timeout(FINISH_TIMEOUT_S):
                await recorder.aclose()
        except TimeoutError:
            logger.error("the recording did not close in %.0f s; it may end early",
                         FINISH_TIMEOUT_S)  # fmt: skip
        if not self.path.is_file() or self.path.stat().st_size == 0:
            logger.error("the call's recording was not written")
            return None
        logger.info("recording closed: %s, %d bytes", self.stored_as, self.path.stat().st_size)
        return self.stored_as

    @property
    def stored_as(self) -> str:
        """The file's path relative to the data directory, as the call record carries it."""
        return self.path.relative_to(self._files.data_dir).as_posix()
