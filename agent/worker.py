"""The worker: one process that LiveKit dispatches calls to, and what happens on each call."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from livekit import api, rtc
from livekit.agents import (
    AgentServer,
    AgentSession,
    JobContext,
    JobExecutorType,
    JobProcess,
    RecordingOptions,
)
from livekit.agents.types import ATTRIBUTE_AGENT_NAME
from livekit.agents.utils import http_context

from agent import hot_paths, priority
from agent.attempts import AttemptReports
from agent.backends import DialerDoNotCall, build_services
from agent.call_control import LiveKitCallControl
from agent.call_policy import DurationLimit, SilencePolicy
from agent.capacity import CallEnds, CallSlots, report_slot_changes_at_once
from agent.preload import PRELOAD_MODULES
from agent.sales_agent import SalesAgent
from agent.session import (
    build_llm,
    build_session,
    build_stt,
    build_tts,
    load_vad,
    room_options,
)
from agent.settings import WorkerSettings
from calls.call import Call, Services, new_call_state
from calls.call_files import CallFiles
from calls.state import CallState, Direction, Lead
from calls.wrapup import WrapUp
from dialer import AttemptRef, OutcomeReporter, build_reporter, open_store
from dialer.policy import DialPolicy
from integrations.crm import Contact
from integrations.errors import IntegrationError
from integrations.masking import mask
from integrations.outbox import Outbox
from integrations.phone import InvalidPhoneNumber, normalise_phone
from journal import CallJournal
from metrics import CallMetrics, forget_finished_processes
from outage import OutageCallbacks, OutageGuard, prepare_apology
from recording import CallRecorder
from tools.function_tools import sales_tools
from transfer import (
    ConsoleOffers,
    DeskSettings,
    Roster,
    TransferDesk,
    hold_music_file,
    load_routing,
)
from voicemail import CalleeScreen, ScreenTimings, handle_answer, participant_audio

logger = logging.getLogger("agent.worker")

CRM_LOOKUP_TIMEOUT_S = 1.5  # a slow CRM must not keep a caller waiting in silence
QUIET_CALLEE_S = 2.0  # an outbound callee who says nothing after picking up is greeted anyway
SIP_CALLER_NUMBER = "sip.phoneNumber"
SIP_TRUNK_NUMBER = "sip.trunkPhoneNumber"


@dataclass(frozen=True)
class DialRequest:
    """An outbound call: a dispatch whose metadata names the number, the trunk and the lead."""

    phone_number: str
    sip_trunk_id: str
    lead: Lead | None = None

    @property
    def identity(self) -> str:
        return f"sip-{self.phone_number.lstrip('+')}"


def prewarm(
    settings: WorkerSettings, proc: JobProcess, *, call_ends: CallEnds | None = None
) -> None:
    """Load models and build clients once per process, before any call arrives. The settings
    come from the main process, so a job process never re-reads the environment; so do
    `call_ends`, where a call marks its slot free at the hang-up (agent/capacity.py). At a
    low priority: a process warms up while other calls are live (agent/priority.py)."""
    started = time.perf_counter()
    priority.at_low_priority(lambda: _warm(settings, proc, call_ends))
    logger.debug("job process warm", extra={"seconds": round(time.perf_counter() - started, 3)})


def _warm(settings: WorkerSettings, proc: JobProcess, call_ends: CallEnds | None) -> None:
    from livekit.local_inference import init_eot

    from agent import first_use  # done already in a process forked from the forkserver

    first_use.warm()
    proc.userdata["settings"] = settings
    proc.userdata["call_ends"] = call_ends
    warm_tls_context()
    # Outbound attempts the dialer placed report back to its queue, and an opt-out on any
    # call goes on its do-not-call list: the same store the dialer uses.
    queue = open_store(settings.queue, data_dir=settings.integrations.data_dir)
    proc.userdata["reporter"] = build_reporter(settings.dialer, settings.business, queue=queue)
    proc.userdata["services"] = build_services(
        settings.integrations, settings.business, do_not_call=DialerDoNotCall(queue)
    )
    proc.userdata["outbox"] = Outbox(settings.integrations.data_dir / "outbox.sqlite3")
    proc.userdata["roster"] = Roster(queue)  # the reps warm transfers go to
    proc.userdata["offers"] = ConsoleOffers(queue)  # transfers offered at the rep console
    proc.userdata["hold_music"] = hold_music_file(settings.integrations.data_dir / "cache")
    proc.userdata["queue"] = queue
    proc.userdata["dial_policy"] = DialPolicy.from_settings(settings.dialer, settings.business)
    # Said when a provider is down mid-call, so recorded now, while the TTS answers.
    proc.userdata["apology"] = prepare_apology(
        settings.integrations.data_dir / "cache",
        voice_key=f"{settings.voice.cartesia_model}:{settings.voice.cartesia_voice}",
        make_tts=lambda http: build_tts(settings.voice, http_session=http),
    )
    proc.userdata["vad"] = load_vad(settings.voice)
    hot_paths.warm_schemas(sales_tools(proc.userdata["services"].criteria))
    init_eot()
    # Built while the process waits for a call (it takes one only): on an outbound call they
    # are built while the phone rings, and every millisecond there is the screen's margin.
    proc.userdata["speech"] = SpeechClients.build(settings)


def warm_tls_context() -> None:
    """Build the TLS context of LiveKit's per-job HTTP session (the room service client behind
    `ctx.api`) now. Built on first use, it parsed the CA bundle inside the call, before the
    answer: 56 ms with the machine idle, 185-678 ms with three calls on a core (the SDK's
    "event loop blocked" warnings). The SDK caches it per process; its builder is private,
    so a version without it is simply not warmed."""
    build = getattr(http_context, "_create_ssl_context", None)
    if callable(build):
        build()


@dataclass(frozen=True)
class SpeechClients:
    """One call's vendor clients: the session's, the wrap-up's summariser, the desk's voice."""

    stt: Any
    llm: Any
    tts: Any
    summarizer: Any
    desk_tts: Any

    @classmethod
    def build(cls, settings: WorkerSettings) -> SpeechClients:
        voice = settings.voice
        stt = build_stt(voice, languages=settings.business.languages())
        return cls(stt=stt, llm=build_llm(voice), tts=build_tts(voice),
                   summarizer=build_llm(voice), desk_tts=build_tts(voice))  # fmt: skip


async def entrypoint(ctx: JobContext) -> None:
    ctx.log_context_fields = {"call_id": ctx.job.id, "room": ctx.room.name}
    _stage("job_received", at=ctx._info.received_at)  # by the worker, from livekit-server
    _stage("job_assigned", at=ctx._info.assigned_at)
    _stage("job_started")
    settings: WorkerSettings = ctx.proc.userdata["settings"]
    services: Services = ctx.proc.userdata["services"]
    dial = dial_request(ctx.job.metadata, region=services.default_region)
    # Speed to lead: the phone starts ringing while the job joins the room and builds the
    # session; the screen is listening before the callee can answer (call_out).
    dialing = start_dialing(ctx, dial) if dial is not None else None
    call_metrics = CallMetrics(direction="outbound" if dial else "inbound")
    ctx.add_shutdown_callback(call_metrics.aclose)
    try:
        await _run_call(ctx, settings, services, dial, dialing, call_metrics)
    except BaseException:
        if dialing is not None and not dialing.done():  # no one would be there to answer
            dialing.cancel()
            await LiveKitCallControl(ctx).hang_up()
        raise


async def _run_call(
    ctx: JobContext,
    settings: WorkerSettings,
    services: Services,
    dial: DialRequest | None,
    dialing: asyncio.Task[None] | None,
    call_metrics: CallMetrics,
) -> None:
    lookup = None
    if dial is not None:
        state = new_call_state(services, call_id=ctx.job.id, direction="outbound",
                               caller_phone=dial.phone_number, our_number=None)  # fmt: skip
        state.lead = dial.lead
        # Found by the time the callee answers: the opener may use their name.
        lookup = asyncio.create_task(_look_up_contact(services, state))
        await _connect(ctx)
    else:
        await _connect(ctx)
        if (other := agent_in_the_room(ctx.room, settings.livekit.agent_name)) is not None:
            # offered twice (sipbridge re-offers a call nobody took): one agent is enough
            logger.warning("the call was offered twice and %s has it: leaving", other)
            ctx.shutdown(reason="another agent has the call")
            return
        caller = await ctx.wait_for_participant()
        # the caller has waited since entering the room, dispatch and job start included
        call_metrics.answered(at=caller.joined_at.timestamp() if caller.joined_at else None)
        state = await start_call_state(
            services, call_id=ctx.job.id, direction="inbound", participant=caller
        )
    control = LiveKitCallControl(ctx)
    call = Call(state=state, services=services, control=control)
    speech: SpeechClients = ctx.proc.userdata["speech"]
    # Registered before anything can fail, so every call is recorded, even one never answered;
    # the journal records it even if this process dies (journal/).
    wrapup = WrapUp(call, summarizer=speech.summarizer, outbox=ctx.proc.userdata["outbox"])
    journal = CallJournal.open(call, data_dir=settings.integrations.data_dir, room=ctx.room.name)
    session = build_session(
        settings.voice, call, vad_model=ctx.proc.userdata["vad"],
        user_away_timeout=settings.business.silence_timeout_seconds,
        stt=speech.stt, llm=speech.llm, tts=speech.tts,
    )  # fmt: skip

    reports = attempt_reports(ctx.proc.userdata.get("reporter"), ctx.job.metadata)
    caller_identity = dial.identity if dial is not None else caller.identity
    desk = control.desk = transfer_desk(
        ctx, settings, call, session, caller_identity, tts_engine=speech.desk_tts
    )

    # Only when the greeting tells the caller so (ANNOUNCE_RECORDING).
    recorder = CallRecorder(CallFiles(settings.integrations.data_dir), ctx.job.id) \
        if call.services.announce_recording else None  # fmt: skip

    agent = SalesAgent(call, greet_on_enter=dial is None, recorder=recorder)

    async def record_call() -> None:
        recorded = None
        try:
            if not desk.in_progress:
                wind_down(settings)
            if recorder is not None:  # closed first, so the record can link a complete file
                state.recording = await recorder.finish()
            await desk.settled()  # a transfer's outcome belongs in the record
            wind_down(settings)
            recorded = await wrapup.run(agent.heard.completed(session.history))
        finally:  # a wrap-up that failed leaves the journal for the recovery
            journal.finish(recorded=recorded is not None)
        if recorded is not None:
            call_metrics.ended(recorded.record.disposition)
        if reports is not None:
            await reports.completed(state, recorded)

    ctx.add_shutdown_callback(record_call)
    outage_guard(ctx, settings, call, session, by_attempt=reports is not None)
    ctx.add_shutdown_callback(desk.aclose)
    journal.follow(session)
    session.on("metrics_collected", lambda ev: log_turn_metrics(ev.metrics))
    call_metrics.watch(session)
    SilencePolicy(session, call, timeout_s=settings.business.silence_timeout_seconds)
    limit = DurationLimit(session, call, max_seconds=settings.business.max_call_seconds)
    session.on("close", lambda _ev: limit.cancel())
    free_slot_at_hang_up(ctx, session, caller_identity)
    if dialing is not None and _failed(dialing):
        # Not reached (a busy line) before the session was up: no one to listen to.
        if lookup is not None:
            await lookup  # the record names the contact
        await dial_out(ctx, dialing, state=state, reports=reports)
        return
    await session.start(
        agent=agent,
        room=ctx.room,
        room_options=room_options(
            settings.voice, participant_identity=dial.identity if dial else None
        ),
        record=no_cloud_audio(ctx),
        # No LiveKit RemoteSession client drives a phone call: without a host, the session's
        # events (each state change, item and metric) are not streamed into the room.
        session_host=False,
    )
    _stage("session_started")
    if dial is not None and dialing is not None and lookup is not None:
        outbound = Outbound(dial=dial, dialing=dialing, lookup=lookup)
        await call_out(ctx, settings, session, call, agent, outbound, reports, call_metrics)


async def call_out(
    ctx: JobContext,
    settings: WorkerSettings,
    session: AgentSession[Call],
    call: Call,
    agent: SalesAgent,
    outbound: Outbound,
    reports: AttemptReports | None,
    call_metrics: CallMetrics,
) -> None:
    """Once answered, open for a person or leave a message on a mailbox. The dial went out at
    the job's start; the session (listening to the callee's track from its start) and the
    screen are up before the answer is acted on."""
    business = settings.business
    dial, dialing = outbound.dial, outbound.dialing
    screen = None
    if business.voicemail_detection:
        screen = CalleeScreen(
            session, callee_audio=participant_audio(ctx.room, dial.identity),
            participant_identity=dial.identity,
            timings=ScreenTimings(no_beep_s=business.voicemail_no_beep_seconds),
            on_machine=agent.stop_conversation,
        )  # fmt: skip
        agent.begin_screening()
        await screen.start()
        if dialing.done() and not _failed(dialing):  # the INVITE was answered within ~0.5 s
            logger.warning("the callee answered before the screen listened; its first words "
                           "may be unheard by the voicemail detector")  # fmt: skip
    _stage("screen_started")
    await outbound.lookup
    if not await dial_out(ctx, dialing, state=call.state, reports=reports):
        if screen is not None:
            await screen.aclose()
        return
    call_metrics.answered()
    agent.callee_answered(quiet_s=QUIET_CALLEE_S)
    if screen is not None:
        await handle_answer(screen, session=session, call=call, opener=agent)


def no_cloud_audio(ctx: JobContext) -> RecordingOptions:
    """The call's audio is never uploaded (ours is recorded locally, recording/); LiveKit
    Cloud's traces, logs and transcript follow the project's setting, as they would unasked."""
    cloud = ctx.job.enable_recording
    return RecordingOptions(audio=False, traces=cloud, logs=cloud, transcript=cloud)


def agent_in_the_room(room: rtc.Room, agent_name: str) -> str | None:
    """The identity of another agent of ours already in the room, if one is."""
    for participant in room.remote_participants.values():
        if (
            participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            and participant.attributes.get(ATTRIBUTE_AGENT_NAME) == agent_name
        ):
            return participant.identity
    return None


def wind_down(settings: WorkerSettings) -> None:
    """Nobody left on the line: the rest of this job (the recording closed, the wrap-up)
    yields the core to the live calls. Only a job in a process of its own: the thread
    executor's threads are shared by its calls."""
    if settings.livekit.worker_job_executor != "process":
        return
    if lowered := priority.yield_to_live_calls():
        logger.info("call over: its wrap-up yields to live calls",
                    extra={"threads": lowered, "nice": priority.WRAPUP_NICE})  # fmt: skip


def free_slot_at_hang_up(ctx: JobContext, session: AgentSession[Call], caller: str) -> None:
    """The caller gone (or the session over, whoever ended the call): what is left of the
    job is LiveKit's 2 s session close and the wrap-up, light enough to count the call's
    slot free (agent/capacity.py)."""
    ends: CallEnds | None = ctx.proc.userdata.get("call_ends")
    if ends is None:
        return

    def on_left(participant: rtc.RemoteParticipant) -> None:
        if participant.identity == caller:
            ends.mark(ctx.job.id)

    ctx.room.on("participant_disconnected", on_left)
    session.on("close", lambda _ev: ends.mark(ctx.job.id))


def transfer_desk(
    ctx: JobContext,
    settings: WorkerSettings,
    call: Call,
    session: Any,
    caller_identity: str,
    *,
    tts_engine: Any,
) -> TransferDesk:
    livekit = settings.livekit
    return TransferDesk(
        call=call, session=session, room=ctx.room, caller_identity=lambda: caller_identity,
        roster=ctx.proc.userdata["roster"], offers=ctx.proc.userdata["offers"],
        routing=load_routing(
            settings.business.routing_file,
            field_keys=[c.key for c in call.state.qualification.criteria.fields],
        ),
        lkapi=ctx.api,
        settings=DeskSettings(
            ws_url=ctx._info.url, api_key=livekit.livekit_api_key or "",
            api_secret=livekit.api_secret() or "",
            trunk_id=settings.telephony.sip_outbound_trunk_id, agent_name=livekit.agent_name,
            company=call.services.business.company_name,
            default_region=call.services.default_region,
        ),
        tts_engine=tts_engine, hold_music=ctx.proc.userdata["hold_music"],
        stt_engine=build_stt(settings.voice, tags=[REP_TRANSCRIPT_TAG]), now=call.services.now,
    )  # fmt: skip


def outage_guard(
    ctx: JobContext, settings: WorkerSettings, call: Call, session: Any, *, by_attempt: bool
) -> OutageGuard:
    """Every endpoint of a provider down: the recorded apology, a callback, the hang-up."""
    callbacks = OutageCallbacks(
        ctx.proc.userdata["queue"], ctx.proc.userdata["dial_policy"], by_attempt=by_attempt
    )
    return OutageGuard(
        session, call, clips=ctx.proc.userdata["apology"], callbacks=callbacks,
        callback_after=timedelta(minutes=settings.business.outage_callback_minutes),
    )  # fmt: skip


REP_TRANSCRIPT_TAG = "rep-transcript"  # a console rep's words, transcribed after the hand-off

_TURN_METRICS = {
    "eou_metrics": (
        "end_of_utterance_delay",
        "transcription_delay",
        "on_user_turn_completed_delay",
    ),
    "llm_metrics": ("ttft", "duration"),
    "tts_metrics": ("ttfb", "duration", "audio_duration"),
}


def log_turn_metrics(metrics: Any) -> None:
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
    logger.info("%s %s", metrics.type, " ".join(parts))


async def start_call_state(
    services: Services,
    *,
    call_id: str,
    direction: Direction,
    participant: rtc.RemoteParticipant | Any | None,
) -> CallState:
    """An inbound call's state from the SIP participant's attributes."""
    attributes = dict(participant.attributes) if participant else {}
    return await open_call(
        services,
        call_id=call_id,
        direction=direction,
        caller_phone=_phone(attributes.get(SIP_CALLER_NUMBER), services.default_region),
        our_number=_phone(attributes.get(SIP_TRUNK_NUMBER), services.default_region),
    )


async def open_call(
    services: Services,
    *,
    call_id: str,
    direction: Direction,
    caller_phone: str | None,
    our_number: str | None,
) -> CallState:
    """The call's state, with the caller looked up in the CRM before the first word."""
    state = new_call_state(
        services,
        call_id=call_id,
        direction=direction,
        caller_phone=caller_phone,
        our_number=our_number,
    )
    if caller_phone:
        contact = await lookup_caller(services, caller_phone)
        if contact is not None:
            state.set_contact(contact)
    return state


async def lookup_caller(services: Services, phone: str) -> Contact | None:
    try:
        async with asyncio.timeout(CRM_LOOKUP_TIMEOUT_S):
            return await services.crm.find_contact_by_phone(phone)
    except (IntegrationError, TimeoutError) as exc:
        logger.warning("CRM lookup failed, greeting as a new caller: %r", exc)
        return None


def _phone(raw: str | None, region: str) -> str | None:
    if not raw:
        return None
    try:
        return normalise_phone(raw, default_region=region)
    except InvalidPhoneNumber:
        logger.warning("caller number %s is not a valid phone number", mask(raw))
        return None


def attempt_reports(
    reporter: OutcomeReporter | None, metadata: str | None
) -> AttemptReports | None:
    """How to report this job's attempt, when the dialer sent it (a hand-made dispatch has no
    attempt to report)."""
    ref = AttemptRef.from_metadata(metadata)
    return AttemptReports(reporter, ref) if reporter is not None and ref is not None else None


def dial_request(metadata: str | None, *, region: str = "US") -> DialRequest | None:
    """The outbound call a dispatch asks for, or None for an inbound call."""
    if not metadata:
        return None
    try:
        data = json.loads(metadata)
    except json.JSONDecodeError:
        logger.warning("dispatch metadata is not JSON; treating the call as inbound")
        return None
    if not isinstance(data, dict) or not data.get("phone_number"):
        return None
    return DialRequest(
        phone_number=normalise_phone(str(data["phone_number"]), default_region=region),
        sip_trunk_id=str(data.get("sip_trunk_id", "")),
        lead=_lead(data.get("lead")),
    )


def _lead(raw: object) -> Lead | None:
    """The lead as the dialer sends it; what they asked about is the lead's ``reason``, or the
    ``interest`` among the free-form fields the web form sent."""
    if not isinstance(raw, dict):
        return None
    fields = raw.get("fields")
    reason = raw.get("reason") or (fields.get("interest") if isinstance(fields, dict) else None)
    return Lead(
        name=str(raw["name"]) if raw.get("name") else None,
        company=str(raw["company"]) if raw.get("company") else None,
        reason=str(reason) if reason else None,
    )


@dataclass(frozen=True)
class Outbound:
    """An outbound call under way: what was asked, the dial (sent at the job's start), and
    the CRM lookup running beside the session's start."""

    dial: DialRequest
    dialing: asyncio.Task[None]
    lookup: asyncio.Task[None]


async def _look_up_contact(services: Services, state: CallState) -> None:
    if state.caller_phone:
        contact = await lookup_caller(services, state.caller_phone)
        if contact is not None:
            state.set_contact(contact)


async def _connect(ctx: JobContext) -> None:
    await ctx.connect()
    _stage("connected")


def _failed(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


def start_dialing(ctx: JobContext, dial: DialRequest) -> asyncio.Task[None]:
    """CreateSIPParticipant, sent at once; the task ends when the lead answers (or raises
    TwirpError: busy, no answer, refused)."""

    async def dial_lead() -> None:
        _stage("dial_sent")
        await ctx.api.sip.create_sip_participant(
            api.CreateSIPParticipantRequest(
                room_name=ctx.room.name,
                sip_trunk_id=dial.sip_trunk_id,
                sip_call_to=dial.phone_number,
                participant_identity=dial.identity,
                wait_until_answered=True,
            )
        )

    return asyncio.create_task(dial_lead(), name="dial_lead")


async def dial_out(
    ctx: JobContext,
    dialing: asyncio.Task[None],
    *,
    state: CallState,
    reports: AttemptReports | None,
) -> bool:
    """Wait for the lead to answer. A busy line, no answer or a refusal is an outcome, not a
    crash: it is recorded on the call, told to the dialer, and the job ends."""
    try:
        await dialing
    except api.TwirpError as exc:
        state.dial_failure = _dial_failure(exc)
        logger.info("outbound call not answered: %s", state.dial_failure)
        if reports is not None:
            sip_status = exc.sip_status_code if isinstance(exc, api.SipCallError) else None
            await reports.not_reached(sip_status=sip_status, detail=state.dial_failure)
        ctx.shutdown(reason=f"dial failed: {state.dial_failure}")
        return False
    if reports is not None:
        await reports.answered()
    return True


def _stage(stage: str, *, at: float | None = None) -> None:
    """A mark on a call's path to the dial (bench/speed_to_lead.py times the stages); ``at``:
    when it happened, if earlier than now (epoch seconds)."""
    extra: dict[str, object] = {"stage": stage}
    if at:
        extra["at"] = at
    logger.info("call stage %s", stage, extra=extra)


def _dial_failure(exc: api.TwirpError) -> str:
    if isinstance(exc, api.SipCallError) and exc.sip_status_code is not None:
        return f"{exc.sip_status_code} {exc.sip_status or ''}".strip()
    return f"{exc.code}: {exc.message}"


def build_server(settings: WorkerSettings) -> AgentServer:
    livekit = settings.livekit
    slots = CallSlots(livekit.worker_max_calls)
    metrics_dir = livekit.worker_metrics_dir
    server = AgentServer(
        setup_fnc=functools.partial(prewarm, settings, call_ends=slots.ends),
        ws_url=livekit.livekit_url,
        api_key=livekit.livekit_api_key,
        api_secret=livekit.api_secret(),
        host=livekit.worker_http_host,
        port=livekit.worker_http_port,
        # Load is the share of call slots in use, not the machine's CPU: see agent/capacity.py.
        load_fnc=slots.load,
        load_threshold=slots.threshold,
        num_idle_processes=slots.idle_processes,
        # Measured both ways (README, Capacity): the same CPU per call, less memory in threads,
        # but a process per call keeps one call's crash from ending the others.
        job_executor_type=JobExecutorType(livekit.worker_job_executor),
        # Imported once in the forkserver, so a new job process starts warm in a fraction of
        # the time (speed to lead: a lead arriving while none is warm waits for one). Usually
        # started already, with the same list (agent/preload.py).
        preload_modules=list(PRELOAD_MODULES),
        # Off unless WORKER_METRICS_PORT is set; agent/__main__.py chose the directory.
        prometheus_port=livekit.worker_metrics_port,
        prometheus_multiproc_dir=str(metrics_dir) if metrics_dir else None,
    )
    report_slot_changes_at_once(server, slots)
    if livekit.worker_metrics_port is not None:
        forget_finished_processes(server)
    server.rtc_session(entrypoint, agent_name=livekit.agent_name,
                       on_request=functools.partial(slots.take, server))  # fmt: skip
    return server
