"""Scenario scripts for the OpenAI Chat Completions stand-in.

A script is an ordered list of steps. Each step is a text reply (`say`), one or more
tool calls (`tool_calls`), or both, optionally guarded by `when`. The position in the
script is recomputed from every request's own history: walking the assistant messages
in order, each one that reproduces the next step's output advances the cursor. That
keeps concurrent calls apart without any conversation key, survives retries, and
ignores assistant text the script did not author (greetings said with `session.say`,
fallbacks). A step whose reply never reached the history (interrupted before any
audio played) is simply served again.

If the step at the cursor is guarded and the guard rejects the request, or the script
is exhausted, the reply is the script's `fallback` text and the cursor does not move.

    {
      "fallback": "Sorry, could you say that again?",
      "steps": [
        {"say": "Hi, this is Sam from Acme. Do you have a minute?"},
        {"when": {"last_user_contains": "yes"},
         "tool_calls": [{"name": "lookup_contact", "arguments": {"phone": "+15551234567"}}]},
        {"when": {"last_role": "tool"}, "say": "Thanks Dana, I found your account.",
         "ttft_ms": 800}
      ]
    }

`when` keys (all optional, all must hold):
  last_role           role of the last message: "user", "tool", "assistant", "system"
  last_user_contains  text (or list of texts, any of) found, case-insensitively, in the
                      last user message
  last_tool           the last message is the result of the tool with this name
  system_contains     text found in a system/developer message
  offers_tool         the request offers a tool with this name
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FALLBACK = "Sorry, could you say that again?"

Message = Mapping[str, Any]


@dataclass(frozen=True)
class ToolCallSpec:
    name: str
    arguments: Mapping[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, separators=(",", ":"))


@dataclass(frozen=True)
class Guard:
    last_role: str | None = None
    last_user_contains: tuple[str, ...] = ()
    last_tool: str | None = None
    system_contains: str | None = None
    offers_tool: str | None = None

    def accepts(self, messages: Sequence[Message], tool_names: Sequence[str]) -> bool:
        last = messages[-1] if messages else {}
        checks = (
            self.last_role is None or last.get("role") == self.last_role,
            not self.last_user_contains or self._last_user_matches(messages),
            self.last_tool is None or _tool_result_name(messages) == self.last_tool,
            self.system_contains is None or self._system_matches(messages),
            self.offers_tool is None or self.offers_tool in tool_names,
        )
        return all(checks)

    def _last_user_matches(self, messages: Sequence[Message]) -> bool:
        user_texts = [message_text(m) for m in messages if m.get("role") == "user"]
        if not user_texts:
            return False
        last = user_texts[-1].casefold()
        return any(needle.casefold() in last for needle in self.last_user_contains)

    def _system_matches(self, messages: Sequence[Message]) -> bool:
        assert self.system_contains is not None
        needle = self.system_contains.casefold()
        return any(
            needle in message_text(m).casefold()
            for m in messages
            if m.get("role") in ("system", "developer")
        )


@dataclass(frozen=True)
class Step:
    say: str | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()
    when: Guard = field(default_factory=Guard)
    ttft_ms: float | None = None

    def produced(self, message: Message) -> bool:
        """Whether an assistant message in the history is this step's reply."""
        history_calls = message.get("tool_calls") or []
        if self.tool_calls:
            return [_call_key(c) for c in history_calls] == [
                (c.name, dict(c.arguments)) for c in self.tool_calls
            ]
        if history_calls or self.say is None:
            return False
        spoken, scripted = _normalize(message_text(message)), _normalize(self.say)
        # an interrupted reply is kept only up to what the caller heard
        return bool(spoken) and (scripted == spoken or scripted.startswith(spoken + " "))


@dataclass(frozen=True)
class ScriptChoice:
    """The reply to one request: a script step, or the fallback (`step_index` None)."""

    step: Step
    step_index: int | None


@dataclass(frozen=True)
class ChatScript:
    steps: tuple[Step, ...]
    fallback: str = DEFAULT_FALLBACK

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | Sequence[Any]) -> ChatScript:
        if isinstance(data, Mapping):
            raw_steps = data.get("steps", [])
            fallback = str(data.get("fallback", DEFAULT_FALLBACK))
        else:
            raw_steps, fallback = data, DEFAULT_FALLBACK
        return cls(
            steps=tuple(_parse_step(s, i) for i, s in enumerate(raw_steps)), fallback=fallback
        )

    @classmethod
    def load(cls, path: str | Path) -> ChatScript:
        text = Path(path).read_text(encoding="utf-8")
        if str(path).endswith((".yaml", ".yml")):
            import yaml  # only needed for YAML scripts

            return cls.from_data(yaml.safe_load(text))
        return cls.from_data(json.loads(text))

    def position(self, messages: Sequence[Message]) -> int:
        cursor = 0
        for message in messages:
            if cursor == len(self.steps):
                break
            if message.get("role") == "assistant" and self.steps[cursor].produced(message):
                cursor += 1
        return cursor

    def choose(self, messages: Sequence[Message], tool_names: Sequence[str]) -> ScriptChoice:
        cursor = self.position(messages)
        if cursor < len(self.steps) and self.steps[cursor].when.accepts(messages, tool_names):
            return ScriptChoice(step=self.steps[cursor], step_index=cursor)
        return ScriptChoice(step=Step(say=self.fallback), step_index=None)


def message_text(message: Message) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def _parse_step(raw: Any, index: int) -> Step:
    if isinstance(raw, str):
        return Step(say=raw)
    if not isinstance(raw, Mapping):
        raise ValueError(f"step {index}: expected an object or a string, got {raw!r}")
    calls = tuple(_parse_call(c, index) for c in raw.get("tool_calls", []))
    say = raw.get("say")
    if say is None and not calls:
        raise ValueError(f"step {index}: needs `say`, `tool_calls`, or both")
    ttft = raw.get("ttft_ms")
    return Step(
        say=say,
        tool_calls=calls,
        when=_parse_guard(raw.get("when", {}), index),
        ttft_ms=float(ttft) if ttft is not None else None,
    )


def _parse_call(raw: Mapping[str, Any], index: int) -> ToolCallSpec:
    arguments = raw.get("arguments", {})
    if isinstance(arguments, str):
        arguments = json.loads(arguments)
    if not isinstance(arguments, Mapping):
        raise ValueError(f"step {index}: tool call arguments must be a JSON object")
    return ToolCallSpec(name=str(raw["name"]), arguments=dict(arguments))


_GUARD_KEYS = {"last_role", "last_user_contains", "last_tool", "system_contains", "offers_tool"}


def _parse_guard(raw: Mapping[str, Any], index: int) -> Guard:
    unknown = set(raw) - _GUARD_KEYS
    if unknown:
        raise ValueError(f"step {index}: unknown `when` keys {sorted(unknown)}")
    contains = raw.get("last_user_contains", ())
    return Guard(
        last_role=raw.get("last_role"),
        last_user_contains=(contains,) if isinstance(contains, str) else tuple(contains),
        last_tool=raw.get("last_tool"),
        system_contains=raw.get("system_contains"),
        offers_tool=raw.get("offers_tool"),
    )


def _call_key(call: Mapping[str, Any]) -> tuple[str, Any]:
    function = call.get("function") or {}
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except json.JSONDecodeError:
        arguments = None
    return (function.get("name", ""), arguments)


def _tool_result_name(messages: Sequence[Message]) -> str | None:
    if not messages or messages[-1].get("role") != "tool":
        return None
    call_id = messages[-1].get("tool_call_id")
    for message in reversed(messages):
        for call in message.get("tool_calls") or []:
            if call.get("id") == call_id:
                return (call.get("function") or {}).get("name")
    return None


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())
