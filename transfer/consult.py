"""The consult call with one rep: a room of its own where the agent briefs the rep out loud
and waits for their answer, while the caller stays on hold in theirs.

``Consult`` is what the desk needs from one, whatever reaches the rep:

- ``PhoneConsult`` (here): the rep's phone is dialed into the consult room through the SIP
  trunk (CreateSIPParticipant). They take the call with 1 on the keypad or pass with 2;
  hanging up, or no answer within the time allowed, passes too. Joined to the caller by
  MoveParticipant where the server has it, else by the agent's bridge between the rooms.
- ``ConsoleConsult`` (``transfer.console_consult``): the rep's browser console, which shows
  the brief written and joins the consult room to hear it; the answer comes from its buttons.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from google.protobuf.duration_pb2 import Duration
from livekit import api, rtc
from livekit.agents import Agent, AgentSession, tts
from livekit.agents.voice.room_io import RoomOptions

from transfer.bridge import RoomBridge, move_supported_and_done
from transfer.roster import Rep

logger = logging.getLogger("transfer.consult")

Answer = Literal["accepted", "declined", "no_answer", "rep_left", "failed"]
JoinPath = Literal["moved", "bridged", "joined"]
ACCEPT_DIGIT, DECLINE_DIGIT = "1", "2"
AGENT_IDENTITY = "sales-agent-consult"


@dataclass(frozen=True)
class ConsultLines:
    intro: str
    prompt: str
    repeat: str
    caller_left: str


def rep_identity(rep: Rep) -> str:
    return f"rep-{rep.id}"


class Consult(Protocol):
    """One offer of the call to one rep, from ringing them to joining them to the caller."""

    rep: Rep
    room_name: str
    detail: str | None  # why it ended the way it did, e.g. "486 Busy Here"

    async def ring(self) -> bool:
        """Reach the rep; True once they are there to be briefed (or have answered)."""
        ...

    async def brief(self, spoken: str) -> None:
        """Say the brief; returns early if the rep answers meanwhile."""
        ...

    async def answer(self) -> Answer:
        """The rep's answer, or no_answer once their time is up."""
        ...

    async def tell_caller_left(self) -> None: ...

    async def hang_up_rep(self) -> None:
        """The offer is over without a call: the rep's leg ends."""
        ...

    async def stop_speaking(self) -> None: ...

    async def join_caller(self, caller_room: rtc.Room, caller: rtc.RemoteParticipant) -> JoinPath:
        """After an accept: caller and rep hear each other (raises if they cannot)."""
        ...

    async def end_call(self) -> None:
        """The caller hung up after the join: the rep's side of the call ends too."""
        ...

    async def aclose(self, *, delete_room: bool) -> None: ...


class RoomConsult:
    """What every consult shares: the consult room, the agent's voice in it, the wait for the
    answer. Subclasses reach the rep (``ring``) and hear their answer."""

    def __init__(
        self,
        *,
        rep: Rep,
        room_name: str,
        lkapi: api.LiveKitAPI,
        ws_url: str,
        token: Callable[[str, str], str],  # (room, identity) -> an agent token for that room
        tts_engine: tts.TTS,
        lines: ConsultLines,
        ring_seconds: float,
        decide_seconds: float,
    ) -> None:
        self.rep = rep
        self.room_name = room_name
        self.identity = rep_identity(rep)
        self.room = rtc.Room()
        self._lkapi = lkapi
        self._ws_url = ws_url
        self._token = token
        self._tts = tts_engine
        self._lines = lines
        self._ring_s = ring_seconds
        self._decide_s = decide_seconds
        self._session: AgentSession | None = None
        self._answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.detail: str | None = None

    @property
    def participant(self) -> rtc.RemoteParticipant | None:
        return self.room.remote_participants.get(self.identity)

    async def _connect_agent(self) -> None:
        self.room.on("participant_disconnected", self._on_left)
        await self.room.connect(self._ws_url, self._token(self.room_name, AGENT_IDENTITY))

    def _deadline(self) -> float:
        """When the rep's time to answer runs out (loop time), counted from now by default."""
        return asyncio.get_running_loop().time() + self._decide_s

    def _time_up(self) -> None:
        self.detail = f"no answer within {self._decide_s:.0f} s"
        self._settle("no_answer")

    async def brief(self, spoken: str) -> None:
        """Say the brief (the rep can answer at any point), then repeat the prompt until
        they answer or the time runs out."""
        session: AgentSession = AgentSession(tts=self._tts)
        self._session = session
        await session.start(
            agent=Agent(instructions="Read the brief to the sales rep."),
            room=self.room,
            room_options=RoomOptions(
                audio_input=False, text_input=False, participant_identity=self.identity,
                close_on_disconnect=False,
            ),
        )  # fmt: skip
        text = f"{self._lines.intro} {spoken} {self._lines.prompt}"
        speech = session.say(text, allow_interruptions=False, add_to_chat_ctx=False)
        waits: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(speech.wait_for_playout()),
            self._answer,
        }
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if self._answer.done():
            speech.interrupt(force=True)

    async def answer(self) -> Answer:
        """The rep's answer, or silence until the time allowed has passed."""
        deadline = self._deadline()
        while not self._answer.done():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                self._time_up()
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._answer), min(left, 8.0))
            if not self._answer.done() and self._session is not None:
                self._session.say(self._lines.repeat, add_to_chat_ctx=False)
        return self._answer.result()

    async def say(self, text: str) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.say(text, add_to_chat_ctx=False).wait_for_playout()

    async def tell_caller_left(self) -> None:
        await self.say(self._lines.caller_left)

    async def hang_up_rep(self) -> None:
        await self._remove(self.room_name)

    async def _remove(self, room: str) -> None:
        with contextlib.suppress(api.TwirpError):
            await self._lkapi.room.remove_participant(
                api.RoomParticipantIdentity(room=room, identity=self.identity)
            )

    async def stop_speaking(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            with contextlib.suppress(Exception):
                await session.aclose()

    async def aclose(self, *, delete_room: bool) -> None:
        await self.stop_speaking()
        with contextlib.suppress(Exception):
            await self.room.disconnect()
        if delete_room:
            with contextlib.suppress(api.TwirpError):
                await self._lkapi.room.delete_room(api.DeleteRoomRequest(room=self.room_name))

    def _settle(self, answer: Answer) -> None:
        if not self._answer.done():
            self._answer.set_result(answer)

    def _on_left(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.identity:
            self.detail = self.detail or "hung up during the brief"
            self._settle("rep_left")


class PhoneConsult(RoomConsult):
    """One rep, reached by phone, in the consult room ``room_name``."""

    def __init__(self, *, trunk_id: str, **common: Any) -> None:
        super().__init__(**common)
        self._trunk_id = trunk_id
        self._bridge: RoomBridge | None = None

    async def ring(self) -> bool:
        """Dial the rep into the consult room; True once they picked up."""
        self.room.on("sip_dtmf_received", self._on_dtmf)
        await self._connect_agent()
        assert self.rep.phone is not None
        request = api.CreateSIPParticipantRequest(
            sip_trunk_id=self._trunk_id,
            sip_call_to=self.rep.phone,
            room_name=self.room_name,
            participant_identity=self.identity,
            participant_name=self.rep.name,
            wait_until_answered=True,
            ringing_timeout=Duration(seconds=max(1, round(self._ring_s))),
        )
        try:
            await self._lkapi.sip.create_sip_participant(request)
            logger.info("rep %s picked up", self.rep.id)
        except api.TwirpError as exc:
            status = (exc.metadata or {}).get("sip_status_code")
            self.detail = f"{status} {(exc.metadata or {}).get('sip_status', '')}".strip() or str(
                exc.message
            )
            logger.info("rep %s not reached: %s", self.rep.id, self.detail)
            self._settle("declined" if status == "603" else "no_answer")
            return False
        return True

    async def join_caller(self, caller_room: rtc.Room, caller: rtc.RemoteParticipant) -> JoinPath:
        rep = self.participant
        if rep is None:
            raise RuntimeError("the rep hung up while connecting")
        moved = await move_supported_and_done(
            self._lkapi, identity=self.identity, from_room=self.room_name,
            to_room=caller_room.name,
        )  # fmt: skip
        if moved:
            return "moved"
        self._bridge = RoomBridge(caller_room=caller_room, caller=caller, rep_room=self.room,
                                  rep=rep)  # fmt: skip
        await self._bridge.start()
        return "bridged"

    async def end_call(self) -> None:
        await self.hang_up_rep()
        await self.aclose(delete_room=True)

    async def aclose(self, *, delete_room: bool) -> None:
        if self._bridge is not None:
            bridge, self._bridge = self._bridge, None
            await bridge.aclose()
        await super().aclose(delete_room=delete_room)

    def _on_dtmf(self, event: rtc.SipDTMF) -> None:
        if event.participant is not None and event.participant.identity != self.identity:
            return
        if event.digit == ACCEPT_DIGIT:
            self._settle("accepted")
        elif event.digit == DECLINE_DIGIT:
            self.detail = "passed on the call"
            self._settle("declined")
