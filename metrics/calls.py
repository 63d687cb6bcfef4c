"""One call's metrics, read from its AgentSession's events in the call's job process."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from metrics.barge_in import BargeInClock, Outcome, Stop
from metrics.families import (
    ACTIVE_CALLS,
    BARGE_IN_STOP,
    CALLS,
    GREETING,
    TOOL_ERRORS,
    TURN_STAGE,
    VOICE_TO_VOICE,
)

logger = logging.getLogger("metrics.calls")

# What a reply's metrics say about the turn before it, logged as one line per reply.
_USER_TURN = (("end_of_turn", "end_of_turn_delay"), ("transcription", "transcription_delay"))
_REPLY = (("llm_ttft", "llm_node_ttft"), ("tts_ttfb", "tts_node_ttfb"), ("e2e", "e2e_latency"))
# Wall-clock times, logged as seconds before the line's own time (an epoch in a message reads
# as a phone number to the masking): the worker's end of the caller's speech and its first
# audio of the reply, by which a benchmark on the same host splits the transport up and down.
_HEARD_END, _SPOKE = ("heard_end_ago", "stopped_speaking_at"), ("spoke_ago", "started_speaking_at")

# LiveKit Agents' per-stage metrics (``metrics_collected``): the field each stage is read from.
_STAGES = {
    "eou_metrics": (("end_of_utterance", "end_of_utterance_delay"),
                    ("transcription", "transcription_delay")),
    "llm_metrics": (("llm_ttft", "ttft"),),
    "tts_metrics": (("tts_ttfb", "ttfb"),),
}  # fmt: skip


class CallMetrics:
    """Counts the call as active from construction until ``close`` (or the session's close),
    and records its greeting, turn stages, voice-to-voice, barge-ins and disposition."""

    def __init__(self, *, direction: str, clock: Callable[[], float] = time.time) -> None:
        self._direction = direction
        self._clock = clock
        self._answered_at: float | None = None
        self._greeted = False
        self._open = True
        self._session: Any = None
        self._barge_in = BargeInClock(self._record_barge_in)
        self._last_user_turn: dict[str, Any] = {}
        ACTIVE_CALLS.labels(direction).inc()

    def answered(self, *, at: float | None = None) -> None:
        """The caller is on the line (``at``, a Unix time; now if not given): the greeting
        clock starts."""
        self._answered_at = self._clock() if at is None else at

    def watch(self, session: Any) -> None:
        """Subscribe to an ``AgentSession``'s events (before ``session.start``)."""
        self._session = session
        session.on("metrics_collected", lambda ev: self.stage_metrics(ev.metrics))
        session.on("conversation_item_added", lambda ev: self.item_added(ev.item))
        session.on("agent_state_changed", self._agent_state_changed)
        session.on("user_state_changed", self._user_state_changed)
        session.on("agent_false_interruption", self._false_interruption)
        session.on("close", lambda _ev: self.close())

    def stage_metrics(self, metrics: Any) -> None:
        if getattr(metrics, "cancelled", False):
            return  # a preemptive generation thrown away: the caller never waited on it
        for stage, field in _STAGES.get(getattr(metrics, "type", ""), ()):
            seconds = getattr(metrics, field, None)
            if isinstance(seconds, int | float) and seconds >= 0:
                TURN_STAGE.labels(stage).observe(seconds)

    def item_added(self, item: Any) -> None:
        role, figures = getattr(item, "role", None), getattr(item, "metrics", None) or {}
        if role == "user":
            self._last_user_turn = figures
            return
        if role != "assistant":
            return
        latency = figures.get("e2e_latency")
        if isinstance(latency, int | float) and latency >= 0:
            VOICE_TO_VOICE.observe(latency)
            # One line per answered turn: where the worker's share of voice-to-voice went,
            # from the caller's end of speech as the worker heard it (bench/voice_latency.py).
            parts = [(name, self._last_user_turn.get(key)) for name, key in _USER_TURN]
            parts += [(name, figures.get(key)) for name, key in _REPLY]
            now = time.time()
            for (name, key), of in ((_HEARD_END, self._last_user_turn), (_SPOKE, figures)):
                if _is_time(of.get(key)):
                    parts.append((name, now - of[key]))
            logger.info(
                "turn_latency %s",
                " ".join(f"{n}={v:.3f}" for n, v in parts if isinstance(v, int | float)),
            )
        self._last_user_turn = {}

    def agent_state(self, state: str, *, at: float, speech: Any = None) -> None:
        if state == "speaking" and not self._greeted and self._answered_at is not None:
            self._greeted = True
            GREETING.labels(self._direction).observe(max(at - self._answered_at, 0.0))
        self._barge_in.agent_state(state, at=at, speech=speech)

    def caller_state(self, state: str, *, at: float) -> None:
        self._barge_in.caller_state(state, at=at)

    def ended(self, disposition: str) -> None:
        CALLS.labels(self._direction, disposition).inc()

    def close(self) -> None:
        if self._open:
            self._open = False
            ACTIVE_CALLS.labels(self._direction).dec()

    async def aclose(self) -> None:
        """``close`` as a job shutdown callback."""
        self.close()

    def _agent_state_changed(self, ev: Any) -> None:
        speech = getattr(self._session, "current_speech", None)
        self.agent_state(ev.new_state, at=ev.created_at, speech=speech)

    def _user_state_changed(self, ev: Any) -> None:
        self.caller_state(ev.new_state, at=ev.created_at)

    def _false_interruption(self, ev: Any) -> None:
        self._barge_in.false_interruption(resumed=bool(ev.resumed))

    def _record_barge_in(self, outcome: Outcome, stop: Stop) -> None:
        BARGE_IN_STOP.labels(outcome).observe(max(stop.seconds, 0.0))
        # When the caller talked over the agent and when it stopped, as seconds before this
        # line (Unix times would be masked as phone numbers): a bench adds the line's own time
        # and splits the stop time the phone heard into before, in and after this decision.
        now = self._clock()
        logger.info(
            "barge_in outcome=%s stop=%.3f talked_over_ago=%.3f stopped_ago=%.3f",
            outcome, stop.seconds, now - stop.talked_over_at, now - stop.stopped_at,
        )  # fmt: skip


def tool_failed(integration: str, kind: str) -> None:
    """A tool turned an integration failure into a sentence; ``integration`` as the tool names
    it ("CRM", "do-not-call list") becomes a label ("crm", "do_not_call_list")."""
    TOOL_ERRORS.labels(integration_label(integration), kind).inc()


def integration_label(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "unknown"


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0
