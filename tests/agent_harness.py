"""Builds a real AgentSession around the SalesAgent with a scripted LLM, for behaviour tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from livekit.agents import AgentSession

from agent.sales_agent import SalesAgent
from calls.call import Call, Services, new_call_state
from calls.control import HangsUpAfterSpeech
from tests.scripted_llm import ScriptedLLM, Step


class Hangups(HangsUpAfterSpeech):
    """Call control for tests: counts hang-ups instead of deleting a room."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def hang_up(self) -> None:
        self.count += 1


def new_call(services: Services, *, caller_phone: str | None = "+14155550100",
             call_id: str = "call-1", direction: str = "inbound") -> Call:  # fmt: skip
    state = new_call_state(
        services,
        call_id=call_id,
        direction="outbound" if direction == "outbound" else "inbound",
        caller_phone=caller_phone,
        our_number="+14155550199",
    )
    return Call(state=state, services=services, control=Hangups())


def hangups(call: Call) -> Hangups:
    assert isinstance(call.control, Hangups)
    return call.control


@asynccontextmanager
async def running_agent(
    call: Call, steps: list[Step], *, user_away_timeout: float | None = None
) -> AsyncIterator[tuple[AgentSession[Call], ScriptedLLM, Hangups]]:
    scripted = ScriptedLLM(steps)
    async with AgentSession[Call](
        llm=scripted, userdata=call, user_away_timeout=user_away_timeout
    ) as session:
        await session.start(SalesAgent(call))
        yield session, scripted, hangups(call)
