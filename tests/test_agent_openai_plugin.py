"""The real OpenAI plugin, pointed at the local Chat Completions stand-in, driving the agent:
proves the wiring (tool schemas on the wire, streamed tool calls, the follow-up turn and the
post-call summary) that the scripted LLM skips."""

from __future__ import annotations

import pytest
from livekit.agents import AgentSession

from agent.sales_agent import SalesAgent
from agent.session import build_llm
from callab.standins.chat_script import ChatScript
from callab.standins.openai_chat import OpenAIChatStandin
from calls.wrapup import WrapUp
from config import VoiceSettings
from tests.agent_harness import new_call

pytestmark = pytest.mark.integration

SCRIPT = {
    "fallback": "Sorry, could you say that again?",
    "steps": [
        {
            "when": {"last_user_contains": "twenty sellers"},
            "tool_calls": [
                {
                    "name": "record_qualification",
                    "arguments": {"company_size": 20, "crm_system": "hubspot"},
                },
                {"name": "save_contact_details", "arguments": {"first_name": "Jane"}},
            ],
        },
        {"when": {"last_tool": "save_contact_details"}, "say": "Thanks Jane. What's the timeline?"},
    ],
}
SUMMARY_SCRIPT = [
    {"when": {"last_user_contains": "Summarise this sales phone call"},
     "say": "Jane from a twenty-seller HubSpot team wants forecasting."},
]  # fmt: skip


def settings_for(base_url: str) -> VoiceSettings:
    return VoiceSettings(
        deepgram_api_key="unused",  # type: ignore[arg-type]
        cartesia_api_key="unused",  # type: ignore[arg-type]
        openai_api_key="test-key",  # type: ignore[arg-type]
        openai_base_url=base_url,
        llm_model="gpt-4.1-mini",
    )


async def test_real_openai_plugin_runs_the_agents_tools(world):
    async with (
        OpenAIChatStandin(script=ChatScript.from_data(SCRIPT)) as server,
        OpenAIChatStandin(script=ChatScript.from_data(SUMMARY_SCRIPT)) as summary_server,
    ):
        llm = build_llm(settings_for(server.base_url))
        the_call = new_call(world.services, caller_phone="+14155550100")
        async with AgentSession(llm=llm, userdata=the_call) as session:
            await session.start(SalesAgent(the_call))
            result = await session.run(user_input="We have twenty sellers on HubSpot")
            result.expect.contains_function_call(name="record_qualification")
            result.expect.contains_function_call(name="save_contact_details")
            reply = result.expect[-1].is_message(role="assistant")
            assert reply.event().item.text_content.startswith("Thanks Jane")

        first = server.requests[0]
        assert {"record_qualification", "book_meeting", "end_call"} <= set(first.tool_names)
        schema = next(t for t in first.tools if t["function"]["name"] == "record_qualification")
        assert "timeline" in schema["function"]["parameters"]["properties"]
        assert the_call.state.qualification.answers == {"company_size": 20, "crm_system": "hubspot"}
        assert the_call.state.contact is not None and the_call.state.contact.firstname == "Jane"

        summarizer = build_llm(settings_for(summary_server.base_url))
        outcome = await WrapUp(the_call, summarizer=summarizer, outbox=world.outbox).run(
            session.history
        )
        assert "Agent: Thanks Jane" in summary_server.requests[0].messages[-1]["content"]
    assert outcome is not None and not outcome.queued
    assert outcome.record.summary.startswith("Jane from a twenty-seller")
    [logged] = world.logged_calls()
    assert logged["disposition"] == "hung_up"


async def test_the_request_body_on_the_wire_is_livekits_conversation_and_tools(world):
    """With the request body sent without the client's walk (agent/hot_paths.py), what
    reaches the server is still exactly LiveKit's formatted conversation and tool schemas."""
    from livekit.agents import llm as lk_llm

    from agent import hot_paths

    hot_paths.install()
    async with OpenAIChatStandin(script=ChatScript.from_data(SCRIPT)) as server:
        plugin = build_llm(settings_for(server.base_url))
        agent = SalesAgent(new_call(world.services, caller_phone="+14155550100"))
        ctx = agent.chat_ctx.copy()
        ctx.add_message(role="user", content="We have twenty sellers on HubSpot")
        async with plugin.chat(chat_ctx=ctx, tools=agent.tools) as stream:
            async for _ in stream:
                pass
    body = server.requests[0].body
    assert body["messages"] == ctx.to_provider_format("openai")[0]
    tools = lk_llm.ToolContext(agent.tools).parse_function_tools("openai", strict=True)
    assert body["tools"] == tools
    assert body["stream"] is True and body["temperature"] == 0.3
    assert body["parallel_tool_calls"] is False and "seed" not in body
