"""The VAD the agent uses: Silero's events unchanged, and the inference that starts the caller's
speech repeated right after the start, so LiveKit stops the agent one window sooner."""

from __future__ import annotations

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import vad
from livekit.plugins import silero

from agent.prompt_vad import PromptVAD
from callab.audio import phone_line

pytestmark = pytest.mark.integration

RATE = 16000
FRAME = RATE * 20 // 1000
MIN_INTERRUPTION_S = 0.05  # LiveKit stops the agent on an inference whose speech lasted this


async def events_for(model: vad.VAD, audio: np.ndarray) -> list[vad.VADEvent]:
    stream = model.stream()
    for start in range(0, audio.size - FRAME + 1, FRAME):
        chunk = audio[start : start + FRAME]
        stream.push_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, FRAME))
    stream.end_input()
    events = [event async for event in stream]
    await stream.aclose()
    return events


def first_stop(events: list[vad.VADEvent]) -> vad.VADEvent:
    """The inference on which LiveKit would stop the agent."""
    return next(e for e in events if e.type == vad.VADEventType.INFERENCE_DONE
                and e.speech_duration >= MIN_INTERRUPTION_S)  # fmt: skip


@pytest.fixture(scope="module")
def caller() -> np.ndarray:
    """Half a second of line, then the caller talking over the agent, then silence."""
    words = phone_line("Sorry, can I ask something?", sample_rate=RATE)
    return np.concatenate([np.zeros(RATE // 2, np.int16), words, np.zeros(RATE, np.int16)])


async def test_the_agent_is_stopped_on_the_window_that_starts_the_speech(caller) -> None:
    silero_vad = silero.VAD.load(activation_threshold=0.35)
    plain = await events_for(silero_vad, caller)
    prompt = await events_for(PromptVAD(silero_vad), caller)
    (start,) = [e for e in plain if e.type == vad.VADEventType.START_OF_SPEECH]
    window = 512  # Silero's window at 16 kHz
    # Silero alone: the first inference with the speech counted is the window after the start.
    assert first_stop(plain).samples_index == start.samples_index + window
    # Here: the start's own window, right after the start, carrying its speech.
    stop = first_stop(prompt)
    assert stop.samples_index == start.samples_index
    assert (
        prompt.index(stop)
        == next(i for i, e in enumerate(prompt) if e.type == vad.VADEventType.START_OF_SPEECH) + 1
    )
    assert stop.speaking and stop.speech_duration == start.speech_duration and not stop.frames


async def test_silero_s_own_events_pass_unchanged(caller) -> None:
    silero_vad = silero.VAD.load(activation_threshold=0.35)
    plain = await events_for(silero_vad, caller)
    prompt = await events_for(PromptVAD(silero_vad), caller)
    repeated = [e for e in prompt if e.type == vad.VADEventType.INFERENCE_DONE
                and e.inference_duration == 0.0 and not e.frames]  # fmt: skip
    assert len(repeated) == 1  # one speech start, one repeat
    passed = [e for e in prompt if e is not repeated[0]]
    assert [(e.type, e.samples_index, e.speaking) for e in passed] == [
        (e.type, e.samples_index, e.speaking) for e in plain
    ]
    assert [e.type for e in plain].count(vad.VADEventType.END_OF_SPEECH) == 1


async def test_no_speech_no_stop() -> None:
    line_noise = (np.random.default_rng(7).normal(0, 30, RATE * 2)).astype(np.int16)
    events = await events_for(PromptVAD(silero.VAD.load()), line_noise)
    assert not [e for e in events if e.type == vad.VADEventType.START_OF_SPEECH]
    assert not [e for e in events if e.speech_duration > 0]
