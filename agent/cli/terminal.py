"""`console`: talk to the agent from the terminal, with LiveKit's console (its microphone and
speaker, or typed text with `--text`). The session runs in this process, in a job LiveKit's
console simulates: no LiveKit server, no phone line, the configured (or embedded) CRM and
calendar. Text mode needs only the LLM's settings, so an OpenAI key, or OPENAI_BASE_URL of a
local OpenAI-compatible server, is enough to try the agent by typing.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from livekit.agents import AgentServer, AgentSession, JobContext, JobProcess, cli

from agent.backends import build_services
from agent.sales_agent import SalesAgent
from agent.session import build_llm, build_session, build_stt, build_tts, load_vad
from calls.call import Call, Services, new_call_state
from calls.control import HangsUpAfterSpeech
from calls.wrapup import WrapUp
from config import BusinessSettings, IntegrationSettings, LlmSettings, VoiceSettings
from config.loading import load_settings
from integrations.outbox import Outbox

logger = logging.getLogger("agent.console")


@dataclass(frozen=True)
class TextConsoleSettings:
    """Typed words in, text out: the LLM, and where calls are recorded."""

    llm: LlmSettings
    integrations: IntegrationSettings
    business: BusinessSettings


@dataclass(frozen=True)
class VoiceConsoleSettings:
    """The terminal's microphone and speaker: speech both ways, as on a call."""

    voice: VoiceSettings
    integrations: IntegrationSettings
    business: BusinessSettings


ConsoleSettings = TextConsoleSettings | VoiceConsoleSettings
CONSOLE_LOGS = ["--log-level", "INFO"]  # LiveKit's console defaults to DEBUG, over the talk


def run_console(*, text: bool, livekit_arguments: Sequence[str] = ()) -> int:
    """Load only the settings the mode uses (a missing one raises SettingsError), then hand
    the terminal to LiveKit's console with our server; ``livekit_arguments`` are its own
    options (``--input-device``, ``--record`` ...)."""
    kind: type[ConsoleSettings] = TextConsoleSettings if text else VoiceConsoleSettings
    settings = load_settings(kind)
    server = console_server(settings)
    quiet = [] if any(a.startswith("--log-level") for a in livekit_arguments) else CONSOLE_LOGS
    mode = ["--text"] if text else []
    sys.argv = ["python -m agent", "console", *mode, *quiet, *livekit_arguments]
    try:
        cli.run_app(server)
    except SystemExit as exc:  # typer ends with one, also on success
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def console_server(settings: ConsoleSettings) -> AgentServer:
    # Port 0: the console's health endpoint must not collide with a worker's.
    server = AgentServer(setup_fnc=functools.partial(prewarm, settings), port=0)
    server.rtc_session(entrypoint)
    return server


@dataclass(frozen=True)
class ConsoleKit:
    """What the console's job uses, built once before it starts."""

    settings: ConsoleSettings
    services: Services
    outbox: Outbox
    llm: Any
    summarizer: Any
    vad: Any  # voice mode only; None when typing

    def session_for(self, call: Call) -> AgentSession[Call]:
        settings = self.settings
        if isinstance(settings, TextConsoleSettings):
            return AgentSession[Call](llm=self.llm, userdata=call, max_tool_steps=5)
        voice = settings.voice
        return build_session(
            voice, call, vad_model=self.vad, llm=self.llm, stt=build_stt(voice),
            tts=build_tts(voice), user_away_timeout=settings.business.silence_timeout_seconds,
        )  # fmt: skip


def prewarm(settings: ConsoleSettings, proc: JobProcess) -> None:
    llm_settings = settings.llm if isinstance(settings, TextConsoleSettings) else settings.voice
    vad = None
    if isinstance(settings, VoiceConsoleSettings):
        vad = load_vad(settings.voice)
    proc.userdata["console"] = ConsoleKit(
        settings=settings,
        services=build_services(settings.integrations, settings.business),
        outbox=Outbox(settings.integrations.data_dir / "outbox.sqlite3"),
        llm=build_llm(llm_settings),
        summarizer=build_llm(llm_settings),
        vad=vad,
    )


async def entrypoint(ctx: JobContext) -> None:
    """One conversation, as an inbound call from an unknown number; recorded like a call (the
    wrap-up writes it to the CRM) when it ends: the agent hangs up, or Ctrl-C."""
    ctx.log_context_fields = {"call_id": ctx.job.id}
    kit: ConsoleKit = ctx.proc.userdata["console"]
    state = new_call_state(kit.services, call_id=ctx.job.id, direction="inbound",
                           caller_phone=None, our_number=None)  # fmt: skip
    call = Call(state=state, services=kit.services, control=ConsoleCallControl(ctx))
    wrapup = WrapUp(call, summarizer=kit.summarizer, outbox=kit.outbox)
    session = kit.session_for(call)

    async def record_call() -> None:
        result = await wrapup.run(session.history)
        if result is not None:
            where = "queued in the outbox" if result.queued else "written to the CRM"
            logger.info("conversation %s (%s)", where, result.record.disposition)

    ctx.add_shutdown_callback(record_call)
    session.on("conversation_item_added", GreetingEcho())
    await session.start(agent=SalesAgent(call), room=ctx.room)


class GreetingEcho:
    """LiveKit's text console prints the replies to what is typed; what the agent says before
    anything is typed (the greeting) is logged, so it is seen too."""

    def __init__(self) -> None:
        self._typed = False

    def __call__(self, event: Any) -> None:
        role = getattr(event.item, "role", None)
        self._typed = self._typed or role == "user"
        if role == "assistant" and not self._typed:
            logger.info("the agent: %s", event.item.text_content)


class ConsoleCallControl(HangsUpAfterSpeech):
    """Hanging up ends the conversation and the console; there is no one to transfer to."""

    def __init__(self, ctx: JobContext) -> None:
        super().__init__()
        self._ctx = ctx

    async def hang_up(self) -> None:
        async def leave_console() -> None:
            # LiveKit's console stops on a signal; the job's shutdown (the wrap-up) runs first.
            os.kill(os.getpid(), signal.SIGINT)

        self._ctx.add_shutdown_callback(leave_console)
        self._ctx.shutdown(reason="the agent ended the conversation")
