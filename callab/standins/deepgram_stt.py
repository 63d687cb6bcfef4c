"""Stand-in for Deepgram live transcription (`/v1/listen` websocket, plus the REST form).

It listens to the audio it receives: each utterance found by energy detection is
answered with the next scripted text, `final_delay_ms` after its last voiced audio, or as
soon as the detector is sure it is over (`speech_end_ms` of quiet, 400 ms by default, so
that a comma's pause does not split an utterance) when that comes later; a Finalize from the
client gets the text at once. Each utterance records when its text went out
(`DetectedUtterance.delivered_at`), so a benchmark counts the time this stand-in actually
took as provider time, not the configured delay.

A scripted text of "" is a sound heard but not recognised as words (a cough, a click): as
Deepgram does for one, the utterance gets a final with an empty transcript and no interims.

In-process:
    server = await DeepgramSTTStandin(utterances=["Hi, this is Dana.", "Yes."]).start()
    stt = deepgram.STT(base_url=server.base_url, api_key="test")

As a process:
    python -m callab.standins.deepgram_stt --port 8082 --script utterances.json --final-delay-ms 150

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
from dataclasses import dataclass
from pathlib import Path

from aiohttp import WSMsgType, web

from . import deepgram_messages as dg
from ._server import StandinServer, WebSocketSender, add_common_arguments, serve_forever
from .deepgram_messages import Transcript
from .deepgram_session import DetectedUtterance, ListenOptions, ListenRecord, LiveSession
from .speech import parse_wav
from .speech_detect import EnergyDetector, SpeechEnd

logger = logging.getLogger(__name__)


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
        tagged: Mapping[str, Sequence[str]] | None = None,
        languages: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`final_delay_ms`: from the end of speech to the final (never before the end is
        detected).
        `interim_interval_ms`: audio time between interim results (0 disables them;
        they are also off unless the client asks with interim_results=true). `tagged`: the
        scripts of streams that send that tag (a second speaker transcribed on its own).
        `languages`: the language of an utterance, by its text, that a `language=multi` stream
        labels it with (any other: "en")."""
        super().__init__(host=host, port=port)
        self.script = list(utterances)
        self.tagged = {tag: list(texts) for tag, texts in (tagged or {}).items()}
        self.languages = dict(languages or {})
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
        script = self.tagged.get(call_key.removeprefix("tag:"), self.script)
        if cursor < len(script):
            return script[cursor]
        logger.warning("utterance %d heard but the script has only %d", cursor + 1, len(script))
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
        session = LiveSession(
            opts=opts,
            record=record,
            sender=WebSocketSender(ws),
            detector=self.new_detector(opts),
            next_text=lambda: self.next_text(key),
            language_of=lambda text: self.languages.get(text, "en"),
            final_delay_s=self.final_delay_ms / 1000,
            interim_interval_s=self.interim_interval_ms / 1000,
            confidence=self.confidence,
        )
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
                transcripts.append(
                    Transcript(
                        text=text,
                        start=span.start,
                        end=span.end,
                        confidence=self.confidence,
                        punctuated=opts.punctuated,
                    )
                )
        record.audio_seconds = detector.stream_time
        payload = dg.prerecorded(
            request_id=record.request_id, transcripts=transcripts, duration=detector.stream_time
        )
        return web.json_response(payload)


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
