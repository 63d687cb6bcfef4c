"""The call so far as text, and a rep-facing summary of it: at wrap-up, and mid-call when a rep
takes over."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from livekit.agents import ChatContext, llm, stt

import prompts

logger = logging.getLogger("calls.transcript")

SUMMARY_TIMEOUT_S = 8.0
SPEAKER = "speaker"  # ChatMessage.extra key: who said a line when not the caller (a rep)


@dataclass(frozen=True)
class Heard:
    text: str
    at: float  # when the caller began saying it (time.time(): the clock of ChatItem.created_at)


class HeardWords:
    """Every final transcript as it comes out of the STT, before LiveKit's turn handling. That
    handling drops some turns: one that ends while the agent says something nothing may
    interrupt (a voicemail message), one whose words are still held back when the call ends.
    The words were said all the same, and the record keeps them (``completed``)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._heard: list[Heard] = []
        self._onset: float | None = None  # when the utterance being transcribed began

    def observe(self, event: stt.SpeechEvent) -> None:
        if event.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
            text = " ".join(event.alternatives[0].text.split()) if event.alternatives else ""
            if text:
                self._heard.append(Heard(text, self._onset or self._clock()))
            self._onset = None
        elif event.type in _UTTERANCE_EVENTS and self._onset is None:
            self._onset = self._clock()

    def completed(self, history: ChatContext) -> ChatContext:
        """The history with every caller line the session dropped put back where it was said
        (a copy; lines the history has, in their order, are never added twice)."""
        kept = [" ".join((item.text_content or "").split()) for item in history.items
                if item.type == "message" and item.role == "user"]  # fmt: skip
        dropped = unkept(self._heard, kept)
        if not dropped:
            return history
        logger.info("%d caller line(s) the session dropped kept in the record", len(dropped))
        completed = history.copy()
        for line in dropped:
            completed.insert(llm.ChatMessage(role="user", content=[line.text], created_at=line.at))
        return completed


_UTTERANCE_EVENTS = frozenset({
    stt.SpeechEventType.START_OF_SPEECH, stt.SpeechEventType.INTERIM_TRANSCRIPT,
    stt.SpeechEventType.PREFLIGHT_TRANSCRIPT,
})  # fmt: skip


def unkept(heard: list[Heard], kept: list[str]) -> list[Heard]:
    """The finals not found in the kept lines, matched in order: a turn's line is its finals
    joined, and a final said twice is found once per time it was kept."""
    missing: list[Heard] = []
    line, position = 0, 0
    for final in heard:
        for index in range(line, len(kept)):
            found = kept[index].find(final.text, position if index == line else 0)
            if found >= 0:
                line, position = index, found + len(final.text)
                break
        else:
            missing.append(final)
    return missing


def transcript_text(history: ChatContext) -> str:
    return "\n".join(line for item in history.items if (line := transcript_line(item)))


def transcript_line(item: llm.ChatItem) -> str | None:
    """One spoken line as the transcript shows it ("Caller: ..."), or None for anything else
    (tool calls, instructions, silence)."""
    if item.type != "message" or item.role not in ("user", "assistant"):
        return None
    text = (item.text_content or "").strip()
    if not text:
        return None
    who = item.extra.get(SPEAKER) or ("Caller" if item.role == "user" else "Agent")
    return f"{who}: {text}{' [interrupted]' if item.interrupted else ''}"


async def summarise(
    summarizer: llm.LLM | None, *, transcript: str, answers: dict[str, str], disposition: str
) -> str:
    """An LLM summary for the rep; a plain factual one if the LLM is unavailable."""
    fallback = plain_summary(answers, disposition)
    if summarizer is None or not transcript:
        return fallback
    prompt = prompts.render(
        prompts.load_text("summary.md"),
        answers="\n".join(f"- {k}: {v}" for k, v in answers.items()) or "- none",
        disposition=disposition,
        transcript=transcript,
    )
    ctx = ChatContext.empty()
    ctx.add_message(role="user", content=prompt)
    try:
        async with asyncio.timeout(SUMMARY_TIMEOUT_S):
            response = await summarizer.chat(chat_ctx=ctx).collect()
    except Exception as exc:  # a summary must never cost us the call record
        logger.warning("summary failed, using the plain one: %r", exc)
        return fallback
    return response.text.strip() or fallback


def plain_summary(answers: dict[str, str], disposition: str) -> str:
    facts = ", ".join(f"{k}: {v}" for k, v in answers.items()) or "no qualification answers"
    return f"Outcome: {disposition}. {facts}."
