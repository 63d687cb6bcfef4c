"""The callback a call cut short by a provider outage is owed, through the dialer's queue: the
dialer rings the caller back later, within calling hours, never a do-not-call number."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime

from calls.state import CallState
from dialer.hours import first_allowed, lead_zone
from dialer.model import Call, Consent, Lead
from dialer.policy import DialPolicy
from dialer.store import CallQueue, IdempotencyKey

SOURCE = "provider_outage_callback"
IDEMPOTENCY_SCOPE = "worker"


def callback_call_id(call_id: str) -> str:
    return f"call_outage_{hashlib.sha256(call_id.encode()).hexdigest()[:20]}"


class OutageCallbacks:
    """``by_attempt``: the call is a dialer attempt, so its own report (status ``callback``,
    sent at wrap-up) reschedules the lead; anything else becomes a new queued call, once per
    call whatever happens (its idempotency key is the call's id)."""

    def __init__(self, queue: CallQueue, policy: DialPolicy, *, by_attempt: bool) -> None:
        self._queue = queue
        self._policy = policy
        self._by_attempt = by_attempt

    async def queue(self, state: CallState, *, at: datetime, now: datetime) -> datetime | None:
        """When the dialer may call back (the first allowed moment from ``at``), or None if it
        must not: no number, or the caller is on the do-not-call list."""
        phone = state.caller_phone
        if not phone or state.do_not_call:
            return None
        if self._by_attempt:
            return at
        call = self.callback_call(state, phone=phone, at=at, now=now)
        key = IdempotencyKey(IDEMPOTENCY_SCOPE, f"outage:{state.call_id}", phone)
        admitted = await asyncio.to_thread(
            self._queue.admit, call, idempotency=key, dedupe_since=None
        )
        return admitted.next_at if admitted.outcome == "created" else None

    def callback_call(self, state: CallState, *, phone: str, at: datetime, now: datetime) -> Call:
        zone = lead_zone(time_zone=None, phone=phone, business_zone=self._policy.business_zone)
        due = first_allowed(max(at, now), zone=zone, hours=self._policy.hours)
        contact = state.contact
        name = " ".join(p for p in (contact.firstname, contact.lastname) if p) if contact else ""
        lead = Lead(
            phone=phone, name=name or None, email=contact.email if contact else None,
            company=contact.company if contact else None, source=SOURCE,
            consent=Consent(
                given=True, time=now, source=f"call {state.call_id}",
                wording="told, on a call cut short by our provider outage, we would call back",
            ),
        )  # fmt: skip
        return Call(
            id=callback_call_id(state.call_id), lead=lead, zone=zone.key, campaign=None,
            status="queued" if due <= now else "scheduled", created_at=now, updated_at=now,
            next_at=due,
        )  # fmt: skip
