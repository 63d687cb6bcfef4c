"""Phone-line audio: caller lines from espeak-ng squeezed through an 8 kHz channel, and the
energy analysis that finds speech in what the phone heard."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from callab.standins.speech import parse_wav
from callab.standins.speech_detect import rms_dbfs as level_dbfs

PHONE_BAND = "300-3400"  # what a narrowband phone line passes
SPEECH_DBFS = -45.0  # a 10 ms window at least this loud counts as speech
# Trimming keeps a line's natural fade-out (cut at -45 dBFS, speech ends mid-decay and the
# audio end-of-turn model hears an interrupted word) and drops only espeak-ng's padding.
PADDING_DBFS = -70.0
WINDOW_S = 0.010


class AudioToolMissing(RuntimeError):
    """espeak-ng or sox is not installed; the message says how to get it."""


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise AudioToolMissing(f"{name} is not installed: apt-get install {name}")
    return found


@lru_cache(maxsize=256)
def phone_line(text: str, *, sample_rate: int = 48000, words_per_minute: int = 165) -> np.ndarray:
    """int16 samples of `text` as a caller sounds on a phone: espeak-ng speech, band-limited
    and resampled to 8 kHz by sox, then brought back up to `sample_rate`."""
    with tempfile.TemporaryDirectory(prefix="phone-line-") as tmp:
        spoken, narrow, wide = (Path(tmp) / n for n in ("spoken.wav", "8k.wav", "wide.wav"))
        speech = subprocess.run(
            [_tool("espeak-ng"), "--stdout", "--stdin", "-v", "en-us", "-s", str(words_per_minute)],
            input=text.encode(),
            capture_output=True,
            check=True,
            timeout=20,
        ).stdout
        samples, rate = parse_wav(speech)
        write_wav(spoken, samples, rate)
        sox = _tool("sox")
        subprocess.run(
            [sox, str(spoken), "-b", "16", "-c", "1", str(narrow), "sinc", PHONE_BAND,
             "rate", "8000"],
            check=True, capture_output=True, timeout=20,
        )  # fmt: skip
        subprocess.run(
            [sox, str(narrow), "-b", "16", str(wide), "rate", str(sample_rate)],
            check=True, capture_output=True, timeout=20,
        )  # fmt: skip
        out, out_rate = parse_wav(wide.read_bytes())
    assert out_rate == sample_rate
    out = trim_silence(out, sample_rate)
    out.setflags(write=False)
    return out


def trim_silence(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Without the near-silent padding, so a line ends where its speech fades out."""
    step = int(sample_rate * WINDOW_S)
    loud = [
        i for i in range(0, samples.size - step + 1, step)
        if level_dbfs(samples[i : i + step]) >= PADDING_DBFS
    ]  # fmt: skip
    if not loud:
        return samples
    return samples[loud[0] : loud[-1] + step].copy()


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


@dataclass(frozen=True)
class Span:
    """A stretch of speech, in seconds on the clock the caller used (time.monotonic())."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def speech_spans(
    windows: list[tuple[float, float]], *, min_gap_s: float = 0.35, min_speech_s: float = 0.05
) -> list[Span]:
    """Group (time, dBFS) windows into speech spans; gaps shorter than `min_gap_s` (pauses
    between words) do not split a span."""
    spans: list[Span] = []
    start: float | None = None
    last_loud = 0.0
    for at, level in windows:
        loud = level >= SPEECH_DBFS
        if loud and start is None:
            start = at
        if loud:
            last_loud = at + WINDOW_S
        elif start is not None and at - last_loud >= min_gap_s:
            if last_loud - start >= min_speech_s:
                spans.append(Span(start, last_loud))
            start = None
    if start is not None and last_loud - start >= min_speech_s:
        spans.append(Span(start, last_loud))
    return spans


def ogg_channels(path: Path) -> list[np.ndarray]:
    """Each channel of an Opus-in-OGG file as int16 samples at 48 kHz (Opus decodes at 48 kHz
    whatever rate it was encoded from)."""
    import av  # only the recording tests need it

    with av.open(str(path)) as container:
        (stream,) = container.streams.audio
        if stream.codec_context.name != "opus":
            raise ValueError(f"{path.name} holds {stream.codec_context.name}, not Opus")
        channels = stream.channels
        blocks = [
            frame.to_ndarray() if frame.format.is_planar
            else frame.to_ndarray().reshape(-1, channels).T
            for frame in container.decode(stream)
        ]  # fmt: skip
    audio = np.concatenate(blocks, axis=1)
    pcm = np.clip(audio * 32768, -32768, 32767).astype(np.int16)
    return list(pcm)


def speech_spans_in(
    samples: np.ndarray, *, rate: int = 48000, min_gap_s: float = 0.8
) -> list[Span]:
    """Speech in one channel of a file, in seconds from its start; a gap of ``min_gap_s``
    ends a stretch (the pauses between words are shorter)."""
    step = int(rate * WINDOW_S)
    windows = [
        (i / rate, level_dbfs(samples[i : i + step]))
        for i in range(0, samples.size - step + 1, step)
    ]
    return speech_spans(windows, min_gap_s=min_gap_s)
