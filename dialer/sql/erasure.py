"""Forgetting one phone number's calls: a privacy request (see ``privacy/``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dialer.sql.engine import SqlEngine


@dataclass(frozen=True)
class ForgottenCalls:
    """What the queue removed for one number. ``call_ids`` and ``rooms`` name the calls, so
    the files kept per call can go too."""

    calls: int = 0
    attempts: int = 0
    webhooks: int = 0
    idempotency_records: int = 0
    call_ids: tuple[str, ...] = ()
    rooms: tuple[str, ...] = field(default=())


class ContactErasure(SqlEngine):
    def forget_phone(self, phone: str) -> ForgottenCalls:
        """Delete every call to ``phone`` with its attempts, its result webhooks (delivered or
        not) and the idempotency records that point at it, in one transaction. The
        do-not-call entry is kept: it is what stops the number being called again."""
        with self.transaction() as tx:
            ids = [r[0] for r in tx.rows("SELECT id FROM dialer_calls WHERE phone = ?", (phone,))]
            if not ids:
                return ForgottenCalls()
            marks = ", ".join("?" for _ in ids)
            rooms = tx.rows(f"SELECT room FROM dialer_attempts WHERE call_id IN ({marks})", ids)
            events = [f"evt_{i}" for i in ids]
            return ForgottenCalls(
                webhooks=tx.run(f"DELETE FROM dialer_webhooks WHERE event_id IN ({marks})", events),
                idempotency_records=tx.run(
                    f"DELETE FROM dialer_idempotency WHERE call_id IN ({marks})", ids
                ),
                attempts=tx.run(f"DELETE FROM dialer_attempts WHERE call_id IN ({marks})", ids),
                calls=tx.run(f"DELETE FROM dialer_calls WHERE id IN ({marks})", ids),
                call_ids=tuple(ids),
                rooms=tuple(r[0] for r in rooms),
            )
