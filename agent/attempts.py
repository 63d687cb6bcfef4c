"""Telling the dialer how an outbound attempt went: answered, not reached (with the SIP
status), a mailbox (voicemail), and once the call is recorded, its disposition, summary,
answers and booking.

The dialer's store calls block, so they run in a thread; a report that fails is logged and
the dialer's reconciler closes the attempt later, so a store outage never costs the call.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from calls.state import CallState
from calls.wrapup import WrapUpResult
from dialer import AttemptRef, AttemptReport, CallResult, OutcomeReporter

logger = logging.getLogger("agent.attempts")


@dataclass(frozen=True)
class AttemptReports:
    reporter: OutcomeReporter
    ref: AttemptRef

    async def answered(self) -> None:
        await self._send(lambda: self.reporter.progress(self.ref, "answered"))

    async def not_reached(self, *, sip_status: int | None, detail: str) -> None:
        report = AttemptReport.from_sip(self.ref, sip_status=sip_status, detail=detail)
        await self._send(lambda: self.reporter.report(report))

    async def completed(self, state: CallState, recorded: WrapUpResult | None) -> None:
        if state.dial_failure is not None:
            return  # already reported as not reached
        booking = state.booking
        result = CallResult(
            disposition=state.disposition(),
            summary=recorded.record.summary if recorded else None,
            qualification=state.qualification.as_text(),
            booking={"event_id": booking.id, "start": booking.start.isoformat()}
            if booking is not None and booking.status == "confirmed"
            else None,
        )
        if state.voicemail is not None:  # a mailbox answered: retried on the voicemail schedule
            report = AttemptReport(self.ref.call_id, self.ref.attempt, "voicemail",
                                   detail=state.voicemail_reason, result=result)  # fmt: skip
        elif state.callback_at is not None:  # answered; they chose when we call again
            report = AttemptReport(self.ref.call_id, self.ref.attempt, "callback",
                                   result=result, callback_at=state.callback_at)  # fmt: skip
        else:
            report = AttemptReport(self.ref.call_id, self.ref.attempt, "completed", result=result)
        await self._send(lambda: self.reporter.report(report))

    async def _send(self, send: object) -> None:
        assert callable(send)
        try:
            await asyncio.to_thread(send)
        except Exception as exc:  # the dialer reconciles an unreported attempt later
            logger.error("could not report the attempt to the dialer: %r", exc)
