"""Forgetting one phone number in the embedded CRM and calendar: a privacy request."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from integrations.embedded import EmbeddedStore

# The ids a booking by any of these keys (contact id, phone, call id) at ``start`` would have.
BookingIds = Callable[[Iterable[str], datetime], set[str]]


@dataclass(frozen=True)
class ForgottenLocally:
    contacts: int = 0
    calls: int = 0
    deals: int = 0
    events: int = 0
    call_ids: tuple[str, ...] = ()


async def forget_phone(
    store: EmbeddedStore, phone: str, *, booking_ids: BookingIds
) -> ForgottenLocally:
    """Delete the contacts with this number, their calls (with transcripts), deals and
    meetings, in one transaction. A meeting is theirs when they are invited to it or its id
    is one their booking would have."""

    def erase(db: sqlite3.Connection) -> ForgottenLocally:
        contacts = db.execute("SELECT id, email FROM contacts WHERE phone = ?", (phone,)).fetchall()
        ids = {r["id"] for r in contacts}
        emails = {r["email"].lower() for r in contacts if r["email"]}
        calls = [r["call_id"] for r in db.execute("SELECT call_id, contact_id, record FROM calls")
                 if r["contact_id"] in ids or _involves(r["record"], phone)]  # fmt: skip
        keys = ids | {phone} | set(calls)
        events = [
            r["id"]
            for r in db.execute("SELECT id, start, attendees FROM events")
            if emails & {a.lower() for a in json.loads(r["attendees"])}
            or r["id"] in booking_ids(keys, datetime.fromisoformat(r["start"]))
        ]
        return ForgottenLocally(
            contacts=_delete(db, "contacts", "id", ids),
            calls=_delete(db, "calls", "call_id", calls),
            deals=_delete(db, "deals", "contact_id", ids) + _delete(db, "deals", "call_id", calls),
            events=_delete(db, "events", "id", events),
            call_ids=tuple(calls),
        )

    return await store.run(erase)


def _involves(record: str, phone: str) -> bool:
    fields = json.loads(record)
    return phone in (fields.get("from_number"), fields.get("to_number"))


def _delete(db: sqlite3.Connection, table: str, column: str, values: Iterable[str]) -> int:
    values = list(values)
    if not values:
        return 0
    marks = ", ".join("?" for _ in values)
    return db.execute(f'DELETE FROM {table} WHERE "{column}" IN ({marks})', values).rowcount


async def expire_transcripts(store: EmbeddedStore, *, before: datetime) -> int:
    """Blank the transcript of every call that ended before ``before``; the call log, its
    disposition and summary stay. Returns how many transcripts went."""

    def expire(db: sqlite3.Connection) -> int:
        expired = 0
        for row in db.execute("SELECT call_id, record FROM calls").fetchall():
            record = json.loads(row["record"])
            if record.get("transcript") and _ended_before(record, before):
                record["transcript"] = ""
                db.execute(
                    "UPDATE calls SET record = ? WHERE call_id = ?",
                    (json.dumps(record), row["call_id"]),
                )
                expired += 1
        return expired

    return await store.run(expire)


def _ended_before(record: dict[str, object], before: datetime) -> bool:
    ended = record.get("ended_at")
    return isinstance(ended, str) and datetime.fromisoformat(ended) < before
