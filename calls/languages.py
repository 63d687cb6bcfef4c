"""Which language a call goes on in, from the language the STT heard on the caller's turn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# A turn this short ("OK", "sí") says little about the caller's language, and a detector often
# labels it wrongly: it never makes the call change language.
MIN_WORDS_TO_SWITCH = 2
# What the STT reports when it has no one language to report.
_NO_LANGUAGE = frozenset({"", "multi", "und"})


@dataclass(frozen=True, slots=True)
class LanguageChoice:
    action: Literal["keep", "switch", "unsupported"]
    language: str  # the ISO 639-1 code the call goes on in (or the caller speaks)


def base_language(code: str | None) -> str:
    """``"es-419"`` and ``"es"`` are both ``"es"``."""
    return (code or "").replace("_", "-").split("-")[0].strip().lower()


def choose_language(
    *, current: str, heard: str | None, transcript: str, supported: tuple[str, ...]
) -> LanguageChoice:
    """``current``: the language the agent speaks now; ``heard``: the STT's language for the
    caller's latest final transcript; ``supported``: the business's languages."""
    code = base_language(heard)
    if code in _NO_LANGUAGE or code == current or len(transcript.split()) < MIN_WORDS_TO_SWITCH:
        return LanguageChoice("keep", current)
    if code in supported:
        return LanguageChoice("switch", code)
    return LanguageChoice("unsupported", code)
