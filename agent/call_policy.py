"""Call-level policies that are not turns: the caller going quiet, and the duration limit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from livekit.agents import AgentSession, UserStateChangedEvent

from calls.call import Call
from prompts.lines import closing_lines

logger = logging.getLogger("agent.call_policy")


class SilencePolicy:
    """Nudge a quiet caller twice, then say goodbye and hang up. Speaking again resets it.

    The session reports "away" once; it does not re-arm while the caller stays away, so the
    policy times the following nudges itself, each after the previous one has played.
    """

    def __init__(self, session: AgentSession[Call], call: Call, *, timeout_s: float) -> None:
        self._session = session
        self._call = call
        self._timeout_s = timeout_s
        self._count = 0
        self._epoch = 0  # bumped whenever the caller speaks, cancelling pending nudges
        self._ended = False
        self._tasks: set[asyncio.Task[None]] = set()
        session.on("user_state_changed", self._on_user_state)

    @property
    def nudges_given(self) -> int:
        return self._count

    def _on_user_state(self, event: UserStateChangedEvent) -> None:
        if event.new_state == "speaking":
            self._count = 0
            self._epoch += 1
        elif event.new_state == "away" and not self._ended:
            self._advance(self._epoch)

    def _advance(self, epoch: int) -> None:
        if self._ended or epoch != self._epoch or self._call.state.agent_stepped_aside:
            return
        closings = closing_lines(language=self._call.language)  # the caller's, by now
        if self._count < len(closings.silence_nudges):
            handle = self._session.say(closings.silence_nudges[self._count])
            self._count += 1
            task = asyncio.create_task(self._after(handle, epoch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self._ended = True
        logger.info("caller silent, ending the call")
        goodbye = self._session.say(closings.silence_goodbye, allow_interruptions=False)
        self._call.control.hang_up_after(goodbye)

    async def _after(self, nudge: Awaitable[object], epoch: int) -> None:
        await nudge
        await asyncio.sleep(self._timeout_s)
        if self._session.user_state != "speaking":
            self._advance(epoch)


class DurationLimit:
    """Wrap the call up politely once it reaches the configured maximum length."""

    def __init__(self, session: AgentSession[Call], call: Call, *, max_seconds: float) -> None:
        self._session = session
        self._call = call
        self._task = asyncio.create_task(self._run(max_seconds))

    async def _run(self, max_seconds: float) -> None:
        await asyncio.sleep(max_seconds)
        while self._call.state.on_hold:  # noqa: ASYNC110  # a transfer under way decides first
            await asyncio.sleep(1.0)
        if self._call.state.transfer == "rep_accepted":
            logger.info("maximum call duration reached with a rep on the line: the call goes on")
            return
        logger.info("maximum call duration reached")
        self._session.interrupt()
        goodbye = closing_lines(language=self._call.language).max_duration_goodbye
        handle = self._session.say(goodbye, allow_interruptions=False)
        self._call.control.hang_up_after(handle)

    def cancel(self) -> None:
        self._task.cancel()
