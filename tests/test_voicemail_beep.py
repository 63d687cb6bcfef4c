"""The beep detector on generated phone audio: what counts as a mailbox's beep, what does not."""

from __future__ import annotations

import audioop

import numpy as np
import pytest

from voicemail.beep import Beep, BeepDetector

pytestmark = pytest.mark.unit

RATE = 8000


def tone(hz: float, seconds: float, *, dbfs: float = -12.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return 32767 * np.sqrt(2) * 10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * t)


def quiet(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(round(seconds * rate))


def voice(seconds: float, *, f0: float = 140.0, rate: int = RATE, seed: int = 3) -> np.ndarray:
    """A voiced sound like a held vowel: many harmonics, a pitch that wanders and formants."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    pitch = f0 * (1 + 0.06 * np.sin(2 * np.pi * 3 * t) + 0.01 * rng.standard_normal(t.size))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    formants = (700.0, 1200.0, 2500.0)
    out = np.zeros_like(t)
    for k in range(1, 25):
        weight = sum(1 / (1 + ((k * f0 - f) / 150) ** 2) for f in formants)
        out += weight * np.sin(k * phase)
    return 8000 * out / np.abs(out).max()


def on_the_line(audio: np.ndarray, *, noise_dbfs: float = -60.0, seed: int = 5) -> np.ndarray:
    """With line noise, through a G.711 mu-law round trip."""
    rng = np.random.default_rng(seed)
    noisy = audio + rng.normal(0, 32767 * 10 ** (noise_dbfs / 20), audio.size)
    raw = np.clip(noisy, -32768, 32767).astype("<i2").tobytes()
    return np.frombuffer(audioop.ulaw2lin(audioop.lin2ulaw(raw, 2), 2), dtype="<i2")


def beeps(audio: np.ndarray, *, rate: int = RATE, chunk: int = 160) -> list[Beep]:
    detector = BeepDetector(sample_rate=rate)
    samples = np.asarray(audio).astype(np.int16)
    found: list[Beep] = []
    for start in range(0, samples.size, chunk):
        found += detector.push(samples[start : start + chunk])
    return found


def test_a_beep_after_a_greeting_is_found_with_its_time_and_pitch():
    audio = on_the_line(np.concatenate([voice(2.0), quiet(0.5), tone(1000, 0.5), quiet(1.0)]))
    (beep,) = beeps(audio)
    assert beep.frequency_hz == pytest.approx(1000, abs=10)
    assert beep.start_s == pytest.approx(2.5, abs=0.05)
    assert beep.end_s == pytest.approx(3.0, abs=0.05)


@pytest.mark.parametrize("hz", [440, 850, 1400, 1950])
@pytest.mark.parametrize("noise_dbfs", [-60.0, -35.0])
def test_beeps_across_the_band_are_found_on_a_noisy_g711_line(hz, noise_dbfs):
    audio = on_the_line(np.concatenate([quiet(0.3), tone(hz, 0.3), quiet(0.6)]),
                        noise_dbfs=noise_dbfs)  # fmt: skip
    assert [round(b.frequency_hz / hz, 1) for b in beeps(audio)] == [1.0]


def test_speech_is_never_a_beep():
    audio = on_the_line(np.concatenate([voice(3.0), quiet(0.6), voice(2.0, f0=210), quiet(0.6)]))
    assert beeps(audio) == []


@pytest.mark.parametrize(
    "audio",
    [
        np.concatenate([tone(1000, 0.08), quiet(0.6)]),  # a click, too short
        np.concatenate([tone(250, 0.5), quiet(0.6)]),  # below the beep band
        np.concatenate([tone(2600, 0.5), quiet(0.6)]),  # above it
        np.concatenate([tone(425, 4.0), quiet(0.6)]),  # a dial tone, far too long
        np.concatenate([tone(440, 1.0) + tone(480, 1.0), quiet(0.6)]),  # ringback: two tones
    ],
    ids=["click", "low", "high", "dial-tone", "ringback"],
)
def test_tones_that_are_not_a_mailbox_beep(audio):
    assert beeps(on_the_line(audio)) == []


def test_a_tone_followed_at_once_by_sound_is_not_the_start_of_a_recording():
    # the three rising tones before a carrier's "the number you have dialed is not in service"
    sit = np.concatenate([tone(913, 0.28), tone(1370, 0.28), tone(1776, 0.38)])
    assert beeps(on_the_line(np.concatenate([sit, voice(2.0), quiet(0.6)]))) == []
    chime_in_greeting = np.concatenate([tone(1000, 0.3), quiet(0.1), voice(2.0), quiet(0.6)])
    assert beeps(on_the_line(chime_in_greeting)) == []


def test_the_beep_is_reported_only_once_the_line_has_been_quiet_after_it():
    detector = BeepDetector(sample_rate=RATE)
    assert detector.push(tone(1000, 0.5).astype(np.int16)) == []
    assert detector.push(quiet(0.2).astype(np.int16)) == []
    assert len(detector.push(quiet(0.3).astype(np.int16))) == 1


def test_chunk_size_and_sample_rate_do_not_change_the_answer():
    audio = np.concatenate([quiet(0.4), tone(1000, 0.4), quiet(0.6)])
    at_8k = beeps(audio, chunk=37)
    wide = np.concatenate([quiet(0.4, 48000), tone(1000, 0.4, rate=48000), quiet(0.6, 48000)])
    at_48k = beeps(wide, rate=48000, chunk=480)
    assert len(at_8k) == len(at_48k) == 1
    assert at_8k[0].start_s == pytest.approx(at_48k[0].start_s, abs=0.02)
    assert at_8k[0].end_s == pytest.approx(at_48k[0].end_s, abs=0.02)
