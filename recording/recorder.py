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

from calls.call_files import CallFiles

logger = logging.getLogger("recording")

# Phone speech: the caller's line is 8 kHz narrowband, so 16 kHz keeps all of it and the
# agent's voice as far as the caller could hear it.
SAMPLE_RATE = 16000
CHANNELS = ("caller", "agent")  # left, right
# The encoder drains in well under a second; a stuck one must not hold the call's record up.
FINISH_TIMEOUT_S = 5.0


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
        recorder = RecorderIO(agent_session=session, sample_rate=SAMPLE_RATE)
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
