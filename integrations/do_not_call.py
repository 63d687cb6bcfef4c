"""The do-not-call list as the agent sees it: a caller who says "stop calling me" is added,
and the dialer checks the same list before every dial."""

from __future__ import annotations

from typing import Protocol


class DoNotCallList(Protocol):
    async def add(self, phone_e164: str, *, reason: str) -> None:
        """Add the number; adding it twice is harmless."""
        ...


class NoDoNotCallList:
    """Where no dialer is configured: the request still reaches the CRM property."""

    async def add(self, phone_e164: str, *, reason: str) -> None:
        return None
