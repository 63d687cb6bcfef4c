"""Call control as the tools and policies see it; the composition root implements it with
LiveKit (``agent.call_control``), tests with a recorder."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol


class CallControl(Protocol):
    async def hang_up(self) -> None:
        """End the call for everyone: the caller's line closes."""
        ...

    def hang_up_after(self, speech: Awaitable[Any]) -> None:
        """Hang up once ``speech`` (a goodbye) has played, without blocking the caller's turn."""
        ...

    # The warm transfer to a rep (roadmap) adds ``transfer`` here and sets CallState.transfer.


class HangsUpAfterSpeech:
    """``hang_up_after`` for any control that can ``hang_up``: the goodbye is awaited in the
    background, since awaiting it inside a tool would wait on that tool's own turn."""

    def __init__(self) -> None:
        self._background: set[asyncio.Task[None]] = set()

    async def hang_up(self) -> None:
        raise NotImplementedError

    def hang_up_after(self, speech: Awaitable[Any]) -> None:
        async def later() -> None:
            try:
                await speech
            finally:
                await self.hang_up()

        task = asyncio.ensure_future(later())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
