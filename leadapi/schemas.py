"""What the lead API accepts and answers, as pydantic models (they make the OpenAPI docs)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
)

from dialer.outcomes import ReportStatus

_STRICT = ConfigDict(extra="forbid")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri")


class ConsentIn(BaseModel):
    model_config = _STRICT
    given: bool = Field(description="the lead agreed to be called")
    wording: str | None = Field(None, max_length=2000, description="the text they agreed to")
    time: AwareDatetime | None = Field(None, description="when, with a UTC offset")
    source: str | None = Field(None, max_length=200, description="where: form URL, event...")


class LeadIn(BaseModel):
    model_config = _STRICT
    name: str | None = Field(None, max_length=200)
    phone: str = Field(min_length=3, max_length=40, description="E.164, or national with region")
    email: EmailStr | None = None
    company: str | None = Field(None, max_length=200)
    source: str | None = Field(None, max_length=200, description="e.g. pricing-page form")
    fields: dict[str, Any] = Field(default_factory=dict, description="anything else, as given")
    consent: ConsentIn | None = None
    time_zone: str | None = Field(None, max_length=64, description="IANA name, or 'Central'")
    campaign: str | None = Field(None, max_length=100)


class LeadAccepted(BaseModel):
    id: str
    status: str
    scheduled_for: datetime | None = Field(description="when the first attempt is due")
    status_url: str
    duplicate: bool = Field(False, description="an earlier lead for this number made this call")


RefusalReason = Literal[
    "do_not_call",
    "consent_required",
    "idempotency_key_reused",
    "campaign_exists",
    "campaign_cancelled",
    "rate_limited",
]


class Refusal(BaseModel):
    reason: RefusalReason
    message: str


class HoursIn(BaseModel):
    model_config = _STRICT
    start: time = time(9)
    end: time = time(20)
    days: list[Day] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)

    @field_validator("start", "end")
    @classmethod
    def _wall_clock(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("calling hours are the lead's local time: give it without an offset")
        return value


class RetryIn(BaseModel):
    model_config = _STRICT
    max_attempts: int = Field(3, ge=1, le=20)
    busy_minutes: list[float] = Field(default_factory=lambda: [10.0, 30.0, 60.0])
    no_answer_minutes: list[float] = Field(default_factory=lambda: [60.0, 180.0, 1440.0])
    voicemail_minutes: list[float] = Field(default_factory=lambda: [240.0, 1440.0])
    failed_minutes: list[float] = Field(default_factory=lambda: [15.0, 60.0])


class CampaignIn(BaseModel):
    model_config = _STRICT
    calling_hours: HoursIn | None = Field(None, description="clamped to 08:00-21:00 local")
    max_concurrent: int | None = Field(None, ge=1, le=1000)
    retry: RetryIn | None = None


class CampaignCreateIn(CampaignIn):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class DncIn(BaseModel):
    model_config = _STRICT
    phone: str = Field(min_length=3, max_length=40)
    reason: str | None = Field(None, max_length=500)


class ProgressIn(BaseModel):
    model_config = _STRICT
    state: Literal["ringing", "answered"]


class OutcomeIn(BaseModel):
    model_config = _STRICT
    status: ReportStatus
    sip_status: int | None = Field(None, ge=100, le=699)
    detail: str | None = Field(None, max_length=500)
    disposition: str | None = Field(None, max_length=50)
    summary: str | None = Field(None, max_length=20000)
    qualification: dict[str, Any] = Field(default_factory=dict)
    booking: dict[str, Any] | None = None
    callback_at: AwareDatetime | None = Field(
        None,
        validate_default=True,
        description='with status "callback" (and only then): when the lead asked to be called',
    )

    @field_validator("callback_at")
    @classmethod
    def _callback_has_its_time(
        cls, value: datetime | None, info: ValidationInfo
    ) -> datetime | None:
        is_callback = info.data.get("status") == "callback"
        if is_callback and value is None:
            raise ValueError('status "callback" needs the time the lead asked for')
        if value is not None and not is_callback:
            raise ValueError('only a "callback" report carries a callback time')
        return value
