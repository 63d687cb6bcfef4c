"""How the OpenAI stand-in answers LiveKit's answering-machine classification request.

LiveKit's AMD sends the callee's transcript as the user message, offers a ``save_prediction``
tool whose ``label`` is one of ``human``, ``machine-vm``, ``machine-unavailable``,
``machine-ivr``, ``uncertain``, and requires a tool call. A real model reads the words; the
stand-in applies a fixed, visible rule to the same words, first match wins:

1. a phrase saying no message can be left ("mailbox is full", "has not been set up") ->
   ``machine-unavailable``;
2. a mailbox phrase ("leave a message", "after the tone", "voicemail", "not available",
   "you've reached", "can't take your call" ...) -> ``machine-vm`` (a carrier mailbox may
   also offer "press 1 for more options": it is still a mailbox);
3. a menu ("press 1", "press one", "for English") or call screening ("state your name") ->
   ``machine-ivr``;
4. anything else -> ``human``.

So it is a keyword classifier, nothing more: the benchmark's figures with the stand-in measure
this rule plus the real timing and beep logic, not a model's judgement.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

AMD_TOOL = "save_prediction"
UNAVAILABLE = (
    "mailbox is full", "mailbox has not been set up", "has not been set up",
    "hasn't been set up", "not accepting messages", "cannot accept messages",
    "can't accept messages",
)  # fmt: skip
IVR = ("press 1", "press one", "press 2", "press two", "for english", "state your name")
VOICEMAIL = (
    "leave a message", "leave your message", "leave me a message", "leave a brief message",
    "after the tone", "after the beep", "at the tone", "at the beep", "voicemail",
    "voice mail", "not available", "unavailable", "you've reached", "you have reached",
    "can't take your call", "cannot take your call", "can't come to the phone",
    "record your message", "get back to you",
)  # fmt: skip


def classify_greeting(transcript: str) -> str:
    text = " ".join(re.sub(r"[^\w\s']", " ", transcript.casefold()).split())
    for label, phrases in (
        ("machine-unavailable", UNAVAILABLE),
        ("machine-vm", VOICEMAIL),
        ("machine-ivr", IVR),
    ):
        if any(phrase in text for phrase in phrases):
            return label
    return "human"


def is_amd_request(tool_names: Sequence[str]) -> bool:
    return AMD_TOOL in tool_names


def amd_labels(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    """The labels the request's ``save_prediction`` schema allows (an enum, maybe in $defs)."""
    for tool in tools:
        function = tool.get("function") or {}
        if function.get("name") == AMD_TOOL:
            return _enums(function.get("parameters") or {})
    return []


def _enums(schema: Any) -> list[str]:
    if isinstance(schema, Mapping):
        if isinstance(schema.get("enum"), list):
            return [str(v) for v in schema["enum"]]
        for value in schema.values():
            if found := _enums(value):
                return found
    if isinstance(schema, list):
        for value in schema:
            if found := _enums(value):
                return found
    return []
