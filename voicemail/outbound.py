"""What the agent does once an outbound call is answered: open the conversation for a person,
or, for a mailbox, leave the message after the beep and hang up."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from livekit.agents import AgentSession

from calls.call import Call
from voicemail.decision import Decision
from voicemail.message import voicemail_message
from voicemail.screen import CalleeScreen

logger = logging.getLogger("voicemail.outbound")


class Opener(Protocol):
    """The agent's side. It queues its opener as it would for a person (AMD holds it back
    until its verdict, and cancels it for a machine)."""

    def open_conversation(self) -> None:
        """A person answered: their turns are answered from now on."""
        ...

    def stop_conversation(self) -> None:
        """A machine answered: never answer its turns (its greeting, its prompts)."""
        ...


async def handle_answer(
    screen: CalleeScreen, *, session: AgentSession[Any], call: Call, opener: Opener
) -> Decision | None:
    """Act on each of the screen's decisions until it has nothing more to decide; returns the
    last one. The screen is closed when this returns (its beep listener stops)."""
    async with contextlib.aclosing(screen.decisions()) as decisions:
        last = await _act(decisions, session=session, call=call, opener=opener)
    if last is None or last.action == "open":
        opener.open_conversation()  # a screen that could not decide leaves it to the person
    return last


async def _act(
    decisions: AsyncIterator[Decision], *, session: AgentSession[Any], call: Call, opener: Opener
) -> Decision | None:
    last: Decision | None = None
    async for decision in decisions:
        last = decision
        logger.info("callee screened: %s (%s)", decision.action, decision.reason)
        if decision.action == "open":
            opener.open_conversation()
            continue  # AMD released the queued opener; a late beep may still revise this
        opener.stop_conversation()
        if decision.action == "wait_for_beep":
            continue
        call.state.voicemail_reason = decision.reason
        if decision.action == "hang_up":
            call.state.voicemail = "no_message"
            await call.control.hang_up()
            break
        call.state.voicemail = "message_left"
        message = session.say(
            voicemail_message(call), allow_interruptions=False, add_to_chat_ctx=True
        )
        call.control.hang_up_after(message)
        break
    return last
