"""agent/hot_paths.py: LiveKit's speaking-rate estimate and tool schemas, computed for less but
to the same result as LiveKit's own code."""

from __future__ import annotations

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import function_tool, llm
from livekit.agents.voice.transcription._speaking_rate import (
    SpeakingRateDetector,
    SpeakingRateStream,
)

from agent import hot_paths

pytestmark = pytest.mark.unit

LIVEKIT_FLUX = SpeakingRateStream._spectral_flux  # collected before any test installs ours
LIVEKIT_SCHEMA = llm.utils.build_strict_openai_schema
if isinstance(LIVEKIT_SCHEMA, hot_paths.SchemaCache):  # another module installed it first
    LIVEKIT_SCHEMA = LIVEKIT_SCHEMA.build
    LIVEKIT_FLUX = None


def livekit_flux(audio: np.ndarray, rate: int) -> float:
    if LIVEKIT_FLUX is None:
        pytest.skip("LiveKit's estimate was replaced before this module was collected")
    bare = object.__new__(SpeakingRateStream)  # its own _stft, no tasks
    return float(LIVEKIT_FLUX(bare, audio, rate))


def speech_like(rate: int, seconds: float, seed: int = 7) -> np.ndarray:
    """A voiced tone whose loudness and pitch move at syllable pace, with some noise."""
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(seed)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    tone = np.sin(2 * np.pi * (180 + 40 * np.sin(2 * np.pi * 3 * t)) * t)
    return (0.3 * envelope * tone + rng.normal(0, 0.02, t.size)).astype(np.float32)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 48000])
def test_spectral_flux_is_livekits_figure(rate: int) -> None:
    rng = np.random.default_rng(rate)
    for audio in (
        speech_like(rate, 1.0),
        rng.normal(0, 0.1, rate).astype(np.float32),
        np.zeros(rate, dtype=np.float32),
        speech_like(rate, 0.6),  # the flush of a short tail
    ):
        assert hot_paths.spectral_flux(audio, rate) == pytest.approx(
            livekit_flux(audio, rate), rel=1e-12, abs=1e-12
        )


def test_spectral_flux_of_less_than_two_frames_is_zero() -> None:
    audio = speech_like(16000, 0.03)  # one 25 ms frame
    assert hot_paths.spectral_flux(audio, 16000) == 0.0 == livekit_flux(audio, 16000)


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 22050])
def test_sliding_flux_of_a_window_moving_on_is_livekits_figure(rate: int, monkeypatch) -> None:
    taken: list[int] = []
    spectra = hot_paths._magnitudes
    monkeypatch.setattr(hot_paths, "_magnitudes", lambda *a: taken.append(a[-1]) or spectra(*a))
    audio = speech_like(rate, 3.0)
    step = rate // 10  # LiveKit's 0.1 s; at 22.05 kHz not a whole number of hops
    sliding = hot_paths.SlidingFlux()
    for start in range(0, len(audio) - rate, step):
        window = audio[start : start + rate].copy()
        assert sliding(window, rate, step=step) == pytest.approx(
            livekit_flux(window, rate), rel=1e-12
        )
    whole = (rate - int(rate * 0.025)) // (int(rate * 0.025) // 2) + 1
    assert taken == [whole] + [8 if rate != 22050 else whole] * (len(taken) - 1)
    jumped = audio[len(audio) - rate :].copy()  # not one step on from the last: computed whole
    assert sliding(jumped, rate, step=step) == pytest.approx(livekit_flux(jumped, rate), rel=1e-12)


async def _rates(audio: np.ndarray, rate: int) -> list[tuple[float, float]]:
    stream = SpeakingRateDetector().stream()
    pcm = (audio * 32767).astype(np.int16)
    step = rate // 50
    for start in range(0, pcm.size, step):
        chunk = pcm[start : start + step]
        stream.push_frame(rtc.AudioFrame(chunk.tobytes(), rate, 1, chunk.size))
    stream.flush()
    stream.end_input()
    return [(event.timestamp, event.speaking_rate) async for event in stream]


async def test_livekits_stream_gives_the_same_rates_with_ours_installed(monkeypatch) -> None:
    audio = speech_like(24000, 2.5)
    hot_paths.install()
    assert SpeakingRateStream._spectral_flux is not LIVEKIT_FLUX
    ours = await _rates(audio, 24000)
    if LIVEKIT_FLUX is None:
        pytest.skip("LiveKit's estimate was replaced before this module was collected")
    monkeypatch.setattr(SpeakingRateStream, "_spectral_flux", LIVEKIT_FLUX)
    theirs = await _rates(audio, 24000)
    assert len(ours) > 10
    assert [t for t, _ in ours] == [t for t, _ in theirs]
    assert [r for _, r in ours] == pytest.approx([r for _, r in theirs], rel=1e-12)


class Booking:
    @function_tool
    async def book_meeting(self, start: str, attendee_email: str, minutes: int = 30) -> str:
        """Book a meeting with the caller.

        Args:
            start: when, ISO 8601 with its offset
            attendee_email: where the invite goes
            minutes: how long
        """
        return "booked"

    @function_tool
    async def note(self, text: str) -> str:
        """Write a note on the caller's CRM record.

        Args:
            text: the note
        """
        return "noted"


def counting(build):
    calls: list[str] = []

    def counted(tool):
        calls.append(tool.info.name)
        return build(tool)

    return counted, calls


def test_schema_cache_gives_livekits_schema_once_per_declaration() -> None:
    build, calls = counting(LIVEKIT_SCHEMA)
    cache = hot_paths.SchemaCache(build)
    first, second = Booking(), Booking()  # each binds its own copies of the tools
    assert first.book_meeting is not second.book_meeting
    for agent in (first, second, first):
        assert cache(agent.book_meeting) == LIVEKIT_SCHEMA(agent.book_meeting)
        assert cache(agent.note) == LIVEKIT_SCHEMA(agent.note)
    assert calls == ["book_meeting", "note"]


def test_a_changed_schema_does_not_change_the_cache() -> None:
    cache = hot_paths.SchemaCache(LIVEKIT_SCHEMA)
    agent = Booking()
    schema = cache(agent.book_meeting)
    schema["function"]["parameters"]["properties"].clear()
    schema["function"]["name"] = "changed"
    assert cache(agent.book_meeting) == LIVEKIT_SCHEMA(agent.book_meeting)


def test_schema_cache_is_bounded() -> None:
    build, calls = counting(LIVEKIT_SCHEMA)
    cache = hot_paths.SchemaCache(build, size=1)
    agent = Booking()
    cache(agent.book_meeting)
    cache(agent.note)
    assert len(cache) == 1
    cache(agent.book_meeting)  # evicted, so built again
    assert calls == ["book_meeting", "note", "book_meeting"]


def test_install_is_idempotent_and_requests_carry_livekits_schemas() -> None:
    hot_paths.install()
    hot_paths.install()
    cache = llm.utils.build_strict_openai_schema
    assert isinstance(cache, hot_paths.SchemaCache)
    assert not isinstance(cache.build, hot_paths.SchemaCache)
    agent = Booking()
    tools = llm.ToolContext([agent.book_meeting, agent.note])
    expected = [LIVEKIT_SCHEMA(agent.book_meeting), LIVEKIT_SCHEMA(agent.note)]
    assert tools.parse_function_tools("openai", strict=True) == expected
    assert tools.parse_function_tools("openai", strict=True) == expected


def test_warmed_tools_cost_a_call_no_schema_build(monkeypatch) -> None:
    from calls.qualification import load_criteria
    from tools.function_tools import sales_tools

    hot_paths.install()
    build, calls = counting(LIVEKIT_SCHEMA)
    monkeypatch.setattr(llm.utils, "build_strict_openai_schema", hot_paths.SchemaCache(build))
    tools = sales_tools(load_criteria())
    warmed = hot_paths.warm_schemas(tools)
    assert warmed == len(tools) - 1 == len(calls)  # the qualification tool has its own schema
    before = list(calls)
    schemas = llm.ToolContext(sales_tools(load_criteria())).parse_function_tools(
        "openai", strict=True
    )
    assert len(schemas) == len(tools)
    assert calls == before


# A fresh interpreter with what a job process inherits from the forkserver.
AS_A_JOB_PROCESS = """
import importlib
import agent.preload
for name in agent.preload.forkserver_modules():
    importlib.import_module(name)
"""

FIRST_REQUEST = (
    AS_A_JOB_PROCESS
    + """
import asyncio, sys
from livekit.agents import APIConnectOptions, llm
from livekit.plugins import openai

async def main():
    before = set(sys.modules)
    model = openai.LLM(model="m", api_key="k", base_url="http://127.0.0.1:9/v1")
    chat = llm.ChatContext()
    chat.add_message(role="user", content="hello")
    try:
        options = APIConnectOptions(max_retry=0, timeout=5)
        async with model.chat(chat_ctx=chat, conn_options=options) as stream:
            async for _ in stream:
                pass
    except Exception as error:
        print("failed:", type(error).__name__, file=sys.stderr)
    print(" ".join(sorted(set(sys.modules) - before)))

asyncio.run(main())
"""
)


FIRST_BEEP = (
    AS_A_JOB_PROCESS
    + """
import sys
import numpy as np
from voicemail.beep import BeepDetector

before = set(sys.modules)
t = np.arange(16000) / 16000
tone = (0.3 * 32767 * np.sin(2 * np.pi * 1000 * t[:8000])).astype(np.int16)
detector = BeepDetector(sample_rate=16000)
beeps = detector.push(np.concatenate([tone, np.zeros(8000, np.int16)]))
print("beeps:", len(beeps), file=sys.stderr)
print(" ".join(sorted(set(sys.modules) - before)))
"""
)


def _imported_by(program: str) -> tuple[list[str], str]:
    """The modules a program run after the worker's preloads still imported, and its stderr."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.split(), done.stderr


def test_a_calls_first_llm_request_imports_nothing_on_its_loop() -> None:
    """What the forkserver preloads covers the first request (to a closed port, so it fails
    after the whole client path ran): nothing is left to import inside a call."""
    imported, stderr = _imported_by(FIRST_REQUEST)
    assert "failed: APIConnectionError" in stderr
    assert imported == []


def test_the_first_beep_a_mailbox_plays_imports_nothing() -> None:
    """The beep detector's first windows (numpy's median) import nothing on the call's loop:
    it blocked the loop for 113 ms just as the mailbox beeped."""
    imported, stderr = _imported_by(FIRST_BEEP)
    assert "beeps: 1" in stderr
    assert imported == []


# --- the chat request body -------------------------------------------------------------------


def chat_body(**overrides: object) -> dict[str, object]:
    """A chat completion's arguments as the OpenAI client's `create` gathers them: our tools,
    a conversation with a tool call and its result, and arguments left out."""
    from openai import NOT_GIVEN, omit

    from calls.qualification import load_criteria
    from tools.function_tools import sales_tools

    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content="You qualify sales leads for Northwind.")
    ctx.add_message(role="user", content="Hi, this is Dana from Acme.")
    ctx.insert(llm.FunctionCall(call_id="call_1", name="save_contact_details",
                                arguments='{"first_name": "Dana", "company": "Acme"}'))  # fmt: skip
    ctx.insert(llm.FunctionCallOutput(call_id="call_1", name="save_contact_details",
                                      output='{"saved": true}', is_error=False))  # fmt: skip
    ctx.add_message(role="assistant", content="Nice to meet you Dana. What made you call?")
    ctx.add_message(role="user", content="We need better sales forecasting, café included.")
    messages, _ = ctx.to_provider_format("openai")
    tools = llm.ToolContext(sales_tools(load_criteria())).parse_function_tools(
        "openai", strict=True
    )
    body: dict[str, object] = {
        "model": "gpt-4.1-mini", "stream": True, "messages": messages, "tools": tools,
        "temperature": 0.3, "parallel_tool_calls": False, "tool_choice": "auto",
        "stream_options": {"include_usage": True}, "n": omit, "seed": NOT_GIVEN,
        "metadata": omit, "user": NOT_GIVEN,
    }  # fmt: skip
    return {**body, **overrides}


def clients_walk() -> object:
    from openai import _utils

    return _utils.async_maybe_transform  # the client's own, whatever is installed in completions


async def test_a_chat_body_of_plain_json_is_what_the_clients_walk_gives() -> None:
    walk = clients_walk()
    plain = hot_paths.plain_chat_body(walk)  # type: ignore[arg-type]
    for params in hot_paths.CHAT_PARAMS:
        body = chat_body(stream=params is hot_paths.CHAT_PARAMS[0])
        expected = await walk(body, params)  # type: ignore[operator]
        got = await plain(body, params)
        assert got == expected
        assert "n" not in got and "seed" not in got and len(got["tools"]) > 5


async def test_a_chat_body_that_is_not_plain_json_is_still_walked() -> None:
    from openai import omit
    from pydantic import BaseModel

    class Shape(BaseModel):
        type: str = "json_object"

    walked: list[object] = []
    walk = clients_walk()

    async def counted(data: object, params: object) -> object:
        walked.append(data)
        return await walk(data, params)  # type: ignore[operator]

    plain = hot_paths.plain_chat_body(counted)
    params = hot_paths.CHAT_PARAMS[0]
    first = chat_body()["messages"][0]  # type: ignore[index]
    for body in (
        chat_body(response_format=Shape()),  # a pydantic model: dumped by the walk
        chat_body(stop=("bye", "thanks")),  # a tuple: made a list by the walk
        chat_body(messages=[{**first, "name": omit}]),  # an omitted argument inside
        chat_body(messages=iter([first])),  # an iterator: made a list by the walk
    ):
        before = len(walked)
        assert await plain(body, params) is not None
        assert len(walked) == before + 1
    # and other requests than a chat completion's are always walked
    await plain({"metadata": {"a": "b"}}, dict)
    assert len(walked) == 5


def test_the_chat_parameters_are_checked_for_what_the_walk_acts_on() -> None:
    from openai.resources.chat.completions import completions
    from openai.types.beta import response_create_params

    assert not any(hot_paths.declares_key_changes(params) for params in hot_paths.CHAT_PARAMS)
    # a request type of the same client that does rename and format its keys
    assert hot_paths.declares_key_changes(response_create_params.ResponseCreateParams)
    hot_paths.install()
    assert completions.async_maybe_transform is not clients_walk()
