"""A second endpoint per provider (LiveKit's fallback adapters over the real plugins), against
the stand-ins over real sockets, one of them taken down; and what the outage fallback needs
ready: the apology recorded ahead of time and the callback queued once."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from livekit.agents import APIConnectionError, llm, stt, tts
from livekit.agents.llm import ChatContext
from livekit.plugins import cartesia, deepgram, openai

from agent.session import (
    LLM_ATTEMPT_TIMEOUT_S,
    build_llm,
    build_stt,
    build_tts,
    connect_options,
)
from callab.standins.cartesia_tts import CartesiaTTSStandin
from callab.standins.chat_script import ChatScript
from callab.standins.openai_chat import OpenAIChatStandin
from calls.qualification import Qualification, load_criteria
from calls.state import CallState
from config import BusinessSettings, DialerSettings, QueueSettings, SettingsError, VoiceSettings
from config.loading import load_settings
from dialer import open_store
from dialer.policy import DialPolicy
from outage import OutageCallbacks, apology_lines, callback_call_id, prepare_apology

pytestmark = pytest.mark.integration

SCRIPT = ChatScript.from_data({"steps": [{"say": "Happy to help with that."}]})
KEYS = {"deepgram_api_key": "dg", "openai_api_key": "oa", "cartesia_api_key": "ca"}


def voice(**fields: Any) -> VoiceSettings:
    return VoiceSettings(**{**KEYS, **fields})


# --- settings ----------------------------------------------------------------------------


def test_no_fallback_settings_keep_the_plain_plugins() -> None:
    plain = voice(openai_fallback_base_url="", cartesia_fallback_api_key="")
    assert isinstance(build_llm(plain), openai.LLM)
    assert isinstance(build_stt(plain), deepgram.STT)
    assert isinstance(build_tts(plain), cartesia.TTS)
    default = connect_options(plain)
    assert default.llm_conn_options.max_retry == 3  # LiveKit's defaults, as before


def test_each_fallback_wraps_both_endpoints_and_inherits_what_it_does_not_set() -> None:
    both = voice(
        openai_base_url="http://one/v1", openai_fallback_base_url="http://two/v1",
        llm_fallback_model="small-model", deepgram_fallback_api_key="dg2",
        cartesia_base_url="http://tts-one", cartesia_fallback_base_url="http://tts-two",
    )  # fmt: skip
    chain = build_llm(both)
    assert isinstance(chain, llm.FallbackAdapter)
    first, second = chain._llm_instances
    assert (first.model, second.model) == ("gpt-4.1-mini", "small-model")
    assert [str(i._client.base_url) for i in (first, second)] == [
        "http://one/v1/",
        "http://two/v1/",
    ]
    assert second._client.api_key == "oa"  # no fallback key: the primary's
    speech = build_stt(both)
    assert isinstance(speech, stt.FallbackAdapter)
    assert [i._api_key for i in speech._stt_instances] == ["dg", "dg2"]
    voice_out = build_tts(both)
    assert isinstance(voice_out, tts.FallbackAdapter)
    assert [i._opts.base_url for i in voice_out._tts_instances] == [
        "http://tts-one", "http://tts-two",
    ]  # fmt: skip
    assert connect_options(both).llm_conn_options.max_retry == 1


@dataclass(frozen=True)
class Speech:
    voice: VoiceSettings


def test_a_fallback_url_that_is_not_a_url_is_named(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("DEEPGRAM_API_KEY=a\nOPENAI_API_KEY=b\nCARTESIA_API_KEY=c\n"
                   "OPENAI_FALLBACK_BASE_URL=backup-host/v1\n")  # fmt: skip
    with pytest.raises(SettingsError, match="OPENAI_FALLBACK_BASE_URL"):
        load_settings(Speech, env)


# --- the LLM chain against two stand-ins ---------------------------------------------------


@pytest.fixture
async def two_llms() -> AsyncIterator[tuple[OpenAIChatStandin, OpenAIChatStandin]]:
    async with (
        OpenAIChatStandin(script=SCRIPT, ttft_ms=50) as one,
        OpenAIChatStandin(script=SCRIPT, ttft_ms=50) as two,
    ):
        yield one, two


def _chain(one: OpenAIChatStandin, two: OpenAIChatStandin) -> tuple[Any, VoiceSettings]:
    settings = voice(openai_base_url=one.base_url, openai_fallback_base_url=two.base_url)
    return build_llm(settings), settings


async def _ask(chain: Any, settings: VoiceSettings) -> tuple[str, float]:
    ctx = ChatContext.empty()
    ctx.add_message(role="user", content="Can you help?")
    started = time.monotonic()
    options = connect_options(settings).llm_conn_options
    async with chain.chat(chat_ctx=ctx, conn_options=options) as stream:
        text = "".join([c.delta.content or "" async for c in stream if c.delta])
    return text, time.monotonic() - started


@pytest.mark.parametrize("how", ["error", "hang"])
async def test_a_dead_primary_llm_is_skipped_and_the_second_answers(
    two_llms: tuple[OpenAIChatStandin, OpenAIChatStandin], how: str
) -> None:
    one, two = two_llms
    chain, settings = _chain(one, two)
    assert (await _ask(chain, settings))[0] == "Happy to help with that."
    await one.go_down(how)

    text, took = await _ask(chain, settings)

    assert text == "Happy to help with that."
    # (the adapter also probes the dead one in the background, to see when it recovers)
    assert one.refused >= 1 and len(two.requests) == 1
    # a 503 is skipped at once; a hung endpoint costs one attempt timeout
    budget = 1.0 if how == "error" else LLM_ATTEMPT_TIMEOUT_S + 1.0
    assert took < budget, f"the switch took {took:.2f} s"
    print(f"\nswitch to the fallback LLM ({how}): {took:.3f} s")
    one.come_back()
    await chain.aclose()


async def test_every_llm_endpoint_down_fails_fast_with_an_unrecoverable_error(
    two_llms: tuple[OpenAIChatStandin, OpenAIChatStandin],
) -> None:
    one, two = two_llms
    chain, settings = _chain(one, two)
    errors: list[Any] = []
    chain.on("error", errors.append)
    await one.go_down()
    await two.go_down()

    started = time.monotonic()
    with pytest.raises(APIConnectionError):
        await _ask(chain, settings)
    took = time.monotonic() - started

    assert [e.recoverable for e in errors] == [True, False]  # the chain twice, then given up
    assert one.refused >= 2 and two.refused >= 2  # each tried in both passes
    assert took < 2.0, f"giving up took {took:.2f} s"
    print(f"\nevery LLM endpoint down, given up after {took:.3f} s")
    await chain.aclose()


# --- the TTS chain and the apology recorded ahead of time -----------------------------------


async def test_a_dead_primary_tts_is_skipped_and_the_second_speaks() -> None:
    async with (
        CartesiaTTSStandin() as one,
        CartesiaTTSStandin() as two,
        aiohttp.ClientSession() as http,
    ):
        settings = voice(cartesia_base_url=one.base_url, cartesia_fallback_base_url=two.base_url)
        chain = build_tts(settings, http_session=http)
        await one.go_down()
        frame = await chain.synthesize("Hello there").collect()
        await chain.aclose()
    assert frame.duration > 0.3
    assert one.refused >= 1 and [c.text for c in two.contexts] == ["Hello there"]


async def test_the_apology_is_recorded_once_then_read_from_the_cache_without_the_tts(
    tmp_path: Path,
) -> None:
    lines = apology_lines()
    async with CartesiaTTSStandin() as server:
        settings = voice(cartesia_base_url=server.base_url)

        def make_tts(http: aiohttp.ClientSession) -> Any:
            return build_tts(settings, http_session=http)

        # the prewarm runs before the job's loop: the same here, in a thread
        clips = await asyncio.to_thread(
            prepare_apology, tmp_path, voice_key="sonic-3:v1", make_tts=make_tts
        )
    assert sorted(c.text for c in server.contexts) == sorted(lines.values())
    for clip in (clips.callback, clips.no_callback):
        assert clip is not None and clip.seconds > 2.0
    assert len(os.listdir(tmp_path)) == 2  # the two clips, no partial file left

    def no_tts(_http: aiohttp.ClientSession) -> Any:
        raise AssertionError("the cache must be enough")

    again = await asyncio.to_thread(prepare_apology, tmp_path, voice_key="sonic-3:v1",
                                    make_tts=no_tts)  # fmt: skip
    assert again.callback is not None and again.callback.pcm == clips.callback.pcm
    other_voice = await asyncio.to_thread(prepare_apology, tmp_path, voice_key="sonic-3:v2",
                                          make_tts=no_tts)  # fmt: skip
    assert other_voice.callback is None  # another voice is not served this one's audio


# --- the callback, through the dialer's queue -----------------------------------------------

# Monday 23 November 2026, 10:00 in New York; 22:00 is outside calling hours.
MORNING = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def _state(phone: str | None, call_id: str = "job-1") -> CallState:
    return CallState(call_id=call_id, direction="inbound", started_at=MORNING,
                     qualification=Qualification(load_criteria()), caller_phone=phone)  # fmt: skip


@pytest.fixture
def queue(tmp_path: Path) -> Any:
    store = open_store(QueueSettings(), data_dir=tmp_path)
    yield store
    store.close()


def _callbacks(queue: Any, *, by_attempt: bool = False) -> OutageCallbacks:
    policy = DialPolicy.from_settings(DialerSettings(), BusinessSettings())
    return OutageCallbacks(queue, policy, by_attempt=by_attempt)


async def test_a_callback_is_queued_once_per_call_within_calling_hours(queue: Any) -> None:
    callbacks = _callbacks(queue)
    state = _state("+12125550143")
    late = MORNING + timedelta(hours=12)  # 22:00 in New York

    due = await callbacks.queue(state, at=late, now=MORNING)
    again = await callbacks.queue(state, at=late, now=MORNING)  # a retry, or a second provider

    call = queue.call(callback_call_id("job-1"))
    assert call is not None and call.lead.phone == "+12125550143"
    assert due == again == call.next_at == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 9:00 NY
    assert call.status == "scheduled"
    assert _queued_for(queue, "+12125550143") == 1


def _queued_for(queue: Any, phone: str) -> int:
    with sqlite3.connect(queue.path) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM dialer_calls WHERE phone = ?", (phone,)
        ).fetchone()
    return int(count)


async def test_no_callback_for_a_do_not_call_number_or_a_withheld_one(queue: Any) -> None:
    callbacks = _callbacks(queue)
    queue.add_dnc("+12125550144", reason="asked", now=MORNING)

    assert await callbacks.queue(_state("+12125550144"), at=MORNING, now=MORNING) is None
    assert await callbacks.queue(_state(None, "job-2"), at=MORNING, now=MORNING) is None
    opted_out = _state("+12125550145", "job-3")
    opted_out.do_not_call = True  # said on this very call
    assert await callbacks.queue(opted_out, at=MORNING, now=MORNING) is None
    for job in ("job-1", "job-2", "job-3"):
        assert queue.call(callback_call_id(job)) is None


async def test_a_dialer_attempt_leaves_the_callback_to_its_own_report(queue: Any) -> None:
    callbacks = _callbacks(queue, by_attempt=True)
    at = MORNING + timedelta(minutes=30)
    assert await callbacks.queue(_state("+12125550146"), at=at, now=MORNING) == at
    assert queue.call(callback_call_id("job-1")) is None  # the report reschedules the lead
