"""The voicemail beep, found in the callee's audio: a sustained, near-pure tone.

A mailbox starts recording with a beep: one sine tone, typically 400 to 2000 Hz, a few hundred
milliseconds long, then silence. Speech never looks like that: a voice spreads its energy over
many harmonics, and its pitch moves. So every 10 ms the detector looks at the last 32 ms of
audio, measures how much of the phone band's energy sits in the strongest spectral peak (its
*purity*), and counts a frame as tonal when that peak is inside the beep band, pure enough and
loud enough. A run of tonal frames at one steady frequency, at least ``min_tone_s`` long, is a
beep, reported once the line has gone quiet after it for ``quiet_after_s``: a tone followed at
once by more sound (the rising tones before a carrier's "not in service", a chime inside a
greeting) is not the start of a recording.

It is built for G.711 phone audio: anything from 8 kHz up, quantisation noise and a noisy line
(the purity threshold leaves room for a line noise about 10 dB below the tone).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_S = 0.010  # hop between analyses
WINDOW_S = 0.032  # analysis window
PHONE_BAND_HZ = (300.0, 3400.0)  # what a narrowband line carries: the energy the tone is held to
FFT_SIZE_MIN = 2048  # zero padding, for a frequency reading finer than the window's bins


@dataclass(frozen=True, slots=True)
class Beep:
    """A beep, in seconds from the first sample the detector was given."""

    start_s: float
    end_s: float
    frequency_hz: float
    level_dbfs: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class BeepSettings:
    band_hz: tuple[float, float] = (400.0, 2000.0)
    min_tone_s: float = 0.15
    max_tone_s: float = 3.0  # longer is a dial tone or a fax, not a mailbox
    min_purity: float = 0.7  # share of the phone band's energy in the peak
    min_level_dbfs: float = -40.0
    max_drift: float = 0.03  # the frequency may wander 3% over the tone
    quiet_after_s: float = 0.3
    quiet_drop_db: float = 15.0  # "quiet" is this far below the tone's level


@dataclass(frozen=True, slots=True)
class _Frame:
    at_s: float  # the end of the analysed window
    level_dbfs: float
    peak_hz: float | None  # None: not tonal


class BeepDetector:
    """Feed it the callee's audio as it arrives (int16 mono, any rate from 8 kHz); each
    ``push`` returns the beeps confirmed by that audio."""

    def __init__(self, *, sample_rate: int, settings: BeepSettings | None = None) -> None:
        if sample_rate < 8000:
            raise ValueError("phone audio needs at least 8 kHz")
        self.settings = settings or BeepSettings()
        self.sample_rate = sample_rate
        self._hop = round(sample_rate * FRAME_S)
        self._window = round(sample_rate * WINDOW_S)
        self._fft_size = max(FFT_SIZE_MIN, 1 << (self._window - 1).bit_length())
        self._taper = np.hanning(self._window)
        freqs = np.fft.rfftfreq(self._fft_size, 1 / sample_rate)
        self._phone_band = (freqs >= PHONE_BAND_HZ[0]) & (freqs <= PHONE_BAND_HZ[1])
        self._beep_band = (freqs >= self.settings.band_hz[0]) & (freqs <= self.settings.band_hz[1])
        self._freqs = freqs
        # the taper's main lobe, in zero-padded bins: where a pure tone's energy lands
        self._lobe = 2 * self._fft_size // self._window + 1
        self._buffer = np.zeros(0, dtype=np.float64)
        self._consumed = 0  # samples dropped from the buffer's front
        self._run: list[_Frame] = []  # the current tonal run
        self._tone: _Frame | None = None  # a finished run waiting for quiet: its last frame
        self._tone_run: list[_Frame] = []
        self._quiet_since: float | None = None

    def push(self, samples: np.ndarray) -> list[Beep]:
        """Analyse ``samples`` (int16, mono) after everything pushed before."""
        block = np.asarray(samples, dtype=np.float64) / 32768.0
        self._buffer = np.concatenate([self._buffer, block])
        found: list[Beep] = []
        while self._buffer.size >= self._window:
            frame = self._analyse(self._buffer[: self._window])
            self._buffer = self._buffer[self._hop :]
            self._consumed += self._hop
            beep = self._step(frame)
            if beep is not None:
                found.append(beep)
        return found

    def _analyse(self, window: np.ndarray) -> _Frame:
        at_s = (self._consumed + self._window) / self.sample_rate
        window = window - window.mean()
        rms = float(np.sqrt(np.mean(window**2)))
        level = float(20 * np.log10(rms)) if rms > 0 else -120.0
        if level < self.settings.min_level_dbfs:
            return _Frame(at_s, level, None)
        power = np.abs(np.fft.rfft(window * self._taper, self._fft_size)) ** 2
        in_band = power[self._phone_band].sum()
        candidates = np.where(self._beep_band, power, 0.0)
        peak = int(candidates.argmax())
        tone = power[max(0, peak - self._lobe) : peak + self._lobe + 1].sum()
        pure = in_band > 0 and tone / in_band >= self.settings.min_purity
        return _Frame(at_s, level, float(self._freqs[peak]) if pure else None)

    def _step(self, frame: _Frame) -> Beep | None:
        """One frame: extend or end the tonal run, or count quiet after a finished tone."""
        if frame.peak_hz is not None and self._run and not self._same_tone(frame):
            if frame.level_dbfs < max(f.level_dbfs for f in self._run) - 6:
                frame = _Frame(frame.at_s, frame.level_dbfs, None)  # the tone fading out
            else:
                self._end_run()  # another tone: the run so far is judged on its own
        if frame.peak_hz is not None:
            self._run.append(frame)
            self._tone, self._quiet_since = None, None  # sound again: the last tone was not it
            return None
        self._end_run()
        return self._after_tone(frame)

    def _same_tone(self, frame: _Frame) -> bool:
        first = self._run[0].peak_hz
        assert first is not None and frame.peak_hz is not None
        return abs(frame.peak_hz - first) <= self.settings.max_drift * first

    def _end_run(self) -> None:
        run, self._run = self._run, []
        duration = len(run) * FRAME_S
        if run and self.settings.min_tone_s <= duration <= self.settings.max_tone_s:
            self._tone, self._tone_run, self._quiet_since = run[-1], run, None

    def _after_tone(self, frame: _Frame) -> Beep | None:
        if self._tone is None:
            return None
        if frame.at_s - self._tone.at_s <= WINDOW_S:
            return None  # this window still overlaps the tone's tail
        tone_level = max(f.level_dbfs for f in self._tone_run)
        if frame.level_dbfs > tone_level - self.settings.quiet_drop_db:
            self._tone = None  # sound right after the tone: not a mailbox starting to record
            return None
        if self._quiet_since is None:
            self._quiet_since = frame.at_s - FRAME_S
        if frame.at_s - self._quiet_since < self.settings.quiet_after_s:
            return None
        run, self._tone = self._tone_run, None
        frequencies = [f.peak_hz for f in run if f.peak_hz is not None]
        return Beep(
            start_s=run[0].at_s - WINDOW_S,
            end_s=run[-1].at_s,
            frequency_hz=float(np.median(frequencies)),
            level_dbfs=float(tone_level),
        )
