"""A warm transfer, start to end: the caller on hold with music, each chosen rep rung and
briefed in a consult room until one accepts, then rep and caller joined and the agent gone;
or, when nobody takes it, the agent back with the caller with an apology and another way
forward. Every path ends in one typed outcome on the call's state.

    desk = TransferDesk(...)                   # once per call, by the worker
    desk.start(reason="50 sellers, buying this quarter")   # from the hand-off tool
    ...
    await desk.settled()                       # before the wrap-up writes the record
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import phonenumbers
from livekit import api, rtc
from livekit.agents import AgentSession, stt, tts

import prompts
from calls.call import Call
from calls.state import TransferOutcome
from calls.transcript import transcript_text
from telephony.provision import SipPlan
from transfer.brief import Brief, brief_for
from transfer.console_consult import ConsoleConsult
from transfer.consult import Consult, ConsultLines, PhoneConsult
from transfer.hold import HoldLine
from transfer.offers import ConsoleOffers
from transfer.rep_transcript import RepTranscript
from transfer.roster import Rep, Roster
from transfer.routing import REGION, Routing

logger = logging.getLogger("transfer.desk")

Reach = Literal["console", "phone"]
DECIDE_SECONDS = 30.0  # after the brief starts, how long a rep has to press 1 or 2
SETTLE_TIMEOUT_S = 15.0
# A rep's console that left the call without hanging up: a lost network may come back (LiveKit
# reconnects it), so wait this long; a tab closed cleanly (client-initiated) is not coming
# back, and the short wait only lets a hang-up that deletes the room arrive first.
REJOIN_GRACE_S = 5.0
LEFT_CLEANLY_GRACE_S = 1.5


@dataclass
class TransferTimings:
    """Measured on each transfer, logged and kept on the call: what the caller lives through."""

    decided_at: float
    hold_started_at: float | None = None
    connected_at: float | None = None
    accepted_at: float | None = None
    attempts: list[tuple[str, str, float]] = field(default_factory=list)  # rep, answer, seconds

    def as_fields(self) -> dict[str, Any]:
        def ms(at: float | None, since: float | None) -> int | None:
            return None if at is None or since is None else round((at - since) * 1000)

        return {
            "decision_to_hold_ms": ms(self.hold_started_at, self.decided_at),
            "accept_to_connected_ms": ms(self.connected_at, self.accepted_at),
            "hold_per_attempt_s": [round(s, 1) for _, _, s in self.attempts],
        }


@dataclass(frozen=True)
class DeskSettings:
    ws_url: str
    api_key: str
    api_secret: str
    trunk_id: str | None  # the outbound trunk reps are dialed through; None: provisioning's
    agent_name: str
    company: str
    default_region: str = "US"


class TransferDesk:
    def __init__(
        self,
        *,
        call: Call,
        session: AgentSession[Any],
        room: rtc.Room,
        caller_identity: Callable[[], str | None],
        roster: Roster,
        routing: Routing,
        lkapi: api.LiveKitAPI,
        settings: DeskSettings,
        tts_engine: tts.TTS,
        hold_music: Any,
        now: Callable[[], datetime],
        offers: ConsoleOffers | None = None,  # reps at the browser console; None: phones only
        stt_engine: stt.STT | None = None,  # to transcribe a console rep; None: not written down
    ) -> None:
        self._call = call
        self._session = session
        self._room = room
        self._caller_identity = caller_identity
        self._roster = roster
        self._routing = routing
        self._settings = settings
        self._api = lkapi
        self._trunk: str | None = None  # resolved on first use
        self._tts = tts_engine
        self._hold = HoldLine(room, hold_music)
        self._now = now
        self._lines = prompts.load_yaml("transfer.yaml")
        self._task: asyncio.Task[None] | None = None
        self._offers = offers
        self._stt = stt_engine
        self._rep_notes: RepTranscript | None = None
        self._consult: Consult | None = None
        self._taken_by: Rep | None = None  # the rep who accepted, released when the call ends
        self._caller_gone = asyncio.Event()
        self._background: set[asyncio.Future[None]] = set()
        self.timings: TransferTimings | None = None
        room.on("participant_disconnected", self._on_participant_left)

    @property
    def in_progress(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, *, reason: str) -> bool:
        """Begin the transfer after the agent's current words; False if one is under way."""
        if self.in_progress or self._call.state.transfer == "rep_accepted":
            return False
        self._call.state.handoff_reason = reason
        self.timings = TransferTimings(decided_at=time.monotonic())
        self._task = asyncio.create_task(self._run(reason), name="warm-transfer")
        return True

    async def settled(self) -> None:
        """Until the transfer (if any) has an outcome; bounded, for the wrap-up."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), SETTLE_TIMEOUT_S)

    async def aclose(self) -> None:
        """At the end of the call: whatever is still open (a consult room, the bridge, the
        music) is closed, each step bounded so a stuck one cannot hold the job."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        steps: list[tuple[str, Any]] = []
        if self._consult is not None:
            closing = (
                self._consult.end_call()
                if self._taken_by
                else self._consult.aclose(delete_room=True)
            )
            steps.append(("consult", closing))
        steps.append(("hold music", self._hold.aclose()))
        if self._rep_notes is not None:
            steps.append(("rep transcript", self._rep_notes.aclose()))
        for name, step in steps:
            try:
                await asyncio.wait_for(step, 3.0)
            except Exception as exc:
                logger.warning("closing the transfer's %s: %r", name, exc)
        if self._taken_by is not None:  # the call they took is over: available again
            self._roster.release(self._taken_by.id, took_call=True)

    # --- the flow ---------------------------------------------------------------------------

    async def _run(self, reason: str) -> None:
        state = self._call.state
        try:
            outcome, rep, detail = await self._transfer(reason)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("transfer failed")
            outcome, rep, detail = "failed", None, f"{type(exc).__name__}: {exc}"
        state.transfer, state.transfer_detail = outcome, detail
        state.transfer_rep = f"{rep.name} <{rep.email}>" if rep else None
        state.on_hold = False
        assert self.timings is not None
        logger.info(
            "transfer %s: rep %s, %s, %s", outcome, rep.id if rep else "-", detail or "-",
            " ".join(f"{k}={v}" for k, v in self.timings.as_fields().items()),
        )  # fmt: skip
        if outcome == "rep_accepted" and isinstance(self._consult, ConsoleConsult):
            # The agent stays as a silent note-taker: the caller's words are transcribed for
            # the rep's screen and the record, never answered (SalesAgent stands down).
            self._session.input.set_audio_enabled(True)
            if self._stt is not None and rep is not None:
                self._rep_notes = RepTranscript(
                    self._room, identity=self._consult.identity,
                    label=f"Rep ({rep.name.split()[0]})", stt_engine=self._stt,
                    history=self._session.history,
                )  # fmt: skip
                self._rep_notes.start()
        handed_on = outcome in ("rep_accepted", "cold_transferred")
        if not handed_on and not self._caller_gone.is_set():
            await self._back_to_caller(outcome, detail)

    async def _transfer(self, reason: str) -> tuple[TransferOutcome, Rep | None, str | None]:
        assert self.timings is not None
        state = self._call.state
        cold = self._routing.cold_target(self._facts())
        if cold is not None:
            outcome, detail = await self._cold_transfer(cold)
            return outcome, None, detail
        # The hold line is said after the agent's current turn; the music starts when it ends.
        announce = self._session.say(self._lines["on_hold"], allow_interruptions=False)
        await announce.wait_for_playout()
        if self._caller_gone.is_set():
            return "caller_hung_up", None, "hung up before the hold"
        state.on_hold = True
        self._session.input.set_audio_enabled(False)
        await self._hold.start()
        self.timings.hold_started_at = time.monotonic()
        logger.info("caller on hold, music playing")

        brief = brief_for(state, reason=reason, transcript=transcript_text(self._session.history))
        candidates = self._routing.candidates(self._facts(), self._roster.all(), self._now())
        reachable = [(rep, kind) for rep in candidates if (kind := await self._reach(rep))]
        if not reachable:
            why = "no rep is available" if not candidates else "no available rep can be reached"
            return "no_rep_available", None, why
        last: tuple[TransferOutcome, Rep | None, str | None] = ("no_rep_available", None, None)
        for number, (rep, kind) in enumerate(reachable, start=1):
            if self._caller_gone.is_set():
                return "caller_hung_up", rep, "hung up on hold"
            if not self._roster.reserve(rep.id):
                continue  # taken by another call since we listed them
            outcome, detail = await self._offer(rep, kind, brief, number)
            if outcome == "rep_accepted":
                return outcome, rep, detail
            self._roster.release(rep.id, took_call=False)
            if outcome == "caller_hung_up":
                return outcome, rep, detail
            last = (outcome, rep, detail)
        return last

    async def _cold_transfer(self, target: str) -> tuple[TransferOutcome, str | None]:
        """Send the caller on to ``target`` with SIP REFER: their carrier places the new call
        and our leg ends. A refusal (the REFER or its outcome) comes back as a SIP status."""
        line = self._session.say(self._lines["cold_transfer"], allow_interruptions=False)
        await line.wait_for_playout()
        caller = self._caller_identity()
        if self._caller_gone.is_set() or caller is None:
            return "caller_hung_up", "hung up before the transfer"
        request = api.TransferSIPParticipantRequest(
            participant_identity=caller, room_name=self._room.name, transfer_to=target,
            play_dialtone=False,
        )  # fmt: skip
        try:
            await self._api.sip.transfer_sip_participant(request)
        except api.SipCallError as exc:  # the transfer's SIP answer, e.g. 603 Decline
            code, reason = exc.sip_status_code, exc.sip_status
            detail = f"{code} {reason or ''}".strip() if code else exc.message
            logger.warning("cold transfer to %s refused: %s", target, detail)
            return "failed", f"cold transfer refused: {detail}"
        logger.info("cold transfer to %s accepted by the caller's side", target)
        return "cold_transferred", target

    async def _reach(self, rep: Rep) -> Reach | None:
        """How this rep is reached now: their console if it is open, else their phone."""
        if self._offers is not None and await asyncio.to_thread(self._offers.live, rep.id):
            return "console"
        return "phone" if rep.phone and await self._trunk_id() else None

    async def _consult_for(self, rep: Rep, kind: Reach, brief: Brief, number: int) -> Consult:
        first = rep.name.split()[0]
        common: dict[str, Any] = dict(
            rep=rep, room_name=f"{self._room.name}-consult-{number}", lkapi=self._api,
            ws_url=self._settings.ws_url, token=self._token, tts_engine=self._tts,
            ring_seconds=self._routing.ring_seconds, decide_seconds=DECIDE_SECONDS,
        )  # fmt: skip
        suffix = "_console" if kind == "console" else ""
        common["lines"] = ConsultLines(
            intro=prompts.render(self._lines["brief_intro"], rep=first,
                                 company=self._settings.company),
            prompt=self._lines[f"brief_prompt{suffix}"],
            repeat=self._lines[f"brief_repeat{suffix}"], caller_left=self._lines["caller_left"],
        )  # fmt: skip
        if kind == "console":
            assert self._offers is not None
            return ConsoleConsult(
                offers=self._offers, call_id=self._call.state.call_id,
                caller_room=self._room.name, brief=brief.written(), **common,
            )  # fmt: skip
        trunk = await self._trunk_id()
        assert trunk is not None
        return PhoneConsult(trunk_id=trunk, **common)

    async def _offer(
        self, rep: Rep, kind: Reach, brief: Brief, number: int
    ) -> tuple[TransferOutcome, str | None]:
        assert self.timings is not None
        started = time.monotonic()
        consult = await self._consult_for(rep, kind, brief, number)
        self._consult = consult
        answer = "failed"
        try:
            if await self._race(consult.ring()):
                await self._race(consult.brief(brief.spoken()))
                answer = await self._race(consult.answer())
            else:
                answer = await consult.answer()
        except _CallerLeft:
            await consult.tell_caller_left()
            await consult.hang_up_rep()
            await consult.aclose(delete_room=True)
            self._consult = None
            return "caller_hung_up", "hung up on hold"
        self.timings.attempts.append((rep.id, answer, time.monotonic() - started))
        logger.info("rep %s answered the offer: %s (%s)", rep.id, answer, consult.detail or "-")
        if answer == "accepted":
            self.timings.accepted_at = time.monotonic()
            self._taken_by = rep  # on a call from now: released when it ends
            await self._connect(consult, rep, brief)
            return "rep_accepted", None
        await consult.hang_up_rep()
        await consult.aclose(delete_room=True)
        self._consult = None
        outcome: TransferOutcome = {"declined": "rep_declined", "rep_left": "rep_declined",
                                    "no_answer": "no_answer"}.get(answer, "failed")  # type: ignore[assignment]  # fmt: skip
        return outcome, consult.detail

    async def _connect(self, consult: Consult, rep: Rep, brief: Brief) -> None:
        """Rep and caller hear each other; the agent introduces them and leaves."""
        assert self.timings is not None
        await consult.stop_speaking()
        caller = self._room.remote_participants.get(self._caller_identity() or "")
        if caller is None:
            raise RuntimeError("the caller left while connecting")
        path = await consult.join_caller(self._room, caller)
        self._hold.stop()
        self.timings.connected_at = time.monotonic()
        logger.info("rep joined to the caller (%s)", path)
        first = rep.name.split()[0]
        if brief.first_name:
            line = prompts.render(self._lines["introduce"], caller=brief.first_name, rep=first)
        else:
            line = prompts.render(self._lines["introduce_unnamed"], rep=first)
        self._session.input.set_audio_enabled(False)
        await self._session.say(line, allow_interruptions=False).wait_for_playout()
        # The agent leaves the conversation: its voice and ears go; the bridge (if any) stays
        # until one side hangs up.
        self._session.output.set_audio_enabled(False)
        self._call.state.on_hold = False

    async def _rep_dropped(self, identity: str, grace_s: float) -> None:
        """The rep's console left the call without hanging up (a closed tab, a lost network):
        unless it is back within the grace, the agent returns to the caller, apologises and
        offers a meeting or a callback. The transfer is recorded as failed, with why."""
        await asyncio.sleep(grace_s)
        if identity in self._room.remote_participants or self._caller_gone.is_set():
            return
        rep, state = self._taken_by, self._call.state
        assert rep is not None
        state.transfer = "failed"
        state.transfer_detail = f"{rep.name}'s console dropped after taking the call"
        logger.warning("the rep's console dropped after taking the call: back to the caller")
        consult, self._consult = self._consult, None
        if consult is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consult.end_call(), 5.0)
        if self._rep_notes is not None:
            await self._rep_notes.aclose()
        self._session.output.set_audio_enabled(True)
        self._session.input.set_audio_enabled(True)
        line = prompts.render(self._lines["rep_dropped"], rep=rep.name.split()[0])
        self._offer_another_way(line, "the sales rep's line dropped in the middle of the call")

    async def _back_to_caller(self, outcome: TransferOutcome, detail: str | None) -> None:
        self._hold.stop()
        self._session.input.set_audio_enabled(True)
        why = {
            "no_rep_available": "nobody from the sales team is available right now",
            "rep_declined": "the sales rep could not take the call",
            "no_answer": "the sales rep did not pick up",
            "failed": "the transfer did not go through",
        }.get(outcome, "the transfer did not go through")
        self._offer_another_way(self._lines["no_rep"], why)

    def _offer_another_way(self, apology: str, why: str) -> None:
        """The fixed apology, then the LLM offers a meeting or a callback and follows up."""
        self._session.say(apology, allow_interruptions=False)
        self._session.generate_reply(
            instructions=(
                f"The transfer to a sales rep did not work out: {why}. Do not repeat the apology. "
                "Offer to book a meeting with the sales team now, or a callback at a time the "
                "caller picks, and follow their choice with your tools."
            )
        )

    # --- helpers -----------------------------------------------------------------------------

    async def _race(self, work: Any) -> Any:
        """``work``, unless the caller hangs up first (then _CallerLeft)."""
        task = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(self._caller_gone.wait())
        try:
            done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise _CallerLeft

    def _facts(self) -> Mapping[str, Any]:
        facts: dict[str, Any] = dict(self._call.state.qualification.answers)
        phone = self._call.state.caller_phone
        if phone:
            with contextlib.suppress(phonenumbers.NumberParseException):
                region = phonenumbers.region_code_for_number(phonenumbers.parse(phone))
                if region:
                    facts[REGION] = region
        return facts

    async def _trunk_id(self) -> str | None:
        """SIP_OUTBOUND_TRUNK_ID, else the outbound trunk provisioning created for us."""
        if self._trunk is None:
            self._trunk = self._settings.trunk_id or ""
            if not self._trunk:
                name = SipPlan(agent_name=self._settings.agent_name).outbound_trunk_name
                listed = await self._api.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
                found = [t.sip_trunk_id for t in listed.items if t.name == name]
                self._trunk = found[0] if found else ""
                if not found:
                    logger.warning("no outbound trunk %r: reps cannot be reached by phone", name)
        return self._trunk or None

    def _token(self, room: str, identity: str) -> str:
        return (
            api.AccessToken(self._settings.api_key, self._settings.api_secret)
            .with_identity(identity)
            .with_kind("agent")
            .with_grants(api.VideoGrants(room_join=True, room=room))
            .to_jwt()
        )

    def _on_participant_left(self, participant: rtc.RemoteParticipant) -> None:
        consult = self._consult
        if (
            isinstance(consult, ConsoleConsult) and self._taken_by is not None
            and participant.identity == consult.identity
            and self._call.state.transfer == "rep_accepted" and not self._caller_gone.is_set()
        ):  # fmt: skip
            cleanly = participant.disconnect_reason == rtc.DisconnectReason.CLIENT_INITIATED
            grace = LEFT_CLEANLY_GRACE_S if cleanly else REJOIN_GRACE_S
            dropped = asyncio.ensure_future(self._rep_dropped(participant.identity, grace))
            self._background.add(dropped)
            dropped.add_done_callback(self._background.discard)
            return
        if participant.identity == self._caller_identity():
            self._caller_gone.set()
            if self._taken_by is not None and self._consult is not None:
                consult, self._consult = self._consult, None
                ending = asyncio.ensure_future(consult.end_call())
                self._background.add(ending)
                ending.add_done_callback(self._background.discard)


class _CallerLeft(Exception):
    pass
