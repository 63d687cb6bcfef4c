"""Typed settings, read from the environment and an optional ``.env`` when the worker starts."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools.slots import BusinessHours, resolve_time_zone


class SettingsError(SystemExit):
    """Raised at start when the configuration cannot work; the message says what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # LiveKit. No URL means: start the local stack (see README).
    livekit_url: str | None = Field(None, description="LiveKit server websocket URL")
    livekit_api_key: str | None = Field(None, description="LiveKit API key")
    livekit_api_secret: SecretStr | None = Field(None, description="LiveKit API secret")
    agent_name: str = Field("sales-agent", description="name dispatch rules use to reach us")

    # Speech and language providers: required, there is no offline substitute on a real call.
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

    # Integrations. Leave empty to use the embedded CRM and calendar.
    hubspot_access_token: SecretStr | None = Field(None, description="HubSpot private app token")
    hubspot_base_url: str = "https://api.hubapi.com"
    google_service_account_file: Path | None = Field(None, description="service account key")
    google_delegated_user: str | None = Field(None, description="user the agent books as")
    google_calendar_id: str = "primary"
    google_base_url: str | None = None
    data_dir: Path = Path("data")

    # The business.
    default_region: str = Field("US", description="region for numbers without a + prefix")
    business_time_zone: str = "America/New_York"
    business_open: time = time(9)
    business_close: time = time(17)
    business_days: str = "mon,tue,wed,thu,fri"
    slot_minutes: int = Field(30, ge=10, le=240)
    min_notice_minutes: int = Field(120, ge=0)
    booking_horizon_days: int = Field(14, ge=1, le=90)

    # Call behaviour.
    announce_ai: bool = True
    announce_recording: bool = True
    max_call_seconds: float = Field(900, gt=30)
    silence_timeout_seconds: float = Field(8.0, gt=1)
    min_endpointing_delay: float = Field(0.4, ge=0)
    max_endpointing_delay: float = Field(2.5, gt=0)
    preemptive_generation: bool = True
    vad_min_silence_seconds: float = Field(0.55, gt=0, le=3)
    min_interruption_seconds: float = Field(0.4, gt=0, le=3)
    worker_load_threshold: float = Field(0.7, gt=0, le=1)
    noise_cancellation: Literal["off", "bvc", "bvc_telephony"] = "off"
    log_level: str = "INFO"

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


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday_numbers(value: str) -> frozenset[int]:
    names = [d.strip().lower()[:3] for d in value.split(",") if d.strip()]
    unknown = [n for n in names if n not in _DAYS]
    if unknown or not names:
        raise ValueError(f"business days must be names like mon,tue; got {value!r}")
    return frozenset(_DAYS.index(n) for n in names)


def load_settings(env_file: Path | None = Path(".env")) -> Settings:
    """Read settings, turning validation errors into one message naming every variable."""
    try:
        use_env_file = env_file if env_file is not None and env_file.exists() else None
        return Settings(_env_file=use_env_file)  # type: ignore[call-arg]  # pydantic-settings kwarg
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    lines = ["The agent cannot start; fix these settings (environment or .env):"]
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        field = Settings.model_fields.get(name)
        purpose = f" ({field.description})" if field and field.description else ""
        problem = "is missing" if error["type"] == "missing" else f"is invalid: {error['msg']}"
        lines.append(f"  {name.upper()}{purpose} {problem}")
    lines.append("See .env.example for every variable and README.md for where to get keys.")
    return "\n".join(lines)
