"""The voice pipeline: phone-tuned STT, an OpenAI-compatible LLM, TTS, VAD, the local
end-of-turn model and the interruption policy."""

from __future__ import annotations

from typing import Any

import aiohttp
from livekit.agents import AgentSession, APIConnectOptions, llm, stt, tts, vad
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.room_io import AudioInputOptions, RoomOptions
from livekit.plugins import cartesia, deepgram, openai, silero
from pydantic import SecretStr

from agent import barge_in, hot_paths
from agent.endpointing import PhoneTurnDetector, TranscriptGate
from agent.prompt_vad import PromptVAD
from calls.call import Call
from config import LlmSettings, SettingsError, VoiceSettings

# Phone audio is 8 kHz narrowband; the bridge upsamples, so ask Deepgram for 16 kHz, and keep
# its own endpointing short: our turn detector, not Deepgram's, decides when the caller is done.
STT_SAMPLE_RATE = 16000
STT_ENDPOINTING_MS = 25


# With a second endpoint configured, a failing one is skipped at once (no retry on it) and a
# hung one after these timeouts; the whole chain is tried twice before the session is told the
# provider is down (agent/worker.py then apologises, queues a callback and hangs up).
LLM_ATTEMPT_TIMEOUT_S = 3.0  # no answer this long: the next endpoint
STT_ATTEMPT_TIMEOUT_S = 3.0
TTS_ATTEMPT_TIMEOUT_S = 3.0
CHAIN_RETRIES = 1  # the chain again once, so one blip on both endpoints does not end the call
CHAIN_RETRY_INTERVAL_S = 0.3  # LiveKit makes a first retry after 0.1 s whatever this says
OPENAI_URL = "https://api.openai.com/v1"


def build_llm(voice: VoiceSettings | LlmSettings) -> Any:
    """The OpenAI-compatible LLM; over a second endpoint too when one is configured."""
    primary = _openai(voice.llm_model, voice.openai_api_key, voice.openai_base_url or OPENAI_URL)
    if isinstance(voice, LlmSettings) or not voice.llm_fallback:  # the text console: one
        return primary
    second = _openai(
        voice.llm_fallback_model or voice.llm_model,
        voice.openai_fallback_api_key or voice.openai_api_key,
        voice.openai_fallback_base_url or voice.openai_base_url or OPENAI_URL,
    )
    return llm.FallbackAdapter(
        [primary, second], attempt_timeout=LLM_ATTEMPT_TIMEOUT_S, max_retry_per_llm=0,
        retry_interval=CHAIN_RETRY_INTERVAL_S,
    )  # fmt: skip


def _openai(model: str, key: SecretStr, base_url: str) -> openai.LLM:
    return openai.LLM(
        model=model, api_key=key.get_secret_value(), base_url=base_url, temperature=0.3,
        parallel_tool_calls=False,
    )  # fmt: skip


def load_vad(voice: VoiceSettings) -> vad.VAD:
    """Silero, loaded once per process and shared by its sessions; the agent stops on the
    window that starts the caller's speech (agent/prompt_vad.py)."""
    return PromptVAD(silero.VAD.load(
        min_silence_duration=voice.vad_min_silence_seconds,
        activation_threshold=voice.vad_activation_threshold,
    ))  # fmt: skip


def build_stt(
    voice: VoiceSettings, *, tags: list[str] | None = None, languages: tuple[str, ...] = ()
) -> Any:
    """Deepgram; over a second endpoint too when one is configured. ``tags``: Deepgram's
    usage tags, e.g. to tell a rep's transcript from the caller's. ``languages``: the
    business's; more than one needs Deepgram's multilingual mode, which labels each
    transcript with the language it heard."""
    language = stt_language(voice, languages)
    primary = _deepgram(
        voice, voice.deepgram_api_key, voice.deepgram_base_url, tags=tags, language=language
    )
    if not voice.stt_fallback:
        return primary
    second = _deepgram(
        voice, voice.deepgram_fallback_api_key or voice.deepgram_api_key,
        voice.deepgram_fallback_base_url or voice.deepgram_base_url, tags=tags,
        language=language,
    )  # fmt: skip
    return stt.FallbackAdapter(
        [primary, second], attempt_timeout=STT_ATTEMPT_TIMEOUT_S, max_retry_per_stt=0,
        retry_interval=CHAIN_RETRY_INTERVAL_S,
    )  # fmt: skip


def _deepgram(
    voice: VoiceSettings,
    key: SecretStr,
    base_url: str | None,
    *,
    tags: list[str] | None,
    language: str,
) -> deepgram.STT:
    kwargs: dict[str, Any] = {}
    if tags:
        kwargs["tags"] = tags
    if base_url:
        kwargs["base_url"] = base_url
    return deepgram.STT(
        model=voice.deepgram_model,
        language=language,
        api_key=key.get_secret_value(),
        sample_rate=STT_SAMPLE_RATE,
        interim_results=True,
        punctuate=True,
        smart_format=True,
        numerals=True,
        endpointing_ms=STT_ENDPOINTING_MS,
        filler_words=True,
        **kwargs,
    )


def stt_language(voice: VoiceSettings, languages: tuple[str, ...]) -> str:
    if len(languages) > 1:
        return "multi"
    if languages and not voice.stt_language.lower().startswith(languages[0]):
        return languages[0]
    return voice.stt_language


def build_tts(voice: VoiceSettings, *, http_session: aiohttp.ClientSession | None = None) -> Any:
    """Cartesia; over a second endpoint too when one is configured. ``http_session``: for use
    outside a call (the worker's prewarm)."""
    primary = _cartesia(voice, voice.cartesia_api_key, voice.cartesia_base_url, http_session)
    if not voice.tts_fallback:
        return primary
    second = _cartesia(
        voice, voice.cartesia_fallback_api_key or voice.cartesia_api_key,
        voice.cartesia_fallback_base_url or voice.cartesia_base_url, http_session,
    )  # fmt: skip
    return tts.FallbackAdapter([primary, second], max_retry_per_tts=0)


def _cartesia(
    voice: VoiceSettings,
    key: SecretStr,
    base_url: str | None,
    http_session: aiohttp.ClientSession | None,
) -> cartesia.TTS:
    kwargs: dict[str, Any] = {}
    if base_url:
        kwargs["base_url"] = base_url
    if http_session is not None:
        kwargs["http_session"] = http_session
    return cartesia.TTS(
        model=voice.cartesia_model,
        voice=voice.cartesia_voice,
        api_key=key.get_secret_value(),
        **kwargs,
    )


def connect_options(voice: VoiceSettings) -> SessionConnectOptions:
    """The session's retries: a provider with a second endpoint gets the short chain above;
    one without keeps LiveKit's defaults (three retries), as before."""
    default = SessionConnectOptions()
    return SessionConnectOptions(
        stt_conn_options=_chain(STT_ATTEMPT_TIMEOUT_S) if voice.stt_fallback
        else default.stt_conn_options,
        llm_conn_options=_chain(LLM_ATTEMPT_TIMEOUT_S) if voice.llm_fallback
        else default.llm_conn_options,
        tts_conn_options=_chain(TTS_ATTEMPT_TIMEOUT_S) if voice.tts_fallback
        else default.tts_conn_options,
    )  # fmt: skip


def _chain(timeout_s: float) -> APIConnectOptions:
    return APIConnectOptions(
        max_retry=CHAIN_RETRIES, retry_interval=CHAIN_RETRY_INTERVAL_S, timeout=timeout_s,
    )  # fmt: skip


def turn_detector(language: str = "en-US") -> PhoneTurnDetector:
    """LiveKit's end-of-turn model, pinned to the local ``v1-mini`` weights that ship inside
    livekit-local-inference, with the caller's words as a second opinion
    (``agent/endpointing.py``)."""
    return PhoneTurnDetector(TranscriptGate(language))


def build_session(
    voice: VoiceSettings,
    call: Call,
    *,
    vad_model: vad.VAD,
    user_away_timeout: float,
    llm: Any | None = None,
    stt: Any | None = None,
    tts: Any | None = None,
) -> AgentSession[Call]:
    hot_paths.install()  # before the session's first request and first reply
    barge_in.install()
    detector = turn_detector(voice.stt_language)
    session = AgentSession[Call](
        stt=stt or build_stt(voice),
        llm=llm or build_llm(voice),
        tts=tts or build_tts(voice),
        vad=vad_model,
        userdata=call,
        max_tool_steps=5,
        conn_options=connect_options(voice),
        user_away_timeout=user_away_timeout,
        turn_handling={
            "turn_detection": detector,
            "endpointing": {
                "mode": "fixed",
                "min_delay": voice.min_endpointing_delay,
                "max_delay": voice.max_endpointing_delay,
            },
            "interruption": {
                "enabled": True,
                "mode": "vad",  # "adaptive" runs in LiveKit Cloud; a self-hosted agent can't
                "min_duration": voice.min_interruption_seconds,
                "min_words": voice.min_interruption_words,
                "resume_false_interruption": True,
                "false_interruption_timeout": voice.false_interruption_timeout,
            },
            "preemptive_generation": {"enabled": voice.preemptive_generation},
        },
    )
    detector.gate.follow(session)
    return session


def room_options(voice: VoiceSettings, *, participant_identity: str | None = None) -> RoomOptions:
    """Listen to the caller; on an outbound call, to the SIP participant being dialed."""
    options = RoomOptions(
        audio_input=AudioInputOptions(
            sample_rate=STT_SAMPLE_RATE,
            frame_size_ms=voice.audio_input_frame_ms,
            noise_cancellation=_noise_cancellation(voice),
        ),
        close_on_disconnect=True,
        # The caller hung up: end the call now, not when livekit-server's departure timeout
        # closes the empty room, so its call slot, its process and its wrap-up do not wait.
        delete_room_on_close=True,
    )
    if participant_identity:
        options.participant_identity = participant_identity
    return options


def _noise_cancellation(voice: VoiceSettings) -> Any:
    if voice.noise_cancellation == "off":
        return None
    try:
        from livekit.plugins import noise_cancellation  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        raise SettingsError(
            "NOISE_CANCELLATION is set but livekit-plugins-noise-cancellation is not installed: "
            "run `uv sync --extra noise-cancellation` (it needs LiveKit Cloud)."
        ) from None
    if voice.noise_cancellation == "bvc_telephony":
        return noise_cancellation.BVCTelephony()
    return noise_cancellation.BVC()
