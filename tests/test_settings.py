from __future__ import annotations

from typing import Any

import pytest

from agent.settings import load_worker_settings
from config import SettingsError

pytestmark = pytest.mark.unit

KEYS = {"DEEPGRAM_API_KEY": "d", "OPENAI_API_KEY": "o", "CARTESIA_API_KEY": "c"}


def test_missing_keys_are_named_with_their_purpose(monkeypatch, tmp_path):
    with pytest.raises(SettingsError) as err:
        load_worker_settings(tmp_path / "absent.env")
    message = str(err.value)
    for name in KEYS:
        assert name in message
    assert "speech-to-text" in message


def test_env_file_is_read_and_defaults_apply(tmp_path):
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in KEYS.items()) + "BUSINESS_DAYS=mon,wed\n")
    settings = load_worker_settings(env)
    assert settings.integrations.hubspot_access_token is None  # -> embedded CRM
    assert settings.business.business_hours().weekdays == frozenset({0, 2})


def test_invalid_values_are_explained(monkeypatch, tmp_path):
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("BUSINESS_TIME_ZONE", "Mars/Olympus")
    with pytest.raises(SettingsError, match="BUSINESS_TIME_ZONE"):
        load_worker_settings(tmp_path / "absent.env")


def test_provisioning_needs_no_speech_keys_and_reads_sip_settings_from_env_file(tmp_path):
    from config import load_settings
    from telephony.provision import ProvisionSettings, SipPlan

    env = tmp_path / ".env"
    env.write_text(
        "SIP_INBOUND_NUMBER=+14155550111,+14155550112\n"
        "SIP_OUTBOUND_ADDRESS=carrier.example:5060\nSIP_OUTBOUND_TRANSPORT=TCP\n"
        "SIP_OUTBOUND_PASSWORD=s3cret\n"
    )
    settings = load_settings(ProvisionSettings, env)
    plan = SipPlan.from_settings(
        settings.telephony, agent_name=settings.livekit.agent_name, url="ws://127.0.0.1:7880"
    )
    assert plan.inbound_numbers == ("+14155550111", "+14155550112")
    assert plan.outbound_address == "carrier.example:5060" and plan.outbound_transport == "tcp"
    assert plan.outbound_password == "s3cret" and "s3cret" not in repr(settings)
    assert plan.inbound_allowed_addresses == ("127.0.0.1/32",)  # loopback stack default
    remote = SipPlan.from_settings(
        settings.telephony, agent_name="a", url="wss://livekit.example.com"
    )
    assert remote.inbound_allowed_addresses == ()


def test_a_bad_sip_transport_is_named(tmp_path):
    from config import load_settings
    from telephony.provision import ProvisionSettings

    env = tmp_path / ".env"
    env.write_text("SIP_OUTBOUND_TRANSPORT=carrier-pigeon\n")
    with pytest.raises(SettingsError, match="SIP_OUTBOUND_TRANSPORT"):
        load_settings(ProvisionSettings, env)


def test_env_example_lists_every_setting_and_nothing_else():
    from pathlib import Path

    import config

    fields = config.variable_names()
    example = Path(__file__).resolve().parents[1] / ".env.example"
    listed = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert listed == fields


async def test_the_interruption_settings_reach_the_session() -> None:
    from types import SimpleNamespace

    from livekit.agents import vad

    from agent.session import build_session
    from config import VoiceSettings

    class NoVad(vad.VAD):
        def __init__(self) -> None:
            super().__init__(capabilities=vad.VADCapabilities(update_interval=0.03))

        def stream(self) -> vad.VADStream:
            raise NotImplementedError  # the session is built, never run

    voice = VoiceSettings(
        deepgram_api_key="k", openai_api_key="k", cartesia_api_key="k",  # type: ignore[arg-type]
        min_interruption_seconds=0.25, min_interruption_words=2,
        false_interruption_timeout=0.8,
    )  # fmt: skip
    call: Any = SimpleNamespace()  # only handed to the session as its userdata
    session = build_session(voice, call, vad_model=NoVad(), user_away_timeout=10)
    interruption = session.options.interruption
    assert (interruption["min_duration"], interruption["min_words"]) == (0.25, 2)
    assert interruption["resume_false_interruption"] is True
    assert interruption["false_interruption_timeout"] == 0.8


def test_the_vad_is_loaded_with_the_configured_silence_and_activation_threshold() -> None:
    from agent.session import load_vad
    from config import VoiceSettings

    voice = VoiceSettings(
        deepgram_api_key="k", openai_api_key="k", cartesia_api_key="k",  # type: ignore[arg-type]
        vad_min_silence_seconds=0.3, vad_activation_threshold=0.35,
    )  # fmt: skip
    options = load_vad(voice).inner._opts  # type: ignore[attr-defined]
    assert (options.min_silence_duration, options.activation_threshold) == (0.3, 0.35)
    with pytest.raises(ValueError, match="vad_activation_threshold"):
        VoiceSettings(
            deepgram_api_key="k", openai_api_key="k", cartesia_api_key="k",  # type: ignore[arg-type]
            vad_activation_threshold=1.2,
        )  # fmt: skip


def test_the_callers_audio_arrives_at_the_stt_rate_in_frames_of_the_configured_length() -> None:
    from agent.session import STT_SAMPLE_RATE, room_options
    from config import VoiceSettings

    voice = VoiceSettings(
        deepgram_api_key="k", openai_api_key="k", cartesia_api_key="k",  # type: ignore[arg-type]
        audio_input_frame_ms=30,
    )  # fmt: skip
    audio_input = room_options(voice).audio_input
    assert not isinstance(audio_input, bool)
    assert (audio_input.sample_rate, audio_input.frame_size_ms) == (STT_SAMPLE_RATE, 30)
    assert STT_SAMPLE_RATE == 16000  # silero's rate too: nothing resamples the caller again


def test_prewarm_builds_the_tls_context_of_livekits_job_http_session() -> None:
    from livekit.agents.utils import http_context

    from agent.worker import warm_tls_context

    http_context._ssl_context_for.cache_clear()
    warm_tls_context()
    # what a job's `ctx.api` session will use: already built, not parsed in the call
    assert http_context._ssl_context_for.cache_info().currsize == 1
