"""The consult with a rep at the browser console (``console/``): the offer is written to the
store, where the console shows it (the brief, the transcript so far, the time left) and joins
the consult room to hear the agent speak the brief; Accept or Decline on the card is the
answer. A console that leaves the consult room without answering (the page dropped) passes;
no answer by the offer's deadline is no_answer.

On accept the rep's browser joins the caller's room itself, with a token the API service
gives only for an offer they accepted: the self-hosted join, no MoveParticipant needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from livekit import rtc

from transfer.consult import Answer, JoinPath, RoomConsult
from transfer.offers import ConsoleOffers, Offer, OfferState

logger = logging.getLogger("transfer.console_consult")

POLL_S = 0.1  # how often the desk reads the rep's answer from the store
JOIN_TIMEOUT_S = 20.0  # from the accept to the rep's browser in the caller's room


class ConsoleConsult(RoomConsult):
    def __init__(
        self,
        *,
        offers: ConsoleOffers,
        call_id: str,
        caller_room: str,
        brief: dict[str, Any],
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self._offers = offers
        self._call_id = call_id
        self._caller_room = caller_room
        self._brief = brief
        self.offer: Offer | None = None
        self._deadline_at = 0.0
        self._joined = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._left_checks: set[asyncio.Task[None]] = set()

    async def ring(self) -> bool:
        """Show the offer on the rep's console; True once their browser is in the consult
        room (or they answered from the card first)."""
        self.room.on("participant_connected", self._on_joined)
        await self._connect_agent()
        if self.participant is not None:
            self._joined.set()
        # The whole window, ringing and brief included, is on the card as a countdown.
        window = self._ring_s + self._decide_s
        self.offer = await asyncio.to_thread(
            self._offers.open, rep_id=self.rep.id, call_id=self._call_id,
            caller_room=self._caller_room, consult_room=self.room_name, brief=self._brief,
            decide_s=window,
        )  # fmt: skip
        self._deadline_at = asyncio.get_running_loop().time() + window
        self._watch = asyncio.create_task(self._watch_answer(), name="console-answer")
        joined = asyncio.ensure_future(self._joined.wait())
        waits: set[asyncio.Future[Any]] = {joined, self._answer}
        try:
            await asyncio.wait(waits, timeout=self._ring_s,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            joined.cancel()
        if self._answer.done() or self._joined.is_set():
            return True
        self.detail = f"the console did not pick up within {self._ring_s:.0f} s"
        await self._close("no_answer")
        return False

    async def answer(self) -> Answer:
        """Accept or Decline from the card, a dropped page, or no answer by the deadline on
        the card (the store's word is final: an answer it took in time holds)."""
        loop = asyncio.get_running_loop()
        while not self._answer.done():
            left = self._deadline_at - loop.time()
            if left <= 0:
                window = self._ring_s + self._decide_s
                await self._close("no_answer", f"no answer within {window:.0f} s")
                if not self._answer.done():
                    self.detail = f"no answer within {window:.0f} s"
                    self._settle("no_answer")
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._answer), min(left, 8.0))
            if not self._answer.done() and self._session is not None:
                self._session.say(self._lines.repeat, add_to_chat_ctx=False)
        for check in list(self._left_checks):
            with contextlib.suppress(Exception):
                await check
        return self._answer.result()

    async def tell_caller_left(self) -> None:
        await self._close("caller_hung_up", "hung up on hold")
        await super().tell_caller_left()

    async def hang_up_rep(self) -> None:
        await self._close("withdrawn")
        await super().hang_up_rep()

    async def join_caller(self, caller_room: rtc.Room, caller: rtc.RemoteParticipant) -> JoinPath:
        del caller  # the rep's browser subscribes to the caller's track itself
        joined = asyncio.Event()

        def on_connected(participant: rtc.RemoteParticipant) -> None:
            if participant.identity == self.identity:
                joined.set()

        caller_room.on("participant_connected", on_connected)
        try:
            if self.identity not in caller_room.remote_participants:
                await asyncio.wait_for(joined.wait(), JOIN_TIMEOUT_S)
        except TimeoutError:
            raise RuntimeError("the rep's console did not join the call") from None
        finally:
            caller_room.off("participant_connected", on_connected)
        return "joined"

    async def end_call(self) -> None:
        if self.offer is not None:
            await asyncio.to_thread(self._offers.end_call, self.offer.id)
        await self._remove(self._caller_room)
        await self.aclose(delete_room=True)

    async def aclose(self, *, delete_room: bool) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(BaseException):
                await self._watch
        await super().aclose(delete_room=delete_room)

    # --- the answer, from the store --------------------------------------------------------

    async def _watch_answer(self) -> None:
        assert self.offer is not None
        while not self._answer.done():
            offer = await asyncio.to_thread(self._offers.get, self.offer.id)
            if offer is not None and offer.state != "ringing":
                self._settle_from(offer)
                return
            await asyncio.sleep(POLL_S)

    def _settle_from(self, offer: Offer) -> None:
        self.offer = offer
        if offer.state == "accepted":
            self._settle("accepted")
        elif offer.state == "declined":
            self.detail = offer.detail or "passed on the call"
            self._settle("declined")
        elif offer.state == "no_answer":
            self.detail = self.detail or offer.detail or "no answer"
            self._settle("no_answer")
        else:
            self._settle("failed")

    async def _close(self, state: OfferState, detail: str | None = None) -> None:
        """End the offer on the card; if the rep answered in the meantime, that answer holds."""
        if self.offer is None:
            return
        closed = await asyncio.to_thread(self._offers.close, self.offer.id, state, detail)
        if not closed:
            offer = await asyncio.to_thread(self._offers.get, self.offer.id)
            if offer is not None:
                self._settle_from(offer)

    def _on_joined(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.identity:
            self._joined.set()

    def _on_left(self, participant: rtc.RemoteParticipant) -> None:
        """The browser left the consult room: after an accept it is on its way to the caller;
        without one, the page dropped, which passes on the call."""
        if participant.identity != self.identity or self._answer.done():
            return
        check = asyncio.ensure_future(self._left_without_answer())
        self._left_checks.add(check)
        check.add_done_callback(self._left_checks.discard)

    async def _left_without_answer(self) -> None:
        await self._close("declined", "the console dropped during the brief")
        if not self._answer.done():
            self.detail = "the console dropped during the brief"
            self._settle("rep_left")
