"""agent/barge_in.py: the answer to a caller who talked over the agent is prepared once the
reply they paused is done, with what they heard of it, unless the turn has moved on.

The activity here is LiveKit's state the wrapper reads (its paused reply, its live reply, the
transcript of the turn, its prepared answer), with LiveKit's own SpeechHandle; the e2e
barge-in test runs the whole path in a real call."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from livekit.agents.voice import agent_activity
from livekit.agents.voice.audio_recognition import AudioRecognition
from livekit.agents.voice.speech_handle import SpeechHandle

from agent import barge_in

pytestmark = pytest.mark.unit


@dataclass
class Activity:
    """What of LiveKit's AgentActivity the wrapper reads, and a record of LiveKit's own
    `on_preemptive_generation` being asked."""

    transcript: str
    paused: SpeechHandle | None = None
    current: SpeechHandle | None = None
    prepared: list[str] = field(default_factory=list)
    _preemptive_generation: Any = None

    @property
    def _paused_speech(self) -> Any:
        return None if self.paused is None else SimpleNamespace(handle=self.paused)

    @property
    def _current_speech(self) -> SpeechHandle | None:
        return self.current

    @property
    def _audio_recognition(self) -> Any:
        return SimpleNamespace(_audio_transcript=self.transcript)


def livekits(activity: Activity, info: Any) -> None:
    activity.prepared.append(info.new_transcript)


def info(text: str) -> Any:
    return SimpleNamespace(new_transcript=text)


def talked_over(text: str, *, allow_interruptions: bool = True) -> Activity:
    reply = SpeechHandle.create(allow_interruptions=allow_interruptions)
    return Activity(transcript=text, paused=reply, current=reply)


async def reply_done(handle: SpeechHandle) -> None:
    handle._mark_done()  # LiveKit marks it once the reply's task has recorded what was heard
    await asyncio.sleep(0)  # its done callbacks run on the next loop turn


async def test_the_answer_is_prepared_once_the_paused_reply_is_done() -> None:
    text = "Sorry, can you just email me the pricing?"
    activity = talked_over(text)
    on_final = barge_in.prepare_after_pause(livekits)
    on_final(activity, info(text))
    assert activity.prepared == []  # LiveKit's check would see a live reply now
    assert activity.paused is not None
    activity.paused.interrupt()  # what LiveKit's own final does on its next loop turn
    await asyncio.sleep(0)
    assert activity.prepared == []  # what the caller heard is not in the conversation yet
    await reply_done(activity.paused)
    assert activity.prepared == [text]


async def test_nothing_is_prepared_when_the_turn_has_moved_on() -> None:
    on_final = barge_in.prepare_after_pause(livekits)
    later = talked_over("Sorry, can you")
    on_final(later, info("Sorry, can you"))
    later.transcript = "Sorry, can you just email me"  # a later final: it prepares its own
    committed = talked_over("Email me")
    on_final(committed, info("Email me"))
    committed.transcript = ""  # the turn was committed: it answers itself
    answered = talked_over("Email me")
    on_final(answered, info("Email me"))
    answered._preemptive_generation = object()  # an answer is already being prepared
    for activity in (later, committed, answered):
        assert activity.paused is not None
        await reply_done(activity.paused)
        assert activity.prepared == []


@pytest.mark.parametrize(
    "activity",
    [
        Activity(transcript="What does it cost?"),  # the agent was not talking
        talked_over("Uh-huh."),  # a backchannel: the agent carries on, the LLM is not asked
        talked_over("Wait", allow_interruptions=False),  # a reply that cannot be cut off
    ],
    ids=["no reply", "backchannel", "uninterruptible"],
)
async def test_otherwise_livekit_decides_at_once(activity: Activity) -> None:
    barge_in.prepare_after_pause(livekits)(activity, info(activity.transcript))
    assert activity.prepared == [activity.transcript]  # and LiveKit's own checks apply


async def test_a_reply_already_interrupted_is_livekits_to_decide() -> None:
    activity = talked_over("What does it cost?")
    assert activity.paused is not None
    activity.paused.interrupt()
    barge_in.prepare_after_pause(livekits)(activity, info(activity.transcript))
    assert activity.prepared == [activity.transcript]


def test_install_wraps_livekits_hook_once() -> None:
    barge_in.install()
    wrapped = agent_activity.AgentActivity.on_preemptive_generation
    barge_in.install()
    assert agent_activity.AgentActivity.on_preemptive_generation is wrapped
    assert wrapped.__qualname__.startswith("prepare_after_pause")
    # the state it reads is still LiveKit's
    assert callable(agent_activity.AgentActivity._update_paused_speech)
    assert {"_paused_speech", "_current_speech", "_preemptive_generation"} <= set(
        agent_activity.AgentActivity.__init__.__code__.co_names
    )
    assert "_audio_transcript" in AudioRecognition.__init__.__code__.co_names
