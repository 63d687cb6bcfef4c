"""The result webhooks' outbox: deliveries queued with the call's end, leased to a sender,
retried until delivered or out of attempts."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from dialer.codec import opt_ts, parse_ts, ts
from dialer.sql.engine import SqlEngine, Tx
from dialer.store import WebhookDelivery, WebhookMessage

_WEBHOOK_COLUMNS = "id, event_id, url, body, attempts, next_at, delivered_at, last_error"


class WebhookOutbox(SqlEngine):
    def claim_webhooks(
        self, *, now: datetime, lease: timedelta, limit: int
    ) -> list[WebhookDelivery]:
        """Due deliveries, leased: until ``now + lease`` no other sender takes them, and if this
        one dies they come due again (receivers drop repeats by event id)."""
        with self.transaction() as tx:
            rows = tx.rows(
                f"SELECT {_WEBHOOK_COLUMNS} FROM dialer_webhooks WHERE delivered_at IS NULL "
                f"AND next_at IS NOT NULL AND next_at <= ? ORDER BY next_at LIMIT ?"
                f"{self.skip_locked}",
                (ts(now), limit),
            )
            for row in rows:
                tx.run(
                    "UPDATE dialer_webhooks SET next_at = ? WHERE id = ?",
                    (ts(now + lease), row[0]),
                )
        return [_delivery(row) for row in rows]

    def webhook_delivered(self, delivery_id: str, *, now: datetime) -> None:
        with self.transaction() as tx:
            tx.run(
                "UPDATE dialer_webhooks SET delivered_at = ?, next_at = NULL, "
                "attempts = attempts + 1 WHERE id = ?",
                (ts(now), delivery_id),
            )

    def webhook_failed(
        self, delivery_id: str, *, attempts: int, next_at: datetime | None, error: str
    ) -> None:
        with self.transaction() as tx:
            tx.run(
                "UPDATE dialer_webhooks SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?",
                (attempts, opt_ts(next_at), error[:500], delivery_id),
            )

    def webhooks(self, event_id: str | None = None) -> list[WebhookDelivery]:
        where, params = ("WHERE event_id = ? ", (event_id,)) if event_id else ("", ())
        with self.transaction() as tx:
            rows = tx.rows(
                f"SELECT {_WEBHOOK_COLUMNS} FROM dialer_webhooks {where}ORDER BY id", params
            )
        return [_delivery(row) for row in rows]


def enqueue_webhook(tx: Tx, message: WebhookMessage, *, due: datetime) -> None:
    """Queue one delivery, once per event and URL however often it is asked."""
    tx.run(
        f"INSERT INTO dialer_webhooks ({_WEBHOOK_COLUMNS}) "
        "VALUES (?, ?, ?, ?, 0, ?, NULL, NULL) ON CONFLICT DO NOTHING",
        (_delivery_id(message.event_id, message.url), message.event_id, message.url,
         message.body, ts(due)),
    )  # fmt: skip


def _delivery(row: tuple[Any, ...]) -> WebhookDelivery:
    delivery_id, event_id, url, body, attempts, next_at, delivered, error = row
    return WebhookDelivery(
        id=delivery_id, event_id=event_id, url=url, body=body, attempts=int(attempts),
        next_at=parse_ts(next_at), delivered_at=parse_ts(delivered), last_error=error,
    )  # fmt: skip


def _delivery_id(event_id: str, url: str) -> str:
    return hashlib.sha256(f"{event_id}|{url}".encode()).hexdigest()[:32]
