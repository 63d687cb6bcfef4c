"""The answer to a caller who talked over the agent is prepared as soon as their words are in,
like every other answer, not only once their turn has ended.

LiveKit starts the LLM on the caller's final transcript, before the turn is committed
(preemptive generation), but only when no reply of the agent is still live. When the caller
talks over the agent, the reply is paused (so a cough can resume it), and the final that
ends the pause interrupts it only on the loop's next turn: the check has already seen a live
reply, so no answer is prepared, and the LLM starts at the end of the turn instead. In the
voice benchmark that made the barge-in turn the slowest of every call (about 300 ms later
than the others: the end of turn, 0.58 s after the caller's speech, instead of the final's
0.28 s).

So when LiveKit declines to prepare an answer because the reply its own final is about to
interrupt is still paused, the answer is prepared the moment that reply is done: when what
the caller heard of it is in the conversation, which the answer needs. Nothing is prepared
if the turn has moved on by then (a later final prepares its own; a committed turn answers
itself), for a backchannel ("uh-huh", which the agent carries on from without asking the
LLM, agent/backchannel.py), or for a reply that cannot be interrupted.

`install()` wraps LiveKit's `AgentActivity.on_preemptive_generation`; a LiveKit without the
hook or the pause it reads is left as it is (logged): it costs time, never a behaviour."""

from __future__ import annotations

import logging
from typing import Any, cast

from livekit.agents.voice import agent_activity

from agent.backchannel import is_backchannel

logger = logging.getLogger("agent.barge_in")

_installed = False


def paused_reply(activity: Any) -> Any | None:
    """The agent's reply the caller has paused by talking over it, while it is still the
    activity's live reply (so LiveKit declines to prepare an answer); else None."""
    live = cast(Any, getattr(activity, "_current_speech", None))
    paused = cast(Any, getattr(getattr(activity, "_paused_speech", None), "handle", None))
    if live is None or paused is not live:
        return None
    if paused.interrupted or not paused.allow_interruptions:
        return None
    return paused


def still_this_turn(activity: Any, transcript: str) -> bool:
    """Whether the caller's turn is still the one `transcript` was heard in: no later final
    since, the turn not committed, no answer prepared for it yet."""
    recognition = getattr(activity, "_audio_recognition", None)
    if recognition is None or getattr(recognition, "_audio_transcript", None) != transcript:
        return False
    return getattr(activity, "_preemptive_generation", None) is None


def prepare_after_pause(prepare: Any) -> Any:
    """LiveKit's `on_preemptive_generation`, which also prepares the answer to a caller who
    talked over the agent, once the reply they paused is done."""

    def on_preemptive_generation(activity: Any, info: Any) -> None:
        handle = paused_reply(activity)
        if handle is None or is_backchannel(info.new_transcript):
            prepare(activity, info)
            return

        def reply_done(_: object) -> None:
            if still_this_turn(activity, info.new_transcript):
                prepare(activity, info)

        handle.add_done_callback(reply_done)

    return on_preemptive_generation


def install() -> None:
    """Use it in this process (idempotent). Every session build calls it."""
    global _installed
    if _installed:
        return
    _installed = True
    activity = agent_activity.AgentActivity
    prepare = getattr(activity, "on_preemptive_generation", None)
    knows_pauses = callable(getattr(activity, "_update_paused_speech", None))
    if not callable(prepare) or not knows_pauses:
        logger.warning("LiveKit's preemptive generation has changed; barge-ins wait as before")
        return
    # a class attribute LiveKit calls as its hook; mypy forbids assigning methods
    activity.on_preemptive_generation = prepare_after_pause(prepare)  # type: ignore[method-assign]
