"""The benchmarks' own set-up runs: a bench that breaks is found by `make test`, not by the
next person who needs figures."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

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


def test_the_lab_spawns_the_worker_module_it_is_given(tmp_path: Path) -> None:
    from callab.harness import CallLab, LabConfig
    from callab.scenarios import BENCH_SCRIPT

    config = LabConfig(workdir=tmp_path, script=BENCH_SCRIPT, utterances=[],
                       worker_module="no_such_worker_module", worker_args=("start",))  # fmt: skip
    lab = CallLab(config)
    worker = lab._spawn_worker({"PATH": os.environ.get("PATH", "")})
    assert worker.wait(timeout=30) != 0
    assert "No module named no_such_worker_module" in lab.worker_log()
