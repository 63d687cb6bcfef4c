"""The benchmarks' own set-up runs: a bench that breaks is found by `make test`, not by the
next person who needs figures."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
pytestmark = pytest.mark.unit


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_voice_latency_prepares_every_line_the_agent_says() -> None:
    bench = load("voice_latency")
    lines = bench._agent_lines()
    assert lines and all(line.strip() for line in lines)
    assert any(line.startswith("Thanks for calling") for line in lines)  # the greeting
    args = bench.parse_args(["--profile", "typical,fast", "--concurrency", "1,3"])
    assert args.profile == ["typical", "fast"] and args.concurrency == [1, 3]


def test_capacity_is_the_most_calls_all_served_within_the_slack_of_one_call() -> None:
    bench = load("voice_latency")

    def level(concurrency: int, p95: float | None, calls: int | None = None) -> dict:
        calls = concurrency if calls is None else calls
        return {"concurrency": concurrency, "placed": concurrency, "calls": calls,
                "v2v_ms": {"p50": p95, "p95": p95}}  # fmt: skip

    levels = [level(1, 1400), level(5, 1500), level(10, 1549), level(20, 1600)]
    found = bench.capacity(levels, worker_cpus=frozenset({1}))
    assert found["calls"] == 10 and found["calls_per_core"] == 10.0  # 1549 <= 1400 + 150
    refused = [level(1, 1400), level(5, 1420, calls=4)]  # one caller not served
    assert bench.capacity(refused, worker_cpus=None)["calls"] == 1
    assert bench.capacity([level(5, 1400)], worker_cpus=None) is None  # no one-call level


def test_the_csv_upload_bench_sends_only_valid_distinct_numbers() -> None:
    from integrations.phone import normalise_phone

    bench = load("csv_upload")
    rows = bench.csv_text(60_001).splitlines()[1:]
    phones = [row.split(",")[0] for row in rows]
    assert len(set(phones)) == 60_000  # six area codes of 10,000; the next one wraps
    for phone in phones[::997]:
        assert normalise_phone(phone, default_region="US") == phone


def test_the_speed_to_lead_stages_follow_the_marks() -> None:
    bench = load("speed_to_lead")
    lead = bench.LeadTimes(room="dial-call_x-1")
    marks = ["posted", *(mark for _, mark in bench.STAGES)]
    assert lead.stages_ms() is None
    lead.marks.update({mark: 100.0 + 0.01 * n for n, mark in enumerate(marks)})
    lead.marks["dial_sent"] = lead.marks["job_started"] - 0.005  # ran ahead: counted as 0
    stages = lead.stages_ms()
    assert stages is not None and set(stages) == {name for name, _ in bench.STAGES}
    assert round(stages["api"]) == 10 and stages["before_dial"] == 0.0
    assert round(stages["sip"]) == 20  # from job_started, the later of the two marks
    log = '{"room": "dial-call_x-1", "stage": "claimed", "t": 5.5}\nnot json\n{"room": "r"}'
    assert bench.log_marks(log) == [("dial-call_x-1", "claimed", 5.5)]


def test_the_reference_is_reported_beside_ours_as_ours_over_its() -> None:
    bench = load("voice_latency")

    def run(greeting: float, v2v: tuple[float, float], barge: float | None) -> dict:
        return {"placed": 3, "calls": 3, "turns": 18,
                "greeting_ms": {"p50": greeting, "p95": greeting},
                "v2v_ms": {"p50": v2v[0], "p95": v2v[1]},
                "barge_in_stop_ms": {"p50": barge, "p95": barge}}  # fmt: skip

    ours, reference = run(1400, (1500, 1800), 600), run(2800, (3000, 4500), None)
    found = bench.beside(ours, reference)
    assert found["ours_over_reference"] == {
        "greeting_p50": 0.5, "greeting_p95": 0.5, "v2v_p50": 0.5, "v2v_p95": 0.4,
        "barge_in_stop_p50": None, "barge_in_stop_p95": None,  # the reference measured none
    }  # fmt: skip
    assert found["reference"]["v2v_ms"] == {"p50": 3000, "p95": 4500}
    assert bench.parse_args(["--reference"]).reference
    assert not bench.parse_args([]).reference


def test_voice_latency_splits_the_transport_up_and_down_by_the_workers_clock() -> None:
    bench = load("voice_latency")
    call = bench.CallResult(v2v_ms=[1200.0], turn_spans=[(1000.0, 1001.2)])  # epoch s
    worker_log = (
        '{"msg": "turn_latency end_of_turn=0.600 llm_ttft=0.400 tts_ttfb=0.150 e2e=0.950'
        ' heard_end_ago=0.990 spoke_ago=0.040", "room": "call-1", "t": 1001.1}'
    )
    worker = bench.worker_turns(worker_log)
    [turn] = bench.turn_breakdown([call], worker, bench.PROFILES["typical"])
    assert turn["transport"] == 250.0  # 1200 at the phone, 950 in the worker
    assert (turn["uplink"], turn["downlink"]) == (110.0, 140.0)
    # a call whose spans do not match its turns is not split
    [unsplit] = bench.turn_breakdown(
        [bench.CallResult(v2v_ms=[1200.0])], worker, bench.PROFILES["typical"]
    )
    assert "uplink" not in unsplit and unsplit["transport"] == 250.0


def test_the_reference_runs_the_starter_module_with_the_reference_script() -> None:
    bench = load("voice_latency")
    args = bench.parse_args(["--reference", "--max-calls", "4"])
    latencies = bench.PROFILES["typical"]
    ours = bench.lab_config(args, Path("/tmp/x"), latencies, {}, reference=False)
    reference = bench.lab_config(args, Path("/tmp/x"), latencies, {}, reference=True)
    assert (ours.worker_module, ours.worker_args) == ("agent", ())
    assert ours.settings["WORKER_MAX_CALLS"] == "4"
    assert (reference.worker_module, reference.worker_args) == ("bench.reference_agent", ("start",))
    assert reference.settings == {} and reference.latencies == ours.latencies


def test_the_reference_script_says_our_replies_without_tools() -> None:
    from callab.scenarios import BENCH_SCRIPT, BENCH_UTTERANCES, bench_reference_script

    script = bench_reference_script("Thanks for calling.")
    history: list[dict] = [{"role": "system", "content": "Be brief."}]
    said = []
    for user in (None, *BENCH_UTTERANCES):
        if user is not None:
            history.append({"role": "user", "content": user})
        choice = script.choose(history, [])
        if choice.step_index is not None:  # "We use" alone gets the fallback
            said.append(choice.step.say)
            history.append({"role": "assistant", "content": choice.step.say})
    ours = [str(step["say"]) for step in BENCH_SCRIPT.raw_steps]
    assert said == ["Thanks for calling.", *ours]


async def test_the_reference_worker_builds_the_starter_session_offline() -> None:
    from livekit.agents import AgentSession

    reference = importlib.import_module("bench.reference_agent")
    env = {"DEEPGRAM_BASE_URL": "http://127.0.0.1:9/v1/listen", "DEEPGRAM_API_KEY": "k",
           "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "k",
           "CARTESIA_BASE_URL": "http://127.0.0.1:9", "CARTESIA_API_KEY": "k"}  # fmt: skip
    session = reference.build_session(reference.StandIns.from_env(env), vad_model=None)
    assert session.stt._opts.endpoint_url == env["DEEPGRAM_BASE_URL"]
    assert str(session.stt._opts.language) == "multi"
    assert str(session.llm._client.base_url).rstrip("/") == env["OPENAI_BASE_URL"]
    assert session.tts._opts.base_url == env["CARTESIA_BASE_URL"]
    assert session.turn_detection.model == "turn-detector-v1-mini"  # offline, local weights
    assert session.options.preemptive_generation["enabled"]
    livekit = AgentSession()  # LiveKit's defaults: the reference sets no delay of its own
    assert session.options.endpointing == livekit.options.endpointing
    assert session.options.interruption == livekit.options.interruption
    with pytest.raises(KeyError, match="OPENAI_BASE_URL"):  # never a vendor's public host
        reference.StandIns.from_env({k: v for k, v in env.items() if k != "OPENAI_BASE_URL"})


def test_the_lab_spawns_the_worker_module_it_is_given(tmp_path: Path) -> None:
    from callab.harness import CallLab, LabConfig
    from callab.scenarios import BENCH_SCRIPT

    config = LabConfig(workdir=tmp_path, script=BENCH_SCRIPT, utterances=[],
                       worker_module="no_such_worker_module", worker_args=("start",))  # fmt: skip
    lab = CallLab(config)
    worker = lab._spawn_worker({"PATH": os.environ.get("PATH", "")})
    assert worker.wait(timeout=30) != 0
    assert "No module named no_such_worker_module" in lab.worker_log()


def test_turn_metrics_read_both_workers_log_lines() -> None:
    bench = load("voice_latency")
    log = "\n".join([
        '{"msg": "eou_metrics end_of_utterance_delay=0.600 transcription_delay=0.300"}',
        # LiveKit's CLI (the reference worker) logs the text as `message`
        '{"message": "eou_metrics end_of_utterance_delay=2.600 transcription_delay=0.500"}',
        '{"message": "eou_metrics end_of_utterance_delay=2.700 transcription_delay=0.400"}',
    ])  # fmt: skip
    eou = bench.turn_metrics(log)["eou_metrics"]
    assert eou["end_of_utterance_delay"] == 2600 and eou["count"] == 3


def _loud(*stretches: tuple[float, float]) -> list[float]:
    """Start times of the 10 ms windows the agent was loud in, over [start, end) stretches."""
    return [round(s + i * 0.01, 2) for s, e in stretches for i in range(round((e - s) / 0.01))]


def test_false_stops_reads_a_stop_its_time_and_its_gap_from_the_recording() -> None:
    bench = load("false_stops")
    paused = _loud((0.0, 2.1), (4.5, 8.0))  # silent from 2.1 s to 4.5 s
    heard = bench.classify(paused, 1.5, until=8.0)
    assert (heard.speaking, heard.stopped) == (True, True)
    assert heard.stop_ms == 600.0 and heard.gap_ms == 2400.0
    never_back = bench.classify(_loud((0.0, 2.1)), 1.5, until=8.0)
    assert never_back.stopped and never_back.stop_ms == 600.0 and never_back.gap_ms is None


def test_false_stops_counts_no_stop_for_short_pauses_late_gaps_or_a_quiet_agent() -> None:
    bench = load("false_stops")
    breath = _loud((0.0, 2.0), (2.2, 8.0))  # 200 ms between words: below STOP_GAP_S
    assert bench.classify(breath, 1.5, until=8.0) == bench.Heard(speaking=True)
    sentence_end = _loud((0.0, 5.0), (5.6, 8.0))  # starts 3.5 s after the onset: not the sound
    assert not bench.classify(sentence_end, 1.5, until=8.0).stopped
    finished = _loud((0.0, 1.0))  # the agent was already done when the sound came
    assert bench.classify(finished, 1.5, until=8.0) == bench.Heard(speaking=False)


def test_false_stops_summary_gives_true_and_false_stop_rates_and_resumes() -> None:
    bench = load("false_stops")
    trials = [
        bench.Trial("no", "stop", speaking=True, stopped=True, stop_ms=500.0, replied=True),
        bench.Trial("no", "stop", speaking=True, stopped=False, replied=False),
        bench.Trial("cough", "no_stop", speaking=True, stopped=True, stop_ms=700.0,
                    gap_ms=2300.0, replied=False, resumed=True,
                    parts_ms={"to_vad": 250.0, "decision": 410.0, "downstream": 40.0}),
        bench.Trial("cough", "no_stop", speaking=True, stopped=False),
        bench.Trial("okay", "no_stop", speaking=True, stopped=True, stop_ms=650.0, replied=True),
        bench.Trial("okay", "no_stop", error="TimeoutError: no answer"),
        bench.Trial("okay", "no_stop", speaking=False),
    ]  # fmt: skip
    summary = bench.summarise(trials)
    stop, no_stop = summary["classes"]["stop"], summary["classes"]["no_stop"]
    assert (stop["trials"], stop["stop_rate"], stop["stop_ms"]["p95"]) == (2, 0.5, 500.0)
    assert (no_stop["trials"], no_stop["invalid"], no_stop["stop_rate"]) == (3, 2, 0.667)
    assert no_stop["resume_rate"] == 0.5 and no_stop["resume_gap_ms"]["p50"] == 2300.0
    assert no_stop["parts_ms"]["decision"]["p50"] == 410.0 and no_stop["parts_ms"]["stops"] == 1
    assert summary["sounds"]["okay"]["replied_rate"] == 1.0
    table = "\n".join(bench.table_rows({"settings": {}, "profile": "typical", **summary}))
    assert "ALL no_stop" in table and "67%" in table


def test_false_stops_splits_the_stop_time_with_the_worker_barge_in_line() -> None:
    bench = load("false_stops")
    line = (
        '{"msg": "barge_in outcome=resumed stop=0.410 talked_over_ago=1.000 stopped_ago=0.590",'
        ' "t": 1000.0}\nnot json\n{"msg": "turn_latency e2e=1.2", "t": 1001.0}'
    )
    lines = bench.barge_ins(line)
    assert lines == [("resumed", 999.0, 999.41)]
    trial = bench.Trial("cough", "no_stop", speaking=True, stopped=True, stop_ms=800.0)
    bench.split_stop(trial, 998.75, lines)
    assert trial.worker_outcome == "resumed"
    assert trial.parts_ms == {"to_vad": 250.0, "decision": 410.0, "downstream": 140.0}


def test_false_stops_sounds_are_fixed_and_at_phone_levels() -> None:
    from callab.audio import level_dbfs

    bench = load("false_stops")
    made = {s.name: s.make for s in bench.SOUNDS if s.heard == "" and s.name != "silence"}
    for name, make in made.items():
        first, second = make(), make()
        assert first.dtype == np.int16 and np.array_equal(first, second), name
        assert -45 < level_dbfs(first) < -10, name  # audible, never clipped to full scale
    assert {s.label for s in bench.SOUNDS} == {"stop", "no_stop"}
    args = bench.parse_args(["--min-interruption", "0.2,0.4", "--min-interruption-words", "0,1"])
    assert len(bench.setting_grid(args)) == 4


def test_an_unanswered_call_is_reported_with_what_the_phone_saw():
    """The benchmark counts every unanswered call as a failure and says why."""
    from types import SimpleNamespace

    from callab.phone import TestPhone
    from callab.sip_phone import PhoneEvent

    now = [100.0]
    phone = TestPhone(call_to="sip:+14155550199@127.0.0.1:5060", clock=lambda: now[0])
    assert phone.unanswered_cause() == "never dialled"
    events: list[PhoneEvent] = []
    phone._sip = SimpleNamespace(events=events, kinds=lambda: [e.kind for e in events])  # type: ignore[assignment]
    phone.dialed_at = 90.0
    assert phone.unanswered_cause() == "not answered, no ringing for 10.0 s"
    events.append(PhoneEvent(at=90.2, kind="ringing", fields={}))
    assert phone.unanswered_cause() == "not answered, ringing for 10.0 s"
    events.append(
        PhoneEvent(at=105.0, kind="rejected", fields={"status": 486, "reason": "Busy Here"})
    )
    assert phone.unanswered_cause() == "refused 486 Busy Here after 15.0 s"
    shutil.rmtree(phone._dir)


def test_the_workers_histograms_read_between_two_scrapes() -> None:
    """The benchmark reads the worker's /metrics before and after a level: the observations
    in between, their quantiles from the buckets as Prometheus estimates them."""
    from callab import prom

    def scrape(counts: dict[str, float], calls: float) -> prom.Samples:
        name = "sales_agent_voice_to_voice_seconds"
        samples: prom.Samples = {
            (f"{name}_bucket", frozenset({("le", le)})): n for le, n in counts.items()
        }
        samples[(f"{name}_count", frozenset())] = counts["+Inf"]
        samples[("sales_agent_calls_total", frozenset({("disposition", "booked")}))] = calls
        return samples

    before = scrape({"0.5": 1, "1.0": 2, "2.0": 2, "+Inf": 2}, calls=1)
    # 10 more: 4 in (0.5, 1.0], 6 in (1.0, 2.0]
    after = scrape({"0.5": 1, "1.0": 6, "2.0": 12, "+Inf": 12}, calls=3)
    h = prom.histogram_between(before, after, "sales_agent_voice_to_voice_seconds")
    assert h["count"] == 10
    assert h["p50"] == pytest.approx(1000 + 1000 * (5 - 4) / 6, abs=0.1)
    assert h["p95"] == pytest.approx(1000 + 1000 * (9.5 - 4) / 6, abs=0.1)
    assert prom.histogram_between(after, after, "sales_agent_voice_to_voice_seconds")["p50"] is None
    assert prom.quantile([(1.0, 0), (float("inf"), 3)], 0.5) == 1000.0  # beyond the top bound

    bench = load("voice_latency")
    figures = bench.worker_prometheus(before, after)
    assert figures["v2v_ms"]["count"] == 10 and figures["calls"] == {"booked": 2}
    assert "v2v 1167/1917 (n=10)" in bench.prometheus_line(figures)


def test_end_of_turn_measures_how_late_silero_calls_the_end_of_a_phone_line() -> None:
    bench = load("end_of_turn")
    [lag] = bench.silero_end_lags(["We need a better way to forecast sales."],
                                  np.random.default_rng(7))  # fmt: skip
    # after the line's fade-out, by less than the silence Silero waits (0.55 s) before its
    # event: the anchor, not the event's time
    assert 0 < lag < 550


def test_the_worker_cpu_is_read_per_thread_and_grouped_by_kind(tmp_path: Path) -> None:
    bench = load("voice_latency")
    task = tmp_path / "41" / "task"
    for tid, name, utime, stime in ((41, "python", 7, 3), (42, "tokio-rt-worker", 5, 1),
                                    (43, "a (b) c", 2, 0)):  # fmt: skip
        (task / str(tid)).mkdir(parents=True)
        fields = ["S", "1"] + ["0"] * 9 + [str(utime), str(stime)] + ["0"] * 30
        (task / str(tid) / "stat").write_text(f"{tid} ({name}) " + " ".join(fields))
    threads = sorted(bench.thread_ticks(41, proc=tmp_path))
    assert threads == [(41, "python", 10), (42, "tokio-rt-worker", 6), (43, "a (b) c", 2)]
    assert bench.thread_ticks(99, proc=tmp_path) == []  # gone
    kinds = [bench.thread_kind(n) for n in ("python3.11", "AudioEncoderQue", "a (b) c")]
    assert kinds == ["python", "opus_encode", "other"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads Linux's /proc")
def test_the_tree_sampler_counts_a_child_busy_thread_as_a_job_kind_not_the_worker() -> None:
    import subprocess
    import time

    import psutil

    bench = load("voice_latency")
    burn = "import time\nend = time.monotonic() + 1.5\nwhile time.monotonic() < end: pass"
    parent = subprocess.Popen(  # idle itself, like the worker; its child is the busy "job"
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])",
        ]
    )
    try:
        sampler = bench.TreeSampler(parent.pid)
        deadline = time.monotonic() + 10
        while not psutil.Process(parent.pid).children() and time.monotonic() < deadline:
            time.sleep(0.05)  # until the busy child is there to be seen
        sampler.sample(memory=False)
        time.sleep(0.8)
        sampler.sample(memory=False)
        kinds = sampler.cpu_by_kind()
    finally:
        parent.wait(timeout=10)
    assert kinds.get("python", 0) >= 0.2  # of the 0.8 s, on a shared core too
    assert kinds.get("worker_main", 0) < 0.1
