"""Forgetting a contact by phone number, in every store we keep, with a report of what went.

Our stores: the dialer's queue (calls, attempts, result webhooks, idempotency records), the
embedded CRM and calendar, the CRM outbox, and each call's journal and recording under the
data directory. The CRM, when it is HubSpot, GDPR-deletes the contact; Google Calendar, when
configured, deletes the meetings booked for the number. Every step is idempotent: a second run
finds nothing, and a run the CRM or the calendar cut short is finished by the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from calls.call_files import CallFiles
from calls.slots import booking_event_id
from dialer.sql.erasure import ForgottenCalls
from integrations.embedded import EmbeddedStore
from integrations.embedded_erasure import forget_phone as forget_embedded
from integrations.errors import IntegrationError
from integrations.masking import mask
from integrations.outbox import Outbox
from integrations.phone import normalise_phone

logger = logging.getLogger("privacy")

EMBEDDED_FILE = "embedded.sqlite3"
OUTBOX_FILE = "outbox.sqlite3"


class QueueErasure(Protocol):
    def forget_phone(self, phone: str) -> ForgottenCalls: ...

    def is_dnc(self, phone: str) -> bool: ...


class CrmErasure(Protocol):
    async def forget_phone(self, phone_e164: str) -> dict[str, list[str]]: ...


class CalendarErasure(Protocol):
    async def forget_phone(self, phone_e164: str, *, now: datetime) -> list[str]: ...


@dataclass
class ForgetReport:
    phone: str
    removed: dict[str, int] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    crm_error: str | None = None  # the CRM part failed; running again finishes it
    calendar_error: str | None = None  # the same for the (Google) calendar

    @property
    def complete(self) -> bool:
        return self.crm_error is None and self.calendar_error is None

    @property
    def errors(self) -> list[str]:
        return [e for e in (self.crm_error, self.calendar_error) if e is not None]

    def as_dict(self) -> dict[str, Any]:
        return {"phone": self.phone, "complete": self.complete, "removed": self.removed,
                "kept": self.kept, "crm_error": self.crm_error,
                "calendar_error": self.calendar_error}  # fmt: skip


class ContactEraser:
    def __init__(
        self,
        *,
        queue: QueueErasure,
        data_dir: Path,
        crm: CrmErasure | None = None,
        calendar: CalendarErasure | None = None,
        default_region: str = "US",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._queue = queue
        self._data_dir = data_dir
        self._crm = crm
        self._calendar = calendar
        self._region = default_region
        self._now = now

    async def forget(self, raw_phone: str) -> ForgetReport:
        """Raises ``InvalidPhoneNumber`` (nothing touched) for a number that is not one."""
        phone = normalise_phone(raw_phone, default_region=self._region)
        report = ForgetReport(phone)
        queue = await asyncio.to_thread(self._queue.forget_phone, phone)
        report.removed |= {
            "queued_calls": queue.calls,
            "call_attempts": queue.attempts,
            "result_webhooks": queue.webhooks,
            "idempotency_records": queue.idempotency_records,
        }
        call_ids = {*queue.call_ids, *queue.rooms}
        call_ids |= await self._forget_embedded(phone, report)
        call_ids |= await asyncio.to_thread(self._forget_outbox, phone, report)
        report.removed["call_files"] = await asyncio.to_thread(self._forget_files, phone, call_ids)
        if await asyncio.to_thread(self._queue.is_dnc, phone):
            report.kept.append("do_not_call: the number stays listed so it is never called again")
        await self._forget_in_calendar(phone, report)
        await self._forget_in_crm(phone, report)
        logger.info("privacy: forgot %s: %s", mask(phone), report.removed)
        return report

    async def _forget_embedded(self, phone: str, report: ForgetReport) -> set[str]:
        path = self._data_dir / EMBEDDED_FILE
        if not path.exists():
            return set()
        store = EmbeddedStore(path, now=lambda: datetime.now(UTC))
        try:
            gone = await forget_embedded(store, phone, booking_ids=_booking_ids)
        finally:
            store.close()
        report.removed |= {
            "embedded_contacts": gone.contacts,
            "embedded_calls": gone.calls,
            "embedded_deals": gone.deals,
            "embedded_meetings": gone.events,
        }
        return set(gone.call_ids)

    def _forget_outbox(self, phone: str, report: ForgetReport) -> set[str]:
        path = self._data_dir / OUTBOX_FILE
        if not path.exists():
            return set()
        outbox = Outbox(path)
        try:
            gone = outbox.forget_phone(phone)
        finally:
            outbox.close()
        report.removed["crm_outbox_records"] = len(gone)
        return set(gone)

    def _forget_files(self, phone: str, call_ids: set[str]) -> int:
        files = CallFiles(self._data_dir)
        # A journal names the caller's number, so calls no store remembers are found too.
        for journal in files.journals():
            if phone in journal.read_text(errors="replace"):
                call_ids.add(journal.stem)
        removed = 0
        for call_id in sorted(call_ids):
            for path in files.of_call(call_id):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    async def _forget_in_calendar(self, phone: str, report: ForgetReport) -> None:
        if self._calendar is None:
            return
        try:
            gone = await self._calendar.forget_phone(phone, now=self._now())
        except IntegrationError as exc:
            report.calendar_error = (
                f"the calendar did not complete the deletion ({exc}); run this again"
            )
            logger.warning("privacy: calendar deletion for %s failed: %s", mask(phone), exc)
            return
        report.removed["calendar_events"] = len(gone)

    async def _forget_in_crm(self, phone: str, report: ForgetReport) -> None:
        if self._crm is None:
            return
        try:
            gone = await self._crm.forget_phone(phone)
        except IntegrationError as exc:
            report.crm_error = f"the CRM did not complete the deletion ({exc}); run this again"
            logger.warning("privacy: CRM deletion for %s failed: %s", mask(phone), exc)
            return
        report.removed |= {f"crm_{kind}": len(ids) for kind, ids in gone.items()}


def _booking_ids(keys: Iterable[str], start: datetime) -> set[str]:
    return {booking_event_id(booking_key=key, start=start) for key in keys}
