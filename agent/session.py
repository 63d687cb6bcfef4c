"""The voice pipeline: phone-tuned STT, an OpenAI-compatible LLM, TTS, VAD, the local
end-of-turn model and the interruption policy."""

from __future__ import annotations

from typing import Any

from livekit.agents import AgentSession, inference, vad
from livekit.agents.voice.room_io import AudioInputOptions, RoomOptions
from livekit.plugins import cartesia, deepgram, openai

from agent.settings import Settings, SettingsError
from agent.state import CallState

# Phone audio is 8 kHz narrowband; the bridge upsamples, so ask Deepgram for 16 kHz, and keep
# its own endpointing short: our turn detector, not Deepgram's, decides when the caller is done.
STT_SAMPLE_RATE = 16000
STT_ENDPOINTING_MS = 25


def build_llm(settings: Settings) -> openai.LLM:
    return openai.LLM(
        model=settings.llm_model,
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url or "https://api.openai.com/v1",
        temperature=0.3,
        parallel_tool_calls=False,
    )


def build_stt(settings: Settings) -> deepgram.STT:
    kwargs: dict[str, Any] = {}
    if settings.deepgram_base_url:
        kwargs["base_url"] = settings.deepgram_base_url
    return deepgram.STT(
        model=settings.deepgram_model,
        language=settings.stt_language,
        api_key=settings.deepgram_api_key.get_secret_value(),
        sample_rate=STT_SAMPLE_RATE,
        interim_results=True,
        punctuate=True,
        smart_format=True,
        numerals=True,
        endpointing_ms=STT_ENDPOINTING_MS,
        filler_words=True,
        **kwargs,
    )


def build_tts(settings: Settings) -> cartesia.TTS:
    kwargs: dict[str, Any] = {}
    if settings.cartesia_base_url:
        kwargs["base_url"] = settings.cartesia_base_url
    return cartesia.TTS(
        model=settings.cartesia_model,
        voice=settings.cartesia_voice,
        api_key=settings.cartesia_api_key.get_secret_value(),
        **kwargs,
    )


def turn_detector() -> inference.TurnDetector:
    """LiveKit's end-of-turn model, pinned to the local ``v1-mini`` weights that ship inside
    livekit-local-inference: left to choose, dev mode would pick the cloud model."""
    return inference.TurnDetector(version="v1-mini")


def build_session(
    settings: Settings,
    state: CallState,
    *,
    vad_model: vad.VAD,
    llm: Any | None = None,
    stt: Any | None = None,
    tts: Any | None = None,
) -> AgentSession[CallState]:
    return AgentSession[CallState](
        stt=stt or build_stt(settings),
        llm=llm or build_llm(settings),
        tts=tts or build_tts(settings),
        vad=vad_model,
        userdata=state,
        max_tool_steps=5,
        user_away_timeout=settings.silence_timeout_seconds,
        turn_handling={
            "turn_detection": turn_detector(),
            "endpointing": {
                "mode": "fixed",
                "min_delay": settings.min_endpointing_delay,
                "max_delay": settings.max_endpointing_delay,
            },
            "interruption": {
                "enabled": True,
                "mode": "vad",  # "adaptive" runs in LiveKit Cloud; a self-hosted agent can't
                "min_duration": settings.min_interruption_seconds,
                "resume_false_interruption": True,
                "false_interruption_timeout": 1.5,
            },
            "preemptive_generation": {"enabled": settings.preemptive_generation},
        },
    )


def room_options(settings: Settings) -> RoomOptions:
    return RoomOptions(
        audio_input=AudioInputOptions(noise_cancellation=_noise_cancellation(settings)),
        close_on_disconnect=True,
    )


def _noise_cancellation(settings: Settings) -> Any:
    if settings.noise_cancellation == "off":
        return None
    try:
        from livekit.plugins import noise_cancellation  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        raise SettingsError(
            "NOISE_CANCELLATION is set but livekit-plugins-noise-cancellation is not installed: "
            "run `uv sync --extra noise-cancellation` (it needs LiveKit Cloud)."
        ) from None
    if settings.noise_cancellation == "bvc_telephony":
        return noise_cancellation.BVCTelephony()
    return noise_cancellation.BVC()
