"""What the worker records per call, read back from the registry: greeting, turn stages,
voice-to-voice, barge-in stops, active calls, dispositions and tool failures; and the
dashboard queries only what is exported."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import ToolError, llm, utils
from livekit.agents.metrics import EOUMetrics, LLMMetrics, TTSMetrics
from livekit.agents.voice.events import (
    AgentFalseInterruptionEvent,
    AgentStateChangedEvent,
    CloseEvent,
    ConversationItemAddedEvent,
    MetricsCollectedEvent,
    UserStateChangedEvent,
)
from prometheus_client import REGISTRY

import metrics
from integrations.errors import IntegrationError, OutcomeUnknown, TemporarilyUnavailable
from metrics.calls import CallMetrics
from tools.tool_support import speakable_failures

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """How much each named sample moved since the block started (the registry is the
    process's own, shared by every test)."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self._samples = samples
        self._before = [sample(name, **labels) for name, labels in samples]

    def now(self) -> list[float]:
        return [
            round(sample(name, **labels) - before, 6)
            for (name, labels), before in zip(self._samples, self._before, strict=True)
        ]


class FakeSession(utils.EventEmitter[str]):
    """What CallMetrics reads of an AgentSession: its events and its current speech."""

    def __init__(self) -> None:
        super().__init__()
        self.current_speech: FakeSpeech | None = None

    def agent(self, old: str, new: str, at: float) -> None:
        ev = AgentStateChangedEvent(old_state=old, new_state=new, created_at=at)  # type: ignore[arg-type]
        self.emit("agent_state_changed", ev)

    def caller(self, old: str, new: str, at: float) -> None:
        ev = UserStateChangedEvent(old_state=old, new_state=new, created_at=at)  # type: ignore[arg-type]
        self.emit("user_state_changed", ev)


class FakeSpeech:
    def __init__(self) -> None:
        self.interrupted = False
        self._done = False
        self._callbacks: list[Callable[[Any], None]] = []

    def done(self) -> bool:
        return self._done

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._callbacks.append(callback)

    def finish(self, *, interrupted: bool) -> None:
        self.interrupted = interrupted
        self._done = True
        for callback in self._callbacks:
            callback(self)


def watched(
    direction: str = "inbound", clock: Callable[[], float] = lambda: 100.0
) -> tuple[CallMetrics, FakeSession]:
    session = FakeSession()
    call = CallMetrics(direction=direction, clock=clock)
    call.watch(session)
    return call, session


def test_the_greeting_is_timed_from_the_answer_to_the_first_agent_audio_once() -> None:
    greeting = Delta(
        ("sales_agent_greeting_seconds_count", {"direction": "outbound"}),
        ("sales_agent_greeting_seconds_sum", {"direction": "outbound"}),
        ("sales_agent_greeting_seconds_bucket", {"direction": "outbound", "le": "1.0"}),
    )
    call, session = watched("outbound", clock=lambda: 100.0)
    session.agent("initializing", "listening", at=99.0)
    call.answered()
    session.agent("listening", "speaking", at=101.25)
    session.agent("speaking", "listening", at=104.0)
    session.agent("listening", "speaking", at=105.0)  # a later turn is not the greeting
    assert greeting.now() == [1.0, 1.25, 0.0]
    call.close()


def test_the_greeting_can_be_timed_from_when_the_caller_entered_the_room() -> None:
    greeting = Delta(("sales_agent_greeting_seconds_sum", {"direction": "inbound"}))
    call, session = watched("inbound", clock=lambda: 100.0)
    call.answered(at=98.5)  # livekit-server's join time, before the job even started
    session.agent("listening", "speaking", at=100.5)
    assert greeting.now() == [2.0]
    call.close()


def test_no_greeting_is_recorded_for_a_call_never_answered() -> None:
    greeting = Delta(("sales_agent_greeting_seconds_count", {"direction": "outbound"}))
    call, session = watched("outbound")
    session.agent("listening", "speaking", at=101.0)
    assert greeting.now() == [0.0]
    call.close()


def _llm_metrics(*, ttft: float, cancelled: bool) -> LLMMetrics:
    return LLMMetrics(
        label="llm", request_id="r", timestamp=0, duration=1.0, ttft=ttft, cancelled=cancelled,
        completion_tokens=1, prompt_tokens=1, prompt_cached_tokens=0, total_tokens=2,
        tokens_per_second=1.0,
    )  # fmt: skip


def test_turn_stages_come_from_the_sdk_metrics_and_a_cancelled_generation_is_skipped() -> None:
    stages = ("end_of_utterance", "transcription", "llm_ttft", "tts_ttfb")
    sums = Delta(*[("sales_agent_turn_stage_seconds_sum", {"stage": s}) for s in stages])
    counts = Delta(*[("sales_agent_turn_stage_seconds_count", {"stage": s}) for s in stages])
    call, session = watched()
    eou = EOUMetrics(
        timestamp=0, end_of_utterance_delay=0.58, transcription_delay=0.41,
        on_user_turn_completed_delay=0.0,
    )  # fmt: skip
    tts = TTSMetrics(
        label="tts", request_id="r", timestamp=0, ttfb=0.15, duration=1.0, audio_duration=2.0,
        cancelled=False, characters_count=20, streamed=True,
    )  # fmt: skip
    for event in (eou, _llm_metrics(ttft=0.4, cancelled=False),
                  _llm_metrics(ttft=0.3, cancelled=True), tts):  # fmt: skip
        session.emit("metrics_collected", MetricsCollectedEvent(metrics=event))
    assert sums.now() == [0.58, 0.41, 0.4, 0.15]
    assert counts.now() == [1.0, 1.0, 1.0, 1.0]
    call.close()


def test_voice_to_voice_is_the_replies_e2e_latency(caplog) -> None:
    v2v = Delta(("sales_agent_voice_to_voice_seconds_count", {}),
                ("sales_agent_voice_to_voice_seconds_sum", {}))  # fmt: skip
    call, session = watched()
    now = time.time()
    reply = {"e2e_latency": 1.5, "llm_node_ttft": 0.4, "tts_node_ttfb": 0.15,
             "started_speaking_at": now - 0.5}  # fmt: skip
    heard = {"end_of_turn_delay": 0.5, "stopped_speaking_at": now - 2.0}
    with caplog.at_level("INFO", logger="metrics.calls"):
        for message in (
            llm.ChatMessage(role="assistant", content=["Hello!"]),  # the greeting: no user turn
            llm.ChatMessage(role="user", content=["hi"], metrics=heard),
            llm.ChatMessage(role="assistant", content=["Sure."], metrics=reply),
        ):
            session.emit("conversation_item_added", ConversationItemAddedEvent(item=message))
    assert v2v.now() == [1.0, 1.5]
    # the turn's breakdown as the worker saw it, one line per answered turn
    [line] = caplog.records
    assert line.getMessage().startswith(
        "turn_latency end_of_turn=0.500 llm_ttft=0.400 tts_ttfb=0.150 e2e=1.500 heard_end_ago="
    )
    # the anchors as seconds before the line: a benchmark adds the line's time back
    ago = dict(pair.split("=") for pair in line.getMessage().split()[1:])
    assert line.created - float(ago["heard_end_ago"]) == pytest.approx(now - 2.0, abs=0.002)
    assert line.created - float(ago["spoke_ago"]) == pytest.approx(now - 0.5, abs=0.002)
    call.close()


def _barge_in_delta() -> Delta:
    return Delta(
        *[
            (f"sales_agent_barge_in_stop_seconds_{part}", {"outcome": outcome})
            for outcome in ("interrupted", "resumed")
            for part in ("count", "sum")
        ]
    )


def test_a_barge_in_that_interrupts_the_agent_is_timed_to_its_audio_stopping() -> None:
    stops = _barge_in_delta()
    call, session = watched()
    session.current_speech = speech = FakeSpeech()
    session.agent("listening", "speaking", at=10.0)
    session.caller("listening", "speaking", at=12.0)
    session.agent("speaking", "listening", at=12.45)  # paused, not yet decided
    assert stops.now() == [0.0, 0.0, 0.0, 0.0]
    speech.finish(interrupted=True)
    assert stops.now() == [1.0, 0.45, 0.0, 0.0]
    call.close()


def test_a_barge_in_is_logged_with_its_times_for_the_bench(
    caplog: pytest.LogCaptureFixture,
) -> None:
    call, session = watched(clock=lambda: 13.5)
    session.current_speech = speech = FakeSpeech()
    session.agent("listening", "speaking", at=10.0)
    with caplog.at_level(logging.INFO, logger="metrics.calls"):
        session.caller("listening", "speaking", at=12.0)
        session.agent("speaking", "listening", at=12.45)
        speech.finish(interrupted=True)  # logged at 13.5
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("barge_in")]
    assert line == "barge_in outcome=interrupted stop=0.450 talked_over_ago=1.500 stopped_ago=1.050"
    call.close()


def test_a_speech_already_interrupted_when_the_audio_stops_is_counted_at_once() -> None:
    stops = _barge_in_delta()
    call, session = watched()
    session.current_speech = speech = FakeSpeech()
    session.agent("listening", "speaking", at=10.0)
    session.caller("listening", "speaking", at=12.0)
    speech.interrupted = True
    session.agent("speaking", "listening", at=12.3)
    assert stops.now() == [1.0, 0.3, 0.0, 0.0]
    call.close()


def test_a_false_interruption_counts_as_a_stop_that_resumed() -> None:
    stops = _barge_in_delta()
    call, session = watched()
    session.current_speech = speech = FakeSpeech()
    session.agent("listening", "speaking", at=10.0)
    session.caller("listening", "speaking", at=12.0)
    session.agent("speaking", "listening", at=12.5)
    session.caller("speaking", "listening", at=12.6)
    session.emit("agent_false_interruption", AgentFalseInterruptionEvent(resumed=True))
    session.agent("listening", "speaking", at=14.0)
    speech.finish(interrupted=False)
    assert stops.now() == [0.0, 0.0, 1.0, 0.5]
    call.close()


def test_the_agent_finishing_its_sentence_or_talking_through_a_cough_is_no_stop() -> None:
    stops = _barge_in_delta()
    call, session = watched()
    session.current_speech = first = FakeSpeech()
    session.agent("listening", "speaking", at=10.0)
    session.caller("listening", "speaking", at=11.0)  # a cough the agent talks through
    session.caller("speaking", "listening", at=11.2)
    session.agent("speaking", "listening", at=13.0)
    first.finish(interrupted=False)
    session.current_speech = second = FakeSpeech()
    session.agent("listening", "speaking", at=20.0)
    session.caller("listening", "speaking", at=21.0)
    session.agent("speaking", "listening", at=21.1)  # it was at its last word
    second.finish(interrupted=False)
    assert stops.now() == [0.0, 0.0, 0.0, 0.0]
    call.close()


def test_a_call_is_active_until_it_closes_and_counted_by_disposition() -> None:
    active = Delta(("sales_agent_active_calls", {"direction": "inbound"}))
    calls = Delta(("sales_agent_calls_total", {"direction": "inbound", "disposition": "booked"}))
    call, session = watched()
    assert active.now() == [1.0]
    call.ended("booked")
    session.emit("close", CloseEvent(reason="user_initiated"))  # type: ignore[arg-type]
    call.close()  # the job's shutdown too: counted out once
    assert (active.now(), calls.now()) == ([0.0], [1.0])


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (TimeoutError(), "timeout"),
        (TemporarilyUnavailable("503"), "unavailable"),
        (OutcomeUnknown("lost"), "outcome_unknown"),
        (IntegrationError("400 bad property"), "rejected"),
    ],
)
async def test_a_tool_failure_is_counted_by_integration_and_kind(
    failure: Exception, kind: str
) -> None:
    errors = Delta(
        ("sales_agent_tool_errors_total", {"integration": "do_not_call_list", "kind": kind}),
        ("sales_agent_tool_errors_total", {"integration": "calendar", "kind": kind}),
    )
    with pytest.raises(ToolError):
        async with speakable_failures("do-not-call list"):
            raise failure
    assert errors.now() == [1.0, 0.0]


# --- the dashboard -------------------------------------------------------------------------

DASHBOARD = REPO / "metrics" / "grafana-dashboard.json"
_PROMQL_WORDS = frozenset({
    "sum", "avg", "min", "max", "count", "rate", "irate", "increase", "histogram_quantile",
    "by", "without", "and", "or", "unless", "on", "ignoring", "time",
})  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not its functions, labels or ranges)."""
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without)\s*\([^)]*\)", " ", expr)
    return {word for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare)} - _PROMQL_WORDS


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    nested = [p for row in panels for p in row.get("panels", [])]
    return [t["expr"] for p in panels + nested for t in p.get("targets", [])]


def test_the_checker_catches_a_misspelt_metric() -> None:
    exported = metrics.exported_names()
    expr = 'sum by (le) (rate(sales_agnet_calls_total{direction="inbound"}[5m]))'
    assert metric_names(expr) - exported == {"sales_agnet_calls_total"}


def test_every_dashboard_query_reads_only_exported_metrics() -> None:
    exported = metrics.exported_names()
    exprs = dashboard_exprs()
    assert exprs
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"reads no metric: {expr}"
        assert names <= exported, f"not exported: {names - exported} in {expr}"


def test_every_exported_family_has_a_panel() -> None:
    read = {name for expr in dashboard_exprs() for name in metric_names(expr)}
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", n) for n in read}
    exported = {re.sub(r"_(total|bucket|sum|count|created)$", "", n)
                for n in metrics.exported_names()}  # fmt: skip
    assert exported <= families


def test_bucket_bounds_the_dashboard_names_exist() -> None:
    from metrics import families

    buckets = {
        "sales_agent_greeting_seconds": families.GREETING_BUCKETS,
        "sales_agent_barge_in_stop_seconds": families.BARGE_IN_BUCKETS,
        "sales_agent_voice_to_voice_seconds": families.TURN_BUCKETS,
        "sales_agent_turn_stage_seconds": families.TURN_BUCKETS,
    }
    named = [
        (name, float(le))
        for expr in dashboard_exprs()
        for name, le in re.findall(r'(\w+)_bucket\{le="([^"]+)"\}', expr)
    ]
    assert named
    for name, le in named:
        assert le in buckets[name], f"{name} has no bucket le={le}"
