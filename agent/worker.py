"""The worker: one process that LiveKit dispatches calls to, and what happens on each call."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from livekit import api, rtc
from livekit.agents import AgentServer, JobContext, JobProcess, get_job_context
from livekit.plugins import silero

from agent.backends import build_services
from agent.call_policy import DurationLimit, SilencePolicy
from agent.sales_agent import SalesAgent
from agent.session import build_llm, build_session, room_options
from agent.settings import Settings, load_settings
from agent.state import CallState, Services
from agent.wrapup import Outbox, wrap_up
from tools.crm import Contact
from tools.errors import IntegrationError
from tools.phone import InvalidPhoneNumber, mask_phone, normalise_phone

logger = logging.getLogger("agent.worker")

CRM_LOOKUP_TIMEOUT_S = 1.5  # a slow CRM must not keep a caller waiting in silence
SIP_CALLER_NUMBER = "sip.phoneNumber"
SIP_TRUNK_NUMBER = "sip.trunkPhoneNumber"


def prewarm(proc: JobProcess) -> None:
    """Load models and build clients once per process, before any call arrives."""
    from livekit.local_inference import init_eot

    settings = load_settings()
    proc.userdata["settings"] = settings
    proc.userdata["services"] = build_services(settings)
    proc.userdata["outbox"] = Outbox(settings.data_dir / "outbox.sqlite3")
    proc.userdata["vad"] = silero.VAD.load(min_silence_duration=settings.vad_min_silence_seconds)
    init_eot()


async def entrypoint(ctx: JobContext) -> None:
    settings: Settings = ctx.proc.userdata["settings"]
    services: Services = ctx.proc.userdata["services"]
    dial = _dial_request(ctx.job.metadata)
    await ctx.connect()
    if dial is not None:
        participant = await _dial_out(ctx, dial)
    else:
        participant = await ctx.wait_for_participant()
    state = await start_call_state(
        services,
        call_id=ctx.job.id,
        direction="outbound" if dial else "inbound",
        participant=participant,
    )
    state.hangup = hang_up
    summarizer = build_llm(settings)
    session = build_session(settings, state, vad_model=ctx.proc.userdata["vad"])
    outbox: Outbox = ctx.proc.userdata["outbox"]

    async def finish() -> None:
        await wrap_up(state, history=session.history, summarizer=summarizer, outbox=outbox)

    ctx.add_shutdown_callback(finish)
    session.on("metrics_collected", lambda ev: log_turn_metrics(ev.metrics, call_id=ctx.job.id))
    SilencePolicy(session, state, timeout_s=settings.silence_timeout_seconds)
    limit = DurationLimit(session, state, max_seconds=settings.max_call_seconds)
    session.on("close", lambda _ev: limit.cancel())
    await session.start(agent=SalesAgent(state), room=ctx.room, room_options=room_options(settings))


_TURN_METRICS = {
    "eou_metrics": (
        "end_of_utterance_delay",
        "transcription_delay",
        "on_user_turn_completed_delay",
    ),
    "llm_metrics": ("ttft", "duration"),
    "tts_metrics": ("ttfb", "duration", "audio_duration"),
}


def log_turn_metrics(metrics: Any, *, call_id: str) -> None:
    """One line per turn stage (end of turn, LLM, TTS), so latency can be attributed from the
    logs; the end-of-turn line names the turn detector model that decided it."""
    fields = _TURN_METRICS.get(getattr(metrics, "type", ""))
    if fields is None:
        return
    parts = [f"{name}={getattr(metrics, name):.3f}" for name in fields]
    metadata = getattr(metrics, "metadata", None)
    if metadata is not None and metadata.model_name:
        parts.append(f"model={metadata.model_name}")
    if getattr(metrics, "cancelled", False):
        parts.append("cancelled")
    logger.info("%s %s", metrics.type, " ".join(parts), extra={"call_id": call_id})


async def start_call_state(
    services: Services,
    *,
    call_id: str,
    direction: str,
    participant: rtc.RemoteParticipant | None,
) -> CallState:
    """The call's state, with the caller looked up in the CRM before the first word."""
    attributes = dict(participant.attributes) if participant else {}
    state = CallState(
        call_id=call_id,
        services=services,
        direction="outbound" if direction == "outbound" else "inbound",
        started_at=services.now(),
        caller_phone=_phone(attributes.get(SIP_CALLER_NUMBER), services.default_region),
        our_number=_phone(attributes.get(SIP_TRUNK_NUMBER), services.default_region),
    )
    state.infer_zone_from_phone()
    if state.caller_phone:
        contact = await lookup_caller(services, state.caller_phone, call_id=call_id)
        if contact is not None:
            state.set_contact(contact)
    return state


async def lookup_caller(services: Services, phone: str, *, call_id: str) -> Contact | None:
    try:
        async with asyncio.timeout(CRM_LOOKUP_TIMEOUT_S):
            return await services.crm.find_contact_by_phone(phone)
    except (IntegrationError, TimeoutError) as exc:
        logger.warning("CRM lookup failed, greeting as a new caller: %r", exc,
                       extra={"call_id": call_id})  # fmt: skip
        return None


def _phone(raw: str | None, region: str) -> str | None:
    if not raw:
        return None
    try:
        return normalise_phone(raw, default_region=region)
    except InvalidPhoneNumber:
        logger.warning("caller number %s is not a valid phone number", mask_phone(raw))
        return None


async def hang_up() -> None:
    """Deleting the room ends the SIP leg too, so the caller hears the line close."""
    ctx = get_job_context()
    try:
        await ctx.delete_room()
    finally:
        ctx.shutdown(reason="agent ended the call")


def _dial_request(metadata: str | None) -> dict[str, Any] | None:
    """Outbound calls arrive as a dispatch whose metadata names the number to dial."""
    if not metadata:
        return None
    try:
        data = json.loads(metadata)
    except json.JSONDecodeError:
        logger.warning("dispatch metadata is not JSON; treating the call as inbound")
        return None
    return data if isinstance(data, dict) and data.get("phone_number") else None


async def _dial_out(ctx: JobContext, dial: dict[str, Any]) -> rtc.RemoteParticipant:
    number = normalise_phone(str(dial["phone_number"]))
    identity = f"sip-{number.lstrip('+')}"
    await ctx.api.sip.create_sip_participant(
        api.CreateSIPParticipantRequest(
            room_name=ctx.room.name,
            sip_trunk_id=str(dial["sip_trunk_id"]),
            sip_call_to=number,
            participant_identity=identity,
            wait_until_answered=True,
        )
    )
    return await ctx.wait_for_participant(identity=identity)


def build_server(settings: Settings) -> AgentServer:
    server = AgentServer(
        setup_fnc=prewarm,
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=(
            settings.livekit_api_secret.get_secret_value() if settings.livekit_api_secret else None
        ),
        host="127.0.0.1",
        num_idle_processes=1,
        load_threshold=settings.worker_load_threshold,
    )
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    return server
