"""Hold music: a calm loop we synthesise ourselves (so it is ours to ship), played to the
caller with LiveKit's background audio player while a rep is being reached. Never silence."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import wave
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents import AudioConfig, BackgroundAudioPlayer, PlayHandle

logger = logging.getLogger("transfer.hold")

RATE = 24000
# Four bars of a slow I-vi-IV-V progression in C, an arpeggio over a soft pad.
_CHORDS = ((60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62))
_BEAT_S = 0.5
_BEATS_PER_CHORD = 4
HOLD_FILE = "hold-music.wav"
VOLUME = 0.7


def _midi_hz(note: float) -> float:
    return float(440.0 * 2 ** ((note - 69) / 12))


def synthesise() -> np.ndarray:
    """The loop as 16-bit mono samples at RATE: 8 s, starting and ending on silence-free
    audio so it loops without a click."""
    beat = int(RATE * _BEAT_S)
    total = beat * _BEATS_PER_CHORD * len(_CHORDS)
    out = np.zeros(total)
    t_beat = np.arange(beat) / RATE
    envelope = np.exp(-t_beat * 3.0) * np.minimum(1.0, t_beat / 0.01)  # soft pluck
    for c, chord in enumerate(_CHORDS):
        start = c * beat * _BEATS_PER_CHORD
        span = beat * _BEATS_PER_CHORD
        t = np.arange(span) / RATE
        pad = sum(np.sin(2 * np.pi * _midi_hz(n - 12) * t) for n in chord) / len(chord)
        fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.2)
        out[start : start + span] += 0.18 * pad * fade
        for b in range(_BEATS_PER_CHORD):
            note = chord[b % len(chord)] + (12 if b == 3 else 0)
            tone = np.sin(2 * np.pi * _midi_hz(note) * t_beat)
            tone += 0.3 * np.sin(2 * np.pi * 2 * _midi_hz(note) * t_beat)
            s = start + b * beat
            out[s : s + beat] += 0.35 * tone * envelope
    out /= np.max(np.abs(out))
    return (out * 0.5 * 32767).astype(np.int16)


def hold_music_file(cache_dir: Path) -> Path:
    """The loop as a WAV in ``cache_dir``, written on first use."""
    path = cache_dir / HOLD_FILE
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Job processes (or threads, with the thread executor) start together and may all write
        # it: each its own partial file, so one's rename never takes another's away.
        partial = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
        with wave.open(str(partial), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(synthesise().tobytes())
        partial.replace(path)
    return path


class HoldLine:
    """Music for the caller while they wait: ``start()`` and ``stop()``, any number of times."""

    def __init__(self, room: rtc.Room, music: Path) -> None:
        self._room = room
        self._music = music
        self._player: BackgroundAudioPlayer | None = None
        self._playing: PlayHandle | None = None

    @property
    def playing(self) -> bool:
        return self._playing is not None

    async def start(self) -> None:
        if self._player is None:
            self._player = BackgroundAudioPlayer()
            await self._player.start(room=self._room)
        if self._playing is None:
            self._playing = self._player.play(
                AudioConfig(str(self._music), volume=VOLUME), loop=True
            )

    def stop(self) -> None:
        if self._playing is not None:
            self._playing.stop()
            self._playing = None

    async def aclose(self) -> None:
        self.stop()
        player, self._player = self._player, None
        if player is not None and self._room.isconnected():  # else its track went with the room
            with contextlib.suppress(Exception):
                await player.aclose()
