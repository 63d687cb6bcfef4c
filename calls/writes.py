"""Writes still in flight on a call. A hang-up cancels the turn that started a write, so each
write runs shielded; the wrap-up waits for them before it records the call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

logger = logging.getLogger("calls.writes")
T = TypeVar("T")


class InFlightWrites:
    def __init__(self) -> None:
        self._pending: set[asyncio.Task[Any]] = set()

    def shielded(self, work: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """Run ``work`` so that cancelling the caller of this cannot cancel it half-way."""
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return asyncio.shield(task)

    async def settle(self, timeout_s: float) -> None:
        """Wait for every write still running; cancel (and log) those that take too long."""
        if not self._pending:
            return
        _done, still = await asyncio.wait(set(self._pending), timeout=timeout_s)
        for task in still:
            logger.error("a write was still running at wrap-up")
            task.cancel()
