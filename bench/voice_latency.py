"""Voice latency benchmark: scripted calls through the real local stack and one worker.

    uv run python bench/voice_latency.py --profile typical --concurrency 1,10,20 \\
        --out bench/results/latest.json

Every number comes from a measurement: latencies at the test phone's recording (the caller's
side), CPU and memory of the worker process tree (psutil), and the worker's own per-turn
metrics log lines for attribution. Each call: greeting, three plain turns, a turn with a
mid-sentence pause (is the caller cut off?), and a barge-in over a long answer.

Turn settings can be swept, e.g. `--min-endpointing-delay 0.2,0.4,0.8`: every combination
runs as its own worker. `--out` gets {"runs": [...]} exactly; everything else (settings,
cut-off rates, attribution, raw samples) goes next to it as `<name>.details.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from callab import prom, sweep
from callab.harness import PROFILES, CallLab, LabConfig, Latencies, free_tcp_port
from callab.phone import TestPhone
from callab.scenarios import (
    BENCH_BARGE,
    BENCH_PAUSE,
    BENCH_SCRIPT,
    BENCH_TURNS,
    BENCH_UTTERANCES,
    CALLER,
    bench_reference_script,
)
from callab.sweep import bench_greeting, csv_floats, percentiles, sentences
from localstack import StackNotInstalled

QUIET_S = 0.8  # the caller answers once the agent has been silent this long
PAUSE_S = 1.5  # the caller's mid-sentence pause
BARGE_AFTER_S = 1.5  # the caller talks over the long answer this far into it
CALL_LIMIT_S = 150.0
SAMPLE_S = 0.5
MEMORY_EVERY = 4  # samples: memory every 2 s (smaps reads cost the load CPU)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# A job process's threads by their kernel name (15 characters at most), so the worker's CPU
# can be told apart: Python's threads are all "python" (the call's loop, Silero's executor,
# the recorder's encoder); the rest are LiveKit's native SDK.
THREAD_KINDS = (
    ("python", "python"),
    ("AudioEncoderQue", "opus_encode"),  # WebRTC encoding the agent's audio track
    ("tokio-rt-worker", "ffi_runtime"),  # LiveKit's Rust SDK under the Python one
    ("network_thread", "webrtc"),
    ("worker_thread", "webrtc"),
    ("signaling_threa", "webrtc"),
    ("SyntheticAudioD", "audio_io"),  # WebRTC's clock for a room with no sound card
    ("AudioSourceCapt", "audio_io"),
    ("livekit-audio", "audio_io"),
)
TURN_SETTINGS = {  # CLI flag -> worker setting (env name)
    "min_endpointing_delay": "MIN_ENDPOINTING_DELAY",
    "max_endpointing_delay": "MAX_ENDPOINTING_DELAY",
    "preemptive_generation": "PREEMPTIVE_GENERATION",
    "job_executor": "WORKER_JOB_EXECUTOR",
    **sweep.BARGE_IN_SETTINGS,
}


@dataclass
class CallResult:
    answer_ms: float | None = None  # INVITE sent -> 200 OK: the caller hears ringing meanwhile
    greeting_ms: float | None = None
    v2v_ms: list[float] = field(default_factory=list)
    # Per v2v turn, on the wall clock the worker logs in (epoch seconds): the caller's speech
    # ended at the phone, and the agent's reply reached it.
    turn_spans: list[tuple[float, float]] = field(default_factory=list)
    barge_in_stop_ms: float | None = None
    pause_cut_off: bool | None = None
    error: str | None = None

    def turn(self, ended_at: float, reply_at: float) -> None:
        """A turn the agent answered: the caller's end and the reply, on the phone's clock
        (time.monotonic())."""
        self.v2v_ms.append((reply_at - ended_at) * 1000)
        offset = time.time() - time.monotonic()
        self.turn_spans.append((ended_at + offset, reply_at + offset))


async def run_call(phone: TestPhone) -> CallResult:
    """One scripted call, measured at the phone."""
    result = CallResult()
    assert phone.joined_at is not None and phone.dialed_at is not None
    result.answer_ms = (phone.joined_at - phone.dialed_at) * 1000
    greeting = await phone.agent_starts_speaking(after=phone.joined_at, limit_s=60)
    result.greeting_ms = (greeting - phone.joined_at) * 1000
    since = phone.joined_at
    for line, _, _ in BENCH_TURNS:
        said = await phone.say_after_agent(line.spoken, since=since, quiet_s=QUIET_S)
        result.turn(
            said.ended_at, await phone.agent_starts_speaking(after=said.ended_at, limit_s=30)
        )
        since = said.ended_at
    first = await phone.say_after_agent(BENCH_PAUSE[0].spoken, since=since, quiet_s=QUIET_S)
    await asyncio.sleep(PAUSE_S)
    second = await phone.say(BENCH_PAUSE[1].spoken)
    reply = await phone.agent_starts_speaking(after=first.ended_at, limit_s=30)
    result.pause_cut_off = reply < second.ended_at
    if not result.pause_cut_off:
        result.turn(second.ended_at, reply)
    asked = await phone.say_after_agent(BENCH_BARGE[0].spoken, since=reply, quiet_s=QUIET_S)
    result.turn(asked.ended_at, await phone.agent_starts_speaking(after=asked.ended_at, limit_s=30))
    barge = await phone.say_over_agent(
        BENCH_BARGE[1].spoken, since=asked.ended_at, after_onset_s=BARGE_AFTER_S
    )
    answer = await phone.agent_starts_speaking(after=barge.ended_at, limit_s=30)
    result.turn(barge.ended_at, answer)
    over = [at for at in phone.recording.loud if barge.started_at <= at < answer]
    result.barge_in_stop_ms = (max(over, default=barge.started_at) - barge.started_at) * 1000
    await phone.agent_goes_quiet(for_s=QUIET_S, limit_s=30)
    return result


class TreeSampler:
    """CPU seconds and memory of a process and all its descendants, sampled.

    Memory is counted three ways. RSS summed over the tree counts every page the forkserver
    shares with its job processes once per process, so it overstates; PSS (each shared page
    split between the processes that map it) sums to what the tree really holds; USS (the
    pages only that process maps) is what a process costs the machine beyond the others."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self._cpu: dict[int, float] = {}
        self._first: dict[int, float] = {}
        # per thread, (pid, tid): its kind and CPU ticks, now and when first seen
        self._threads: dict[tuple[int, int], tuple[str, int]] = {}
        self._threads_first: dict[tuple[int, int], int] = {}
        self.peak_rss = 0
        self.peak_pss = 0
        # per process: its peak USS and PSS (bytes), for what one job process costs
        self.process_peaks: dict[int, tuple[int, int]] = {}
        self._samples = 0
        self._task: asyncio.Task[None] | None = None

    def _processes(self) -> Iterator[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            yield self._root
            yield from self._root.children(recursive=True)

    def sample(self, *, memory: bool = True) -> None:
        rss = pss = 0
        for process in self._processes():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = process.cpu_times()
                self._cpu[process.pid] = times.user + times.system
                self._first.setdefault(process.pid, self._cpu[process.pid])
                self._sample_threads(process.pid)
                if not memory:
                    continue
                full = process.memory_full_info()  # reads smaps: slower, so not every sample
                rss, pss = rss + full.rss, pss + full.pss
                uss0, pss0 = self.process_peaks.get(process.pid, (0, 0))
                self.process_peaks[process.pid] = (max(uss0, full.uss), max(pss0, full.pss))
        if memory:
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def _sample_threads(self, pid: int) -> None:
        main = pid == self._root.pid
        for tid, name, ticks in thread_ticks(pid):
            kind = "worker_main" if main else thread_kind(name)
            self._threads[pid, tid] = kind, ticks
            self._threads_first.setdefault((pid, tid), ticks)

    def cpu_seconds(self) -> float:
        return sum(self._cpu[pid] - self._first[pid] for pid in self._cpu)

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds by kind of thread (`THREAD_KINDS`; the worker's own process as
        ``worker_main``) since the first sample. A thread's time after the last sample that saw
        it is missed, so the kinds sum to a little under `cpu_seconds`."""
        kinds: dict[str, float] = {}
        for key, (kind, ticks) in self._threads.items():
            used = (ticks - self._threads_first[key]) / CLOCK_TICKS
            kinds[kind] = kinds.get(kind, 0.0) + used
        return kinds

    def job_process_mb(self, busy: int) -> dict[str, float | None]:
        """Median peak USS and PSS of the `busy` job processes that grew the most: those that
        held the calls (an idle warm process stays smaller)."""
        jobs = [peak for pid, peak in self.process_peaks.items() if pid != self._root.pid]
        held = sorted(jobs, reverse=True)[:busy]
        if not held:
            return {"uss": None, "pss": None}
        return {
            "uss": round(statistics.median(u for u, _ in held) / 2**20, 1),
            "pss": round(statistics.median(p for _, p in held) / 2**20, 1),
        }

    def memory_now(self) -> tuple[int, int]:
        """(RSS, PSS) of the tree now, in bytes."""
        peaks = self.peak_rss, self.peak_pss
        self.peak_rss = self.peak_pss = 0
        self.sample()
        now = self.peak_rss, self.peak_pss
        self.peak_rss, self.peak_pss = max(peaks[0], now[0]), max(peaks[1], now[1])
        return now

    async def __aenter__(self) -> TreeSampler:
        self.sample()
        self._first = dict(self._cpu)
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.sample()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            self._samples += 1
            self.sample(memory=self._samples % MEMORY_EVERY == 0)


def thread_ticks(pid: int, proc: Path = Path("/proc")) -> list[tuple[int, str, int]]:
    """A process's threads: (tid, kernel name, user + system CPU in clock ticks); none once
    it has gone, or off Linux."""
    threads = []
    with contextlib.suppress(OSError):
        for task in (proc / str(pid) / "task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (task / "stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2 :].split()
                # fields[0] is the state (the stat file's 3rd); utime and stime are its 14th, 15th
                threads.append((int(task.name), name, int(fields[11]) + int(fields[12])))
    return threads


def thread_kind(name: str) -> str:
    return next((kind for prefix, kind in THREAD_KINDS if name.startswith(prefix)), "other")


async def one_call(lab: CallLab, index: int, delay_s: float) -> tuple[CallResult, TestPhone]:
    await asyncio.sleep(delay_s)
    phone = await lab.place_call(CALLER, wait_answer=False)
    try:
        async with asyncio.timeout(CALL_LIMIT_S):
            try:
                await phone.answered()
            except Exception:  # a failed call is counted, not fatal to the run
                return CallResult(error=f"unanswered: {phone.unanswered_cause()}"), phone
            return await run_call(phone), phone
    except Exception as exc:
        return CallResult(error=f"{type(exc).__name__} during the call: {exc}"), phone
    finally:
        await phone.hang_up()


async def run_level(
    lab: CallLab, *, concurrency: int, stagger_s: float, repeat: int
) -> dict[str, Any]:
    """`repeat` rounds of `concurrency` simultaneous calls (staggered by `stagger_s`)."""
    assert lab.worker is not None
    metrics_port = lab.config.settings.get("WORKER_METRICS_PORT")
    scraped = await prom.scrape(int(metrics_port)) if metrics_port else None
    log_from = len(lab.worker_log())
    stt_from = len(lab.stt.utterances)
    idle_rss, idle_pss = TreeSampler(lab.worker.pid).memory_now()
    started = time.monotonic()
    outcomes: list[tuple[CallResult, TestPhone]] = []
    async with TreeSampler(lab.worker.pid) as worker:
        bench = psutil.Process()
        bench.cpu_percent()
        for _ in range(repeat):
            outcomes += await asyncio.gather(
                *(one_call(lab, i, i * stagger_s) for i in range(concurrency))
            )
        bench_cpu = bench.cpu_percent()
    wall = time.monotonic() - started
    prometheus = None
    if scraped is not None and metrics_port:
        await lab.wait_worker_idle()  # the last calls' wrap-ups count their outcomes
        prometheus = worker_prometheus(scraped, await prom.scrape(int(metrics_port)))
    results = [result for result, _ in outcomes]
    done = [r for r in results if r.error is None]
    return {
        "results": results,
        "wall_s": wall,
        "worker_cpu_pct": worker.cpu_seconds() / wall * 100,
        "worker_cpu_pct_by_kind": {
            kind: seconds / wall * 100 for kind, seconds in worker.cpu_by_kind().items()
        },
        "worker_peak_rss_mb": worker.peak_rss / 2**20,
        "worker_idle_rss_mb": idle_rss / 2**20,
        "worker_peak_pss_mb": worker.peak_pss / 2**20,
        "worker_idle_pss_mb": idle_pss / 2**20,
        "job_process_mb": worker.job_process_mb(busy=max(1, min(concurrency, len(done)))),
        "bench_process_cpu_pct": bench_cpu,
        "calls": len(done),
        "errors": [r.error for r in results if r.error],
        "worker_metrics": turn_metrics(lab.worker_log()[log_from:]),
        "prometheus": prometheus,
        "worker_turns": worker_turns(lab.worker_log()[log_from:]),
        # what the STT stand-in actually took per utterance (its speech end to its text sent)
        "stt_ms": [
            round(u.transcription_s * 1000, 1)
            for u in lab.stt.utterances[stt_from:]
            if u.transcription_s is not None
        ],
    }


_TURN_LINE = re.compile(r"turn_latency ((?:\w+=[\d.\-]+ ?)+)")


def worker_turns(log: str) -> list[list[dict[str, float]]]:
    """Each call's answered turns as the worker measured them (``metrics.calls`` logs one
    ``turn_latency`` line per reply), calls in the order they first appear in the log."""
    calls: dict[str, list[dict[str, float]]] = {}
    for record in _json_lines(log):
        match = _TURN_LINE.search(_message(record))
        if match:
            pairs = (pair.split("=", 1) for pair in match.group(1).split())
            turn = {name: float(value) * 1000 for name, value in pairs}
            logged_ms = float(record.get("t", 0)) * 1000
            for anchor, ago in (("heard_end_at", "heard_end_ago"), ("spoke_at", "spoke_ago")):
                if ago in turn and logged_ms:  # epoch ms, from the line's own time
                    turn[anchor] = logged_ms - turn.pop(ago)
            calls.setdefault(str(record.get("room", "")), []).append(turn)
    return list(calls.values())


def turn_breakdown(
    results: Sequence[CallResult],
    worker: Sequence[Sequence[dict[str, float]]],
    latencies: Latencies,
) -> list[dict[str, float]]:
    """Per answered turn, where its voice-to-voice went. Parts, in ms:
    - ``end_of_turn``: the worker's end of the caller's speech to its decision that the turn
      is over (VAD silence, endpointing delay, end-of-turn model);
    - ``provider``: the LLM's time to first token and the TTS's time to first audio as the
      worker measured them, after the decision (the stand-ins' configured times plus their
      HTTP and websocket round trips); with preemptive generation part of the LLM's time
      overlaps the end-of-turn wait, so this is an upper bound;
    - ``our_code``: the rest of the worker's own end-of-speech to first-audio time (our hooks,
      LiveKit Agents' scheduling, audio output); negative when preemptive generation hid
      some of the LLM's time inside the end-of-turn wait;
    - ``transport``: the phone's voice-to-voice minus the worker's (G.711 and Opus framing,
      jitter buffers, the bridge, livekit-server, both ways), split by the wall clock into
      ``uplink`` (the caller's end at the phone to the worker's end of speech: the way in, and
      how late after the audio's end Silero calls it; bench/end_of_turn.py measures that part
      alone) and ``downlink`` (the worker's first audio to the phone hearing it).
    A call's turns are matched in order, and only when the phone and the worker counted the
    same number of answered turns for it (calls matched in the order they started)."""
    turns: list[dict[str, float]] = []
    done = [r for r in results if r.error is None]
    if len(done) != len(worker):
        return turns
    for result, measured in zip(done, worker, strict=True):
        if len(result.v2v_ms) != len(measured):
            continue
        spans = result.turn_spans if len(result.turn_spans) == len(measured) else []
        for i, (v2v, turn) in enumerate(zip(result.v2v_ms, measured, strict=True)):
            if "e2e" not in turn or "end_of_turn" not in turn:
                continue
            provider = turn.get("llm_ttft", latencies.llm_ttft_ms) + turn.get(
                "tts_ttfb", latencies.tts_ttfb_ms
            )
            turns.append({
                "v2v": round(v2v, 1), "worker_e2e": round(turn["e2e"], 1),
                "end_of_turn": round(turn["end_of_turn"], 1),
                "transcription": round(turn.get("transcription", float("nan")), 1),
                "provider": round(provider, 1),
                "our_code": round(turn["e2e"] - turn["end_of_turn"] - provider, 1),
                "transport": round(v2v - turn["e2e"], 1),
            })  # fmt: skip
            if spans and "heard_end_at" in turn and "spoke_at" in turn:
                ended, replied = spans[i]
                turns[-1]["uplink"] = round(turn["heard_end_at"] - ended * 1000, 1)
                turns[-1]["downlink"] = round(replied * 1000 - turn["spoke_at"], 1)
    return turns


_METRIC_LINE = re.compile(r"(eou_metrics|llm_metrics|tts_metrics) ((?:\w+=[\w.\-]+ ?)+)")


def turn_metrics(log: str) -> dict[str, dict[str, Any]]:
    """Medians of the worker's per-turn metric lines (see agent.worker.log_turn_metrics)."""
    values: dict[str, dict[str, list[float]]] = {}
    models: dict[str, set[str]] = {}
    for record in _json_lines(log):
        match = _METRIC_LINE.search(_message(record))
        if not match:
            continue
        kind, pairs = match.groups()
        for name, value in (pair.split("=", 1) for pair in pairs.split() if "=" in pair):
            if name == "model":
                models.setdefault(kind, set()).add(value)
            else:
                values.setdefault(kind, {}).setdefault(name, []).append(float(value))
    return {
        kind: {name: round(statistics.median(v) * 1000) for name, v in fields.items()}
        | {"count": max(len(v) for v in fields.values()), "models": sorted(models.get(kind, ()))}
        for kind, fields in values.items()
    }


def _message(record: dict[str, Any]) -> str:
    """A log line's text: ours logs it as `msg`, LiveKit's CLI (the reference) as `message`."""
    return str(record.get("msg", record.get("message", "")))


def _json_lines(log: str) -> Iterator[dict[str, Any]]:
    for line in log.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if isinstance(record, dict):
                yield record


BREAKDOWN_PARTS = ("end_of_turn", "provider", "our_code", "transport", "uplink", "downlink",
                   "worker_e2e")  # fmt: skip


BREAKDOWN_PARTS = ("end_of_turn", "provider", "our_code", "transport", "uplink", "downlink",
                   "worker_e2e")  # fmt: skip


def summarise(
    profile: str, latencies: Latencies, concurrency: int, level: dict[str, Any]
) -> dict[str, Any]:
    done = [r for r in level["results"] if r.error is None]
    v2v = [ms for r in done for ms in r.v2v_ms]
    # Provider time as the stand-ins took it: the STT's actual time (its end-of-speech
    # window is the stand-in's, never ours) and the LLM's and TTS's configured times.
    stt = statistics.median(level["stt_ms"]) if level["stt_ms"] else latencies.stt_final_ms
    provider = stt + latencies.llm_ttft_ms + latencies.tts_ttfb_ms
    turns = turn_breakdown(level["results"], level["worker_turns"], latencies)
    return {
        "profile": profile,
        "concurrency": concurrency,
        "placed": len(level["results"]),
        "calls": level["calls"],
        "turns": len(v2v),
        "answer_ms": percentiles([r.answer_ms for r in done if r.answer_ms is not None]),
        "greeting_ms": percentiles([r.greeting_ms for r in done if r.greeting_ms is not None]),
        "v2v_ms": percentiles(v2v),
        "provider_ms": round(provider, 1),
        "overhead_ms": percentiles([ms - provider for ms in v2v]),
        "breakdown_ms": {
            part: percentiles([t[part] for t in turns if part in t]) for part in BREAKDOWN_PARTS
        }
        | {"turns": len(turns), "stt_actual": percentiles(level["stt_ms"])},
        "barge_in_stop_ms": percentiles(
            [r.barge_in_stop_ms for r in done if r.barge_in_stop_ms is not None]
        ),
        "worker_rss_mb_per_call": round(
            level["worker_peak_rss_mb"] / _served(concurrency, level), 1
        ),
        "worker_pss_mb": round(level["worker_peak_pss_mb"], 1),
        "worker_pss_mb_per_call": round(
            level["worker_peak_pss_mb"] / _served(concurrency, level), 1
        ),
        "job_process_mb": level["job_process_mb"],
        "worker_cpu_pct": round(level["worker_cpu_pct"], 1),
        "worker_cpu_pct_by_kind": {
            kind: round(pct, 1)
            for kind, pct in sorted(level["worker_cpu_pct_by_kind"].items(), key=lambda kv: -kv[1])
        },
        "worker_prometheus": level["prometheus"],
    }


STAGES = ("end_of_utterance", "transcription", "llm_ttft", "tts_ttfb")


def worker_prometheus(before: prom.Samples, after: prom.Samples) -> dict[str, Any]:
    """What the worker's own /metrics recorded during a level (the Grafana dashboard's
    figures), beside what the phone measured: its histograms' p50 / p95 (ms, from the
    buckets) and its counters' increase."""

    def increase(name: str, label: str) -> dict[str, int]:
        was = prom.by_label(before, name, label)
        now = prom.by_label(after, name, label)
        return {k: int(v - was.get(k, 0)) for k, v in now.items() if v - was.get(k, 0)}

    return {
        "v2v_ms": prom.histogram_between(before, after, "sales_agent_voice_to_voice_seconds"),
        "greeting_ms": prom.histogram_between(before, after, "sales_agent_greeting_seconds"),
        "barge_in_stop_ms": prom.histogram_between(
            before, after, "sales_agent_barge_in_stop_seconds", outcome="interrupted"
        ),
        "stages_ms": {
            stage: prom.histogram_between(
                before, after, "sales_agent_turn_stage_seconds", stage=stage
            )
            for stage in STAGES
        },
        "calls": increase("sales_agent_calls_total", "disposition"),
        "tool_errors": increase("sales_agent_tool_errors_total", "integration"),
    }


def _served(concurrency: int, level: dict[str, Any]) -> int:
    """Calls the worker held at once, at most: refused calls hold no memory."""
    return max(1, min(concurrency, level["calls"]))


def details(run: dict[str, Any], settings: dict[str, str], level: dict[str, Any]) -> dict:
    done = [r for r in level["results"] if r.error is None]
    pauses = [r.pause_cut_off for r in done if r.pause_cut_off is not None]
    return {
        "profile": run["profile"],
        "concurrency": run["concurrency"],
        "settings": settings,
        "cut_off_rate": round(sum(pauses) / len(pauses), 3) if pauses else None,
        "pause_turns": len(pauses),
        "errors": level["errors"],
        "wall_s": round(level["wall_s"], 1),
        "worker_peak_rss_mb": round(level["worker_peak_rss_mb"], 1),
        "worker_idle_rss_mb": round(level["worker_idle_rss_mb"], 1),
        "worker_idle_pss_mb": round(level["worker_idle_pss_mb"], 1),
        "bench_process_cpu_pct": level["bench_process_cpu_pct"],
        "worker_metrics_median_ms": level["worker_metrics"],
        "turns": turn_breakdown(level["results"], level["worker_turns"], PROFILES[run["profile"]]),
        "calls_raw": [asdict(r) for r in level["results"]],
    }


REFERENCE_MODULE = "bench.reference_agent"  # LiveKit's agent starter, on the same stand-ins


async def bench(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    runs: list[dict] = []
    extra: list[dict] = []
    for profile in args.profile:
        ours: list[tuple[dict[str, Any], dict[str, str]]] = []
        for settings in setting_grid(args):
            levels = await run_worker(args, profile, settings, reference=False)
            runs += [run for run, _ in levels]
            extra += [more for _, more in levels]
            ours += [(run, settings) for run, _ in levels]
            found = capacity([run for run, _ in levels], worker_cpus=args.pin_worker)
            if found is not None:
                extra.append({"profile": profile, "settings": settings, "capacity": found})
                print(f"    capacity: {found['text']}", flush=True)
        if args.reference:
            levels = await run_worker(args, profile, {}, reference=True)
            runs += [run for run, _ in levels]
            extra += [more for _, more in levels]
            for run, settings in ours:
                same = [ref for ref, _ in levels if ref["concurrency"] == run["concurrency"]]
                if same:
                    run |= beside(run, same[0])
                    print_ratio(run, settings)
    return runs, extra


async def run_worker(
    args: argparse.Namespace, profile: str, settings: dict[str, str], *, reference: bool
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every level of `args.concurrency` against one worker (ours with `settings`, or the
    reference) in a lab of its own: (summary, details) per level."""
    latencies = PROFILES[profile]
    levels = []
    with _workdir(args.keep_logs, profile, settings, reference=reference) as workdir:
        config = lab_config(args, workdir, latencies, settings, reference=reference)
        async with CallLab(config) as lab:
            await lab.tts.warm_up(_agent_lines(), sample_rate=24000)
            for concurrency in args.concurrency:
                level = await run_level(
                    lab, concurrency=concurrency, stagger_s=args.stagger, repeat=args.repeat
                )
                run = summarise(profile, latencies, concurrency, level)
                run["worker"] = "reference" if reference else "ours"
                levels.append((run, details(run, settings, level)))
                print_row(*levels[-1])
    return levels


@contextlib.contextmanager
def _workdir(
    keep: Path | None, profile: str, settings: dict[str, str], *, reference: bool
) -> Iterator[Path]:
    """The lab's directory (the worker's and the stack's logs, the stand-ins' records): a
    temporary one, or with `--keep-logs` one kept under it, named after the run."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="voice-bench-") as tmp:
            yield Path(tmp)
        return
    name = "-".join([profile, "reference" if reference else "ours",
                     *(f"{k}={v}" for k, v in sorted(settings.items()))])  # fmt: skip
    path = keep / re.sub(r"[^\w.=-]", "_", name)
    path.mkdir(parents=True, exist_ok=False)
    print(f"logs of this run: {path}", flush=True)
    yield path


def lab_config(
    args: argparse.Namespace,
    workdir: Path,
    latencies: Latencies,
    settings: dict[str, str],
    *,
    reference: bool,
) -> LabConfig:
    common: dict[str, Any] = {"workdir": workdir, "utterances": BENCH_UTTERANCES,
                              "latencies": latencies, "worker_cpus": args.pin_worker}  # fmt: skip
    if reference:  # LiveKit's defaults, whatever ours are swept over
        script = bench_reference_script(bench_greeting(announce=True))
        return LabConfig(script=script, worker_module=REFERENCE_MODULE, worker_args=("start",),
                         **common)  # fmt: skip
    fixed = {"MAX_CALL_SECONDS": "600", "SILENCE_TIMEOUT_SECONDS": "30",
             "WORKER_METRICS_PORT": str(free_tcp_port())}  # fmt: skip
    if args.max_calls:
        fixed["WORKER_MAX_CALLS"] = str(args.max_calls)
    return LabConfig(script=BENCH_SCRIPT, settings={**fixed, **settings}, **common)


COMPARED = ("greeting_ms", "v2v_ms", "barge_in_stop_ms")


def beside(ours: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """The reference's figures for the same profile and concurrency, and ours ÷ its (below 1:
    ours is faster), per p50 and p95; None where either side measured nothing."""
    ratio = {
        f"{name.removesuffix('_ms')}_{p}": _ratio(ours[name][p], reference[name][p])
        for name in COMPARED
        for p in ("p50", "p95")
    }
    figures = {name: reference[name] for name in ("placed", "calls", "turns", *COMPARED)}
    return {"reference": figures, "ours_over_reference": ratio}


def _ratio(ours: float | None, reference: float | None) -> float | None:
    if ours is None or not reference:
        return None
    return round(ours / reference, 2)


CAPACITY_SLACK_MS = 150.0  # a level counts while its v2v p95 is within this of one call's


def capacity(runs: Sequence[dict[str, Any]], *, worker_cpus: frozenset[int] | None) -> dict | None:
    """The most concurrent calls that were all answered and all served with a voice-to-voice
    p95 within CAPACITY_SLACK_MS of the one-call level's, and that per worker CPU."""
    base = next((r for r in runs if r["concurrency"] == 1 and r["v2v_ms"]["p95"]), None)
    if base is None or len(runs) < 2:
        return None
    limit = base["v2v_ms"]["p95"] + CAPACITY_SLACK_MS
    held = [
        r["concurrency"] for r in runs
        if r["calls"] == r["placed"]
        and r["v2v_ms"]["p95"] is not None and r["v2v_ms"]["p95"] <= limit
    ]  # fmt: skip
    cpus = len(worker_cpus) if worker_cpus else (os.cpu_count() or 1)
    calls = max(held, default=0)
    where = f"on {cpus} worker CPU(s)" + (" (pinned)" if worker_cpus else " (shared with the load)")
    return {
        "calls": calls,
        "worker_cpus": cpus,
        "calls_per_core": round(calls / cpus, 1),
        "v2v_p95_limit_ms": limit,
        "text": f"{calls} calls with v2v p95 <= {limit:.0f} ms (one call's + "
        f"{CAPACITY_SLACK_MS:.0f}) {where}: {calls / cpus:.1f} calls per core",
    }


def _agent_lines() -> list[str]:
    """Everything the agent says, split by sentence as the TTS stand-in synthesizes it."""
    texts = [bench_greeting(announce=True)]
    texts += [str(s["say"]) for s in BENCH_SCRIPT.raw_steps if s.get("say")]
    return sentences(texts)


def setting_grid(args: argparse.Namespace) -> list[dict[str, str]]:
    return sweep.setting_grid(args, TURN_SETTINGS)


HEADER = (
    f"{'profile':8} {'conc':>4} {'calls':>5} {'turns':>5} {'answer p50/95':>12} "
    f"{'greet p50/p95':>14} {'v2v p50/p95':>12} {'overhead p50/p95':>17} {'barge p50/p95':>13} "
    f"{'cut-off':>7} {'PSS MB/call':>11} {'job USS':>7} {'cpu%':>6}  settings"
)


def _transport_split(parts: dict[str, Any]) -> str:
    up, down = parts["uplink"]["p50"], parts["downlink"]["p50"]
    return "" if up is None or down is None else f" = uplink {up:.0f} + downlink {down:.0f}"


def print_row(run: dict[str, Any], extra: dict[str, Any]) -> None:
    def pair(name: str) -> str:
        p = run[name]
        return "-" if p["p50"] is None else f"{p['p50']:.0f}/{p['p95']:.0f}"

    cut = extra["cut_off_rate"]
    settings = " ".join(f"{k}={v}" for k, v in extra["settings"].items()) or "defaults"
    if run.get("worker") == "reference":
        settings = "reference (LiveKit agent starter, LiveKit's defaults)"
    print(
        f"{run['profile']:8} {run['concurrency']:>4} {run['calls']:>5} {run['turns']:>5} "
        f"{pair('answer_ms'):>12} {pair('greeting_ms'):>14} {pair('v2v_ms'):>12} "
        f"{pair('overhead_ms'):>17} "
        f"{pair('barge_in_stop_ms'):>13} {'-' if cut is None else f'{cut:.0%}':>7} "
        f"{run['worker_pss_mb_per_call']:>11} {run['job_process_mb']['uss'] or '-':>7} "
        f"{run['worker_cpu_pct']:>6}  {settings}",
        flush=True,
    )
    parts = run["breakdown_ms"]
    if parts["turns"]:
        print("    where the time goes, p50 ms over " + f"{parts['turns']} turns: " + ", ".join(
            f"{name} {parts[name]['p50']:.0f}"
            for name in ("end_of_turn", "provider", "our_code", "transport")
        ) + _transport_split(parts)
          + f" (the STT stand-in took {parts['stt_actual']['p50']} ms)", flush=True)  # fmt: skip
    if run.get("worker_cpu_pct_by_kind"):
        print("    " + cpu_line(run["worker_cpu_pct_by_kind"], run["concurrency"]), flush=True)
    if run.get("worker_prometheus"):
        print("    " + prometheus_line(run["worker_prometheus"]), flush=True)
    errors = extra["errors"]
    if errors:
        unanswered = sum(1 for error in errors if error.startswith("unanswered"))
        print(f"    {len(errors)} call(s) failed, {unanswered} of them unanswered:", flush=True)
        for error in errors:
            print(f"      {error}", flush=True)


def cpu_line(by_kind: dict[str, float], concurrency: int) -> str:
    """The worker's CPU by kind of thread, % of a core over the level, and per call (the warm
    spare job processes count in the job kinds too)."""
    shown = [(kind, pct) for kind, pct in by_kind.items() if pct >= 0.05]
    parts = ", ".join(f"{kind} {pct:.1f} ({pct / concurrency:.1f})" for kind, pct in shown)
    return f"worker CPU by thread, % of a core (per call at {concurrency} at once): {parts}"


def prometheus_line(figures: dict[str, Any]) -> str:
    def pair(histogram: dict[str, Any]) -> str:
        p50, p95 = histogram["p50"], histogram["p95"]
        if p50 is None:
            return "-"
        return f"{p50:.0f}/{p95:.0f} (n={histogram['count']})"

    stages = ", ".join(f"{name} {pair(h)}" for name, h in figures["stages_ms"].items())
    return (
        f"worker /metrics, p50/p95 ms: v2v {pair(figures['v2v_ms'])}, greeting "
        f"{pair(figures['greeting_ms'])}, barge-in {pair(figures['barge_in_stop_ms'])}; "
        f"{stages}; calls {figures['calls'] or '-'}, tool errors {figures['tool_errors'] or 0}"
    )


def print_ratio(run: dict[str, Any], settings: dict[str, str]) -> None:
    ratio = run["ours_over_reference"]

    def pair(name: str) -> str:
        p50, p95 = ratio[f"{name}_p50"], ratio[f"{name}_p95"]
        return "-" if p50 is None or p95 is None else f"{p50:.2f}/{p95:.2f}"

    named = "".join(f"{k}={v} " for k, v in settings.items())
    print(f"    {run['profile']} x{run['concurrency']} {named}ours ÷ reference, p50/p95: "
          f"greeting {pair('greeting')}, v2v {pair('v2v')}, barge-in {pair('barge_in_stop')}",
          flush=True)  # fmt: skip


def _cpus(text: str) -> frozenset[int]:
    cpus = frozenset(int(v) for v in text.split(","))
    if not cpus < os.sched_getaffinity(0):
        raise argparse.ArgumentTypeError(
            f"needs a proper subset of this machine's CPUs {sorted(os.sched_getaffinity(0))}"
        )
    return cpus


def _bools(text: str) -> list[str]:
    return [str(v.strip().lower() in ("1", "true", "yes", "on")).lower() for v in text.split(",")]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="typical", type=lambda t: t.split(","),
                        help=f"comma list of {', '.join(PROFILES)}")  # fmt: skip
    parser.add_argument("--concurrency", default=[1], type=lambda t: [int(v) for v in t.split(",")])
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--stagger", type=float, default=0.5, help="seconds between call starts")
    parser.add_argument("--keep-logs", type=Path, default=None, metavar="DIR",
                        help="keep each run's worker and stack logs under DIR")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="rounds of calls per level")
    parser.add_argument("--min-endpointing-delay", type=csv_floats, default=None, metavar="S[,S]")
    parser.add_argument("--max-endpointing-delay", type=csv_floats, default=None, metavar="S[,S]")
    parser.add_argument("--preemptive-generation", type=_bools, default=None, metavar="BOOL[,BOOL]")
    parser.add_argument("--max-calls", type=int, default=None, metavar="N",
                        help="the worker's WORKER_MAX_CALLS (its call slots)")  # fmt: skip
    parser.add_argument("--job-executor", type=lambda t: t.split(","), default=None,
                        metavar="KIND[,KIND]",
                        help="process,thread: the worker's WORKER_JOB_EXECUTOR")  # fmt: skip
    parser.add_argument("--pin-worker", type=_cpus, default=None, metavar="CPU[,CPU]",
                        help="run the worker on these CPUs and everything else (phones, "
                        "stand-ins, livekit-server, the bridge) on the others")  # fmt: skip
    parser.add_argument("--reference", action="store_true",
                        help="also run every level against LiveKit's agent starter pipeline "
                        "(bench/reference_agent.py) and report ours ÷ its")  # fmt: skip
    sweep.add_barge_in_flags(parser)
    args = parser.parse_args(argv)
    unknown = [p for p in args.profile if p not in PROFILES]
    if unknown:
        parser.error(f"unknown profile(s) {unknown}; choose from {sorted(PROFILES)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pin_worker:
        # Before any thread or child exists: livekit-server, the bridge, the phones and the
        # stand-ins all inherit the other CPUs, and the worker is moved to its own.
        os.sched_setaffinity(0, os.sched_getaffinity(0) - args.pin_worker)
    print(HEADER, flush=True)
    try:
        runs, extra = asyncio.run(bench(args))
    except StackNotInstalled as exc:
        print(exc, file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    side = args.out.with_name(args.out.stem + ".details.json")
    side.write_text(json.dumps({"runs": extra}, indent=2, default=str) + "\n")
    print(f"wrote {args.out} and {side}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
