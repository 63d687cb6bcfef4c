"""The settings groups. Every variable, with its default, is listed in ``.env.example``."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from calls.slots import BusinessHours
from calls.time_zones import resolve_time_zone

_ENV = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)


class LiveKitSettings(BaseSettings):
    """Where LiveKit is, and how the worker registers there. No URL: the local stack."""

    model_config = _ENV
    livekit_url: str | None = Field(None, description="LiveKit server websocket URL")
    livekit_api_key: str | None = Field(None, description="LiveKit API key")
    livekit_api_secret: SecretStr | None = Field(None, description="LiveKit API secret")
    agent_name: str = Field("sales-agent", description="name dispatch rules use to reach us")
    worker_max_calls: int = Field(3, ge=1, le=50, description="calls one worker takes at once")
    worker_job_executor: Literal["process", "thread"] = Field(
        "process", description="each call in a job process of its own, or a thread of the worker"
    )
    worker_http_port: int = Field(8081, ge=0, le=65535, description="health check; 0: any free")
    worker_http_host: str = Field(
        "127.0.0.1", description="address of the health check and metrics; 0.0.0.0: all"
    )
    worker_metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Prometheus /metrics; unset: off, 0: any free port"
    )
    worker_metrics_dir: Path | None = Field(
        None, description="job processes' metric files, emptied at start; unset: a temp dir"
    )
    log_level: str = "INFO"

    @field_validator("worker_metrics_port", "worker_metrics_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    def api_secret(self) -> str | None:
        return self.livekit_api_secret.get_secret_value() if self.livekit_api_secret else None


class TelephonySettings(BaseSettings):
    """The SIP trunk: what provisioning creates on LiveKit (see README, SIP)."""

    model_config = _ENV
    sip_inbound_number: str = Field("+14155550199", description="our number(s), E.164, csv")
    sip_inbound_allowed_addresses: str | None = Field(
        None, description="carrier CIDRs, csv; unset: loopback on the local stack, else any"
    )
    sip_room_prefix: str = "call-"
    sip_outbound_address: str = Field("127.0.0.1:5070", description="the carrier's SIP host")
    sip_outbound_number: str = Field("+15550100001", description="caller-id number(s), csv")
    sip_outbound_transport: Literal["", "udp", "tcp", "tls"] = ""
    sip_outbound_username: str = ""
    sip_outbound_password: SecretStr = SecretStr("")
    sip_outbound_trunk_id: str | None = Field(None, description="set by provisioning's output")

    @field_validator("sip_outbound_transport", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class IntegrationSettings(BaseSettings):
    """The CRM and calendar. Leave empty to use the embedded ones."""

    model_config = _ENV
    hubspot_access_token: SecretStr | None = Field(None, description="HubSpot private app token")
    hubspot_base_url: str = "https://api.hubapi.com"
    google_service_account_file: Path | None = Field(None, description="service account key")
    google_delegated_user: str | None = Field(None, description="user the agent books as")
    google_calendar_id: str = "primary"
    google_base_url: str | None = None
    data_dir: Path = Field(Path("data"), description="embedded CRM and calendar, outbox")
    crm_do_not_call_property: str = Field(
        "do_not_call", description="contact property set to true when a caller opts out"
    )


class BusinessSettings(BaseSettings):
    """The business's hours and the call policies it chooses."""

    model_config = _ENV
    default_region: str = Field("US", description="region for numbers without a + prefix")
    business_time_zone: str = "America/New_York"
    business_open: time = time(9)
    business_close: time = time(17)
    business_days: str = "mon,tue,wed,thu,fri"
    slot_minutes: int = Field(30, ge=10, le=240)
    min_notice_minutes: int = Field(120, ge=0)
    booking_horizon_days: int = Field(14, ge=1, le=90)
    announce_ai: bool = True
    announce_recording: bool = Field(
        True, description="say the recording notice and record the call (DATA_DIR/recordings)"
    )
    max_call_seconds: float = Field(900, gt=30)
    silence_timeout_seconds: float = Field(8.0, gt=1)
    voicemail_detection: bool = Field(
        True, description="on outbound calls, tell mailboxes from people and leave a message"
    )
    voicemail_no_beep_seconds: float = Field(
        2.5, gt=0, le=15, description="after a mailbox's greeting with no beep, speak after this"
    )
    routing_file: Path | None = Field(
        None, description="who takes transfers: your own file instead of prompts/routing.yaml"
    )
    outage_callback_minutes: float = Field(
        30, gt=0, le=10080, description="a call cut short by a provider outage: call back after"
    )
    supported_languages: str = Field(
        "en", description="ISO 639-1 codes callers are answered in, csv; the first greets"
    )

    @field_validator("routing_file", mode="before")
    @classmethod
    def _empty_routing_is_default(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("supported_languages")
    @classmethod
    def _language_codes(cls, value: str) -> str:
        language_codes(value)
        return value

    def languages(self) -> tuple[str, ...]:
        return language_codes(self.supported_languages)

    @field_validator("business_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        resolve_time_zone(value)
        return value

    @field_validator("business_days")
    @classmethod
    def _known_days(cls, value: str) -> str:
        _weekday_numbers(value)
        return value

    def business_hours(self) -> BusinessHours:
        return BusinessHours(
            time_zone=resolve_time_zone(self.business_time_zone).key,
            open_at=self.business_open,
            close_at=self.business_close,
            weekdays=_weekday_numbers(self.business_days),
            slot_minutes=self.slot_minutes,
            min_notice_minutes=self.min_notice_minutes,
            horizon_days=self.booking_horizon_days,
        )


class VoiceSettings(BaseSettings):
    """Speech and language providers and turn-taking: required where calls are spoken, since
    there is no offline substitute on a real call."""

    model_config = _ENV
    deepgram_api_key: SecretStr = Field(description="Deepgram key, for speech-to-text")
    deepgram_base_url: str | None = Field(None, description="override, e.g. a proxy")
    deepgram_model: str = "nova-3"
    stt_language: str = "en-US"
    openai_api_key: SecretStr = Field(description="key of the OpenAI-compatible LLM endpoint")
    openai_base_url: str | None = Field(None, description="Azure, vLLM, Ollama ... endpoint")
    llm_model: str = "gpt-4.1-mini"
    cartesia_api_key: SecretStr = Field(description="Cartesia key, for text-to-speech")
    cartesia_base_url: str | None = None
    cartesia_model: str = "sonic-3"
    cartesia_voice: str = "f786b574-daa5-4673-aa0c-cbe3e8534c02"
    # A second endpoint per provider, used when the first fails (LiveKit's fallback adapters);
    # any of a provider's fallback settings set turns its fallback on, the rest default to the
    # primary's. Unset: the provider's plugin alone, as before.
    deepgram_fallback_base_url: str | None = Field(None, description="second STT endpoint")
    deepgram_fallback_api_key: SecretStr | None = Field(None, description="its key")
    openai_fallback_base_url: str | None = Field(None, description="second LLM endpoint")
    openai_fallback_api_key: SecretStr | None = Field(None, description="its key")
    llm_fallback_model: str | None = Field(None, description="its model")
    cartesia_fallback_base_url: str | None = Field(None, description="second TTS endpoint")
    cartesia_fallback_api_key: SecretStr | None = Field(None, description="its key")
    min_endpointing_delay: float = Field(0.4, ge=0)
    max_endpointing_delay: float = Field(2.5, gt=0)
    preemptive_generation: bool = True
    # The silence that ends the caller's speech: with the 0.4 s minimum delay a finished sentence
    # ends the turn 0.4 s after it (LiveKit's 0.55 s was the end of every quick turn).
    vad_min_silence_seconds: float = Field(0.35, gt=0, le=3)
    # Silero's speech probability that starts the caller's speech (and so a barge-in).
    vad_activation_threshold: float = Field(0.35, gt=0, lt=1)
    # The caller's audio reaches the VAD and the STT in frames this long: shorter hears the
    # caller sooner (LiveKit's default is 50; 20 measured no dearer at 3 calls per core).
    audio_input_frame_ms: int = Field(20, ge=10, le=100)
    min_interruption_seconds: float = Field(0.05, gt=0, le=3)
    # Words the STT must have heard before talking over the agent stops it (0: the VAD alone).
    min_interruption_words: int = Field(0, ge=0, le=5)
    # A pause no words follow (a cough, a throat-clear) ends this long after the sound does:
    # the agent resumes where it stopped.
    false_interruption_timeout: float = Field(0.8, gt=0, le=5)
    noise_cancellation: Literal["off", "bvc", "bvc_telephony"] = "off"

    @field_validator(
        "deepgram_fallback_base_url", "deepgram_fallback_api_key", "openai_fallback_base_url",
        "openai_fallback_api_key", "llm_fallback_model", "cartesia_fallback_base_url",
        "cartesia_fallback_api_key",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "deepgram_fallback_base_url", "openai_fallback_base_url", "cartesia_fallback_base_url"
    )
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"expected an http(s):// or ws(s):// URL; got {value!r}")
        return value

    @property
    def stt_fallback(self) -> bool:
        return bool(self.deepgram_fallback_base_url or self.deepgram_fallback_api_key)

    @property
    def llm_fallback(self) -> bool:
        return bool(
            self.openai_fallback_base_url or self.openai_fallback_api_key or self.llm_fallback_model
        )

    @property
    def tts_fallback(self) -> bool:
        return bool(self.cartesia_fallback_base_url or self.cartesia_fallback_api_key)


def language_codes(value: str) -> tuple[str, ...]:
    """``"en,es"`` as language codes, in order, each once."""
    codes = tuple(dict.fromkeys(c.strip().lower() for c in value.split(",") if c.strip()))
    if not codes or not all(len(c) == 2 and c.isalpha() and c.isascii() for c in codes):
        raise ValueError(f"languages must be two-letter codes like en,es; got {value!r}")
    return codes


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday_numbers(value: str) -> frozenset[int]:
    names = [d.strip().lower()[:3] for d in value.split(",") if d.strip()]
    unknown = [n for n in names if n not in _DAYS]
    if unknown or not names:
        raise ValueError(f"business days must be names like mon,tue; got {value!r}")
    return frozenset(_DAYS.index(n) for n in names)


class QueueSettings(BaseSettings):
    """Where the dialer's queue lives: SQLite under DATA_DIR, or PostgreSQL when several API
    or dialer replicas share one queue."""

    model_config = _ENV
    database_url: SecretStr | None = Field(
        None, description="postgresql://user:pass@host/db; unset: SQLite under DATA_DIR"
    )


class RetentionSettings(BaseSettings):
    """How long call transcripts and recordings are kept (see README, privacy)."""

    model_config = _ENV
    transcript_retention_days: int = Field(
        0, ge=0, description="days a call's transcript is kept in our stores; 0: keep"
    )
    recording_retention_days: int = Field(
        0, ge=0, description="days a call's recording is kept under DATA_DIR; 0: keep"
    )
    retention_sweep_minutes: float = Field(
        60, gt=0, description="how often the worker applies the retention settings"
    )


class DialerSettings(BaseSettings):
    """How the dialer paces, caps, times and retries outbound calls, and where results go."""

    model_config = _ENV
    dialer_max_concurrent_calls: int = Field(5, ge=1, description="calls in flight, all told")
    dialer_calls_per_second: float = Field(1.0, gt=0, le=100, description="the trunk's pace")
    dialer_max_attempts: int = Field(3, ge=1, le=20)
    dialer_retry_busy_minutes: str = Field("10,30,60", description="minutes before each retry")
    dialer_retry_no_answer_minutes: str = "60,180,1440"
    dialer_retry_voicemail_minutes: str = "240,1440"
    dialer_retry_failed_minutes: str = "15,60"
    dialer_calling_start: time = Field(time(9), description="leads' local time; never before 8")
    dialer_calling_end: time = Field(time(20), description="leads' local time; never after 21")
    dialer_calling_days: str = "mon,tue,wed,thu,fri"
    dialer_ring_timeout_seconds: float = Field(45.0, gt=5, le=300)
    dialer_poll_seconds: float = Field(1.0, gt=0, le=60)
    webhook_urls: str = Field("", description="csv of URLs that receive call results")
    webhook_secret: SecretStr | None = Field(None, description="HMAC key for the webhooks")
    webhook_max_attempts: int = Field(12, ge=1, le=50)
    dialer_metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Prometheus /metrics on 127.0.0.1; unset: off"
    )

    @field_validator("dialer_metrics_port", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "dialer_retry_busy_minutes",
        "dialer_retry_no_answer_minutes",
        "dialer_retry_voicemail_minutes",
        "dialer_retry_failed_minutes",
    )
    @classmethod
    def _minutes(cls, value: str) -> str:
        minutes_list(value)
        return value

    @field_validator("dialer_calling_days")
    @classmethod
    def _days(cls, value: str) -> str:
        _weekday_numbers(value)
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("use at least 16 characters")
        return value

    @model_validator(mode="after")
    def _signed_webhooks(self) -> DialerSettings:
        if self.webhook_targets() and self.webhook_secret is None:
            raise ValueError("WEBHOOK_SECRET is required when WEBHOOK_URLS is set")
        return self

    def webhook_targets(self) -> tuple[str, ...]:
        return tuple(url.strip() for url in self.webhook_urls.split(",") if url.strip())

    def calling_days(self) -> frozenset[int]:
        return _weekday_numbers(self.dialer_calling_days)


class LeadApiSettings(BaseSettings):
    """The lead API: where it listens and what it accepts."""

    model_config = _ENV
    leadapi_host: str = Field("127.0.0.1", description="address the lead API listens on")
    leadapi_port: int = Field(8080, ge=1, le=65535)
    lead_consent_required: bool = Field(True, description="refuse leads without consent")
    lead_dedupe_hours: float = Field(24.0, ge=0, description="same phone within: same call")
    leadapi_rate_limit_per_minute: float = Field(
        600, ge=0, description="requests per minute per API key, sustained; 0: no limit"
    )
    leadapi_rate_limit_burst: int = Field(
        60, ge=1, description="requests per API key allowed at once above the sustained rate"
    )
    console_public_url: str = Field(
        "http://127.0.0.1:8080", description="the lead API as reps reach it (invite links)"
    )
    console_session_hours: float = Field(8.0, gt=0, le=720, description="rep console sign-in")
    console_invite_hours: float = Field(72.0, gt=0, le=720, description="invite link validity")


def minutes_list(value: str) -> tuple[float, ...]:
    """``"10,30,60"`` as minutes; an empty list is allowed (no retry)."""
    try:
        minutes = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"expected minutes like 10,30,60; got {value!r}") from None
    if any(m <= 0 for m in minutes):
        raise ValueError(f"minutes must be positive; got {value!r}")
    return minutes


def weekday_numbers(value: str) -> frozenset[int]:
    """``"mon,tue"`` as weekday numbers (Monday is 0)."""
    return _weekday_numbers(value)


class LlmSettings(BaseSettings):
    """The LLM alone (the same variables as in ``VoiceSettings``): what the text console needs,
    where nothing is heard or spoken."""

    model_config = _ENV
    openai_api_key: SecretStr = Field(description="key of the OpenAI-compatible LLM endpoint")
    openai_base_url: str | None = Field(None, description="Azure, vLLM, Ollama ... endpoint")
    llm_model: str = "gpt-4.1-mini"
