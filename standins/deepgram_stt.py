"""Stand-in for Deepgram live transcription (`/v1/listen` websocket, plus the REST form).

It listens to the audio it receives: each utterance found by energy detection is
answered with the next scripted text, `final_delay_ms` after the utterance is detected
as over (that is, `speech_end_ms + final_delay_ms` after the last voiced audio).

In-process:
    server = await DeepgramSTTStandin(utterances=["Hi, this is Dana.", "Yes."]).start()
    stt = deepgram.STT(base_url=server.base_url, api_key="test")

As a process:
    python -m standins.deepgram_stt --port 8082 --script utterances.json --final-delay-ms 150

The script file holds a JSON list of texts, or {"utterances": [...]}. Utterances are
consumed in order per call: per `tag` query value when the client sends tags (so a
reconnect continues the same call), otherwise per websocket connection.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from . import deepgram_messages as dg
from ._server import StandinServer, WebSocketSender, add_common_arguments, serve_forever
from .deepgram_messages import Transcript
from .speech import parse_wav
from .speech_detect import EnergyDetector, SpeechEnd, SpeechStart

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenOptions:
    model: str
    sample_rate: int
    channels: int
    interim_results: bool
    vad_events: bool
    endpointing: bool
    punctuated: bool
    utterance_end_ms: int | None
    tags: tuple[str, ...]

    @classmethod
    def from_query(cls, query: Mapping[str, str], tags: Sequence[str]) -> ListenOptions:
        encoding = query.get("encoding", "linear16")
        if encoding != "linear16":
            raise ValueError(f"this stand-in only decodes linear16, not {encoding}")

        def flag(name: str, default: bool) -> bool:
            return query.get(name, str(default)).lower() == "true"

        utterance_end = query.get("utterance_end_ms")
        return cls(
            model=query.get("model", "nova-3"),
            sample_rate=int(query.get("sample_rate", "16000")),
            channels=int(query.get("channels", "1")),
            interim_results=flag("interim_results", False),
            vad_events=flag("vad_events", False),
            endpointing=query.get("endpointing", "10").lower() != "false",
            punctuated=flag("punctuate", False) or flag("smart_format", False),
            utterance_end_ms=int(utterance_end) if utterance_end else None,
            tags=tuple(tags),
        )


@dataclass(frozen=True)
class DetectedUtterance:
    start: float
    end: float
    text: str | None  # None once the script ran out


@dataclass
class ListenRecord:
    """What one websocket (or REST request) received and answered, for assertions."""

    request_id: str
    params: dict[str, list[str]]
    utterances: list[DetectedUtterance] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    control_messages: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0
    closed: bool = False

    @property
    def final_texts(self) -> list[str]:
        return [
            alt["transcript"]
            for m in self.sent
            if m.get("type") == "Results" and m["is_final"]
            for alt in m["channel"]["alternatives"][:1]
            if alt["transcript"]
        ]


@dataclass
class DetectionSettings:
    threshold_dbfs: float = -40.0
    speech_start_ms: float = 60.0
    speech_end_ms: float = 400.0


class DeepgramSTTStandin(StandinServer):
    service_name = "deepgram_stt"

    def __init__(
        self,
        *,
        utterances: Sequence[str],
        final_delay_ms: float = 50.0,
        interim_interval_ms: float = 300.0,
        detection: DetectionSettings | None = None,
        confidence: float = 0.98,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`final_delay_ms`: wait after the end of speech is detected before the final.
        `interim_interval_ms`: audio time between interim results (0 disables them;
        they are also off unless the client asks with interim_results=true)."""
        super().__init__(host=host, port=port)
        self.script = list(utterances)
        self.final_delay_ms = final_delay_ms
        self.interim_interval_ms = interim_interval_ms
        self.detection = detection or DetectionSettings()
        self.confidence = confidence
        self.sessions: list[ListenRecord] = []
        self._cursors: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._closing = asyncio.Condition()

    @property
    def base_url(self) -> str:
        """What `livekit.plugins.deepgram.STT(base_url=...)` takes (the full listen URL)."""
        return f"{self.origin}/v1/listen"

    @property
    def utterances(self) -> list[DetectedUtterance]:
        return [u for s in self.sessions for u in s.utterances]

    async def wait_closed(self, count: int = 1) -> None:
        """Until `count` live sessions have sent their last message and closed."""
        async with self._closing:
            await self._closing.wait_for(lambda: sum(1 for s in self.sessions if s.closed) >= count)

    def next_text(self, call_key: str) -> str | None:
        cursor = self._cursors.get(call_key, 0)
        self._cursors[call_key] = cursor + 1
        if cursor < len(self.script):
            return self.script[cursor]
        logger.warning(
            "utterance %d heard but the script has only %d", cursor + 1, len(self.script)
        )
        return None

    def new_detector(self, opts: ListenOptions) -> EnergyDetector:
        return EnergyDetector(
            sample_rate=opts.sample_rate,
            channels=opts.channels,
            threshold_dbfs=self.detection.threshold_dbfs,
            speech_start_ms=self.detection.speech_start_ms,
            speech_end_ms=self.detection.speech_end_ms,
        )

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/listen", self._handle_live)
        app.router.add_post("/v1/listen", self._handle_prerecorded)

    def _open(self, request: web.Request) -> tuple[ListenOptions, ListenRecord] | web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith(("Token ", "Bearer ")) or not auth.split(" ", 1)[1].strip():
            return web.json_response({"err_code": "INVALID_AUTH", "err_msg": "no key"}, status=401)
        try:
            opts = ListenOptions.from_query(request.query, request.query.getall("tag", []))
        except ValueError as e:
            return web.json_response({"err_code": "Bad Request", "err_msg": str(e)}, status=400)
        params = {k: request.query.getall(k) for k in request.query}
        record = ListenRecord(request_id=f"standin-{next(self._ids):08d}", params=params)
        self.sessions.append(record)
        return opts, record

    async def _handle_live(self, request: web.Request) -> web.StreamResponse:
        opened = self._open(request)
        if isinstance(opened, web.Response):
            return opened
        opts, record = opened
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._track(ws)
        key = "tag:" + ",".join(opts.tags) if opts.tags else f"conn:{record.request_id}"
        session = _LiveSession(self, opts, record, WebSocketSender(ws), call_key=key)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await session.on_audio(msg.data)
                continue
            if msg.type != WSMsgType.TEXT:
                continue
            kind = _control_type(msg.data)
            record.control_messages.append(kind)
            if kind == "Finalize":
                await session.on_finalize()
            elif kind == "CloseStream":
                break
        try:
            await session.finish()
            await ws.close()
        finally:
            record.closed = True
            async with self._closing:
                self._closing.notify_all()
        return ws

    async def _handle_prerecorded(self, request: web.Request) -> web.StreamResponse:
        opened = self._open(request)
        if isinstance(opened, web.Response):
            return opened
        opts, record = opened
        body = await request.read()
        if body[:4] == b"RIFF":
            samples, rate = parse_wav(body)
            opts = dataclasses.replace(opts, sample_rate=rate, channels=1)
            pcm = samples.astype("<i2").tobytes()
        else:
            pcm = body
        detector = self.new_detector(opts)
        spans = [e for e in [*detector.push(pcm), *detector.flush()] if isinstance(e, SpeechEnd)]
        key = "tag:" + ",".join(opts.tags) if opts.tags else "prerecorded"
        transcripts = []
        for span in spans:
            text = self.next_text(key)
            record.utterances.append(DetectedUtterance(span.start, span.end, text))
            if text is not None:
                transcripts.append(self._transcript(text, span.start, span.end, opts))
        record.audio_seconds = detector.stream_time
        payload = dg.prerecorded(
            request_id=record.request_id, transcripts=transcripts, duration=detector.stream_time
        )
        return web.json_response(payload)

    def _transcript(self, text: str, start: float, end: float, opts: ListenOptions) -> Transcript:
        return Transcript(
            text=text, start=start, end=end, confidence=self.confidence, punctuated=opts.punctuated
        )


@dataclass
class _Utterance:
    start: float
    text: str | None
    interims_sent: int = 0
    finalized: bool = False  # a Finalize already delivered its text


class _LiveSession:
    def __init__(
        self,
        server: DeepgramSTTStandin,
        opts: ListenOptions,
        record: ListenRecord,
        sender: WebSocketSender,
        *,
        call_key: str,
    ) -> None:
        self._server = server
        self._opts = opts
        self._record = record
        self._sender = sender
        self._call_key = call_key
        self._detector = server.new_detector(opts)
        self._current: _Utterance | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def on_audio(self, pcm: bytes) -> None:
        for event in self._detector.push(pcm):
            if isinstance(event, SpeechStart):
                await self._begin(event)
            else:
                self._end(event)
        self._record.audio_seconds = self._detector.stream_time
        await self._maybe_send_interim()

    async def on_finalize(self) -> None:
        now = self._detector.stream_time
        current = self._current
        transcript = None
        if current is not None and current.text is not None and not current.finalized:
            transcript = self._server._transcript(current.text, current.start, now, self._opts)
            current.finalized = True
        await self._send(
            dg.results(
                request_id=self._record.request_id,
                transcript=transcript,
                start=current.start if current else now,
                end=now,
                is_final=True,
                speech_final=False,
                from_finalize=True,
            )
        )

    async def finish(self) -> None:
        for event in self._detector.flush():
            if isinstance(event, SpeechEnd):
                self._end(event)
        if self._pending:
            await asyncio.gather(*self._pending)
        await self._send(
            dg.metadata(
                request_id=self._record.request_id,
                duration=self._detector.stream_time,
                channels=self._opts.channels,
            )
        )

    async def _begin(self, event: SpeechStart) -> None:
        self._current = _Utterance(start=event.start, text=self._server.next_text(self._call_key))
        if self._opts.vad_events:
            await self._send(dg.speech_started(event.start))

    def _end(self, event: SpeechEnd) -> None:
        current, self._current = self._current, None
        if current is None:
            return
        self._record.utterances.append(DetectedUtterance(event.start, event.end, current.text))
        task = asyncio.create_task(self._send_final(current, event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_final(self, utterance: _Utterance, event: SpeechEnd) -> None:
        await asyncio.sleep(self._server.final_delay_ms / 1000)
        transcript = None
        if utterance.text is not None and not utterance.finalized:
            transcript = self._server._transcript(
                utterance.text, event.start, event.end, self._opts
            )
        await self._send(
            dg.results(
                request_id=self._record.request_id,
                transcript=transcript,
                start=event.start,
                end=event.end,
                is_final=True,
                speech_final=self._opts.endpointing,
            )
        )
        if self._opts.utterance_end_ms is not None:
            await self._send(dg.utterance_end(event.end))

    async def _maybe_send_interim(self) -> None:
        current = self._current
        interval = self._server.interim_interval_ms / 1000
        if not (self._opts.interim_results and interval > 0 and current and current.text):
            return
        if current.finalized:
            return
        now = self._detector.stream_time
        due = int((now - current.start) / interval)
        if due <= current.interims_sent:
            return
        current.interims_sent = due
        full = self._server._transcript(current.text, current.start, now, self._opts)
        await self._send(
            dg.results(
                request_id=self._record.request_id,
                transcript=full.head(due),
                start=current.start,
                end=now,
                is_final=False,
                speech_final=False,
            )
        )

    async def _send(self, message: dict[str, Any]) -> None:
        if await self._sender.send_json(message):
            self._record.sent.append(message)


def _control_type(data: str) -> str:
    try:
        message = json.loads(data)
    except json.JSONDecodeError:
        return "invalid"
    return str(message.get("type", "unknown")) if isinstance(message, dict) else "invalid"


def load_utterances(path: str | Path) -> list[str]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    texts = data.get("utterances", []) if isinstance(data, dict) else data
    return [str(t) for t in texts]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--script", required=True, help="JSON list of caller utterance texts")
    parser.add_argument("--final-delay-ms", type=float, default=50.0)
    parser.add_argument("--interim-interval-ms", type=float, default=300.0)
    parser.add_argument("--threshold-dbfs", type=float, default=-40.0)
    parser.add_argument("--speech-start-ms", type=float, default=60.0)
    parser.add_argument("--speech-end-ms", type=float, default=400.0)
    args = parser.parse_args(argv)
    server = DeepgramSTTStandin(
        utterances=load_utterances(args.script),
        final_delay_ms=args.final_delay_ms,
        interim_interval_ms=args.interim_interval_ms,
        detection=DetectionSettings(
            threshold_dbfs=args.threshold_dbfs,
            speech_start_ms=args.speech_start_ms,
            speech_end_ms=args.speech_end_ms,
        ),
        host=args.host,
        port=args.port,
    )
    serve_forever(server, log_level=args.log_level)


if __name__ == "__main__":
    main()
