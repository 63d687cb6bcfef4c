"""The voice pipeline: phone-tuned STT, an OpenAI-compatible LLM, TTS, VAD, the local
end-of-turn model and the interruption policy."""

from __future__ import annotations

from typing import Any

from livekit.agents import AgentSession, vad
from livekit.agents.voice.room_io import AudioInputOptions, RoomOptions
from livekit.plugins import cartesia, deepgram, openai

from agent.endpointing import PhoneTurnDetector, TranscriptGate
from calls.call import Call
from config import LlmSettings, SettingsError, VoiceSettings

# Phone audio is 8 kHz narrowband; the bridge upsamples, so ask Deepgram for 16 kHz, and keep
# its own endpointing short: our turn detector, not Deepgram's, decides when the caller is done.
STT_SAMPLE_RATE = 16000
STT_ENDPOINTING_MS = 25


def build_llm(voice: VoiceSettings | LlmSettings) -> openai.LLM:
    return openai.LLM(
        model=voice.llm_model,
        api_key=voice.openai_api_key.get_secret_value(),
        base_url=voice.openai_base_url or "https://api.openai.com/v1",
        temperature=0.3,
        parallel_tool_calls=False,
    )


def build_stt(
    voice: VoiceSettings, *, tags: list[str] | None = None, languages: tuple[str, ...] = ()
) -> deepgram.STT:
    """``tags``: Deepgram's usage tags, e.g. to tell a rep's transcript from the caller's.
    ``languages``: the business's; more than one needs Deepgram's multilingual mode, which
    labels each transcript with the language it heard."""
    kwargs: dict[str, Any] = {}
    if tags:
        kwargs["tags"] = tags
    if voice.deepgram_base_url:
        kwargs["base_url"] = voice.deepgram_base_url
    return deepgram.STT(
        model=voice.deepgram_model,
        language=stt_language(voice, languages),
        api_key=voice.deepgram_api_key.get_secret_value(),
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


def build_tts(voice: VoiceSettings) -> cartesia.TTS:
    kwargs: dict[str, Any] = {}
    if voice.cartesia_base_url:
        kwargs["base_url"] = voice.cartesia_base_url
    return cartesia.TTS(
        model=voice.cartesia_model,
        voice=voice.cartesia_voice,
        api_key=voice.cartesia_api_key.get_secret_value(),
        **kwargs,
    )


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
    detector = turn_detector(voice.stt_language)
    session = AgentSession[Call](
        stt=stt or build_stt(voice),
        llm=llm or build_llm(voice),
        tts=tts or build_tts(voice),
        vad=vad_model,
        userdata=call,
        max_tool_steps=5,
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
                "resume_false_interruption": True,
                "false_interruption_timeout": 1.5,
            },
            "preemptive_generation": {"enabled": voice.preemptive_generation},
        },
    )
    detector.gate.follow(session)
    return session


def room_options(voice: VoiceSettings, *, participant_identity: str | None = None) -> RoomOptions:
    """Listen to the caller; on an outbound call, to the SIP participant being dialed."""
    options = RoomOptions(
        audio_input=AudioInputOptions(noise_cancellation=_noise_cancellation(voice)),
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
