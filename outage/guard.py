"""A provider down in the middle of a call: once the session reports that every endpoint of
its STT, LLM or TTS has failed, the caller hears the apology recorded ahead of time, a callback
is queued, the call ends cleanly and its record says why. Once per call, however many
providers fail."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any, Protocol

from calls.call import Call
from calls.state import CallState
from outage.clips import ApologyClips

logger = logging.getLogger("outage")

PROVIDERS = {"stt_error": "speech-to-text", "llm_error": "LLM", "tts_error": "text-to-speech"}
QUEUE_TIMEOUT_S = 5.0  # the queue slow too: end the call anyway, the record says no callback


class Callbacks(Protocol):
    async def queue(self, state: CallState, *, at: Any, now: Any) -> Any: ...


class OutageGuard:
    def __init__(
        self,
        session: Any,
        call: Call,
        *,
        clips: ApologyClips,
        callbacks: Callbacks,
        callback_after: timedelta,
    ) -> None:
        self._session = session
        self._call = call
        self._clips = clips
        self._callbacks = callbacks
        self._after = callback_after
        self._ending: asyncio.Task[None] | None = None
        session.on("error", self._on_error)

    @property
    def tripped(self) -> bool:
        return self._ending is not None

    def _on_error(self, event: Any) -> None:
        error = event.error
        if error.recoverable or self._ending is not None:
            return
        provider = PROVIDERS.get(getattr(error, "type", ""), "a provider")
        self._ending = asyncio.create_task(self._cut_short(provider), name="provider_outage")

    async def _cut_short(self, provider: str) -> None:
        state = self._call.state
        logger.error("every %s endpoint is down: the call is cut short", provider,
                     extra={"provider": provider})  # fmt: skip
        state.cut_short = f"provider outage ({provider})"
        state.ended_by_agent = True  # we end it, not the caller
        due = await self._call.writes.shielded(self._queue_callback())
        clip = self._clips.choose(callback=due is not None)
        try:
            if clip is None:
                logger.error("no recorded apology to play; hanging up without one")
                return
            handle = self._session.say(clip.text, audio=clip.frames(), allow_interruptions=False)
            await handle
            logger.info("outage apology played (%.1f s, callback %s)", clip.seconds,
                        "queued" if due else "not possible",
                        extra={"provider": provider, "callback": due is not None})  # fmt: skip
        except RuntimeError as exc:  # the session closed under us: the line is gone anyway
            logger.warning("the outage apology could not play: %r", exc)
        finally:
            await self._call.control.hang_up()

    async def _queue_callback(self) -> Any:
        state = self._call.state
        now = self._call.now()
        try:
            async with asyncio.timeout(QUEUE_TIMEOUT_S):
                due = await self._callbacks.queue(state, at=now + self._after, now=now)
        except Exception as exc:  # the record says no callback, and so does the apology
            logger.error("could not queue the callback: %r", exc)
            return None
        state.callback_at = due
        if due is None:
            logger.info("no callback: the number is withheld or must not be called")
        return due
