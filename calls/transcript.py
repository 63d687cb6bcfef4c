"""The call so far as text, and a rep-facing summary of it: at wrap-up, and mid-call when a rep
takes over."""

from __future__ import annotations

import asyncio
import logging

from livekit.agents import ChatContext, llm

import prompts

logger = logging.getLogger("calls.transcript")

SUMMARY_TIMEOUT_S = 8.0
SPEAKER = "speaker"  # ChatMessage.extra key: who said a line when not the caller (a rep)


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
