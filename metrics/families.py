"""The worker's metric families: what a call's job process records.

Defined once per process, at import, as prometheus_client expects; a labelled family holds
no value (and, in multiprocess mode, writes no file) until a label set is first used. Every
name here is listed in ``WORKER_FAMILIES``, which the dashboard test reads.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Seconds. Fine steps below one second, where the targets are (barge-in 0.3 s, greeting 1 s).
TURN_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
GREETING_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
BARGE_IN_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5, 2.0, 3.0)

ACTIVE_CALLS = Gauge(
    "sales_agent_active_calls",
    "Calls in progress (dialing included for outbound), summed over the worker's job processes",
    ["direction"],
    multiprocess_mode="livesum",
)
CALLS = Counter(
    "sales_agent_calls",
    "Calls wrapped up, by direction and disposition",
    ["direction", "disposition"],
)
GREETING = Histogram(
    "sales_agent_greeting_seconds",
    "From the caller on the line (inbound: entered the room, by livekit-server's clock; "
    "outbound: answered) to the agent's first audio",
    ["direction"],
    buckets=GREETING_BUCKETS,
)
TURN_STAGE = Histogram(
    "sales_agent_turn_stage_seconds",
    "One stage of a turn, from LiveKit Agents' metrics: end_of_utterance (end of speech to "
    "end of turn decided), transcription (end of speech to final transcript), llm_ttft, "
    "tts_ttfb",
    ["stage"],
    buckets=TURN_BUCKETS,
)
VOICE_TO_VOICE = Histogram(
    "sales_agent_voice_to_voice_seconds",
    "From the end of the caller's speech to the agent's reply starting to play",
    buckets=TURN_BUCKETS,
)
BARGE_IN_STOP = Histogram(
    "sales_agent_barge_in_stop_seconds",
    "From the caller starting to talk over the agent (VAD onset) to the agent's audio "
    "stopping; outcome interrupted (the agent yielded) or resumed (a false interruption)",
    ["outcome"],
    buckets=BARGE_IN_BUCKETS,
)
TOOL_ERRORS = Counter(
    "sales_agent_tool_errors",
    "Integration failures a function tool turned into a sentence for the agent, by "
    "integration and kind (timeout, unavailable, outcome_unknown, rejected)",
    ["integration", "kind"],
)

WORKER_FAMILIES = (
    ACTIVE_CALLS,
    CALLS,
    GREETING,
    TURN_STAGE,
    VOICE_TO_VOICE,
    BARGE_IN_STOP,
    TOOL_ERRORS,
)
