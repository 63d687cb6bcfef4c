"""A chat script for whole calls: tool-call arguments can be taken from earlier tool results.

The stand-in's `ChatScript` replays fixed arguments; a real call needs some computed from
what a tool returned on this very call (the first slot `offer_slots` offered, in the
wall-clock time of the worker). A string argument of the form

    "$result:offer_slots:slots.0.start"

is replaced, per request, by that path in the JSON of the latest `offer_slots` result in
the request's own history. Requests that offer no tools (the wrap-up summary) get `summary`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callab.standins.chat_script import (
    DEFAULT_FALLBACK,
    ChatScript,
    Message,
    ScriptChoice,
    Step,
)

REFERENCE_PREFIX = "$result:"


@dataclass(frozen=True)
class CallScript(ChatScript):
    raw_steps: tuple[Mapping[str, Any], ...] = ()
    summary: str = "Scripted call summary."

    @classmethod
    def build(
        cls,
        steps: Sequence[Mapping[str, Any]],
        *,
        summary: str,
        fallback: str = DEFAULT_FALLBACK,
    ) -> CallScript:
        return cls(steps=(), fallback=fallback, raw_steps=tuple(steps), summary=summary)

    def choose(self, messages: Sequence[Message], tool_names: Sequence[str]) -> ScriptChoice:
        if not tool_names:
            return ScriptChoice(step=Step(say=self.summary), step_index=None)
        results = tool_results(messages)
        concrete = ChatScript.from_data(
            {"fallback": self.fallback, "steps": [_resolve(s, results) for s in self.raw_steps]}
        )
        return concrete.choose(messages, tool_names)


def tool_results(messages: Sequence[Message]) -> dict[str, Any]:
    """The latest result of each tool in the history, parsed as JSON when it is JSON."""
    names: dict[str, str] = {}
    results: dict[str, Any] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[str(call.get("id"))] = (call.get("function") or {}).get("name", "")
        if message.get("role") == "tool":
            name = names.get(str(message.get("tool_call_id")), "")
            content = message.get("content")
            try:
                results[name] = json.loads(content) if isinstance(content, str) else content
            except json.JSONDecodeError:
                results[name] = content
    return results


def _resolve(value: Any, results: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping):
        return {k: _resolve(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, results) for v in value]
    if isinstance(value, str) and value.startswith(REFERENCE_PREFIX):
        tool, _, path = value.removeprefix(REFERENCE_PREFIX).partition(":")
        found = _walk(results.get(tool), path)
        return value if found is None else found
    return value


def _walk(data: Any, path: str) -> Any:
    for key in filter(None, path.split(".")):
        if isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        elif isinstance(data, Mapping) and key in data:
            data = data[key]
        else:
            return None
    return data
