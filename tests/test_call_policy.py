"""Call policies on a real AgentSession: a silent caller, an over-long call, an anonymous one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

import prompts
from agent.call_policy import DurationLimit, SilencePolicy
from agent.worker import start_call_state
from tests.agent_harness import new_call, running_agent

pytestmark = pytest.mark.integration


def spoken(session) -> list[str]:
    return [
        i.text_content
        for i in session.history.items
        if i.type == "message" and i.role == "assistant"
    ]


async def settle(condition, *, limit_s: float) -> None:
    """Poll ``condition`` until it holds or ``limit_s`` passes; the caller asserts after."""
    for _ in range(int(limit_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)


async def test_silent_caller_is_nudged_twice_then_the_call_ends(world):
    closings = prompts.load_yaml("closings.yaml")
    the_call = new_call(world.services)
    async with running_agent(the_call, [], user_away_timeout=0.2) as (session, _llm, hangups):
        policy = SilencePolicy(session, the_call, timeout_s=0.2)
        await settle(lambda: hangups.count, limit_s=5)
    assert policy.nudges_given == 2 and hangups.count == 1
    assert spoken(session)[1:] == [*closings["silence_nudges"], closings["silence_goodbye"]]
    assert the_call.state.disposition() == "hung_up"


async def test_speaking_again_resets_the_nudges(world):
    the_call = new_call(world.services)
    async with running_agent(the_call, [], user_away_timeout=0.2) as (session, _llm, hangups):
        policy = SilencePolicy(session, the_call, timeout_s=0.2)
        await settle(lambda: policy.nudges_given, limit_s=3)
        assert policy.nudges_given == 1
        session.emit(
            "user_state_changed",
            SimpleNamespace(old_state="away", new_state="speaking", created_at=0.0),
        )
        assert policy.nudges_given == 0 and hangups.count == 0


async def test_duration_limit_wraps_up_politely(world):
    the_call = new_call(world.services)
    async with running_agent(the_call, []) as (session, _llm, hangups):
        DurationLimit(session, the_call, max_seconds=0.2)
        await settle(lambda: hangups.count, limit_s=3)
    assert hangups.count == 1
    assert spoken(session)[-1] == prompts.load_yaml("closings.yaml")["max_duration_goodbye"]


async def test_anonymous_caller_is_greeted_as_new_without_a_crm_lookup(world):
    world.seed_contact(phone="+14155550100", firstname="Dana")
    withheld = SimpleNamespace(attributes={"sip.phoneNumber": "anonymous"})
    state = await start_call_state(
        world.services, call_id="c-anon", direction="inbound", participant=withheld
    )
    assert state.caller_phone is None and state.contact is None
