"""The end-of-turn model is LiveKit's local one, and it runs here with no network."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from agent.session import turn_detector

pytestmark = pytest.mark.integration


def test_session_uses_the_local_v1_mini_model():
    detector = turn_detector()
    assert detector.model == "turn-detector-v1-mini"
    assert detector.describe_options()["model"] == "turn-detector-v1-mini"


def test_model_weights_ship_in_the_wheel_and_infer_offline(monkeypatch):
    from livekit.local_inference import EOT, EOT_MAX_SAMPLES, init_eot

    def no_network(*_args, **_kwargs):
        raise AssertionError("the turn detector tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    init_eot()
    with EOT() as eot:
        silence = np.zeros(EOT_MAX_SAMPLES, dtype=np.int16)
        t = np.arange(EOT_MAX_SAMPLES) / 16000
        tone = (np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16)
        probabilities = [eot.predict(silence), eot.predict(tone)]
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert probabilities[0] != probabilities[1]  # it looks at the audio, not a constant


@pytest.mark.parametrize(
    ("words", "left_open"),
    [
        ("My budget is", True),
        ("The main problem is that we", True),
        ("We need a better way to", True),
        ("I'd like to talk to the", True),
        ("Because our current, um", True),
        ("Well, we have,", True),
        ("We use", True),  # a verb that wants an object, after a pronoun
        ("I'd like", True),
        ("That's what we use.", False),
        ("I see.", False),
        ("around fifty thousand a year.", False),
        ("Hi, I'm Dana from Acme.", False),
        ("Yes, it is.", False),  # an auxiliary after a pronoun ends a short answer
        ("Yes I am", False),
        ("Thank you.", False),
        ("What is it for?", False),  # a question is whole whatever its last word
        ("", None),
    ],
)
def test_the_words_say_whether_the_sentence_is_left_open(words, left_open):
    from agent.endpointing import sentence_left_open

    assert sentence_left_open(words, "en-US") is left_open


def test_a_language_whose_words_we_do_not_list_is_left_to_the_model():
    from agent.endpointing import sentence_left_open

    assert sentence_left_open("Mi presupuesto es", "es") is None


async def test_each_decision_uses_the_threshold_the_words_call_for():
    from livekit.agents.language import LanguageCode
    from livekit.agents.voice.events import UserInputTranscribedEvent, UserStateChangedEvent

    en = LanguageCode("en")
    detector = turn_detector("en-US")
    stream = detector.stream()
    try:
        gate = detector.gate
        model = await detector.unlikely_threshold(en)
        assert model is not None and 0 < model < 1
        assert await stream.unlikely_threshold(en) == model  # no words yet: the model's own

        def heard(text: str, *, final: bool = True) -> None:
            gate.heard(UserInputTranscribedEvent(transcript=text, is_final=final))

        heard("My budget is")
        assert await stream.unlikely_threshold(en) > 1  # waits whatever the model says
        heard("around fifty thousand a year.", final=False)  # an interim changes nothing
        assert await stream.unlikely_threshold(en) > 1
        heard("around fifty thousand a year.")
        assert await stream.unlikely_threshold(en) == 0  # over after the minimum delay
        gate.speaking(UserStateChangedEvent(old_state="listening", new_state="speaking"))
        assert await stream.unlikely_threshold(en) == model  # they went on: the model again
    finally:
        await stream.aclose()


async def test_a_backchannel_over_the_agent_is_over_at_once_and_alone_hmm_still_waits():
    from livekit.agents.language import LanguageCode
    from livekit.agents.voice.events import (
        AgentStateChangedEvent,
        UserInputTranscribedEvent,
        UserStateChangedEvent,
    )

    en = LanguageCode("en")
    detector = turn_detector("en-US")
    stream = detector.stream()
    try:
        gate = detector.gate

        def turn(text: str, *, agent: str) -> None:
            gate.agent(AgentStateChangedEvent(old_state="listening", new_state=agent))
            gate.speaking(UserStateChangedEvent(old_state="listening", new_state="speaking"))
            gate.agent(AgentStateChangedEvent(old_state=agent, new_state="listening"))  # paused
            gate.heard(UserInputTranscribedEvent(transcript=text, is_final=True))

        turn("Mm-hmm.", agent="speaking")
        assert await stream.unlikely_threshold(en) == 0  # "hmm" would have held it
        turn("Mm-hmm.", agent="listening")  # not over the agent: the words' rule
        assert await stream.unlikely_threshold(en) > 1
        turn("Hmm", agent="listening")  # thinking: waits for the rest
        assert await stream.unlikely_threshold(en) > 1
        turn("Okay but my budget is", agent="speaking")  # not a backchannel
        assert await stream.unlikely_threshold(en) > 1
    finally:
        await stream.aclose()


def test_on_the_benchmark_set_no_finished_sentence_is_made_to_wait():
    from agent.endpointing import sentence_left_open
    from bench.end_of_turn import CUT, FINISHED

    assert [t for t in FINISHED if sentence_left_open(t, "en")] == []
    held = [t for t in CUT if sentence_left_open(t, "en")]
    assert len(held) >= 15, held  # what bench/end_of_turn.py reports, kept from sliding back
