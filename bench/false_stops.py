"""False stops at barge-in: labelled caller sounds played over the agent's long answer.

    uv run python bench/false_stops.py --min-interruption 0.2,0.4 --repeat 2 \\
        --out bench/results/false_stops.json

Each trial is one real SIP call through the local stack (G.711 at 8 kHz over our bridge): the
caller asks about Northwind, and 1.5 s into the agent's long answer the phone plays one sound
from a labelled set. Should-stop sounds are real interruptions ("Wait stop", "No"); should-not-
stop sounds are backchannels ("uh huh", "okay"), a cough, a crackle of line noise, a breath, a
click; "silence" plays nothing and checks the gap detector on the answer itself. The speech is
espeak-ng through the phone band (callab.audio.phone_line); the rest is shaped noise made here.

From the phone's recording: did the agent's audio stop (a gap of STOP_GAP_S starting within
DECISION_WINDOW_S of the sound's onset), its stop time (onset to the last agent audio), and
whether it came back, after how long. From the stand-ins and the worker: whether the agent
answered the sound (an LLM request after the onset) or resumed its answer (LiveKit's
false-interruption resume), what the STT stand-in made of the sound, and the worker's own
barge-in times (its `barge_in` log line), which split the stop time in three.

Settings are swept like bench/voice_latency.py: every combination runs as its own worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from callab import sweep
from callab.audio import WINDOW_S, phone_line
from callab.harness import PROFILES, CallLab, LabConfig
from callab.phone import LINE_RATE, TestPhone
from callab.scenarios import CALLER, Line, agent_turn, script
from callab.standins.chat_script import DEFAULT_FALLBACK
from callab.sweep import bench_greeting, percentiles, sentences
from localstack import StackNotInstalled

Label = Literal["stop", "no_stop"]
STOP_GAP_S = 0.3  # agent audio silent this long counts as a stop
DECISION_WINDOW_S = 3.0  # a stop the sound caused starts this soon after its onset
OBSERVE_S = 6.5  # the call is watched this long after the onset (a resume comes back by then)
SOUND_AFTER_S = 1.5  # the sound starts this far into the agent's answer
QUIET_S = 0.8
CALL_LIMIT_S = 90.0
SETTINGS = sweep.BARGE_IN_SETTINGS  # CLI flag -> worker setting (env name)
QUESTION = Line("Tell me about Northwind", "Tell me about Northwind.")
# One sentence without commas for the first seconds: the answer has no pause of its own
# anywhere near the sound (the "silence" trials check that).
ANSWER = (
    "Northwind builds sales forecasting on top of the CRM your team already uses and it reads "
    "your whole pipeline every night to score each open deal by how likely it is to close. "
    "Most teams see their forecast error drop by half within one quarter."
)
SCRIPT = script([agent_turn(after_user="Northwind", say=ANSWER)])  # anything else: fallback


# --- the labelled sounds -------------------------------------------------------------------


@dataclass(frozen=True)
class Sound:
    name: str
    label: Label
    heard: str  # what the STT stand-in answers for it ("": heard, no words, as for a cough)
    make: Callable[[], np.ndarray]  # int16 at LINE_RATE, before the phone's line noise


def _spoken(text: str) -> Callable[[], np.ndarray]:
    return lambda: np.asarray(phone_line(text, sample_rate=LINE_RATE))


def _band(noise: np.ndarray, low: float, high: float) -> np.ndarray:
    """Noise band-limited to [low, high] Hz (a phone line passes about 300-3400)."""
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(noise.size, 1 / LINE_RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, noise.size)


def _at_dbfs(signal: np.ndarray, rms_dbfs: float) -> np.ndarray:
    """`signal` scaled so its RMS is `rms_dbfs`, as int16."""
    rms = float(np.sqrt(np.mean(np.square(signal)))) or 1.0
    scaled = signal * (32768 * 10 ** (rms_dbfs / 20) / rms)
    return np.clip(np.round(scaled), -32768, 32767).astype(np.int16)


def _envelope(seconds: float, *, attack_s: float, decay_s: float) -> np.ndarray:
    t = np.arange(int(seconds * LINE_RATE)) / LINE_RATE
    return np.minimum(t / attack_s, 1.0) * np.exp(-t / decay_s)


def cough() -> np.ndarray:
    """Two bursts: a sharp 0.25 s one and a weaker 0.2 s one, low-weighted noise, about as
    loud as the caller's speech (RMS -20 dBFS; espeak-ng's lines are about -22)."""
    rng = np.random.default_rng(11)
    parts = []
    for seconds, gain in ((0.25, 1.0), (0.2, 0.5)):
        burst = _band(rng.normal(0, 1, int(seconds * LINE_RATE)), 300, 1800)
        parts.append(gain * burst * _envelope(seconds, attack_s=0.01, decay_s=0.08))
        parts.append(np.zeros(int(0.08 * LINE_RATE)))
    return _at_dbfs(np.concatenate(parts[:-1]), -20.0)


def voiced_cough() -> np.ndarray:
    """A cough with voice in it (the vocal folds buzz at its start): each burst is half noise,
    half a pulse train falling from 180 to 120 Hz, in the band a cough's resonance leaves."""
    rng = np.random.default_rng(15)
    parts = []
    for seconds, gain in ((0.3, 1.0), (0.22, 0.6)):
        size = int(seconds * LINE_RATE)
        pitch = np.linspace(180, 120, size)
        phase = np.cumsum(pitch / LINE_RATE)
        buzz = np.sign(np.sin(2 * np.pi * phase)) * (np.sin(2 * np.pi * phase) > 0.95)
        mixed = _band(rng.normal(0, 0.3, size) + buzz, 300, 2500)
        parts.append(gain * mixed * _envelope(seconds, attack_s=0.01, decay_s=0.12))
        parts.append(np.zeros(int(0.08 * LINE_RATE)))
    return _at_dbfs(np.concatenate(parts[:-1]), -20.0)


def crackle() -> np.ndarray:
    """0.6 s of line crackle: sparse sharp clicks over a hiss, RMS -30 dBFS."""
    rng = np.random.default_rng(12)
    size = int(0.6 * LINE_RATE)
    hiss = _band(rng.normal(0, 0.2, size), 300, 3400)
    pops = np.zeros(size)
    at = rng.choice(size - 40, size=25, replace=False)
    for index in at:
        pops[index : index + 40] += rng.choice([-1.0, 1.0]) * np.exp(-np.arange(40) / 6)
    return _at_dbfs(hiss + pops, -30.0)


def breath() -> np.ndarray:
    """A 0.4 s breath into the mouthpiece: soft band noise rising and falling, RMS -38 dBFS."""
    rng = np.random.default_rng(13)
    size = int(0.4 * LINE_RATE)
    shape = np.sin(np.linspace(0, np.pi, size)) ** 2
    return _at_dbfs(_band(rng.normal(0, 1, size), 500, 3000) * shape, -38.0)


def click() -> np.ndarray:
    """A 30 ms click (the handset knocked): a loud decaying pop, RMS -18 dBFS."""
    rng = np.random.default_rng(14)
    size = int(0.03 * LINE_RATE)
    pop = rng.normal(0, 1, size) * np.exp(-np.arange(size) / (0.004 * LINE_RATE))
    return _at_dbfs(_band(pop, 300, 3400), -18.0)


SOUNDS = (
    Sound("ask_something", "stop", "Sorry, can I ask something?",
          _spoken("Sorry can I ask something")),
    Sound("wait_stop", "stop", "Wait, stop.", _spoken("Wait stop")),
    Sound("hold_on", "stop", "Hold on a second.", _spoken("Hold on a second")),
    Sound("no", "stop", "No.", _spoken("No")),
    Sound("uh_huh", "no_stop", "Uh-huh.", _spoken("uh huh")),
    Sound("mm_hmm", "no_stop", "Mm-hmm.", _spoken("mm hmm")),
    Sound("okay", "no_stop", "Okay.", _spoken("okay")),
    Sound("cough", "no_stop", "", cough),
    Sound("voiced_cough", "no_stop", "", voiced_cough),
    # a throat-clear is voiced like speech but holds no words: the STT returns nothing
    Sound("ahem", "no_stop", "", _spoken("ahem")),
    Sound("crackle", "no_stop", "", crackle),
    Sound("breath", "no_stop", "", breath),
    Sound("click", "no_stop", "", click),
    Sound("silence", "no_stop", "", lambda: np.zeros(0, dtype=np.int16)),
)  # fmt: skip


# --- reading a recording -------------------------------------------------------------------


@dataclass(frozen=True)
class Heard:
    """What the phone's recording says about one sound."""

    speaking: bool  # the agent was talking when the sound started
    stopped: bool = False
    stop_ms: float | None = None  # onset to the agent's last audio before the gap
    gap_ms: float | None = None  # the gap, if the agent's audio came back before the end


def classify(
    loud: Sequence[float],
    onset: float,
    *,
    until: float,
    gap_s: float = STOP_GAP_S,
    window_s: float = DECISION_WINDOW_S,
) -> Heard:
    """`loud`: start times of the agent's loud 10 ms windows (sorted); `onset`: when the sound
    started; `until`: the end of what was recorded. A stop is the first silence of at least
    `gap_s` that starts after the onset and within `window_s` of it."""
    before = [at for at in loud if at < onset]
    if not before or onset - (before[-1] + WINDOW_S) >= gap_s:
        return Heard(speaking=False)
    after = [at for at in loud if at >= onset]
    last = before[-1] + WINDOW_S
    for at in [*after, None]:
        end = until if at is None else at
        if end - last >= gap_s:
            if last > onset + window_s:
                break
            gap = None if at is None else round((at - last) * 1000, 1)
            return Heard(True, True, round(max(last - onset, 0.0) * 1000, 1), gap)
        if at is not None:
            last = at + WINDOW_S
    return Heard(speaking=True)


# --- one trial -----------------------------------------------------------------------------


@dataclass
class Trial:
    sound: str
    label: Label
    speaking: bool | None = None
    stopped: bool | None = None
    stop_ms: float | None = None
    gap_ms: float | None = None
    replied: bool | None = None  # the agent took the sound as a turn (an LLM request)
    resumed: bool | None = None  # stopped, then the same answer carried on
    worker_outcome: str | None = None  # its barge_in line: interrupted / resumed
    parts_ms: dict[str, float] = field(default_factory=dict)  # to_vad, decision, downstream
    stt_heard: list[str | None] = field(default_factory=list)
    error: str | None = None


_BARGE_LINE = re.compile(
    r"barge_in outcome=(\w+) stop=[\d.\-]+ talked_over_ago=([\d.\-]+) stopped_ago=([\d.\-]+)"
)


def barge_ins(log: str) -> list[tuple[str, float, float]]:
    """The worker's barge-in lines: (outcome, talked over at, stopped at) as Unix times, from
    each line's own time ("t") and how long before it each happened."""
    found = []
    for line in log.splitlines():
        with contextlib.suppress(json.JSONDecodeError, AttributeError, KeyError, TypeError):
            record = json.loads(line)
            match = _BARGE_LINE.search(str(record.get("msg", "")))
            if match:
                at = float(record["t"])
                found.append((match[1], at - float(match[2]), at - float(match[3])))
    return found


def split_stop(trial: Trial, onset_unix: float, lines: Sequence[tuple[str, float, float]]) -> None:
    """The phone's stop time in three, from the worker's barge-in that started nearest after
    the onset: caller's audio reaching the worker and its VAD firing (`to_vad`), LiveKit's
    decision to pause (`decision`), and the agent's audio already on its way (`downstream`)."""
    near = [line for line in lines if -0.2 <= line[1] - onset_unix <= DECISION_WINDOW_S]
    if not near:
        return
    outcome, talked_over_at, stopped_at = min(near, key=lambda line: line[1])
    trial.worker_outcome = outcome
    if trial.stop_ms is None:
        return
    last_audio = onset_unix + trial.stop_ms / 1000
    trial.parts_ms = {
        "to_vad": round((talked_over_at - onset_unix) * 1000, 1),
        "decision": round((stopped_at - talked_over_at) * 1000, 1),
        "downstream": round((last_audio - stopped_at) * 1000, 1),
    }


async def run_trial(lab: CallLab, sound: Sound) -> Trial:
    trial = Trial(sound=sound.name, label=sound.label)
    lab.stt.script = [QUESTION.heard, sound.heard]  # this call's; calls run one at a time
    log_from, stt_from = len(lab.worker_log()), len(lab.stt.utterances)
    phone = await lab.place_call(CALLER, wait_answer=False)
    try:
        async with asyncio.timeout(CALL_LIMIT_S):
            await phone.answered()
            await _play_over_answer(lab, phone, sound, trial, log_from)
    except Exception as exc:  # a failed trial is counted, not fatal to the run
        trial.error = f"{type(exc).__name__}: {exc}"
    finally:
        await phone.hang_up()
    trial.stt_heard = [u.text for u in lab.stt.utterances[stt_from:]][1:]
    with contextlib.suppress(TimeoutError):
        await lab.wait_worker_idle(limit_s=30)
    return trial


async def _play_over_answer(
    lab: CallLab, phone: TestPhone, sound: Sound, trial: Trial, log_from: int
) -> None:
    assert phone.joined_at is not None
    asked = await phone.say_after_agent(QUESTION.spoken, since=phone.joined_at, quiet_s=QUIET_S)
    answer = await phone.agent_starts_speaking(after=asked.ended_at, limit_s=30)
    requests = len(lab.llm.requests)
    await asyncio.sleep(max(0.0, answer + SOUND_AFTER_S - time.monotonic()))
    samples = sound.make()
    played = await phone.play(sound.name, samples) if samples.size else None
    onset = played.started_at if played else time.monotonic()
    onset_unix = onset + (time.time() - time.monotonic())
    await asyncio.sleep(max(0.0, onset + OBSERVE_S - time.monotonic()))
    heard = classify(phone.recording.loud, onset, until=time.monotonic())
    trial.speaking, trial.stopped = heard.speaking, heard.stopped
    trial.stop_ms, trial.gap_ms = heard.stop_ms, heard.gap_ms
    trial.replied = any(r.received_at >= onset for r in lab.llm.requests[requests:])
    trial.resumed = heard.stopped and heard.gap_ms is not None and not trial.replied
    split_stop(trial, onset_unix, barge_ins(lab.worker_log()[log_from:]))


# --- the summary ---------------------------------------------------------------------------


def _rate(hits: int, of: int) -> float | None:
    return round(hits / of, 3) if of else None


def summarise_group(trials: Sequence[Trial]) -> dict[str, Any]:
    """Rates and times over trials that ran and found the agent talking at the onset."""
    valid = [t for t in trials if t.error is None and t.speaking]
    stops = [t for t in valid if t.stopped]
    resumed = [t for t in stops if t.resumed]
    parts = [t.parts_ms for t in stops if t.parts_ms]
    return {
        "trials": len(valid),
        "invalid": len(trials) - len(valid),
        "stop_rate": _rate(len(stops), len(valid)),
        "stop_ms": percentiles([t.stop_ms for t in stops if t.stop_ms is not None]),
        "replied_rate": _rate(sum(bool(t.replied) for t in stops), len(valid)),
        "resume_rate": _rate(len(resumed), len(stops)),
        "resume_gap_ms": percentiles([t.gap_ms for t in resumed if t.gap_ms is not None]),
        "parts_ms": {
            name: percentiles([p[name] for p in parts])
            for name in ("to_vad", "decision", "downstream")
        }
        | {"stops": len(parts)},
    }


def summarise(trials: Sequence[Trial]) -> dict[str, Any]:
    """Per sound and per class. For the should-stop class `stop_rate` is the true-stop rate,
    for the should-not-stop class the false-stop rate."""
    names = list(dict.fromkeys(t.sound for t in trials))
    return {
        "sounds": {n: summarise_group([t for t in trials if t.sound == n]) for n in names},
        "classes": {
            label: summarise_group([t for t in trials if t.label == label])
            for label in ("stop", "no_stop")
        },
    }


# --- the run -------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    chosen = [s for s in SOUNDS if not args.sounds or s.name in args.sounds]
    # A shorter greeting (the bench does not time it); long calls and silences are allowed.
    fixed = {"MAX_CALL_SECONDS": "600", "SILENCE_TIMEOUT_SECONDS": "30",
             "ANNOUNCE_AI": "false", "ANNOUNCE_RECORDING": "false"}  # fmt: skip
    runs = []
    for settings in setting_grid(args):
        with tempfile.TemporaryDirectory(prefix="false-stops-") as tmp:
            config = LabConfig(
                workdir=Path(tmp), script=SCRIPT, utterances=[QUESTION.heard],
                latencies=PROFILES[args.profile], settings={**fixed, **settings},
            )  # fmt: skip
            async with CallLab(config) as lab:
                await lab.tts.warm_up(_agent_lines(), sample_rate=24000)
                trials = []
                for _, sound in itertools.product(range(args.repeat), chosen):
                    trials.append(await run_trial(lab, sound))
                    print(_trial_text(trials[-1]), flush=True)
        run = {"settings": settings, "profile": args.profile, **summarise(trials),
               "trials_raw": [asdict(t) for t in trials]}  # fmt: skip
        print_table(run)
        runs.append(run)
    return runs


def _agent_lines() -> list[str]:
    return sentences([bench_greeting(announce=False), ANSWER, DEFAULT_FALLBACK])


def setting_grid(args: argparse.Namespace) -> list[dict[str, str]]:
    return sweep.setting_grid(args, SETTINGS)


def _trial_text(t: Trial) -> str:
    if t.error:
        return f"  {t.sound:14} error: {t.error}"
    what = "not talking at onset" if not t.speaking else "stopped" if t.stopped else "talked on"
    if t.stopped:
        what += f" after {t.stop_ms:.0f} ms, " + (
            "replied" if t.replied else f"resumed after {t.gap_ms:.0f} ms" if t.resumed else "-"
        )
    return f"  {t.sound:14} {what} (STT heard {t.stt_heard}, worker {t.worker_outcome})"


def _pair(p: dict[str, float | None]) -> str:
    return "-" if p["p50"] is None else f"{p['p50']:.0f}/{p['p95']:.0f}"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def table_rows(run: dict[str, Any]) -> Iterator[str]:
    yield (f"{'sound':14} {'class':8} {'n':>3} {'stop':>5} {'stop p50/p95':>13} "
           f"{'replied':>7} {'resumed':>7} {'gap p50/p95':>12}")  # fmt: skip
    groups = [(name, row) for name, row in run["sounds"].items()]
    groups += [(f"ALL {label}", row) for label, row in run["classes"].items()]
    labels = {s.name: s.label for s in SOUNDS} | {f"ALL {c}": c for c in ("stop", "no_stop")}
    for name, row in groups:
        yield (f"{name:14} {labels.get(name, '?'):8} {row['trials']:>3} "
               f"{_pct(row['stop_rate']):>5} {_pair(row['stop_ms']):>13} "
               f"{_pct(row['replied_rate']):>7} {_pct(row['resume_rate']):>7} "
               f"{_pair(row['resume_gap_ms']):>12}")  # fmt: skip
    for label, row in run["classes"].items():
        parts = row["parts_ms"]
        if parts["stops"]:
            yield (
                f"  {label} stop time split, p50/p95 ms over {parts['stops']} stops: "
                + ", ".join(
                    f"{name} {_pair(parts[name])}" for name in ("to_vad", "decision", "downstream")
                )
            )


def print_table(run: dict[str, Any]) -> None:
    settings = " ".join(f"{k}={v}" for k, v in run["settings"].items()) or "defaults"
    print(f"\n{settings} (profile {run['profile']})")
    for row in table_rows(run):
        print(row)
    print(flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="typical", choices=sorted(PROFILES))
    parser.add_argument("--repeat", type=int, default=2, help="trials of each sound")
    parser.add_argument("--sounds", type=lambda t: t.split(","), default=None,
                        help=f"comma list of {', '.join(s.name for s in SOUNDS)}")  # fmt: skip
    sweep.add_barge_in_flags(parser)
    parser.add_argument("--out", type=Path, default=Path("bench/results/false_stops.json"))
    args = parser.parse_args(argv)
    unknown = set(args.sounds or ()) - {s.name for s in SOUNDS}
    if unknown:
        parser.error(f"unknown sound(s) {sorted(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        runs = asyncio.run(bench(args))
    except StackNotInstalled as exc:
        print(exc, file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
