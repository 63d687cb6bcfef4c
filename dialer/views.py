"""A call as JSON: what the status endpoint answers and what the result webhook carries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from dialer.model import Attempt, Call


def call_view(call: Call, attempts: Sequence[Attempt]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": call.id,
        "status": call.status,
        "final": call.final,
        "reason": call.reason,
        "campaign": call.campaign,
        "created_at": _iso(call.created_at),
        "updated_at": _iso(call.updated_at),
        "next_attempt_at": _iso(call.next_at),
        "time_zone": call.zone,
        "lead": {
            "name": call.lead.name,
            "phone": call.lead.phone,
            "email": call.lead.email,
            "company": call.lead.company,
            "source": call.lead.source,
            "fields": call.lead.fields,
        },
        "attempts": [_attempt_view(a) for a in attempts],
        "result": None,
    }
    if call.result is not None:
        view["result"] = asdict(call.result)
    return view


def _attempt_view(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "state": attempt.state,
        "outcome": attempt.outcome,
        "sip_status": attempt.sip_status,
        "detail": attempt.detail,
        "started_at": _iso(attempt.started_at),
        "ended_at": _iso(attempt.ended_at),
        "room": attempt.room,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
