"""The embedded CRM and calendar: one SQLite file, so the agent works before any account is
connected. Same protocols, same idempotency guarantees as the real integrations."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from integrations.crm import (
    WRITABLE_CONTACT_PROPERTIES,
    CallRecord,
    Contact,
    CrmConflict,
    DealRequest,
    LoggedCall,
)
from integrations.errors import InvalidRequest, TemporarilyUnavailable
from integrations.phone import InvalidPhoneNumber, normalise_phone
from integrations.scheduling import Event, EventConflict, EventRequest, Interval, SlotTaken
from integrations.sqlite_wal import enable_wal

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id TEXT PRIMARY KEY, phone TEXT, email TEXT UNIQUE, properties TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS contacts_phone ON contacts(phone);
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY, contact_id TEXT NOT NULL, engagement_id TEXT NOT NULL,
    note_id TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deals (
    call_id TEXT PRIMARY KEY, deal_id TEXT NOT NULL, contact_id TEXT NOT NULL,
    record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, start TEXT NOT NULL, "end" TEXT NOT NULL, time_zone TEXT NOT NULL,
    summary TEXT NOT NULL, description TEXT NOT NULL, attendees TEXT NOT NULL,
    status TEXT NOT NULL, meet_link TEXT);
"""


class EmbeddedStore:
    """One SQLite database shared by the embedded CRM and calendar."""

    def __init__(
        self, path: Path, *, now: Callable[[], datetime], busy_timeout_s: float = 5.0
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.now = now
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=busy_timeout_s
        )
        self._db.row_factory = sqlite3.Row
        enable_wal(self._db, timeout_s=busy_timeout_s, schema=_SCHEMA)
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:  # another process held it past the timeout
                    raise TemporarilyUnavailable(f"embedded store busy: {exc}") from None
                try:
                    result = fn(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return result

        return await asyncio.to_thread(locked)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _contact(row: sqlite3.Row) -> Contact:
    props: dict[str, str] = json.loads(row["properties"])
    return Contact(
        id=row["id"],
        phone=row["phone"],
        firstname=props.get("firstname"),
        lastname=props.get("lastname"),
        email=row["email"],
        company=props.get("company"),
        properties=props,
    )


class EmbeddedCrm:
    name = "embedded"

    def __init__(
        self, store: EmbeddedStore, *, extra_contact_properties: Iterable[str] = ()
    ) -> None:
        self._store = store
        self._writable = WRITABLE_CONTACT_PROPERTIES | frozenset(extra_contact_properties)

    async def find_contact_by_phone(self, phone_e164: str) -> Contact | None:
        def query(db: sqlite3.Connection) -> Contact | None:
            row = db.execute("SELECT * FROM contacts WHERE phone = ?", (phone_e164,)).fetchone()
            return _contact(row) if row else None

        return await self._store.run(query)

    async def upsert_contact(
        self, *, contact_id: str | None, phone_e164: str | None, properties: dict[str, str]
    ) -> Contact:
        props = {k: v for k, v in properties.items() if k in self._writable}
        phone = props.pop("phone", None) or phone_e164
        if phone:
            try:
                phone = normalise_phone(phone)
            except InvalidPhoneNumber as exc:
                raise InvalidRequest(str(exc)) from None
        stamp = self._store.now().isoformat()

        def write(db: sqlite3.Connection) -> Contact:
            email = props.pop("email", None)
            if email:
                owner = db.execute("SELECT id FROM contacts WHERE email = ?", (email,)).fetchone()
                if owner and owner["id"] != contact_id:
                    raise CrmConflict(f"email already belongs to contact {owner['id']}")
            if contact_id is None:
                new_id = str(uuid.uuid4())
                db.execute(
                    "INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?)",
                    (new_id, phone, email, json.dumps(props), stamp, stamp),
                )
                target = new_id
            else:
                row = db.execute("SELECT * FROM contacts WHERE id = ?", (contact_id,)).fetchone()
                if row is None:
                    raise InvalidRequest(f"no contact {contact_id}")
                merged = {**json.loads(row["properties"]), **props}
                db.execute(
                    "UPDATE contacts SET phone = ?, email = ?, properties = ?, updated_at = ? "
                    "WHERE id = ?",
                    (phone or row["phone"], email or row["email"], json.dumps(merged), stamp,
                     contact_id),
                )  # fmt: skip
                target = contact_id
            return _contact(db.execute("SELECT * FROM contacts WHERE id = ?", (target,)).fetchone())

        return await self._store.run(write)

    async def log_call(self, record: CallRecord) -> LoggedCall:
        def write(db: sqlite3.Connection) -> LoggedCall:
            row = db.execute("SELECT * FROM calls WHERE call_id = ?", (record.call_id,)).fetchone()
            if row:
                return LoggedCall(row["engagement_id"], row["note_id"])
            logged = LoggedCall(str(uuid.uuid4()), str(uuid.uuid4()))
            db.execute(
                "INSERT INTO calls VALUES (?, ?, ?, ?, ?)",
                (record.call_id, record.contact_id, logged.call_engagement_id, logged.note_id,
                 json.dumps(_jsonable(record))),
            )  # fmt: skip
            return logged

        return await self._store.run(write)

    async def create_deal(self, request: DealRequest) -> str:
        def write(db: sqlite3.Connection) -> str:
            row = db.execute("SELECT * FROM deals WHERE call_id = ?", (request.call_id,)).fetchone()
            if row:
                return str(row["deal_id"])
            deal_id = str(uuid.uuid4())
            db.execute(
                "INSERT INTO deals VALUES (?, ?, ?, ?)",
                (request.call_id, deal_id, request.contact_id, json.dumps(_jsonable(request))),
            )
            return deal_id

        return await self._store.run(write)

    async def calls(self) -> list[dict[str, Any]]:
        """Every logged call, for the README's "what happened" check and for tests."""

        def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
            return [json.loads(r["record"]) for r in db.execute("SELECT record FROM calls")]

        return await self._store.run(read)

    async def aclose(self) -> None:
        return None


def _jsonable(obj: Any) -> dict[str, Any]:
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in ((s, getattr(obj, s)) for s in obj.__slots__)
    }


def _event(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        start=datetime.fromisoformat(row["start"]),
        end=datetime.fromisoformat(row["end"]),
        summary=row["summary"],
        status=row["status"],
        attendee_emails=tuple(json.loads(row["attendees"])),
        meet_link=row["meet_link"],
    )


def _refuse_overlap(db: sqlite3.Connection, span: Interval, own_id: str) -> None:
    """Inside the write transaction: another confirmed event on the calendar in ``span``
    means the slot is taken."""
    rows = db.execute(
        "SELECT * FROM events WHERE status = 'confirmed' AND id != ?", (own_id,)
    ).fetchall()
    for row in rows:
        if Interval(
            datetime.fromisoformat(row["start"]), datetime.fromisoformat(row["end"])
        ).overlaps(span):
            raise SlotTaken(f"event {row['id']} holds {span.start.isoformat()}")


class EmbeddedCalendar:
    name = "embedded"

    def __init__(self, store: EmbeddedStore) -> None:
        self._store = store

    async def busy(self, start: datetime, end: datetime) -> list[Interval]:
        window = Interval(start, end)

        def read(db: sqlite3.Connection) -> list[Interval]:
            rows = db.execute("SELECT * FROM events WHERE status = 'confirmed'").fetchall()
            spans = [Interval(_event(r).start, _event(r).end) for r in rows]
            return sorted((s for s in spans if s.overlaps(window)), key=lambda s: s.start)

        return await self._store.run(read)

    async def create_event(self, request: EventRequest) -> Event:
        # One IMMEDIATE transaction (``EmbeddedStore.run``) holds SQLite's write lock from the
        # overlap check to the insert, so two processes booking one slot are serialised.
        def write(db: sqlite3.Connection) -> Event:
            _refuse_overlap(db, Interval(request.start, request.end), request.event_id)
            row = db.execute("SELECT * FROM events WHERE id = ?", (request.event_id,)).fetchone()
            if row is not None:
                existing = _event(row)
                if (existing.start, existing.end) != (request.start, request.end):
                    raise EventConflict(f"event {request.event_id} exists at another time")
                if existing.status != "confirmed":
                    db.execute("UPDATE events SET status='confirmed' WHERE id=?", (existing.id,))
                return _event(
                    db.execute("SELECT * FROM events WHERE id=?", (existing.id,)).fetchone()
                )
            attendees = [request.attendee_email] if request.attendee_email else []
            link = f"local://meet/{request.event_id}" if request.with_meet_link else None
            db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, 'confirmed', ?)",
                (request.event_id, request.start.isoformat(), request.end.isoformat(),
                 request.time_zone, request.summary, request.description,
                 json.dumps(attendees), link),
            )  # fmt: skip
            return _event(
                db.execute("SELECT * FROM events WHERE id=?", (request.event_id,)).fetchone()
            )

        return await self._store.run(write)

    async def get_event(self, event_id: str) -> Event | None:
        def read(db: sqlite3.Connection) -> Event | None:
            row = db.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
            return _event(row) if row else None

        return await self._store.run(read)

    async def cancel_event(self, event_id: str) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("UPDATE events SET status = 'cancelled' WHERE id = ?", (event_id,))

        await self._store.run(write)

    async def move_event(self, event_id: str, *, start: datetime, end: datetime) -> Event:
        def write(db: sqlite3.Connection) -> Event:
            _refuse_overlap(db, Interval(start, end), event_id)
            cur = db.execute(
                "UPDATE events SET start = ?, \"end\" = ? WHERE id = ? AND status = 'confirmed'",
                (start.isoformat(), end.isoformat(), event_id),
            )
            if cur.rowcount == 0:
                raise InvalidRequest(f"no confirmed event {event_id}")
            return _event(db.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone())

        return await self._store.run(write)

    async def aclose(self) -> None:
        return None
