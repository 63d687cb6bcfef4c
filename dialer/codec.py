"""The queue's records as JSON text and timestamps as sortable UTC text, the same on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, time
from typing import Any

from dialer.hours import CallingHours
from dialer.model import CallResult, Campaign, Consent, Lead
from dialer.retry import RetryPolicy


def ts(value: datetime) -> str:
    """Fixed-width ISO text in UTC, so text order is time order."""
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def opt_ts(value: datetime | None) -> str | None:
    return ts(value) if value is not None else None


def parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def required_ts(value: str) -> datetime:
    """A NOT NULL timestamp column."""
    parsed = parse_ts(value)
    assert parsed is not None
    return parsed


def lead_json(lead: Lead) -> str:
    data = asdict(lead)
    if lead.consent is not None and lead.consent.time is not None:
        data["consent"]["time"] = ts(lead.consent.time)
    return json.dumps(data, sort_keys=True)


def lead_from_json(text: str) -> Lead:
    data = json.loads(text)
    consent = data.pop("consent", None)
    if consent is not None:
        consent = Consent(
            given=bool(consent["given"]),
            wording=consent.get("wording"),
            time=parse_ts(consent.get("time")),
            source=consent.get("source"),
        )
    return Lead(consent=consent, **data)


def result_json(result: CallResult | None) -> str | None:
    return json.dumps(asdict(result), sort_keys=True) if result is not None else None


def result_from_json(text: str | None) -> CallResult | None:
    return CallResult(**json.loads(text)) if text else None


def campaign_json(campaign: Campaign) -> str:
    data: dict[str, Any] = {"max_concurrent": campaign.max_concurrent}
    if campaign.hours is not None:
        data["hours"] = {
            "start": campaign.hours.start.isoformat("minutes"),
            "end": campaign.hours.end.isoformat("minutes"),
            "weekdays": sorted(campaign.hours.weekdays),
        }
    if campaign.retry is not None:
        data["retry"] = asdict(campaign.retry)
    return json.dumps(data, sort_keys=True)


def campaign_from_json(name: str, text: str) -> Campaign:
    data = json.loads(text)
    hours, retry = data.get("hours"), data.get("retry")
    return Campaign(
        name=name,
        max_concurrent=data.get("max_concurrent"),
        hours=_hours(hours) if hours else None,
        retry=_retry(retry) if retry else None,
    )


def _hours(data: dict[str, Any]) -> CallingHours:
    return CallingHours(
        start=time.fromisoformat(data["start"]),
        end=time.fromisoformat(data["end"]),
        weekdays=frozenset(data["weekdays"]),
    )


def _retry(data: dict[str, Any]) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=int(data["max_attempts"]),
        busy=tuple(data["busy"]),
        no_answer=tuple(data["no_answer"]),
        voicemail=tuple(data["voicemail"]),
        failed=tuple(data["failed"]),
    )
