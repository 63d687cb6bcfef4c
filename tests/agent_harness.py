"""Builds a real AgentSession around the SalesAgent with a scripted LLM, for behaviour tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from livekit.agents import AgentSession

from agent.sales_agent import SalesAgent
from agent.state import CallState, Services
from tests.scripted_llm import ScriptedLLM, Step


class Hangups:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1


def new_call(services: Services, *, caller_phone: str | None = "+14155550100",
             call_id: str = "call-1", direction: str = "inbound") -> CallState:  # fmt: skip
    state = CallState(
        call_id=call_id,
        services=services,
        direction="outbound" if direction == "outbound" else "inbound",
        started_at=services.now(),
        caller_phone=caller_phone,
        our_number="+14155550199",
    )
    state.infer_zone_from_phone()
    return state


@asynccontextmanager
async def running_agent(
    state: CallState, steps: list[Step], *, user_away_timeout: float | None = None
) -> AsyncIterator[tuple[AgentSession[CallState], ScriptedLLM, Hangups]]:
    scripted = ScriptedLLM(steps)
    hangups = Hangups()
    state.hangup = hangups
    async with AgentSession[CallState](
        llm=scripted, userdata=state, user_away_timeout=user_away_timeout
    ) as session:
        await session.start(SalesAgent(state))
        yield session, scripted, hangups
