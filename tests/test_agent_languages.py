"""A caller's language on whole conversations: a real AgentSession around the SalesAgent, a
scripted LLM, the transcript event the STT drives, and the call record the wrap-up writes."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from livekit.agents import AgentSession, ChatMessage, StopResponse
from livekit.agents.voice.events import UserInputTranscribedEvent

from agent.sales_agent import instructions, language_instruction
from calls.call import Call as LiveCall
from calls.wrapup import WrapUp
from prompts.lines import closing_lines, language_lines
from tests.agent_harness import new_call, running_agent
from tests.scripted_llm import Call, Step, say

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("world", ["embedded"], indirect=True),  # the record, not the CRM
]

SPANISH_ASK = "Hola, quiero información sobre su producto"
SPANISH_DONE = "No, nada más, muchas gracias"


async def caller_says(session: AgentSession[LiveCall], text: str, language: str) -> None:
    """A caller's spoken turn as LiveKit's audio path runs it (``session.run`` is the text
    path, which skips the turn hook): the STT's final transcript, with the language it heard,
    then the agent's ``on_user_turn_completed`` on a copy of its context, then the reply on
    that copy."""
    session.emit(
        "user_input_transcribed",
        UserInputTranscribedEvent(transcript=text, is_final=True, language=language),
    )
    agent = session.current_agent
    turn_ctx = agent.chat_ctx.copy()
    message = ChatMessage(role="user", content=[text])
    try:
        await agent.on_user_turn_completed(turn_ctx, new_message=message)
    except StopResponse:
        return
    await session.generate_reply(user_input=message, chat_ctx=turn_ctx, input_modality="audio")


def spoken_lines(session: AgentSession[LiveCall]) -> list[str]:
    return [i.text_content or "" for i in session.history.items
            if i.type == "message" and i.role == "assistant"]  # fmt: skip


async def test_a_spanish_caller_is_answered_and_closed_in_spanish_and_the_record_says_so(world):
    services = replace(world.services, languages=("en", "es"))
    the_call = new_call(services)
    steps = [say("¡Claro! ¿Cuántos vendedores hay en su equipo?"),
             Step(text="Perfecto.", calls=[Call("end_call")])]  # fmt: skip
    async with running_agent(the_call, steps) as (session, scripted, hangups):
        await caller_says(session, SPANISH_ASK, "es")
        await caller_says(session, SPANISH_DONE, "es")
        await asyncio.sleep(0.1)
    await WrapUp(the_call, summarizer=None, outbox=world.outbox).run(session.history)

    first, second = scripted.requests
    told = [i.text_content for i in first.items if i.type == "message" and i.role == "system"]
    assert any(language_instruction("es") in (t or "") for t in told)  # for the switching turn
    assert any("inteligencia artificial" in (t or "") for t in told)  # the notices, in Spanish
    assert second.items[0].text_content == instructions(services.business, "es")  # from then on
    assert spoken_lines(session)[-1] == closing_lines(language="es").goodbye["nurture"]
    assert hangups.count == 1
    [logged] = world.logged_calls()
    assert logged["qualification"]["language"] == "es"


async def test_a_caller_in_a_language_nobody_speaks_is_told_a_colleague_will_call_back(world):
    services = replace(world.services, languages=("en", "es"))
    the_call = new_call(services)
    async with running_agent(the_call, []) as (session, scripted, hangups):
        await caller_says(session, "Bonjour, je voudrais des informations", "fr")
        await asyncio.sleep(0.1)
    await WrapUp(the_call, summarizer=None, outbox=world.outbox).run(session.history)

    assert scripted.requests == []  # the LLM never answered it
    assert spoken_lines(session)[1:] == [language_lines().unsupported["fr"]]  # after the greeting
    assert hangups.count == 1
    [logged] = world.logged_calls()
    assert logged["qualification"]["language"] == "fr, unsupported"
    assert "French" in logged["qualification"]["follow_up"]
