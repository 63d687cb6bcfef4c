"""The worker's /metrics after a real call: the real livekit-server, the worker as a
subprocess (`python -m agent` with WORKER_METRICS_PORT), the stand-ins, and the test phone
asking a question and then talking over the agent's long answer. The call runs in one of
the worker's job processes; the main process serves the sum, so what moves here proves the
metrics cross the process boundary."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from callab.audio import AudioToolMissing
from callab.harness import CallLab, LabConfig, free_tcp_port
from callab.prom import Samples, by_label, scrape, total
from callab.scenarios import BARGE_IN_LINES, BARGE_IN_SCRIPT, CALLER, script
from localstack import StackNotInstalled

pytestmark = pytest.mark.e2e


async def scrape_until(port: int, name: str, *, limit_s: float = 40.0) -> Samples:
    deadline = time.monotonic() + limit_s
    while not total(samples := await scrape(port), name):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not move within {limit_s:.0f} s")
        await asyncio.sleep(0.5)
    return samples


async def start_measured_lab(tmp_path: Path, port: int, **config: Any) -> CallLab:
    settings = {"WORKER_METRICS_PORT": str(port)}
    try:
        return await CallLab(
            LabConfig(workdir=tmp_path / "lab", settings=settings, **config)
        ).__aenter__()
    except (StackNotInstalled, AudioToolMissing) as exc:
        pytest.fail(f"{exc}", pytrace=False)


async def test_one_call_moves_the_worker_metrics_across_its_processes(tmp_path: Path) -> None:
    port = free_tcp_port()
    question, interruption = BARGE_IN_LINES
    lab = await start_measured_lab(
        tmp_path, port, script=BARGE_IN_SCRIPT, utterances=[question.heard, interruption.heard]
    )
    try:
        idle = await scrape(port)
        assert total(idle, "sales_agent_active_calls") == 0
        assert total(idle, "sales_agent_greeting_seconds_count") == 0

        phone = await lab.place_call(CALLER)
        try:
            assert phone.joined_at is not None
            asked = await phone.say_after_agent(question.spoken, since=phone.joined_at)
            during = await scrape(port)
            barge = await phone.say_over_agent(
                interruption.spoken, since=asked.ended_at, after_onset_s=2.0
            )
            reply_at = await phone.agent_starts_speaking(after=barge.ended_at, limit_s=30)
            await phone.agent_goes_quiet(for_s=1.0, limit_s=30)
        finally:
            await phone.hang_up()
        await lab.wait_worker_idle()
        after = await scrape_until(port, "sales_agent_calls_total")
    finally:
        await lab.aclose()

    # while the call was up: one active call, counted in its job process, and the SDK's own
    # job gauge from the main process (missing if prometheus_client was imported too early)
    assert total(during, "sales_agent_active_calls", direction="inbound") == 1
    assert total(during, "lk_agents_active_job_count") == 1
    assert total(during, "sales_agent_greeting_seconds_count", direction="inbound") == 1
    greeting_s = total(during, "sales_agent_greeting_seconds_sum", direction="inbound")
    heard_greeting_s = phone.recording.loud[0] - phone.joined_at
    print(f"greeting: worker {greeting_s * 1000:.0f} ms, phone {heard_greeting_s * 1000:.0f} ms")
    assert 0 < greeting_s < 10

    assert total(after, "sales_agent_active_calls") == 0
    assert by_label(after, "sales_agent_calls_total", "disposition") == {"hung_up": 1}
    stages = by_label(after, "sales_agent_turn_stage_seconds_count", "stage")
    assert set(stages) == {"end_of_utterance", "transcription", "llm_ttft", "tts_ttfb"}
    assert total(after, "sales_agent_voice_to_voice_seconds_count") >= 1

    stops = total(after, "sales_agent_barge_in_stop_seconds_count")
    assert stops >= 1
    stop_s = total(after, "sales_agent_barge_in_stop_seconds_sum") / stops
    talking_over = [at for at in phone.recording.loud if barge.started_at <= at < reply_at]
    heard_stop_s = max(talking_over, default=barge.started_at) - barge.started_at
    print(f"barge-in stop: worker {stop_s * 1000:.0f} ms, phone {heard_stop_s * 1000:.0f} ms")
    assert 0 < stop_s < 1.5


async def test_an_outbound_call_never_answered_is_counted_not_reached_and_never_greeted(
    tmp_path: Path,
) -> None:
    # No trunk by that id: LiveKit refuses the dial at once and the job ends itself.
    port = free_tcp_port()
    lab = await start_measured_lab(tmp_path, port, script=script([]), utterances=[])
    try:
        await lab.dispatch_outbound(CALLER, sip_trunk_id="ST_no_such_trunk")
        after = await scrape_until(port, "sales_agent_calls_total")
        await lab.wait_worker_idle()
        settled = await scrape(port)
    finally:
        await lab.aclose()
    calls = {dict(ls)["disposition"]: v for (n, ls), v in after.items()
             if n == "sales_agent_calls_total" and ("direction", "outbound") in ls}  # fmt: skip
    assert calls == {"not_reached": 1}
    assert total(settled, "sales_agent_active_calls") == 0
    assert total(settled, "sales_agent_greeting_seconds_count") == 0
