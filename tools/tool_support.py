"""What every function tool shares: failures turned into sentences, JSON results, timeouts."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from livekit.agents import ToolError

from calls.call import Call  # runtime import: LiveKit resolves tool type hints
from integrations.errors import IntegrationError, OutcomeUnknown, TemporarilyUnavailable
from metrics import tool_failed

logger = logging.getLogger("tools")
T = TypeVar("T")


@asynccontextmanager
async def speakable_failures(system: str) -> AsyncIterator[None]:
    """Integration failures become ``ToolError``s the agent can say truthfully."""
    try:
        yield
    except TimeoutError:
        tool_failed(system, "timeout")
        raise ToolError(
            f"The {system} did not answer in time, so nothing was changed. Tell the caller "
            "honestly and offer to have someone from the team follow up by email."
        ) from None
    except TemporarilyUnavailable:
        tool_failed(system, "unavailable")
        raise ToolError(
            f"The {system} is unavailable right now, so nothing was changed. Tell the caller "
            "honestly and offer to have someone from the team follow up by email."
        ) from None
    except OutcomeUnknown:
        tool_failed(system, "outcome_unknown")
        raise ToolError(
            f"The {system} did not confirm the change. Do not tell the caller it is done; say "
            "the team will confirm by email."
        ) from None
    except IntegrationError as exc:
        logger.warning("%s error: %s", system, exc)
        tool_failed(system, "rejected")
        raise ToolError(
            f"The {system} rejected the request. Do not claim it succeeded; offer to have "
            "someone follow up by email."
        ) from None


def as_json(payload: dict[str, Any]) -> str:
    """Tool results go to the LLM as JSON text, which models read more reliably than reprs."""
    return json.dumps(payload, default=str)


async def timed(call: Call, work: Awaitable[T]) -> T:
    return await asyncio.wait_for(work, timeout=call.services.tool_timeout_s)
