"""How an attempt ended, and what follows: another attempt at the first allowed moment, or a
final status and the result webhook, in one transaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from dialer.model import Attempt, AttemptOutcome, Call, CallResult, CallStatus, Campaign, Progress
from dialer.policy import DialPolicy
from dialer.sip import outcome_for_sip
from dialer.store import CallQueue, Ending, StateChange, WebhookMessage
from dialer.views import call_view
from integrations.masking import mask

logger = logging.getLogger("dialer.outcomes")

# What the worker may report when an attempt ends. "answered" in an end report means the same
# as "completed": the call was answered and is over.
ReportStatus = Literal[
    "answered",
    "completed",
    "busy",
    "no_answer",
    "failed",
    "voicemail",
    "invalid_number",
    "declined",
    "callback",  # answered, and the lead asked to be called back at ``callback_at``
]
REPORT_STATUSES: tuple[str, ...] = (
    "answered", "completed", "busy", "no_answer", "failed", "voicemail", "invalid_number",
    "declined", "callback",
)  # fmt: skip
_STATUS_AFTER: dict[str, CallStatus] = {
    "completed": "completed",
    "busy": "busy",
    "no_answer": "no_answer",
    "voicemail": "voicemail",
}
EVENT_TYPE = "call.ended"


@dataclass(frozen=True)
class AttemptRef:
    """Which attempt a dispatch is for, as the worker reads it from the job metadata."""

    call_id: str
    attempt: int

    @classmethod
    def from_metadata(cls, metadata: str | None) -> AttemptRef | None:
        try:
            data = json.loads(metadata or "")
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict) or "call_id" not in data or "attempt" not in data:
            return None
        return cls(call_id=str(data["call_id"]), attempt=int(data["attempt"]))


@dataclass(frozen=True)
class AttemptReport:
    call_id: str
    attempt: int
    status: ReportStatus
    sip_status: int | None = None
    detail: str | None = None
    result: CallResult | None = None
    callback_at: datetime | None = None  # with status "callback": when they asked for

    @classmethod
    def from_sip(
        cls, ref: AttemptRef, *, sip_status: int | None, detail: str | None = None
    ) -> AttemptReport:
        """A dial that failed with a SIP final response (``SipCallError.sip_status_code``)."""
        outcome = outcome_for_sip(sip_status)
        status: ReportStatus = "failed" if outcome == "completed" else outcome
        return cls(ref.call_id, ref.attempt, status, sip_status=sip_status, detail=detail)


class OutcomeReporter:
    """What the worker (and the dialer's reconciler) call as attempts progress and end."""

    def __init__(
        self,
        *,
        queue: CallQueue,
        policy: DialPolicy,
        webhook_urls: Sequence[str],
        now: Callable[[], datetime],
    ) -> None:
        self._queue = queue
        self._policy = policy
        self._urls = tuple(webhook_urls)
        self._now = now

    def progress(self, ref: AttemptRef, state: Progress) -> bool:
        """The attempt is ringing, or was answered; False if it has already ended."""
        return self._queue.record_progress(ref.call_id, ref.attempt, state, now=self._now())

    def report(self, report: AttemptReport) -> bool:
        """Record how the attempt ended. Reporting the same attempt twice, or after the
        reconciler closed it, changes nothing and answers False."""
        outcome: AttemptOutcome = "completed" if report.status == "answered" else report.status
        done = self.close(
            report.call_id, report.attempt, outcome,
            sip_status=report.sip_status, detail=report.detail, result=report.result,
            callback_at=report.callback_at,
        )  # fmt: skip
        if not done:
            logger.warning("ignored a late or repeated report for %s/%d", report.call_id,
                           report.attempt)  # fmt: skip
        return done

    def close(
        self,
        call_id: str,
        attempt: int,
        outcome: AttemptOutcome,
        *,
        sip_status: int | None = None,
        detail: str | None = None,
        result: CallResult | None = None,
        callback_at: datetime | None = None,
    ) -> bool:
        now = self._now()

        def decide(call: Call, attempts: Sequence[Attempt], campaign: Campaign | None) -> Ending:
            return ending_for(
                outcome, call=call, attempts=attempts, campaign=campaign, policy=self._policy,
                now=now, sip_status=sip_status, detail=detail, result=result,
                callback_at=callback_at,
            )  # fmt: skip

        return self._queue.finish_attempt(call_id, attempt, decide=decide, notify=self._notify)

    def cancel_campaign(self, name: str) -> StateChange:
        """End the campaign's waiting calls as final calls end: with their result webhook."""
        return self._queue.cancel_campaign(name, now=self._now(), notify=self._notify)

    def _notify(self, call: Call, attempts: Sequence[Attempt]) -> list[WebhookMessage]:
        if not call.final or not self._urls:
            return []
        event_id, body = result_event(call, attempts)
        logger.info("call %s ended %s; webhook %s queued for %s", call.id, call.status, event_id,
                    mask(call.lead.phone))  # fmt: skip
        return [WebhookMessage(event_id=event_id, url=url, body=body) for url in self._urls]


def ending_for(
    outcome: AttemptOutcome,
    *,
    call: Call,
    attempts: Sequence[Attempt],
    campaign: Campaign | None,
    policy: DialPolicy,
    now: datetime,
    sip_status: int | None = None,
    detail: str | None = None,
    result: CallResult | None = None,
    callback_at: datetime | None = None,
) -> Ending:
    """The attempt's end and the call's next step."""
    if outcome == "not_dispatched":  # it never left us: dial again now, it does not count
        return Ending(outcome, "queued", now, now, detail=detail, counts=False)
    if outcome == "callback" and callback_at is not None:
        # The lead chose the time: call then (within calling hours), whatever the retry rules.
        due = policy.first_allowed(call, campaign, max(callback_at, now))
        return Ending(outcome, "scheduled", due, now, detail=detail, result=result)
    retry = policy.retry_for(campaign)
    unknown_before = any(a.outcome == "unknown" for a in attempts)
    delay = retry.delay_after(outcome, attempt=call.attempts, unknown_before=unknown_before)
    next_at = policy.first_allowed(call, campaign, now + delay) if delay is not None else None
    status = _STATUS_AFTER.get(outcome, "failed")
    reason = _reason(outcome, next_at=next_at, attempts=call.attempts, limit=retry.max_attempts)
    return Ending(
        outcome, status, next_at, now, sip_status=sip_status, detail=detail, result=result,
        reason=reason,
    )  # fmt: skip


def _reason(outcome: str, *, next_at: datetime | None, attempts: int, limit: int) -> str | None:
    if next_at is not None or outcome == "completed":
        return None
    if outcome in ("invalid_number", "declined", "do_not_call"):
        return outcome
    return "max_attempts" if attempts >= limit else f"no_retry_after_{outcome}"


def result_event(call: Call, attempts: Sequence[Attempt]) -> tuple[str, str]:
    """The call's one result event: its id is stable, so a receiver drops repeats."""
    event_id = f"evt_{call.id}"
    event: dict[str, Any] = {
        "id": event_id,
        "type": EVENT_TYPE,
        "created_at": call.updated_at.isoformat(),
        "call": call_view(call, attempts),
    }
    return event_id, json.dumps(event, sort_keys=True, separators=(",", ":"))
