"""The do-not-call list."""

from __future__ import annotations

from datetime import datetime

from dialer.codec import required_ts, ts
from dialer.sql.engine import SqlEngine, Tx
from dialer.store import DncEntry


class DoNotCallList(SqlEngine):
    def add_dnc(self, phone: str, *, reason: str | None, now: datetime) -> bool:
        with self.transaction() as tx:
            return bool(
                tx.run(
                    "INSERT INTO dialer_dnc (phone, reason, added_at) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (phone, reason, ts(now)),
                )
            )

    def remove_dnc(self, phone: str) -> bool:
        with self.transaction() as tx:
            return bool(tx.run("DELETE FROM dialer_dnc WHERE phone = ?", (phone,)))

    def is_dnc(self, phone: str) -> bool:
        with self.transaction() as tx:
            return listed(tx, phone)

    def dnc_entries(self) -> list[DncEntry]:
        with self.transaction() as tx:
            rows = tx.rows("SELECT phone, reason, added_at FROM dialer_dnc ORDER BY added_at")
        return [DncEntry(phone, reason, required_ts(added)) for phone, reason, added in rows]


def listed(tx: Tx, phone: str) -> bool:
    return bool(tx.rows("SELECT 1 FROM dialer_dnc WHERE phone = ?", (phone,)))
