"""The fixed lines of ``greeting.yaml`` and ``closings.yaml`` as typed objects, read once; a
language other than English has its own copy of each in ``prompts/<code>/``, and
``languages.yaml`` holds what the agent says or is told about languages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from types import MappingProxyType
from typing import Any

from prompts import PromptError, load_yaml


@dataclass(frozen=True, slots=True)
class GreetingLines:
    known_caller: str
    new_caller: str
    ai_disclosure: str
    recording_notice: str
    question_known: str
    question_new: str
    outbound_known: str
    outbound_new: str
    outbound_reason: str
    outbound_no_reason: str
    question_outbound: str


@dataclass(frozen=True, slots=True)
class ClosingLines:
    silence_nudges: tuple[str, ...]
    silence_goodbye: str
    max_duration_goodbye: str
    goodbye: Mapping[str, str]  # by disposition


ENGLISH = "en"


def _in_language(name: str, language: str) -> str:
    return name if language == ENGLISH else f"{language}/{name}"


@cache
def greeting_lines(name: str = "greeting.yaml", language: str = ENGLISH) -> GreetingLines:
    name = _in_language(name, language)
    raw = _mapping(name)
    return GreetingLines(**{f.name: _text(raw, f.name, name) for f in fields(GreetingLines)})


@cache
def closing_lines(name: str = "closings.yaml", language: str = ENGLISH) -> ClosingLines:
    name = _in_language(name, language)
    raw = _mapping(name)
    nudges = raw.get("silence_nudges")
    goodbye = raw.get("goodbye")
    if not isinstance(nudges, list) or not all(isinstance(n, str) for n in nudges):
        raise PromptError(f"prompts/{name}: silence_nudges must be a list of lines")
    if not isinstance(goodbye, dict):
        raise PromptError(f"prompts/{name}: goodbye must map each outcome to a line")
    return ClosingLines(
        silence_nudges=tuple(nudges),
        silence_goodbye=_text(raw, "silence_goodbye", name),
        max_duration_goodbye=_text(raw, "max_duration_goodbye", name),
        goodbye=MappingProxyType({str(k): str(v) for k, v in goodbye.items()}),
    )


def _mapping(name: str) -> dict[str, Any]:
    raw = load_yaml(name)
    if not isinstance(raw, dict):
        raise PromptError(f"prompts/{name} must be a mapping of line names to lines")
    return raw


def _text(raw: dict[str, Any], key: str, name: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PromptError(f"prompts/{name} needs a line for {key!r}")
    return value


@dataclass(frozen=True, slots=True)
class VoicemailLines:
    callback_number: str
    greeting_named: str
    greeting_unnamed: str
    reason: str
    no_reason: str
    ai_disclosure: str
    call_back: str
    sign_off: str


@cache
def voicemail_lines(name: str = "voicemail.yaml") -> VoicemailLines:
    raw = _mapping(name)
    return VoicemailLines(**{f.name: _text(raw, f.name, name) for f in fields(VoicemailLines)})


@dataclass(frozen=True, slots=True)
class LanguageLines:
    instruction: str  # added to the system prompt once the caller speaks another language
    notices: str  # how the instruction asks for the AI and recording notices again
    names: Mapping[str, str]  # by language code: the language's name in English
    unsupported: Mapping[str, str]  # by code: "a colleague will call you back", in it


@cache
def language_lines(name: str = "languages.yaml") -> LanguageLines:
    raw = _mapping(name)
    languages = raw.get("languages")
    if not isinstance(languages, dict) or ENGLISH not in languages:
        raise PromptError(f"prompts/{name}: languages must map codes, English among them")
    entries = {str(code): entry for code, entry in languages.items()}
    if not all(isinstance(entry, dict) for entry in entries.values()):
        raise PromptError(f"prompts/{name}: each language needs a name and an unsupported line")
    return LanguageLines(
        instruction=_text(raw, "instruction", name),
        notices=_text(raw, "notices", name),
        names=MappingProxyType({c: _text(e, "name", name) for c, e in entries.items()}),
        unsupported=MappingProxyType(
            {c: _text(e, "unsupported", name) for c, e in entries.items()}
        ),
    )


def check_languages(codes: tuple[str, ...]) -> None:
    """Every configured language has its lines, so a missing file fails at start, not on a
    call."""
    names = language_lines().names
    for code in codes:
        if code not in names:
            raise PromptError(f"prompts/languages.yaml has no entry for {code!r}")
        greeting_lines(language=code)
        closing_lines(language=code)
