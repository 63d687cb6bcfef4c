"""Claiming due calls and starting their attempts, under the caps and the pace.

The global cap and the pace are decided under one lock (``lock_claims``: a single-writer
transaction on SQLite, a row lock on ``dialer_claim_lock`` on PostgreSQL), so the count of
calls in flight cannot be read twice by two claimers; the due calls themselves are taken
``FOR UPDATE SKIP LOCKED``, so a claim never waits on a call an outcome report or the API
holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from dialer.codec import parse_ts, ts
from dialer.model import Attempt, Call, Campaign, Claim
from dialer.sql.calls import ATTEMPT_COLUMNS, CALL_COLUMNS, call_from_row
from dialer.sql.campaigns import select_campaigns, stopped_campaigns
from dialer.sql.engine import SqlEngine, Tx
from dialer.store import ClaimLimits, Planner

RoomNamer = Callable[[str, int], str]


class Claims(SqlEngine):
    def claim(
        self, *, now: datetime, limits: ClaimLimits, plan: Planner, room_for: RoomNamer
    ) -> list[Claim]:
        with self.transaction() as tx:
            self.lock_claims(tx)
            free = limits.max_concurrent - _count_in_flight(tx)
            next_free = parse_ts(tx.rows("SELECT pace_next_at FROM dialer_claim_lock")[0][0])
            paced, _ = limits.pace.take(next_free=next_free, now=now, want=free)
            wanted = min(free, paced, limits.batch)
            if wanted <= 0:
                return []
            claims = self._claim_due(tx, now=now, wanted=wanted, plan=plan, room_for=room_for)
            if claims:
                _, next_free = limits.pace.take(next_free=next_free, now=now, want=len(claims))
                tx.run("UPDATE dialer_claim_lock SET pace_next_at = ?", (ts(next_free),))
            return claims

    def _claim_due(
        self, tx: Tx, *, now: datetime, wanted: int, plan: Planner, room_for: RoomNamer
    ) -> list[Claim]:
        campaigns = {c.name: c for c in select_campaigns(tx)}
        room_left = _campaign_room(tx, campaigns)
        # Full, paused or cancelled: none of their calls is a candidate. A pause or cancel
        # takes the claim lock too, so it falls wholly before or after this claim.
        full = [name for name, left in room_left.items() if left <= 0]
        full += stopped_campaigns(tx)
        # "campaign NOT IN" alone is never true for a call without a campaign (NULL).
        marks = ", ".join("?" * len(full))
        excluded = f"AND (campaign IS NULL OR campaign NOT IN ({marks})) " if full else ""
        candidates = tx.rows(
            f"SELECT {CALL_COLUMNS} FROM dialer_calls WHERE next_at IS NOT NULL AND next_at <= ? "
            f"{excluded}ORDER BY next_at, created_at LIMIT ?{self.skip_locked}",
            (ts(now), *full, wanted * 4),
        )
        claims: list[Claim] = []
        for row in candidates:
            call = call_from_row(row)
            campaign = campaigns.get(call.campaign) if call.campaign else None
            allowed = plan(call, campaign)
            if allowed > now:  # outside calling hours: wait for them, keep what it waits for
                _wait_until(tx, call, allowed, now=now)
                continue
            if call.campaign in room_left:
                if room_left[call.campaign] <= 0:
                    continue
                room_left[call.campaign] -= 1
            claims.append(_start_attempt(tx, call, now=now, room_for=room_for))
            if len(claims) == wanted:
                break
        return claims

    def mark_dispatched(self, call_id: str, number: int, dispatch_id: str) -> None:
        with self.transaction() as tx:
            tx.run(
                "UPDATE dialer_attempts SET dispatch_id = ? WHERE call_id = ? AND number = ?",
                (dispatch_id, call_id, number),
            )


def _count_in_flight(tx: Tx) -> int:
    return int(tx.rows("SELECT count(*) FROM dialer_attempts WHERE state != 'ended'")[0][0])


def _campaign_room(tx: Tx, campaigns: dict[str, Campaign]) -> dict[str, int]:
    """Calls each capped campaign may still start."""
    capped = {n: c.max_concurrent for n, c in campaigns.items() if c.max_concurrent is not None}
    if not capped:
        return {}
    busy = dict(
        tx.rows(
            "SELECT c.campaign, count(*) FROM dialer_attempts a JOIN dialer_calls c "
            "ON c.id = a.call_id WHERE a.state != 'ended' AND c.campaign IS NOT NULL "
            "GROUP BY c.campaign"
        )
    )
    return {name: cap - int(busy.get(name, 0)) for name, cap in capped.items()}


def _wait_until(tx: Tx, call: Call, allowed: datetime, *, now: datetime) -> None:
    tx.run(
        "UPDATE dialer_calls SET next_at = ?, updated_at = ?, status = CASE WHEN "
        "status = 'queued' THEN 'scheduled' ELSE status END WHERE id = ?",
        (ts(allowed), ts(now), call.id),
    )


def _start_attempt(tx: Tx, call: Call, *, now: datetime, room_for: RoomNamer) -> Claim:
    last = tx.rows("SELECT max(number) FROM dialer_attempts WHERE call_id = ?", (call.id,))
    number = int(last[0][0] or 0) + 1  # numbers count every claim; call.attempts the dials
    attempt = Attempt(
        call_id=call.id, number=number, room=room_for(call.id, number), state="dialing",
        started_at=now,
    )  # fmt: skip
    tx.run(
        f"INSERT INTO dialer_attempts ({ATTEMPT_COLUMNS}) "
        "VALUES (?, ?, ?, 'dialing', ?, NULL, NULL, NULL, NULL, NULL)",
        (call.id, number, attempt.room, ts(now)),
    )
    tx.run(
        "UPDATE dialer_calls SET status = 'dialing', next_at = NULL, attempts = attempts + 1, "
        "updated_at = ? WHERE id = ?",
        (ts(now), call.id),
    )
    claimed = replace(call, status="dialing", next_at=None, attempts=call.attempts + 1)
    return Claim(call=claimed, attempt=attempt)
