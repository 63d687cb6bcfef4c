"""The call recorder's CPU alone: LiveKit's recorder against ours (recording/recorder.py), fed
a caller's 20 ms frames in real time on an event loop, as a call's loop feeds it.

    uv run python bench/recorder_handoff.py --seconds 20 --repeat 2

Prints, per recorder and run, the process's CPU over the wall time (100 % = one core; the
encoding thread included), how late the loop's 20 ms ticks ran, and that the file decodes to
the whole run with no gap (the tone in one stretch). Nothing else runs in the process, so the
difference between the two is the hand-off."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from livekit import rtc
from livekit.agents.voice import io
from livekit.agents.voice.recorder_io import RecorderIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callab.audio import ogg_channels, speech_spans_in
from callab.sweep import percentiles
from recording.recorder import SAMPLE_RATE, BatchedRecorderIO

# LiveKit's room input delivers 24 kHz mono; the agent's default frame is 20 ms.
RATE = 24000
FRAME_S = 0.02


class Caller(io.AudioInput):
    """A tone, one frame every 20 ms on the loop's clock; records how late each tick ran."""

    def __init__(self) -> None:
        super().__init__(label="bench caller")
        n = int(RATE * FRAME_S)
        pcm = (np.sin(np.arange(n) * 2 * np.pi * 300 / RATE) * 3000).astype(np.int16)
        self._frame = rtc.AudioFrame(pcm.tobytes(), RATE, 1, n)
        self._due: float | None = None
        self.lateness_ms: list[float] = []

    async def __anext__(self) -> rtc.AudioFrame:
        now = time.perf_counter()
        self._due = (now if self._due is None else self._due) + FRAME_S
        await asyncio.sleep(max(0.0, self._due - now))
        self.lateness_ms.append((time.perf_counter() - self._due) * 1000)
        return self._frame


class Line(io.AudioOutput):
    def __init__(self) -> None:
        super().__init__(label="bench line", capabilities=io.AudioOutputCapabilities(pause=True))

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        pass

    def flush(self) -> None:
        pass

    def clear_buffer(self) -> None:
        pass


async def run(kind: type[RecorderIO], seconds: float) -> str:
    recorder = kind(agent_session=SimpleNamespace(), sample_rate=SAMPLE_RATE)
    caller = Caller()
    heard = recorder.record_input(caller)
    recorder.record_output(Line())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "call.ogg"
        await recorder.start(output_path=path)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(round(seconds / FRAME_S)):
            await heard.__anext__()
        await recorder.aclose()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        left, _right = ogg_channels(path)
    # the tone is never silent: a whole file holds it as one stretch, start to end
    heard_as = speech_spans_in(left, min_gap_s=0.01)
    late = percentiles(caller.lateness_ms)
    return (
        f"{kind.__name__:18} cpu {100 * cpu / wall:5.2f} % of a core; tick late p50 / p95 "
        f"{late['p50']} / {late['p95']} ms; file {len(left) / 48000:.2f} s, the tone in"
        f" {len(heard_as)} stretch(es)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.repeat):
        for kind in (RecorderIO, BatchedRecorderIO):
            print(asyncio.run(run(kind, args.seconds)))


if __name__ == "__main__":
    main()
