"""The real LiveKit plugins against the local Deepgram, OpenAI and Cartesia stand-ins."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from livekit import rtc
from livekit.agents import Agent, AgentSession, AMDCategory, RunResult, llm, stt
from livekit.agents.llm import ChatContext, FunctionCall, FunctionCallOutput, function_tool
from livekit.plugins import cartesia, deepgram, openai

from callab.standins.cartesia_tts import CartesiaTTSStandin
from callab.standins.chat_script import ChatScript
from callab.standins.deepgram_stt import DeepgramSTTStandin
from callab.standins.greeting_rules import amd_labels, classify_greeting
from callab.standins.openai_chat import OpenAIChatStandin
from callab.standins.speech import synthesize_blocking

pytestmark = pytest.mark.integration

CALLER_RATE = 16000
PHONE = "+15551234567"
SCRIPT_STEPS = [
    {
        "when": {"last_user_contains": "premium"},
        "tool_calls": [{"name": "lookup_contact", "arguments": {"phone": PHONE}}],
    },
    {"when": {"last_tool": "lookup_contact"}, "say": "Thanks Dana, I found your account."},
]
SCRIPT = ChatScript.from_data(
    {"fallback": "Sorry, could you say that again?", "steps": SCRIPT_STEPS}
)


@function_tool
async def lookup_contact(phone: str) -> str:
    """Find the CRM contact that owns a phone number."""
    return "Dana"


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def chat_server() -> AsyncIterator[OpenAIChatStandin]:
    async with OpenAIChatStandin(script=SCRIPT, ttft_ms=300) as server:
        yield server


@pytest.fixture
async def chat_llm(chat_server: OpenAIChatStandin) -> AsyncIterator[openai.LLM]:
    model = openai.LLM(model="gpt-4o-mini", base_url=chat_server.base_url, api_key="test")
    yield model
    await model.aclose()


# --- OpenAI Chat Completions ------------------------------------------------------------


async def _run_chat(
    model: openai.LLM, ctx: ChatContext
) -> tuple[str, list[llm.FunctionToolCall], float]:
    started = time.monotonic()
    first_output: float | None = None
    text, calls = "", []
    async with model.chat(chat_ctx=ctx, tools=[lookup_contact]) as stream:
        async for chunk in stream:
            if chunk.delta is None:
                continue
            if first_output is None and (chunk.delta.content or chunk.delta.tool_calls):
                first_output = time.monotonic() - started
            text += chunk.delta.content or ""
            calls.extend(chunk.delta.tool_calls)
    assert first_output is not None, "the stream produced nothing"
    return text, calls, first_output


def _caller_ctx(user_text: str) -> ChatContext:
    ctx = ChatContext.empty()
    ctx.add_message(role="system", content="You are a sales assistant for Acme.")
    ctx.add_message(role="user", content=user_text)
    return ctx


async def test_llm_first_token_counts_from_the_requests_arrival(
    chat_llm: openai.LLM, chat_server: OpenAIChatStandin, monkeypatch
) -> None:
    """The stand-in's own work on a request (parsing, choosing its step) is inside its TTFT,
    not added to it: a provider's time to first token starts when the request arrives."""
    choose = chat_server._choose

    def slow_choose(*args: object) -> object:
        time.sleep(0.3)  # the stand-in's loop is busy for 0.3 s of the 0.3 s TTFT
        return choose(*args)

    monkeypatch.setattr(chat_server, "_choose", slow_choose)
    _, _, ttft = await _run_chat(chat_llm, _caller_ctx("Tell me about the premium plan."))
    assert 0.3 <= ttft < 0.55  # 0.6 or more if the TTFT began after the choice


async def test_llm_streams_a_tool_call_then_a_text_reply(
    chat_llm: openai.LLM, chat_server: OpenAIChatStandin
) -> None:
    ctx = _caller_ctx("I'd like to hear about the premium plan.")

    text, calls, ttft = await _run_chat(chat_llm, ctx)

    assert text == ""
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("lookup_contact", {"phone": PHONE})
    ]
    assert 0.3 <= ttft < 2.0
    ctx.insert(
        FunctionCall(call_id=calls[0].call_id, name=calls[0].name, arguments=calls[0].arguments)
    )
    ctx.insert(
        FunctionCallOutput(
            call_id=calls[0].call_id, name="lookup_contact", output="Dana", is_error=False
        )
    )

    text, calls, _ = await _run_chat(chat_llm, ctx)

    assert text == "Thanks Dana, I found your account."
    assert calls == []
    first, second = chat_server.requests
    assert first.tool_names == ["lookup_contact"]
    assert first.tools[0]["function"]["parameters"]["properties"]["phone"]["type"] == "string"
    assert first.messages[-1] == {
        "role": "user",
        "content": "I'd like to hear about the premium plan.",
    }
    assert [first.step_index, second.step_index] == [0, 1]
    assert second.messages[-1]["role"] == "tool"
    assert first.streamed and first.body["stream_options"] == {"include_usage": True}


async def test_llm_guard_mismatch_answers_fallback_without_advancing(
    chat_llm: openai.LLM, chat_server: OpenAIChatStandin
) -> None:
    ctx = _caller_ctx("Hold on a second.")

    text, calls, _ = await _run_chat(chat_llm, ctx)
    ctx.add_message(role="assistant", content=text)
    ctx.add_message(role="user", content="Okay, tell me about premium.")
    _, calls_after, _ = await _run_chat(chat_llm, ctx)

    assert (text, calls) == ("Sorry, could you say that again?", [])
    assert [c.name for c in calls_after] == ["lookup_contact"]
    assert [r.step_index for r in chat_server.requests] == [None, 0]


async def test_llm_concurrent_conversations_keep_their_own_place(
    chat_llm: openai.LLM, chat_server: OpenAIChatStandin
) -> None:
    async def call_one() -> list[str]:
        ctx = _caller_ctx("Premium, please.")
        _, calls, _ = await _run_chat(chat_llm, ctx)
        ctx.insert(
            FunctionCall(call_id=calls[0].call_id, name=calls[0].name, arguments=calls[0].arguments)
        )
        ctx.insert(
            FunctionCallOutput(
                call_id=calls[0].call_id, name=calls[0].name, output="Dana", is_error=False
            )
        )
        text, _, _ = await _run_chat(chat_llm, ctx)
        return [calls[0].name, text]

    results = await asyncio.gather(call_one(), call_one())

    assert results == [["lookup_contact", "Thanks Dana, I found your account."]] * 2


async def test_llm_non_streaming_request(
    chat_server: OpenAIChatStandin, http_session: aiohttp.ClientSession
) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "premium?"}]}
    headers = {"Authorization": "Bearer test"}

    async with http_session.post(
        f"{chat_server.base_url}/chat/completions", json=body, headers=headers
    ) as resp:
        payload = await resp.json()
    async with http_session.post(f"{chat_server.base_url}/chat/completions", json=body) as denied:
        denied_status = denied.status

    message = payload["choices"][0]["message"]
    assert payload["choices"][0]["finish_reason"] == "tool_calls"
    assert message["tool_calls"][0]["function"]["name"] == "lookup_contact"
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"phone": PHONE}
    assert denied_status == 401


class _SalesAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a sales assistant for Acme.")

    @function_tool
    async def lookup_contact(self, phone: str) -> str:
        """Find the CRM contact that owns a phone number."""
        return "Dana"


async def test_llm_script_drives_a_real_agent_session(chat_server: OpenAIChatStandin) -> None:
    chat_server.script = ChatScript.from_data(
        {"steps": [{"say": "Hi, this is Sam from Acme."}, *SCRIPT_STEPS]}
    )
    chat_server.ttft_ms = 0
    turns = []

    async with (
        openai.LLM(base_url=chat_server.base_url, api_key="test") as model,
        AgentSession(llm=model) as session,
    ):
        await session.start(_SalesAgent())
        for user_text in ["Hello?", "Tell me about premium."]:
            result: RunResult[None] = await session.run(user_input=user_text)
            turns.append(
                [
                    (ev.item.name, json.loads(ev.item.arguments))
                    if isinstance(ev.item, FunctionCall)
                    else ev.item.type
                    for ev in result.events
                ]
            )

    assert turns == [
        ["message"],
        [("lookup_contact", {"phone": PHONE}), "function_call_output", "message"],
    ]
    assert [r.step_index for r in chat_server.requests] == [0, 1, 2]
    assert chat_server.requests[-1].messages[-1]["content"] == "Dana"


# --- Deepgram live STT --------------------------------------------------------------------


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(CALLER_RATE * seconds), dtype=np.int16)


def _frames(samples: np.ndarray, frame_ms: int = 20) -> list[rtc.AudioFrame]:
    step = CALLER_RATE * frame_ms // 1000
    padded = np.concatenate([samples, np.zeros(-samples.size % step, dtype=np.int16)])
    return [
        rtc.AudioFrame(
            data=padded[i : i + step].tobytes(),
            sample_rate=CALLER_RATE,
            num_channels=1,
            samples_per_channel=step,
        )
        for i in range(0, padded.size, step)
    ]


async def _transcribe(
    server: DeepgramSTTStandin, session: aiohttp.ClientSession, audio: np.ndarray
) -> list[stt.SpeechEvent]:
    recognizer = deepgram.STT(base_url=server.base_url, api_key="test", http_session=session)
    stream = recognizer.stream()
    events: list[stt.SpeechEvent] = []

    async def consume() -> None:
        async for event in stream:
            events.append(event)

    consumer = asyncio.create_task(consume())
    for frame in _frames(audio):
        stream.push_frame(frame)
    stream.end_input()
    # the plugin lingers up to 5 s in its keepalive loop after the server closes,
    # so stop once the stand-in has answered everything and hung up
    await asyncio.wait_for(server.wait_closed(), timeout=5)
    await asyncio.sleep(0.05)
    await stream.aclose()
    await asyncio.gather(consumer, return_exceptions=True)
    return events


def _finals(events: Sequence[stt.SpeechEvent]) -> list[str]:
    return [
        e.alternatives[0].text for e in events if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    ]


async def test_stt_answers_each_spoken_utterance_with_the_next_scripted_text(
    http_session: aiohttp.ClientSession,
) -> None:
    audio = np.concatenate(
        [
            _silence(0.3),
            synthesize_blocking("I am interested in the premium plan", sample_rate=CALLER_RATE),
            _silence(1.0),
            synthesize_blocking("Tuesday at ten works for me", sample_rate=CALLER_RATE),
            _silence(1.0),
        ]
    )
    scripted = ["Hi, this is Dana.", "Tuesday at ten works."]

    async with DeepgramSTTStandin(utterances=scripted, final_delay_ms=100) as server:
        events = await _transcribe(server, http_session, audio)

    assert _finals(events) == scripted
    kinds = [e.type for e in events if e.type != stt.SpeechEventType.RECOGNITION_USAGE]
    assert kinds.count(stt.SpeechEventType.START_OF_SPEECH) == 2
    assert kinds.count(stt.SpeechEventType.END_OF_SPEECH) == 2
    assert stt.SpeechEventType.INTERIM_TRANSCRIPT in kinds
    first, second = server.utterances
    assert 0.25 <= first.start <= 0.45 and first.end < second.start
    (session,) = server.sessions
    assert session.params["encoding"] == ["linear16"]
    assert session.params["sample_rate"] == [str(CALLER_RATE)]
    assert "CloseStream" in session.control_messages


async def test_stt_answers_an_utterance_scripted_empty_with_an_empty_final(
    http_session: aiohttp.ClientSession,
) -> None:
    """A cough is heard but holds no words: Deepgram's final for it is empty, with no
    confidence, and the script goes on with the next utterance."""
    audio = np.concatenate(
        [
            _silence(0.3),
            synthesize_blocking("Uh huh", sample_rate=CALLER_RATE),
            _silence(1.0),
            synthesize_blocking("Tuesday at ten works for me", sample_rate=CALLER_RATE),
            _silence(1.0),
        ]
    )

    async with DeepgramSTTStandin(utterances=["", "Tuesday at ten works."]) as server:
        events = await _transcribe(server, http_session, audio)

    finals = [e for e in events if e.type == stt.SpeechEventType.FINAL_TRANSCRIPT]
    assert [e.alternatives[0].text for e in finals] == ["Tuesday at ten works."]
    sent = [m for m in server.sessions[0].sent if m.get("type") == "Results" and m["is_final"]]
    empty = sent[0]["channel"]["alternatives"][0]
    assert empty == {"transcript": "", "confidence": 0.0, "words": []}
    heard, said = server.utterances
    assert heard.text == "" and heard.delivered_at is None
    assert said.delivered_at is not None


async def test_stt_stays_quiet_on_silence(http_session: aiohttp.ClientSession) -> None:
    hiss = np.random.default_rng(7).normal(0, 30, CALLER_RATE * 2).astype(np.int16)

    async with DeepgramSTTStandin(utterances=["never said"]) as server:
        events = await _transcribe(server, http_session, hiss)

    assert _finals(events) == []
    assert server.utterances == []
    assert server.sessions[0].audio_seconds == pytest.approx(2.0, abs=0.05)


# --- Cartesia TTS ---------------------------------------------------------------------------


def _audio_stats(frames: Sequence[rtc.AudioFrame]) -> tuple[float, float]:
    samples = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))
    return samples.size / frames[0].sample_rate, 20 * math.log10(max(rms, 1e-9) / 32768)


@pytest.fixture
async def tts_server() -> AsyncIterator[CartesiaTTSStandin]:
    async with CartesiaTTSStandin(ttfb_ms=200) as server:
        yield server


async def test_tts_synthesize_returns_real_speech(
    tts_server: CartesiaTTSStandin, http_session: aiohttp.ClientSession
) -> None:
    tts = cartesia.TTS(base_url=tts_server.base_url, api_key="test", http_session=http_session)

    started = time.monotonic()
    frames = [ev.frame async for ev in tts.synthesize("Hello there")]
    elapsed = time.monotonic() - started

    duration, level = _audio_stats(frames)
    assert frames[0].sample_rate == 24000
    assert 0.3 < duration < 3.0
    assert level > -35.0
    assert elapsed >= 0.2
    (record,) = tts_server.contexts
    assert record.text == "Hello there"
    assert record.output_format == {
        "container": "raw",
        "encoding": "pcm_s16le",
        "sample_rate": 24000,
    }
    await tts.aclose()


async def test_tts_stream_speaks_every_sentence(
    tts_server: CartesiaTTSStandin, http_session: aiohttp.ClientSession
) -> None:
    tts = cartesia.TTS(
        base_url=tts_server.base_url, api_key="test", http_session=http_session, sample_rate=16000
    )
    stream = tts.stream()
    stream.push_text("Hello there. How are you doing today?")
    stream.end_input()

    started = time.monotonic()
    first_audio: float | None = None
    frames = []
    async for ev in stream:
        first_audio = first_audio or time.monotonic() - started
        frames.append(ev.frame)
    await stream.aclose()

    duration, level = _audio_stats(frames)
    assert frames[0].sample_rate == 16000
    assert duration > 1.0
    assert level > -35.0
    assert first_audio is not None and first_audio >= 0.15
    (record,) = tts_server.contexts
    assert record.done and record.text == "Hello there. How are you doing today?"
    assert record.first_audio_ms is not None and record.first_audio_ms >= 200
    await tts.aclose()


async def test_stt_recognize_uses_the_prerecorded_endpoint(
    http_session: aiohttp.ClientSession,
) -> None:
    audio = np.concatenate(
        [
            synthesize_blocking("Call me back tomorrow", sample_rate=CALLER_RATE),
            _silence(0.8),
            synthesize_blocking("after lunch please", sample_rate=CALLER_RATE),
        ]
    )

    async with DeepgramSTTStandin(utterances=["Call me back tomorrow.", "After lunch."]) as server:
        recognizer = deepgram.STT(
            base_url=server.base_url, api_key="test", http_session=http_session
        )
        event = await recognizer.recognize(_frames(audio))

    assert event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    assert event.alternatives[0].text == "Call me back tomorrow. After lunch."
    assert len(server.utterances) == 2


# --- standalone processes -------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]


@asynccontextmanager
async def _standin_processes(*commands: list[str]) -> AsyncIterator[list[str]]:
    """Run `python -m callab.standins.<module> ...` for each command; yield their base URLs."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"callab.standins.{module}",
            "--port",
            "0",
            *args,
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        for module, *args in commands
    ]
    try:
        lines = await asyncio.wait_for(
            asyncio.gather(*(p.stdout.readline() for p in processes if p.stdout)), timeout=30
        )
        yield [json.loads(line)["base_url"] for line in lines]
    finally:
        for process in processes:
            process.terminate()
        await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)), timeout=10)


async def test_standins_run_as_processes(
    tmp_path: Path, http_session: aiohttp.ClientSession
) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"steps": [{"say": "Hello from the script."}]}))
    utterances = tmp_path / "utterances.json"
    utterances.write_text(json.dumps(["Yes, speaking."]))
    caller = synthesize_blocking("Yes speaking", sample_rate=CALLER_RATE)

    async with _standin_processes(
        ["openai_chat", "--script", str(scenario), "--ttft-ms", "50"],
        ["deepgram_stt", "--script", str(utterances)],
        ["cartesia_tts", "--ttfb-ms", "50"],
    ) as (llm_url, stt_url, tts_url):
        model = openai.LLM(base_url=llm_url, api_key="test")
        text, _, _ = await _run_chat(model, _caller_ctx("Hi"))
        await model.aclose()
        recognizer = deepgram.STT(base_url=stt_url, api_key="test", http_session=http_session)
        heard = await recognizer.recognize(_frames(caller))
        tts = cartesia.TTS(base_url=tts_url, api_key="test", http_session=http_session)
        frames = [ev.frame async for ev in tts.synthesize("Goodbye")]
        await tts.aclose()

    assert text == "Hello from the script."
    assert heard.alternatives[0].text == "Yes, speaking."
    assert _audio_stats(frames)[0] > 0.3


# --- LiveKit's answering-machine classification: the stand-in's rule --------------------


async def save_prediction(label: AMDCategory) -> None:
    """Record the category of the call greeting."""


@pytest.mark.parametrize(
    ("transcript", "label"),
    [
        ("Hello, this is Dana.", "human"),
        ("Yeah, who's this?", "human"),
        ("Hi, you've reached Dana. Please leave a message after the tone.", "machine-vm"),
        ("The person you are calling is not available. Press 1 for more options.", "machine-vm"),
        ("The mailbox is full and cannot accept any messages at this time.", "machine-unavailable"),
        ("For sales, press one. For support, press two.", "machine-ivr"),
    ],
)
async def test_llm_answers_amd_classification_by_its_rule_over_the_transcript(
    chat_llm: openai.LLM, chat_server: OpenAIChatStandin, transcript: str, label: str
) -> None:
    # The request as LiveKit's AMD shapes it: the transcript as the user message, a required
    # call to a tool whose argument is the category enum.
    ctx = ChatContext.empty()
    ctx.add_message(role="system", content="Classify the call greeting.")
    ctx.add_message(role="user", content=transcript)
    stream = chat_llm.chat(chat_ctx=ctx, tools=[function_tool(save_prediction)],
                           tool_choice="required")  # fmt: skip
    response = await stream.collect()
    assert [(c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("save_prediction", {"label": label})
    ]
    assert chat_server.amd_labels == [label]
    assert set(amd_labels(chat_server.requests[-1].tools)) == {c.value for c in AMDCategory}
    assert classify_greeting(transcript) == label


@pytest.mark.parametrize(("final_delay_ms", "expected_s"), [(600, 0.6), (100, 0.4)])
async def test_stt_final_comes_its_delay_after_the_speech_not_after_its_own_window(
    http_session: aiohttp.ClientSession, final_delay_ms: int, expected_s: float
) -> None:
    # Audio arrives in real time, as on a call: the final is due `final_delay_ms` after the
    # last voiced audio, or when the 400 ms end-of-speech window closes if that is later;
    # never the window plus the delay.
    audio = np.concatenate(
        [_silence(0.3), synthesize_blocking("Tuesday works", sample_rate=CALLER_RATE),
         _silence(1.2)]
    )  # fmt: skip
    async with DeepgramSTTStandin(
        utterances=["Tuesday works."], final_delay_ms=final_delay_ms
    ) as server:
        recognizer = deepgram.STT(
            base_url=server.base_url, api_key="test", http_session=http_session
        )
        stream = recognizer.stream()
        for frame in _frames(audio):
            stream.push_frame(frame)
            await asyncio.sleep(frame.duration)
        await asyncio.sleep(0.2)
        await stream.aclose()
    (heard,) = server.utterances
    assert heard.transcription_s is not None
    assert expected_s - 0.05 <= heard.transcription_s <= expected_s + 0.08, heard
