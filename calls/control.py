"""Call control as the tools and policies see it; the composition root implements it with
LiveKit (``agent.call_control``), tests with a recorder."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal, Protocol

# What asking for a warm transfer did: it began (hold music after the current words), one is
# already under way, or this deployment has no way to reach a rep live (no roster or trunk).
TransferStart = Literal["started", "in_progress", "unavailable"]


class CallControl(Protocol):
    async def hang_up(self) -> None:
        """End the call for everyone: the caller's line closes."""
        ...

    def hang_up_after(self, speech: Awaitable[Any]) -> None:
        """Hang up once ``speech`` (a goodbye) has played, without blocking the caller's turn."""
        ...

    def start_transfer(self, reason: str) -> TransferStart:
        """Hand the caller to a sales rep live (``transfer/``); the outcome lands on
        ``CallState.transfer`` when it is decided."""
        ...


class HangsUpAfterSpeech:
    """``hang_up_after`` for any control that can ``hang_up``: the goodbye is awaited in the
    background, since awaiting it inside a tool would wait on that tool's own turn. No warm
    transfer unless a subclass provides one."""

    def __init__(self) -> None:
        self._background: set[asyncio.Task[None]] = set()

    async def hang_up(self) -> None:
        raise NotImplementedError

    def start_transfer(self, reason: str) -> TransferStart:
        return "unavailable"

    def hang_up_after(self, speech: Awaitable[Any]) -> None:
        async def later() -> None:
            try:
                await speech
            finally:
                await self.hang_up()

        task = asyncio.ensure_future(later())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
