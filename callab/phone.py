"""The test phone: a caller on a real phone line, speaking scripted lines and recording the agent.

It places a real SIP call with our Go test phone (callab/sip_phone.py) to our inbound number
on the SIP bridge. The bridge asks livekit-server for the trunk and the dispatch rule our
provisioning created, the rule dispatches the agent, and the call is answered once the agent
publishes its audio: the same path a carrier's call takes. The audio is G.711 at 8 kHz in
20 ms RTP frames, both ways.

The Go phone streams the call's audio through a unix socket (its `-audio-socket`): what it
hears arrives here as 8 kHz PCM frame by frame, stamped on arrival, and what this phone says
is written a few frames ahead of the phone's RTP clock, so a line leaves the phone at a time
known to within a frame. Between lines the microphone carries faint line noise, as a phone
line does. Everything is timed on `time.monotonic()`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from callab.audio import (
    SPEECH_DBFS,
    WINDOW_S,
    Span,
    level_dbfs,
    phone_line,
    speech_spans,
    write_wav,
)
from callab.sip_phone import PhoneEvent, SipPhone, free_udp_port
from localstack.ports import LOOPBACK

TRUNK_NUMBER = "+14155550199"  # our inbound number, as provisioning's default plan has it
LINE_RATE = 8000  # G.711
FRAME_S = 0.020
FRAME_SAMPLES = int(LINE_RATE * FRAME_S)
# How far ahead of the phone's RTP clock the microphone writes: enough that a busy event
# loop never leaves the line without audio, small enough that a line's start is exact.
LEAD_S = 0.060
# A phone line is never digitally silent. The audio end-of-turn model notices: speech that
# stops into exact zeros reads as "not finished" far more often than speech into line noise.
LINE_NOISE_DBFS = -72.0
POLL_S = 0.02
ANSWER_LIMIT_S = 60.0
_phones = itertools.count(1)


@dataclass(frozen=True)
class SaidLine:
    text: str
    started_at: float  # time.monotonic() when its first frame went out on the line
    ended_at: float  # ... and when its last one ended


def line_noise(frame_samples: int, *, seconds: float = 2.0) -> Iterator[np.ndarray]:
    """Frames of faint white noise at LINE_NOISE_DBFS, looping a fixed (seeded) buffer."""
    sigma = 32768 * 10 ** (LINE_NOISE_DBFS / 20)
    count = int(LINE_RATE * seconds) // frame_samples
    buffer = np.random.default_rng(7).normal(0, sigma, count * frame_samples)
    frames = np.round(buffer).astype(np.int16).reshape(count, frame_samples)
    return itertools.cycle(frames)


@dataclass
class Recording:
    """What the phone heard from the agent: 10 ms levels with arrival times, and the audio."""

    rate: int = LINE_RATE
    windows: list[tuple[float, float]] = field(default_factory=list)
    chunks: list[tuple[float, np.ndarray]] = field(default_factory=list)
    loud: list[float] = field(default_factory=list)  # start times of loud windows
    last_loud: float | None = None  # end of the latest loud window

    def add(self, at: float, samples: np.ndarray) -> None:
        self.chunks.append((at, samples))
        per_window = int(self.rate * WINDOW_S)
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
            gap = at - chunk.size / self.rate - clock
            if gap > 0.05:
                out.append(np.zeros(int(gap * self.rate), dtype=np.int16))
            out.append(chunk)
            clock = max(clock, at - chunk.size / self.rate) + chunk.size / self.rate
        return np.concatenate(out)

    def peak_dbfs(self) -> float:
        return max((level for _, level in self.windows), default=-np.inf)


class TestPhone:
    """One caller. `await dial()`, then `say()` lines and wait on what the agent does."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        *,
        call_to: str | None,
        from_number: str | None = None,
        ring_s: float = 0.5,
        digits: str | None = None,
        refer_result: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """A call to ``call_to`` (a SIP URI) from ``from_number``; with ``call_to`` None, a
        phone that answers the call it gets after ringing ``ring_s`` (at `address`). Either
        way ``digits`` are keyed (DTMF) a second into the call. A REFER (a transfer) is
        accepted and reported as ``refer_result`` (200: transferred)."""
        self.call_to = call_to
        self.from_number = from_number
        self.port = free_udp_port()
        self._ring_s = ring_s
        self._digits = digits
        self._refer_result = refer_result
        self._clock = clock
        self.recording = Recording()
        self.said: list[SaidLine] = []
        self.dialed_at: float | None = None  # INVITE sent (the caller pressed call)
        self.answered_at: float | None = None
        self.disconnected_at: float | None = None
        self.disconnect_reason: str | None = None
        self.sip_call_id: str | None = None
        self._dir = Path(tempfile.mkdtemp(prefix=f"phone{next(_phones)}-"))  # short socket path
        self._socket = self._dir / "audio.sock"
        self._sip: SipPhone | None = None
        self._server: asyncio.Server | None = None
        self._lines: asyncio.Queue[tuple[str, np.ndarray, asyncio.Future[SaidLine]]] = (
            asyncio.Queue()
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._streaming = asyncio.Event()
        self._disconnected = asyncio.Event()

    @property
    def address(self) -> str:
        """Where an answering phone takes calls (host:port), e.g. for an outbound trunk."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def joined_at(self) -> float | None:
        """When the call was answered (the agent had joined and published its audio)."""
        return self.answered_at

    # --- the call -------------------------------------------------------------------------

    async def dial(self, *, wait_answer: bool = True) -> None:
        """Place the call (or start listening); with ``wait_answer``, return once it is
        answered and its audio flows. Otherwise `answered()` waits for that."""
        self._server = await asyncio.start_unix_server(self._on_stream, path=str(self._socket))
        self._sip = SipPhone(
            port=self.port,
            call_to=self.call_to,
            from_number=self.from_number,
            audio_socket=self._socket,
            ring_s=self._ring_s,
            digits=self._digits,
            refer_result=self._refer_result,
        )
        await self._sip.__aenter__()
        if self.call_to is not None:
            self.dialed_at = (await self._sip.event("dialing", limit_s=10)).at
        self._spawn(self._watch_hangup())
        if wait_answer:
            await self.answered()

    async def answered(self, *, limit_s: float = ANSWER_LIMIT_S) -> float:
        """When the call was answered, waiting up to ``limit_s`` for it and its audio."""
        assert self._sip is not None, "dial() first"
        event = await self._sip.event("answered", limit_s=limit_s)
        self.sip_call_id = event.fields.get("call_id")
        self.answered_at = event.at
        await asyncio.wait_for(self._streaming.wait(), 10)
        return event.at

    def unanswered_cause(self) -> str:
        """Why this call has no answer, from what the phone saw: refused with a status, hung
        up, or still ringing (and for how long)."""
        if self._sip is None:
            return "never dialled"
        since = self.dialed_at
        for event in self._sip.events:
            after = f" after {event.at - since:.1f} s" if since is not None else ""
            if event.kind == "rejected":
                status, reason = event.fields.get("status"), event.fields.get("reason", "")
                return f"refused {status} {reason}{after}".strip()
            if event.kind in ("hangup", "failed"):
                why = event.fields.get("reason") or event.fields.get("error") or "no reason"
                return f"{event.kind}{after}: {why}"
        rang = "ringing" if "ringing" in self._sip.kinds() else "no ringing"
        waited = f" for {self._clock() - since:.1f} s" if since is not None else ""
        return f"not answered, {rang}{waited}"

    async def sip_event(self, kind: str, *, limit_s: float = 30.0) -> PhoneEvent:
        """The Go phone's first event of ``kind`` (invite, ringing, hangup ...)."""
        assert self._sip is not None, "dial() first"
        return await self._sip.event(kind, limit_s=limit_s)

    async def hang_up(self) -> None:
        """Hang up (BYE, or CANCEL while ringing) and stop the phone."""
        if self._sip is not None:
            await self._sip.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        shutil.rmtree(self._dir, ignore_errors=True)

    async def say(self, text: str) -> SaidLine:
        """Speak `text` now (after any line still playing) and return once it has left."""
        return await self.play(text, phone_line(text, sample_rate=LINE_RATE))

    async def play(self, name: str, samples: np.ndarray) -> SaidLine:
        """Play `samples` (int16 at 8 kHz: a cough, a crackle) into the line now, after any
        line still playing, over the line noise; `name` is its text in `said`."""
        done: asyncio.Future[SaidLine] = asyncio.get_running_loop().create_future()
        await self._lines.put((name, samples, done))
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
        """When the far end hung up (its BYE reached the phone)."""
        await asyncio.wait_for(self._disconnected.wait(), limit_s)
        assert self.disconnected_at is not None
        return self.disconnected_at

    @property
    def is_connected(self) -> bool:
        return not self._disconnected.is_set()

    def write_recording(self, path: Path) -> Path:
        return write_wav(path, self.recording.samples(), LINE_RATE)

    # --- internals -----------------------------------------------------------------------

    def _first_loud_since(self, after: float) -> float | None:
        loud = self.recording.loud
        index = bisect.bisect_left(loud, after)
        return loud[index] if index < len(loud) else None

    async def _on_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The Go phone connected for the answered call: a header line, then PCM both ways."""
        await reader.readline()
        self._streaming.set()
        self._spawn(self._mic(writer))
        try:
            while True:
                data = await reader.readexactly(2 * FRAME_SAMPLES)
                self.recording.add(self._clock(), np.frombuffer(data, dtype=np.int16).copy())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _mic(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):  # the call ended under us
            await self._speak(writer)

    async def _speak(self, writer: asyncio.StreamWriter) -> None:
        noise = line_noise(FRAME_SAMPLES)
        plays_at = self._clock()  # when the next frame written goes out on the line
        line: tuple[str, np.ndarray, asyncio.Future[SaidLine]] | None = None
        offset = 0
        started = 0.0
        while True:
            now = self._clock()
            if plays_at < now:  # we fell behind: the phone filled the gap with silence
                plays_at = now
            if (wait := plays_at - LEAD_S - now) > 0:
                await asyncio.sleep(wait)
            if line is None:
                with contextlib.suppress(asyncio.QueueEmpty):
                    line, offset, started = self._lines.get_nowait(), 0, plays_at
            frame = next(noise).astype(np.int32)
            if line is not None:
                chunk = line[1][offset : offset + FRAME_SAMPLES]
                frame[: chunk.size] += chunk
                offset += FRAME_SAMPLES
            writer.write(np.clip(frame, -32768, 32767).astype(np.int16).tobytes())
            await writer.drain()
            plays_at += FRAME_S
            if line is not None and offset >= line[1].size:
                text, _, done = line
                said = SaidLine(text=text, started_at=started, ended_at=plays_at)
                self.said.append(said)
                if not done.done():
                    done.set_result(said)
                line = None

    async def _watch_hangup(self) -> None:
        assert self._sip is not None
        try:
            event = await self._sip.event("hangup", limit_s=None)
            self.disconnected_at = event.at
            self.disconnect_reason = str(event.fields.get("by") or event.fields.get("reason"))
        except RuntimeError as exc:  # the phone process died without hanging up
            self.disconnected_at = self._clock()
            self.disconnect_reason = str(exc)
        self._disconnected.set()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
