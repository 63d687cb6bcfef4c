"""The apology for a call cut short by a provider outage, as audio made ahead of time: a
provider that is down (the TTS included) must not be needed to say it."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from livekit import rtc

import prompts
from prompts import PromptError

logger = logging.getLogger("outage.clips")

FRAME_MS = 20
LINES = ("callback", "no_callback")


@dataclass(frozen=True)
class Clip:
    """One line and its audio (16-bit PCM)."""

    text: str
    pcm: bytes
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (2 * self.channels * self.sample_rate)

    async def frames(self) -> AsyncIterator[rtc.AudioFrame]:
        step = self.sample_rate * FRAME_MS // 1000
        width = 2 * self.channels
        for start in range(0, len(self.pcm), step * width):
            chunk = self.pcm[start : start + step * width]
            yield rtc.AudioFrame(
                data=chunk, sample_rate=self.sample_rate, num_channels=self.channels,
                samples_per_channel=len(chunk) // width,
            )  # fmt: skip


@dataclass(frozen=True)
class ApologyClips:
    """The apology with the offer of a callback, and the one without (no number to call)."""

    callback: Clip | None
    no_callback: Clip | None

    def choose(self, *, callback: bool) -> Clip | None:
        return self.callback if callback else self.no_callback


def apology_lines(name: str = "outage.yaml") -> dict[str, str]:
    raw = prompts.load_yaml(name)
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in LINES):
        raise PromptError(f"prompts/{name}: needs the lines {', '.join(LINES)}")
    return {k: str(raw[k]).strip() for k in LINES}


def clip_path(cache_dir: Path, *, voice_key: str, text: str) -> Path:
    """Per voice and text: a new voice or wording is synthesised again, never mixed up."""
    digest = hashlib.sha256(f"{voice_key}\n{text}".encode()).hexdigest()[:20]
    return cache_dir / f"apology-{digest}.wav"


def prepare_apology(
    cache_dir: Path,
    *,
    voice_key: str,
    make_tts: Callable[[aiohttp.ClientSession], Any],
    timeout_s: float = 8.0,
) -> ApologyClips:
    """The clips from the cache, synthesising the missing ones with ``make_tts`` (blocking: for
    the worker's prewarm, before its loop runs). A TTS that fails now leaves the clip missing
    (logged); the next process tries again."""
    lines = apology_lines()
    missing = {k: t for k, t in lines.items()
               if not clip_path(cache_dir, voice_key=voice_key, text=t).exists()}  # fmt: skip
    if missing:
        cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            asyncio.run(_synthesise(cache_dir, missing, voice_key, make_tts, timeout_s))
        except Exception as exc:
            logger.error("could not record the outage apology ahead of time: %r", exc)
    clips = {k: _read(clip_path(cache_dir, voice_key=voice_key, text=t), t)
             for k, t in lines.items()}  # fmt: skip
    return ApologyClips(callback=clips["callback"], no_callback=clips["no_callback"])


async def _synthesise(
    cache_dir: Path,
    lines: dict[str, str],
    voice_key: str,
    make_tts: Callable[[aiohttp.ClientSession], Any],
    timeout_s: float,
) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout_s):
        tts = make_tts(http)
        try:
            for text in lines.values():
                frame = await tts.synthesize(text).collect()
                _write(clip_path(cache_dir, voice_key=voice_key, text=text), frame)
        finally:
            await tts.aclose()


def _write(path: Path, frame: rtc.AudioFrame) -> None:
    # Processes (or threads) prewarm side by side: each writes its own partial file, then
    # renames it.
    partial = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(frame.num_channels)
        out.setsampwidth(2)
        out.setframerate(frame.sample_rate)
        out.writeframes(bytes(frame.data))
    partial.replace(path)


def _read(path: Path, text: str) -> Clip | None:
    try:
        with wave.open(str(path), "rb") as wav:
            return Clip(text=text, pcm=wav.readframes(wav.getnframes()),
                        sample_rate=wav.getframerate(), channels=wav.getnchannels())  # fmt: skip
    except (FileNotFoundError, wave.Error, EOFError):
        return None
