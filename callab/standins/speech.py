"""Real speech from espeak-ng, as 16-bit mono PCM at any sample rate, with a phrase cache."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
from collections import OrderedDict

import numpy as np

ESPEAK_TIMEOUT_S = 10.0


class EspeakSynthesizer:
    def __init__(
        self, *, voice: str = "en-us", words_per_minute: int = 175, cache_size: int = 256
    ) -> None:
        self.voice = voice
        self.words_per_minute = words_per_minute
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self.synthesized_count = 0  # cache misses, for tests and benchmarks

    async def synthesize(self, text: str, *, sample_rate: int) -> np.ndarray:
        """int16 samples of `text` spoken at `sample_rate`; empty for blank text."""
        text = " ".join(text.split())
        if not text:
            return np.zeros(0, dtype=np.int16)
        key = (text, sample_rate)
        if (cached := self._cache.get(key)) is not None:
            self._cache.move_to_end(key)
            return cached
        wav = await self._run_espeak(text)
        samples = resample(*parse_wav(wav), to_rate=sample_rate)
        self.synthesized_count += 1
        self._cache[key] = samples
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return samples

    async def _run_espeak(self, text: str) -> bytes:
        process = await asyncio.create_subprocess_exec(
            *self._command(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(text.encode()), timeout=ESPEAK_TIMEOUT_S
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            raise RuntimeError(f"espeak-ng failed: {err.decode(errors='replace').strip()}")
        return out

    def _command(self) -> list[str]:
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
        return [binary, "--stdout", "--stdin", "-v", self.voice, "-s", str(self.words_per_minute)]


def synthesize_blocking(
    text: str, *, sample_rate: int, voice: str = "en-us", words_per_minute: int = 175
) -> np.ndarray:
    """Blocking variant for building test fixtures (caller audio)."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = subprocess.run(
        [binary, "--stdout", "--stdin", "-v", voice, "-s", str(words_per_minute)],
        input=text.encode(),
        capture_output=True,
        check=True,
        timeout=ESPEAK_TIMEOUT_S,
    ).stdout
    return resample(*parse_wav(wav), to_rate=sample_rate)


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono 16-bit PCM from a RIFF file whose sizes may be bogus (espeak-ng writes to a pipe)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    offset, rate, channels = 12, 0, 1
    while offset + 8 <= len(data):
        chunk_id, size = (
            data[offset : offset + 4],
            struct.unpack("<I", data[offset + 4 : offset + 8])[0],
        )
        body = offset + 8
        if chunk_id == b"fmt ":
            _, channels, rate = struct.unpack("<HHI", data[body : body + 8])
            bits = struct.unpack("<H", data[body + 14 : body + 16])[0]
            if bits != 16:
                raise ValueError(f"expected 16-bit PCM, got {bits}-bit")
        elif chunk_id == b"data":
            pcm = data[body : body + min(size, len(data) - body)]
            pcm = pcm[: len(pcm) - len(pcm) % (2 * channels)]
            samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels)[:, 0]
            return samples.astype(np.int16), rate
        offset = body + size + (size % 2)
    raise ValueError("WAV file has no data chunk")


def resample(samples: np.ndarray, from_rate: int, *, to_rate: int) -> np.ndarray:
    """Linear interpolation (after an anti-alias filter when downsampling): plenty for
    synthetic speech."""
    if from_rate == to_rate or samples.size == 0:
        return samples.astype(np.int16)
    source = samples.astype(np.float64)
    if to_rate < from_rate:
        source = _low_pass(source, cutoff=0.5 * to_rate / from_rate)
    count = round(samples.size * to_rate / from_rate)
    positions = np.arange(count) * (from_rate / to_rate)
    resampled = np.interp(positions, np.arange(samples.size), source)
    return np.clip(np.round(resampled), -32768, 32767).astype(np.int16)


def _low_pass(samples: np.ndarray, *, cutoff: float, taps: int = 63) -> np.ndarray:
    """Windowed-sinc FIR; `cutoff` is a fraction of the sampling rate (0..0.5)."""
    n = np.arange(taps) - (taps - 1) / 2
    kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(taps)
    return np.convolve(samples, kernel / kernel.sum(), mode="same")
