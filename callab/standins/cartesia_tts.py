"""Stand-in for Cartesia TTS: the `/tts/websocket` protocol and `/tts/bytes`, speaking
for real with espeak-ng.

In-process:
    server = await CartesiaTTSStandin(ttfb_ms=150).start()
    tts = cartesia.TTS(base_url=server.base_url, api_key="test")

As a process:
    python -m callab.standins.cartesia_tts --port 8083 --ttfb-ms 150 --realtime-factor 4
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from ._server import StandinServer, WebSocketSender, add_common_arguments, serve_forever
from .speech import EspeakSynthesizer

ENCODINGS = {"pcm_s16le", "pcm_f32le"}
SENTENCE_END = re.compile(r"[.!?;:]\s*$")


@dataclass
class ContextRecord:
    """One synthesis request (a websocket context or a /tts/bytes call)."""

    context_id: str
    model_id: str
    voice: Mapping[str, Any]
    output_format: Mapping[str, Any]
    language: str | None = None  # the request's `language`, as Cartesia takes it ("es")
    transcripts: list[str] = field(default_factory=list)
    first_audio_ms: float | None = None  # from the first transcript to the first audio byte
    audio_seconds: float = 0.0
    done: bool = False
    cancelled: bool = False

    @property
    def text(self) -> str:
        return " ".join("".join(self.transcripts).split())


@dataclass(frozen=True)
class _Piece:
    text: str
    is_last: bool
    flush: bool


class CartesiaTTSStandin(StandinServer):
    service_name = "cartesia_tts"

    def __init__(
        self,
        *,
        ttfb_ms: float = 0.0,
        chunk_ms: float = 50.0,
        realtime_factor: float = 0.0,
        synthesizer: EspeakSynthesizer | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`ttfb_ms`: earliest first audio after a request (synthesis time counts towards
        it; cached phrases make it exact). `chunk_ms`: audio per message.
        `realtime_factor`: send audio at N x real time; 0 sends as fast as possible."""
        super().__init__(host=host, port=port)
        self.ttfb_ms = ttfb_ms
        self.chunk_ms = chunk_ms
        self.realtime_factor = realtime_factor
        self.synthesizer = synthesizer or EspeakSynthesizer()
        self.contexts: list[ContextRecord] = []

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/tts/websocket", self._handle_websocket)
        app.router.add_post("/tts/bytes", self._handle_bytes)

    async def warm_up(self, phrases: Sequence[str], *, sample_rate: int) -> None:
        """Synthesize ahead of time so first-audio latency is exactly `ttfb_ms`."""
        for phrase in phrases:
            await self.synthesizer.synthesize(phrase, sample_rate=sample_rate)

    async def _handle_websocket(self, request: web.Request) -> web.StreamResponse:
        if not _authorized(request):
            return _unauthorized()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._track(ws)
        sender = WebSocketSender(ws)
        contexts: dict[str, _Context] = {}
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                await self._on_message(msg.data, contexts, sender)
        finally:
            for context in contexts.values():
                await context.stop()
        return ws

    async def _on_message(
        self, raw: str, contexts: dict[str, _Context], sender: WebSocketSender
    ) -> None:
        try:
            data = json.loads(raw)
            context_id = str(data.get("context_id") or "default")
        except (json.JSONDecodeError, AttributeError):
            await sender.send_json(_error(None, "message must be a JSON object"))
            return
        context = contexts.get(context_id)
        if data.get("cancel"):
            if context is not None:
                context.record.cancelled = True
                await context.stop()
            return
        if context is None or context.finished:
            problem = _format_problem(data)
            if problem:
                await sender.send_json(_error(context_id, problem))
                return
            context = _Context(self, data, sender)
            contexts[context_id] = context
            self.contexts.append(context.record)
        context.feed(data)

    async def _handle_bytes(self, request: web.Request) -> web.StreamResponse:
        if not _authorized(request):
            return _unauthorized()
        started = time.monotonic()
        try:
            data = await request.json()
            text = str(data["transcript"])
        except (json.JSONDecodeError, KeyError, TypeError):
            return web.json_response({"error": "body must be JSON with `transcript`"}, status=400)
        if problem := _format_problem(data):
            return web.json_response({"error": problem}, status=400)
        fmt = data["output_format"]
        record = _record_for(data, context_id=f"bytes-{len(self.contexts) + 1}")
        record.transcripts.append(text)
        self.contexts.append(record)
        samples = await self.synthesizer.synthesize(text, sample_rate=int(fmt["sample_rate"]))
        payload = encode(samples, fmt["encoding"])
        if fmt.get("container") == "wav":
            payload = _wav_header(len(payload), int(fmt["sample_rate"])) + payload
        response = web.StreamResponse(
            headers={"Content-Type": "audio/wav" if fmt.get("container") == "wav" else "audio/pcm"}
        )
        await response.prepare(request)
        await _sleep_until(started + self.ttfb_ms / 1000)
        record.first_audio_ms = (time.monotonic() - started) * 1000
        step = max(2, int(self.chunk_ms / 1000 * int(fmt["sample_rate"])) * 2)
        for offset in range(0, len(payload), step):
            await response.write(payload[offset : offset + step])
            await self._pace(step // 2, int(fmt["sample_rate"]))
        record.audio_seconds = samples.size / int(fmt["sample_rate"])
        record.done = True
        await response.write_eof()
        return response

    async def _pace(self, samples: int, sample_rate: int) -> None:
        if self.realtime_factor > 0:
            await asyncio.sleep(samples / sample_rate / self.realtime_factor)


class _Context:
    """One context_id on a websocket: buffers transcript pieces, speaks them in order."""

    def __init__(
        self, server: CartesiaTTSStandin, first: Mapping[str, Any], sender: WebSocketSender
    ) -> None:
        self._server = server
        self._sender = sender
        self.record = _record_for(first, context_id=str(first.get("context_id") or "default"))
        self._fmt = first["output_format"]
        self._sample_rate = int(self._fmt["sample_rate"])
        self._timestamps = bool(first.get("add_timestamps"))
        self._max_buffer_s = float(first.get("max_buffer_delay_ms", 3000)) / 1000
        self._queue: asyncio.Queue[_Piece] = asyncio.Queue()
        self._started = time.monotonic()
        self._audio_offset = 0.0
        self._flushes = 0
        self._task = asyncio.create_task(self._run())

    @property
    def finished(self) -> bool:
        return self._task.done()

    def feed(self, data: Mapping[str, Any]) -> None:
        text = str(data.get("transcript", ""))
        self.record.transcripts.append(text)
        is_last = not data.get("continue", False)
        self._queue.put_nowait(_Piece(text=text, is_last=is_last, flush=bool(data.get("flush"))))

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        buffered = ""
        while True:
            timeout = self._max_buffer_s if buffered.strip() else None
            try:
                piece = await asyncio.wait_for(self._queue.get(), timeout=timeout)
            except TimeoutError:
                await self._speak(buffered)
                buffered = ""
                continue
            buffered += piece.text
            if (
                piece.is_last
                or piece.flush
                or self._max_buffer_s == 0
                or SENTENCE_END.search(buffered)
            ):
                await self._speak(buffered)
                buffered = ""
            if piece.flush:
                self._flushes += 1
                await self._send(
                    type="flush_done", done=False, flush_done=True, flush_id=self._flushes
                )
            if piece.is_last:
                self.record.done = True
                await self._send(type="done", done=True)
                return

    async def _speak(self, text: str) -> None:
        words = text.split()
        if not words:
            return
        samples = await self._server.synthesizer.synthesize(text, sample_rate=self._sample_rate)
        await _sleep_until(self._started + self._server.ttfb_ms / 1000)
        step = max(1, int(self._server.chunk_ms / 1000 * self._sample_rate))
        for offset in range(0, samples.size, step):
            piece = samples[offset : offset + step]
            if self.record.first_audio_ms is None:
                self.record.first_audio_ms = (time.monotonic() - self._started) * 1000
            audio = base64.b64encode(encode(piece, self._fmt["encoding"])).decode()
            await self._send(type="chunk", data=audio, done=False, step_time=self._server.chunk_ms)
            if offset == 0 and self._timestamps:
                await self._send_timestamps(words, samples.size / self._sample_rate)
            await self._server._pace(piece.size, self._sample_rate)
        duration = samples.size / self._sample_rate
        self._audio_offset += duration
        self.record.audio_seconds += duration

    async def _send_timestamps(self, words: list[str], duration: float) -> None:
        weights = [len(w) + 1 for w in words]
        bounds = np.cumsum([0, *weights]) / sum(weights) * duration + self._audio_offset
        await self._send(
            type="timestamps",
            done=False,
            word_timestamps={
                "words": words,
                "start": [round(float(t), 3) for t in bounds[:-1]],
                "end": [round(float(t), 3) for t in bounds[1:]],
            },
        )

    async def _send(self, **message: Any) -> None:
        await self._sender.send_json(
            {**message, "status_code": 206, "context_id": self.record.context_id}
        )


def encode(samples: np.ndarray, encoding: str) -> bytes:
    if encoding == "pcm_f32le":
        return (samples.astype("<f4") / 32768.0).tobytes()
    return samples.astype("<i2").tobytes()


def _record_for(data: Mapping[str, Any], *, context_id: str) -> ContextRecord:
    return ContextRecord(
        context_id=context_id,
        model_id=str(data.get("model_id", "")),
        voice=dict(data.get("voice") or {}),
        output_format=dict(data["output_format"]),
        language=str(data["language"]) if data.get("language") else None,
    )


def _format_problem(data: Mapping[str, Any]) -> str | None:
    fmt = data.get("output_format")
    if not isinstance(fmt, Mapping):
        return "output_format is required"
    if fmt.get("container", "raw") not in ("raw", "wav"):
        return f"unsupported container {fmt.get('container')!r}"
    if fmt.get("encoding") not in ENCODINGS:
        return f"unsupported encoding {fmt.get('encoding')!r}; use one of {sorted(ENCODINGS)}"
    if not str(fmt.get("sample_rate", "")).isdigit():
        return "output_format.sample_rate must be an integer"
    return None


def _authorized(request: web.Request) -> bool:
    return bool(request.headers.get("X-API-Key") or request.query.get("api_key"))


def _unauthorized() -> web.Response:
    return web.json_response({"error": "missing X-API-Key"}, status=401)


def _error(context_id: str | None, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "done": True,
        "status_code": 400,
        "error": message,
        "context_id": context_id,
    }


def _wav_header(data_bytes: int, sample_rate: int) -> bytes:
    fmt = b"fmt " + (16).to_bytes(4, "little") + b"\x01\x00\x01\x00"
    fmt += sample_rate.to_bytes(4, "little") + (sample_rate * 2).to_bytes(4, "little")
    fmt += b"\x02\x00\x10\x00"
    riff = b"RIFF" + (36 + data_bytes).to_bytes(4, "little") + b"WAVE"
    return riff + fmt + b"data" + data_bytes.to_bytes(4, "little")


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--ttfb-ms", type=float, default=0.0)
    parser.add_argument("--chunk-ms", type=float, default=50.0)
    parser.add_argument("--realtime-factor", type=float, default=0.0, help="0 = unpaced")
    parser.add_argument("--voice", default="en-us", help="espeak-ng voice")
    parser.add_argument("--words-per-minute", type=int, default=175)
    args = parser.parse_args(argv)
    server = CartesiaTTSStandin(
        ttfb_ms=args.ttfb_ms,
        chunk_ms=args.chunk_ms,
        realtime_factor=args.realtime_factor,
        synthesizer=EspeakSynthesizer(voice=args.voice, words_per_minute=args.words_per_minute),
        host=args.host,
        port=args.port,
    )
    serve_forever(server, log_level=args.log_level)


if __name__ == "__main__":
    main()
