"""After the call: transcript, summary and disposition, written to the CRM exactly once.

Whatever ends the call (the agent's goodbye, the caller hanging up mid-tool, the duration
limit) funnels here. A write the CRM refuses or leaves in doubt goes to the outbox instead of
being lost; the outbox replays it with the same idempotency keys.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from livekit.agents import ChatContext, llm

import prompts
from agent.state import CallState
from tools.crm import CallRecord, Crm, DealRequest
from tools.errors import IntegrationError

logger = logging.getLogger("agent.wrapup")

DEAL_DISPOSITIONS = frozenset({"booked", "qualified", "transferred"})
SUMMARY_TIMEOUT_S = 8.0
WRITE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class WrapUpResult:
    record: CallRecord
    deal_id: str | None
    queued: bool  # True when the CRM write went to the outbox instead


def transcript_text(history: ChatContext) -> str:
    lines = []
    for item in history.items:
        if item.type != "message" or item.role not in ("user", "assistant"):
            continue
        text = (item.text_content or "").strip()
        if text:
            who = "Caller" if item.role == "user" else "Agent"
            lines.append(f"{who}: {text}{' [interrupted]' if item.interrupted else ''}")
    return "\n".join(lines)


async def summarise(
    summarizer: llm.LLM | None, *, transcript: str, answers: dict[str, str], disposition: str
) -> str:
    """An LLM summary for the rep; a plain factual one if the LLM is unavailable."""
    fallback = _plain_summary(answers, disposition)
    if summarizer is None or not transcript:
        return fallback
    prompt = prompts.render(
        prompts.load_text("summary.md"),
        answers="\n".join(f"- {k}: {v}" for k, v in answers.items()) or "- none",
        disposition=disposition,
        transcript=transcript,
    )
    ctx = ChatContext.empty()
    ctx.add_message(role="user", content=prompt)
    try:
        async with asyncio.timeout(SUMMARY_TIMEOUT_S):
            response = await summarizer.chat(chat_ctx=ctx).collect()
    except Exception as exc:  # a summary must never cost us the call record
        logger.warning("summary failed, using the plain one: %r", exc)
        return fallback
    return response.text.strip() or fallback


def _plain_summary(answers: dict[str, str], disposition: str) -> str:
    facts = ", ".join(f"{k}: {v}" for k, v in answers.items()) or "no qualification answers"
    return f"Outcome: {disposition}. {facts}."


async def wrap_up(
    state: CallState,
    *,
    history: ChatContext,
    summarizer: llm.LLM | None,
    outbox: Outbox,
) -> WrapUpResult | None:
    """Write the call to the CRM. Safe to call from every path that ends a call: only the first
    call does anything."""
    async with state._wrapped_up:
        if state.wrap_up_done:
            return None
        state.wrap_up_done = True
        await state.settle_pending(timeout_s=WRITE_TIMEOUT_S)
        disposition = state.disposition()
        answers = state.qualification.as_text()
        for label, value in (
            ("follow_up", state.follow_up),
            ("handoff_reason", state.handoff_reason),
            ("support_issue", state.support_issue),
        ):
            if value:
                answers[label] = value
        transcript = transcript_text(history)
        summary = await summarise(
            summarizer, transcript=transcript, answers=answers, disposition=disposition
        )
        return await _write(state, disposition, summary, transcript, answers, outbox)


async def _write(
    state: CallState,
    disposition: str,
    summary: str,
    transcript: str,
    answers: dict[str, str],
    outbox: Outbox,
) -> WrapUpResult:
    crm = state.services.crm
    contact_id = state.contact.id if state.contact else None
    record = CallRecord(
        call_id=state.call_id,
        contact_id=contact_id or "",
        direction=state.direction,
        started_at=state.started_at,
        ended_at=state.now(),
        from_number=state.caller_phone if state.direction == "inbound" else state.our_number,
        to_number=state.our_number if state.direction == "inbound" else state.caller_phone,
        disposition=disposition,
        summary=summary,
        transcript=transcript,
        qualification=answers,
    )
    deal = _deal_request(state, record) if disposition in DEAL_DISPOSITIONS else None
    try:
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            if not contact_id:
                contact = await crm.upsert_contact(
                    contact_id=None, phone_e164=state.caller_phone, properties={}
                )
                state.contact = contact
                record = _with_contact(record, contact.id)
                deal = _deal_request(state, record) if deal else None
            deal_id = await deliver(crm, record, deal)
    except (IntegrationError, TimeoutError) as exc:
        logger.error("CRM write failed, queued in the outbox: %r", exc,
                     extra={"call_id": state.call_id})  # fmt: skip
        outbox.put(record, deal, error=repr(exc))
        return WrapUpResult(record, None, queued=True)
    logger.info("call written to the CRM", extra={"call_id": state.call_id})
    return WrapUpResult(record, deal_id, queued=False)


async def deliver(crm: Crm, record: CallRecord, deal: DealRequest | None) -> str | None:
    await crm.log_call(record)
    return await crm.create_deal(deal) if deal else None


def _with_contact(record: CallRecord, contact_id: str) -> CallRecord:
    return CallRecord(**{**_fields(record), "contact_id": contact_id})


def _deal_request(state: CallState, record: CallRecord) -> DealRequest:
    contact = state.contact
    who = (contact.company or contact.firstname) if contact else None
    budget = state.qualification.answers.get("budget_usd")
    return DealRequest(
        call_id=record.call_id,
        contact_id=record.contact_id,
        name=f"{who or 'Phone lead'} - {state.services.business.company_name}",
        amount=float(budget) if isinstance(budget, int | float) else None,
        stage="appointmentscheduled" if record.disposition == "booked" else "qualifiedtobuy",
    )


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


class Outbox:
    """Call records the CRM did not take, kept on disk until a replay delivers them."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (call_id TEXT PRIMARY KEY, record TEXT NOT NULL, "
            "deal TEXT, error TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0)"
        )

    def put(self, record: CallRecord, deal: DealRequest | None, *, error: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, 0)",
            (record.call_id, json.dumps(_encode(record)),
             json.dumps(_encode(deal)) if deal else None, error),
        )  # fmt: skip

    def pending(self) -> list[tuple[CallRecord, DealRequest | None]]:
        rows = self._db.execute("SELECT record, deal FROM outbox WHERE delivered = 0").fetchall()
        return [(_decode_record(r), _decode_deal(d)) for r, d in rows]

    async def replay(self, crm: Crm) -> int:
        """Deliver what is pending; the CRM's idempotency keys make a repeat harmless."""
        delivered = 0
        for record, deal in self.pending():
            if not record.contact_id:
                caller = record.from_number if record.direction == "inbound" else record.to_number
                contact = await crm.upsert_contact(
                    contact_id=None, phone_e164=caller, properties={}
                )
                record = _with_contact(record, contact.id)
                if deal is not None:
                    deal = DealRequest(**{**_fields(deal), "contact_id": contact.id})
            await deliver(crm, record, deal)
            self._db.execute("UPDATE outbox SET delivered = 1 WHERE call_id = ?", (record.call_id,))
            delivered += 1
        return delivered

    def close(self) -> None:
        self._db.close()


def _encode(obj: Any) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in _fields(obj).items()}


def _decode_record(text: str) -> CallRecord:
    raw = json.loads(text)
    raw["started_at"] = datetime.fromisoformat(raw["started_at"])
    raw["ended_at"] = datetime.fromisoformat(raw["ended_at"])
    return CallRecord(**raw)


def _decode_deal(text: str | None) -> DealRequest | None:
    return DealRequest(**json.loads(text)) if text else None
