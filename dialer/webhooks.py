"""Result webhooks: signed POSTs from the persistent queue, retried with exponential backoff.

Signature: ``X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, keyed with
WEBHOOK_SECRET. ``X-Webhook-Id`` carries the event id, stable across retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from dialer.store import WebhookDelivery, WebhookQueue

logger = logging.getLogger("dialer.webhooks")

SIGNATURE_HEADER = "X-Signature"
EVENT_ID_HEADER = "X-Webhook-Id"
FIRST_BACKOFF = timedelta(seconds=10)
MAX_BACKOFF = timedelta(hours=1)
LEASE = timedelta(seconds=60)  # longer than a delivery can take (timeout below)
TIMEOUT_S = 10.0


def signature(secret: str, *, timestamp: int, body: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, *, header: str, body: str, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does (see dialer/README.md): recompute, compare in constant time, and
    refuse stale timestamps so a captured request cannot be replayed later."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = signature(secret, timestamp=timestamp, body=body)
    return abs(now - timestamp) <= tolerance_s and hmac.compare_digest(expected, header)


def backoff(attempts: int) -> timedelta:
    """Delay after the ``attempts``-th failed delivery: 10 s, 20 s, 40 s ... at most 1 h."""
    return min(FIRST_BACKOFF * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)


class WebhookSender:
    def __init__(
        self,
        *,
        queue: WebhookQueue,
        client: httpx.AsyncClient,
        secret: str,
        now: Callable[[], datetime],
        max_attempts: int,
    ) -> None:
        self._queue = queue
        self._client = client
        self._secret = secret
        self._now = now
        self._max_attempts = max_attempts

    async def deliver_due(self, *, limit: int = 20) -> int:
        """Send what is due; returns how many were delivered."""
        due = await asyncio.to_thread(
            self._queue.claim_webhooks, now=self._now(), lease=LEASE, limit=limit
        )
        delivered = 0
        for delivery in due:
            error = await self._send(delivery)
            await asyncio.to_thread(self._record, delivery, error)
            delivered += error is None
        return delivered

    async def _send(self, delivery: WebhookDelivery) -> str | None:
        timestamp = int(self._now().timestamp())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self._secret, timestamp=timestamp, body=delivery.body),
            EVENT_ID_HEADER: delivery.event_id,
        }
        try:
            response = await self._client.post(
                delivery.url, content=delivery.body.encode(), headers=headers, timeout=TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    def _record(self, delivery: WebhookDelivery, error: str | None) -> None:
        now = self._now()
        if error is None:
            self._queue.webhook_delivered(delivery.id, now=now)
            return
        attempts = delivery.attempts + 1
        give_up = attempts >= self._max_attempts
        next_at = None if give_up else now + backoff(attempts)
        self._queue.webhook_failed(delivery.id, attempts=attempts, next_at=next_at, error=error)
        logger.warning(
            "webhook %s to %s failed (%s), %s", delivery.event_id, delivery.url, error,
            "giving up" if next_at is None else f"retrying at {next_at.isoformat()}",
        )  # fmt: skip
