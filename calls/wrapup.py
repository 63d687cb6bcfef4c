"""After the call: transcript, summary and disposition, written to the CRM exactly once.

Whatever ends the call (the agent's goodbye, the caller hanging up mid-tool, the duration
limit, a dial that never connected) funnels here. A write the CRM refuses or leaves in doubt
goes to the outbox instead of being lost; the outbox replays it with the same idempotency keys.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from livekit.agents import ChatContext, llm

from calls.call import Call
from calls.state import CallState
from calls.transcript import summarise, transcript_text
from integrations.crm import CallRecord, Crm, DealRequest, record_call
from integrations.errors import IntegrationError
from integrations.outbox import Outbox

logger = logging.getLogger("calls.wrapup")

DEAL_DISPOSITIONS = frozenset({"booked", "qualified", "transferred"})
WRITE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class WrapUpResult:
    record: CallRecord
    deal_id: str | None
    queued: bool  # True when the CRM write went to the outbox instead


class WrapUp:
    """One per call, registered before anything can end the call; only its first run writes."""

    def __init__(self, call: Call, *, summarizer: llm.LLM | None, outbox: Outbox) -> None:
        self._call = call
        self._summarizer = summarizer
        self._outbox = outbox
        self._lock = asyncio.Lock()
        self._done = False

    async def run(self, history: ChatContext) -> WrapUpResult | None:
        async with self._lock:
            if self._done:
                return None
            self._done = True
            await self._call.writes.settle(timeout_s=WRITE_TIMEOUT_S)
            return await self._record(history)

    async def _record(self, history: ChatContext) -> WrapUpResult:
        state = self._call.state
        transcript = transcript_text(history)
        summary = await summarise(
            self._summarizer,
            transcript=transcript,
            answers=call_facts(state),
            disposition=state.disposition(),
        )
        draft = draft_record(self._call, transcript=transcript, summary=summary)
        return await write_or_queue(self._call.services.crm, self._outbox, draft)


async def write_or_queue(crm: Crm, outbox: Outbox, draft: RecordDraft) -> WrapUpResult:
    """Write a call record to the CRM; one it refuses or leaves in doubt goes to the outbox."""
    record, deal, updates = draft.record, draft.deal, draft.contact_updates
    try:
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            written = await record_call(crm, record, deal, contact_updates=updates)
    except (IntegrationError, TimeoutError) as exc:
        logger.error("CRM write failed, queued in the outbox: %r", exc)
        outbox.put(record, deal, contact_updates=updates, error=repr(exc))
        return WrapUpResult(record, None, queued=True)
    logger.info("call written to the CRM")
    return WrapUpResult(written.record, written.deal_id, queued=False)


@dataclass(frozen=True)
class RecordDraft:
    """What the wrap-up would write if the call ended now: the call journal keeps the latest."""

    record: CallRecord
    deal: DealRequest | None  # for a call whose disposition earns one
    contact_updates: dict[str, str]


def draft_record(call: Call, *, transcript: str, summary: str) -> RecordDraft:
    state = call.state
    disposition = state.disposition()
    record = CallRecord(
        call_id=state.call_id,
        contact_id=state.contact.id if state.contact else "",
        direction=state.direction,
        started_at=state.started_at,
        ended_at=call.now(),
        from_number=state.caller_phone if state.direction == "inbound" else state.our_number,
        to_number=state.our_number if state.direction == "inbound" else state.caller_phone,
        disposition=disposition,
        summary=summary,
        transcript=transcript,
        qualification=call_facts(state),
        recording=state.recording,
    )
    deal = deal_request(call, record) if disposition in DEAL_DISPOSITIONS else None
    return RecordDraft(record, deal, state.qualification.crm_updates())


def deal_request(call: Call, record: CallRecord) -> DealRequest:
    """The deal for a call record; its stage follows the record's disposition."""
    state = call.state
    contact = state.contact
    who = (contact.company or contact.firstname) if contact else None
    return DealRequest(
        call_id=record.call_id,
        contact_id=record.contact_id,
        name=f"{who or 'Phone lead'} - {call.services.business.company_name}",
        amount=state.qualification.deal_amount(),
        stage=deal_stage(record.disposition),
    )


def deal_stage(disposition: str) -> str:
    return "appointmentscheduled" if disposition == "booked" else "qualifiedtobuy"


def call_facts(state: CallState) -> dict[str, str]:
    """The qualification answers plus what the tools recorded, for the note and the summary."""
    facts = state.qualification.as_text()
    for label, value in (
        ("follow_up", state.follow_up),
        ("handoff_reason", state.handoff_reason),
        ("support_issue", state.support_issue),
        ("transfer", state.transfer),
        ("transfer_rep", state.transfer_rep),
        ("transfer_detail", state.transfer_detail),
        ("not_reached", state.dial_failure),
        ("voicemail", _voicemail_fact(state)),
        ("do_not_call", "yes" if state.do_not_call else None),
        ("cut_short", state.cut_short),
        ("call_back_at", state.callback_at.isoformat() if state.callback_at else None),
        ("language", _language_fact(state)),
    ):
        if value:
            facts[label] = value
    return facts


def _language_fact(state: CallState) -> str | None:
    if state.language is None:
        return None
    return state.language if state.language_supported else f"{state.language}, unsupported"


def _voicemail_fact(state: CallState) -> str | None:
    if state.voicemail is None:
        return None
    reason = f" ({state.voicemail_reason})" if state.voicemail_reason else ""
    return f"{state.voicemail.replace('_', ' ')}{reason}"
