"""Call records the CRM did not take, kept on disk until a replay delivers them.

A replay writes with the same idempotency keys (the call id), so delivering twice is harmless.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from integrations.crm import CallRecord, Crm, DealRequest, record_call


class Outbox:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (call_id TEXT PRIMARY KEY, record TEXT NOT NULL, "
            "deal TEXT, error TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        if "contact_updates" not in columns:  # outboxes written before write-back existed
            self._db.execute("ALTER TABLE outbox ADD COLUMN contact_updates TEXT")

    def put(
        self,
        record: CallRecord,
        deal: DealRequest | None,
        *,
        contact_updates: dict[str, str] | None = None,
        error: str,
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO outbox (call_id, record, deal, error, delivered, "
            "contact_updates) VALUES (?, ?, ?, ?, 0, ?)",
            (record.call_id, to_json(record), to_json(deal) if deal else None, error,
             json.dumps(contact_updates or {})),
        )  # fmt: skip

    def pending(self) -> list[tuple[CallRecord, DealRequest | None, dict[str, str]]]:
        rows = self._db.execute(
            "SELECT record, deal, contact_updates FROM outbox WHERE delivered = 0"
        ).fetchall()
        return [
            (
                from_json(CallRecord, r),
                from_json(DealRequest, d) if d else None,
                json.loads(u or "{}"),
            )
            for r, d, u in rows
        ]

    async def replay(self, crm: Crm) -> int:
        """Deliver what is pending; returns how many records went through."""
        delivered = 0
        for record, deal, updates in self.pending():
            await record_call(crm, record, deal, contact_updates=updates)
            self._db.execute("UPDATE outbox SET delivered = 1 WHERE call_id = ?", (record.call_id,))
            delivered += 1
        return delivered

    def forget_phone(self, phone: str) -> list[str]:
        """Delete the records of calls from or to ``phone`` (a privacy request); their ids."""
        gone = [call_id for call_id, record in self._records() if _involves(record, phone)]
        self._db.executemany("DELETE FROM outbox WHERE call_id = ?", [(c,) for c in gone])
        return gone

    def expire_transcripts(self, *, before: datetime) -> int:
        """Blank the transcripts of calls that ended before ``before``; the rest stays (a
        pending record is still delivered, without its transcript)."""
        expired = 0
        for call_id, record in self._records():
            ended = record.get("ended_at")
            if record.get("transcript") and ended and datetime.fromisoformat(ended) < before:
                record["transcript"] = ""
                self._db.execute(
                    "UPDATE outbox SET record = ? WHERE call_id = ?", (json.dumps(record), call_id)
                )
                expired += 1
        return expired

    def _records(self) -> list[tuple[str, dict[str, Any]]]:
        rows = self._db.execute("SELECT call_id, record FROM outbox").fetchall()
        return [(call_id, json.loads(record)) for call_id, record in rows]

    def close(self) -> None:
        self._db.close()


def _involves(record: dict[str, Any], phone: str) -> bool:
    return phone in (record.get("from_number"), record.get("to_number"))


def to_json(obj: CallRecord | DealRequest) -> str:
    return json.dumps(asdict(obj), default=_iso)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in the outbox")


def from_json(kind: type[Any], text: str) -> Any:
    raw = json.loads(text)
    for name, value in raw.items():
        if name.endswith("_at") and isinstance(value, str):
            raw[name] = datetime.fromisoformat(value)
    return kind(**raw)
