"""The voice benchmark's reference: LiveKit's agent starter (livekit-examples/
agent-starter-python, src/agent.py) as a worker on the lab's stack and stand-ins.

    python -m bench.reference_agent start     # CallLab(LabConfig(worker_module=...)) runs it

What it keeps from the starter: Deepgram nova-3 with `language="multi"`, an OpenAI chat model
(the starter's `gpt-5.2-chat-latest`), Cartesia sonic-3 with the starter's voice, silero VAD with
its defaults loaded in prewarm, preemptive generation on, every other turn setting left to
LiveKit's defaults (for this detector: endpointing 0.3 / 2.5 s; VAD interruptions after 0.5 s
of speech, false ones resumed after 2 s; adaptive interruption is off in production mode), an
`Agent` with instructions and no tools, `session.start` before `ctx.connect`. What differs, and
why (bench/README.md has the figures):

- the plugins, not LiveKit Inference: the starter's `inference.STT/LLM/TTS` go through LiveKit
  Cloud's gateway; here the same vendors' plugins reach the stand-ins at the base URLs the lab
  gives our worker, with the plugins' own defaults (the gateway's are not visible from here);
- the turn detector: the starter's `MultilingualModel` reads the transcript with weights
  downloaded from Hugging Face, which cannot be fetched here; this uses LiveKit's offline
  end-of-turn model, `inference.TurnDetector(version="v1-mini")` (the one LiveKit picks itself
  in production mode, shipped inside livekit-local-inference), which reads the last 1.2 s of
  the caller's audio instead. It is also the detector an `AgentSession` given none gets in
  LiveKit Agents 1.8. LiveKit's endpointing defaults follow the detector: 0.3 / 2.5 s for this
  one, 0.5 / 3.0 s for the starter's `MultilingualModel`;
- a greeting: the starter waits for the user to speak first; the bench's call starts with the
  agent, so `on_enter` asks for one with `generate_reply` (through the LLM, as LiveKit
  documents it; ours says a rendered greeting without the LLM);
- no ai-coustics noise cancellation (a licensed plugin, not installed; ours runs without one
  too), the lab's agent name (its dispatch rule names ours) and HTTP port, and one log line per
  turn metric so the bench can attribute the reference's time as it does ours.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    JobProcess,
    cli,
    inference,
    vad,
)
from livekit.agents.voice.turn import TurnHandlingOptions
from livekit.plugins import cartesia, deepgram, openai, silero

logger = logging.getLogger("bench.reference_agent")

STARTER_AGENT_NAME = "my-agent"  # the starter's; in the lab the dispatch rule names ours
STT_MODEL, STT_LANGUAGE = "nova-3", "multi"
LLM_MODEL = "gpt-5.2-chat-latest"
TTS_MODEL, TTS_VOICE = "sonic-3", "9626c31c-bec5-4cca-baa8-f8ba9e84c8bc"
INSTRUCTIONS = (
    "You are a friendly voice assistant on a phone call. Speak plain text only, one to three "
    "short sentences, one question at a time."
)
GREETING_INSTRUCTIONS = "Greet the caller and ask how you can help."


@dataclass(frozen=True)
class StandIns:
    """Where the vendors are: the same variables the lab gives our worker."""

    deepgram_url: str
    deepgram_key: str
    openai_url: str
    openai_key: str
    cartesia_url: str
    cartesia_key: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StandIns:
        return cls(
            deepgram_url=env["DEEPGRAM_BASE_URL"], deepgram_key=env["DEEPGRAM_API_KEY"],
            openai_url=env["OPENAI_BASE_URL"], openai_key=env["OPENAI_API_KEY"],
            cartesia_url=env["CARTESIA_BASE_URL"], cartesia_key=env["CARTESIA_API_KEY"],
        )  # fmt: skip


def turn_handling() -> TurnHandlingOptions:
    return {
        "turn_detection": inference.TurnDetector(version="v1-mini"),
        "preemptive_generation": {"enabled": True},
    }


def build_session(vendors: StandIns, *, vad_model: vad.VAD | None) -> AgentSession[None]:
    return AgentSession(
        stt=deepgram.STT(model=STT_MODEL, language=STT_LANGUAGE, api_key=vendors.deepgram_key,
                         base_url=vendors.deepgram_url),
        llm=openai.LLM(model=LLM_MODEL, api_key=vendors.openai_key, base_url=vendors.openai_url),
        tts=cartesia.TTS(model=TTS_MODEL, voice=TTS_VOICE, api_key=vendors.cartesia_key,
                         base_url=vendors.cartesia_url),
        vad=vad_model,
        turn_handling=turn_handling(),
    )  # fmt: skip


class ReferenceAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions=INSTRUCTIONS)

    async def on_enter(self) -> None:
        self.session.generate_reply(instructions=GREETING_INSTRUCTIONS)


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load()


async def entrypoint(ctx: JobContext) -> None:
    ctx.log_context_fields = {"room": ctx.room.name}
    session = build_session(StandIns.from_env(os.environ), vad_model=ctx.proc.userdata["vad"])
    session.on("metrics_collected", lambda ev: log_metrics(ev.metrics))
    await session.start(agent=ReferenceAgent(), room=ctx.room)
    await ctx.connect()


_METRIC_FIELDS = {
    "eou_metrics": ("end_of_utterance_delay", "transcription_delay"),
    "llm_metrics": ("ttft",),
    "tts_metrics": ("ttfb",),
}


def log_metrics(metrics: Any) -> None:
    """The lines bench/voice_latency.py's `turn_metrics` reads (as agent.worker logs them)."""
    fields = _METRIC_FIELDS.get(getattr(metrics, "type", ""))
    if fields is not None:
        values = " ".join(f"{name}={getattr(metrics, name):.3f}" for name in fields)
        logger.info("%s %s", metrics.type, values)


def build_server(*, agent_name: str, port: int) -> AgentServer:
    server = AgentServer(port=port)
    server.setup_fnc = prewarm
    server.rtc_session(entrypoint, agent_name=agent_name)
    return server


def main() -> None:
    env = os.environ
    agent_name = env.get("AGENT_NAME", STARTER_AGENT_NAME)
    cli.run_app(build_server(agent_name=agent_name, port=int(env.get("WORKER_HTTP_PORT", "8081"))))


if __name__ == "__main__":
    main()
