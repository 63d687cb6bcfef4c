"""A scripted LLM for agent-behaviour tests: it replays tool calls and replies in order, so a
test can drive the real AgentSession, tools and integrations without a model."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import APIConnectOptions, llm
from livekit.agents.llm import ChatChunk, ChatContext, ChoiceDelta, FunctionToolCall
from livekit.agents.utils import shortuuid


@dataclass
class Call:
    """One tool call; ``args`` may be computed from the chat so far (e.g. an offered slot)."""

    name: str
    args: dict[str, Any] | Callable[[ChatContext], dict[str, Any]] = field(default_factory=dict)


@dataclass
class Step:
    """One LLM turn: some text, some tool calls, or both."""

    text: str = ""
    calls: list[Call] = field(default_factory=list)


def say(text: str) -> Step:
    return Step(text=text)


def call(name: str, args: Any = None) -> Step:
    return Step(calls=[Call(name, args or {})])


class ScriptExhausted(AssertionError):
    pass


class ScriptedLLM(llm.LLM):
    def __init__(self, steps: list[Step]) -> None:
        super().__init__()
        self._steps = list(steps)
        self.requests: list[ChatContext] = []
        self.tools_offered: list[list[str]] = []

    @property
    def remaining(self) -> int:
        return len(self._steps)

    def next_step(self, chat_ctx: ChatContext) -> Step:
        self.requests.append(chat_ctx.copy())
        if not self._steps:
            raise ScriptExhausted("the agent asked the LLM for more turns than the script has")
        return self._steps.pop(0)

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = llm.llm.DEFAULT_API_CONNECT_OPTIONS,
        **_: Any,
    ) -> llm.LLMStream:
        self.tools_offered.append([getattr(t, "id", str(t)) for t in tools or []])
        return _ScriptedStream(
            self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )


class _ScriptedStream(llm.LLMStream):
    def __init__(self, owner: ScriptedLLM, **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self._owner = owner

    async def _run(self) -> None:
        step = self._owner.next_step(self._chat_ctx)
        request_id = shortuuid("req_")
        if step.text:
            for word in step.text.split(" "):
                self._event_ch.send_nowait(
                    ChatChunk(
                        id=request_id, delta=ChoiceDelta(role="assistant", content=word + " ")
                    )
                )
        calls = [
            FunctionToolCall(
                name=c.name,
                arguments=json.dumps(c.args(self._chat_ctx) if callable(c.args) else c.args),
                call_id=shortuuid("call_"),
            )
            for c in step.calls
        ]
        if calls:
            self._event_ch.send_nowait(
                ChatChunk(id=request_id, delta=ChoiceDelta(role="assistant", tool_calls=calls))
            )


def tool_output(chat_ctx: ChatContext, name: str) -> Any:
    """The latest output of tool ``name`` in the chat, parsed from JSON."""
    calls = {i.call_id: i.name for i in chat_ctx.items if i.type == "function_call"}
    for item in reversed(chat_ctx.items):
        if item.type == "function_call_output" and calls.get(item.call_id) == name:
            try:
                return json.loads(item.output)
            except json.JSONDecodeError:
                return item.output
    raise AssertionError(f"no output of {name} in the chat yet")


def offered_slot(index: int = 0, *, tool: str = "offer_slots") -> Callable[[ChatContext], dict]:
    """Arguments picking the ``index``-th slot the latest ``tool`` output offered."""
    return lambda ctx: {"start": tool_output(ctx, tool)["slots"][index]["start"]}
