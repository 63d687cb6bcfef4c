"""The queue in SQL: one set of statements for SQLite and PostgreSQL; each engine's module
says how a transaction starts, how claims are serialised and how rows are locked.

Claims: the cap and the pace are decided under one lock (a single-writer transaction on
SQLite, a row lock on ``dialer_claim_lock`` on PostgreSQL), so the count of calls in flight
cannot be read twice by two claimers; the due calls themselves are taken ``FOR UPDATE SKIP
LOCKED``, so a claim never waits on a call an outcome report or the API holds.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from dialer.codec import (
    campaign_from_json,
    campaign_json,
    lead_from_json,
    lead_json,
    opt_ts,
    parse_ts,
    result_from_json,
    result_json,
    ts,
)
from dialer.model import Attempt, Call, Campaign, Claim
from dialer.store import (
    Admission,
    ApiKey,
    ClaimLimits,
    Decider,
    DncEntry,
    Ending,
    IdempotencyConflict,
    IdempotencyKey,
    Notifier,
    Planner,
    WebhookDelivery,
)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS dialer_calls (
        id TEXT PRIMARY KEY, phone TEXT NOT NULL, campaign TEXT, zone TEXT NOT NULL,
        lead TEXT NOT NULL, status TEXT NOT NULL, next_at TEXT, attempts INTEGER NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, reason TEXT, result TEXT)""",
    "CREATE INDEX IF NOT EXISTS dialer_calls_due ON dialer_calls (next_at)",
    "CREATE INDEX IF NOT EXISTS dialer_calls_phone ON dialer_calls (phone, created_at)",
    """CREATE TABLE IF NOT EXISTS dialer_attempts (
        call_id TEXT NOT NULL, number INTEGER NOT NULL, room TEXT NOT NULL, state TEXT NOT NULL,
        started_at TEXT NOT NULL, dispatch_id TEXT, outcome TEXT, sip_status INTEGER,
        detail TEXT, ended_at TEXT, PRIMARY KEY (call_id, number))""",
    "CREATE INDEX IF NOT EXISTS dialer_attempts_state ON dialer_attempts (state)",
    """CREATE TABLE IF NOT EXISTS dialer_campaigns (name TEXT PRIMARY KEY, config TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS dialer_dnc (
        phone TEXT PRIMARY KEY, reason TEXT, added_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS dialer_idempotency (
        scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
        outcome TEXT NOT NULL, call_id TEXT, status TEXT, next_at TEXT, created_at TEXT NOT NULL,
        PRIMARY KEY (scope, key))""",
    """CREATE TABLE IF NOT EXISTS dialer_api_keys (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL,
        created_at TEXT NOT NULL, revoked_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS dialer_webhooks (
        id TEXT PRIMARY KEY, event_id TEXT NOT NULL, url TEXT NOT NULL, body TEXT NOT NULL,
        attempts INTEGER NOT NULL, next_at TEXT, delivered_at TEXT, last_error TEXT)""",
    "CREATE INDEX IF NOT EXISTS dialer_webhooks_due ON dialer_webhooks (next_at)",
    """CREATE TABLE IF NOT EXISTS dialer_claim_lock (id INTEGER PRIMARY KEY, pace_next_at TEXT)""",
    "INSERT INTO dialer_claim_lock (id, pace_next_at) VALUES (1, NULL) ON CONFLICT DO NOTHING",
)
_CALL_COLUMNS = (
    "id, phone, campaign, zone, lead, status, next_at, attempts, created_at, updated_at, "
    "reason, result"
)
_ATTEMPT_COLUMNS = (
    "call_id, number, room, state, started_at, dispatch_id, outcome, sip_status, detail, ended_at"
)
_WEBHOOK_COLUMNS = "id, event_id, url, body, attempts, next_at, delivered_at, last_error"


class Tx(Protocol):
    """A transaction as the statements see it; SQL uses ``?`` placeholders on both engines."""

    def run(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class SqlStore(ABC):
    """The queue's statements; subclasses supply transactions and locking."""

    skip_locked = ""  # the suffix that takes due rows without waiting on locked ones
    for_update = ""  # row lock for a read-then-write (PostgreSQL; SQLite holds the db lock)

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Tx]:
        """A read-write transaction, committed on exit, rolled back on an exception."""

    @abstractmethod
    def lock_claims(self, tx: Tx) -> None:
        """Serialise claimers for the rest of ``tx``."""

    @abstractmethod
    def lock_phone(self, tx: Tx, phone: str) -> None:
        """Serialise admissions of one phone number for the rest of ``tx``."""

    @abstractmethod
    def is_unique_violation(self, exc: BaseException) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...

    def create_schema(self) -> None:
        with self.transaction() as tx:
            for statement in SCHEMA:
                tx.run(statement)

    # --- calls ---------------------------------------------------------------------------

    def admit(
        self, call: Call, *, idempotency: IdempotencyKey | None, dedupe_since: datetime | None
    ) -> Admission:
        try:
            return self._admit(call, idempotency=idempotency, dedupe_since=dedupe_since)
        except Exception as exc:
            if not self.is_unique_violation(exc):
                raise
            # A concurrent request with the same idempotency key won; answer as it did.
            return self._admit(call, idempotency=idempotency, dedupe_since=dedupe_since)

    def _admit(
        self, call: Call, *, idempotency: IdempotencyKey | None, dedupe_since: datetime | None
    ) -> Admission:
        with self.transaction() as tx:
            self.lock_phone(tx, call.lead.phone)
            if idempotency is not None:
                earlier = _idempotent_answer(tx, idempotency)
                if earlier is not None:
                    return earlier
            admission = self._decide_admission(tx, call, dedupe_since)
            if admission.outcome == "created":
                _insert_call(tx, call)
            if idempotency is not None:
                _remember_answer(tx, idempotency, admission, at=call.created_at)
            return admission

    def _decide_admission(self, tx: Tx, call: Call, dedupe_since: datetime | None) -> Admission:
        if tx.rows("SELECT 1 FROM dialer_dnc WHERE phone = ?", (call.lead.phone,)):
            return Admission("do_not_call", None)
        if dedupe_since is not None:
            found = tx.rows(
                "SELECT id, status, next_at FROM dialer_calls WHERE phone = ? AND created_at >= ? "
                "ORDER BY created_at DESC LIMIT 1",
                (call.lead.phone, ts(dedupe_since)),
            )
            if found:
                call_id, status, next_at = found[0]
                return Admission("duplicate", call_id, status, parse_ts(next_at))
        return Admission("created", call.id, call.status, call.next_at)

    def call(self, call_id: str) -> Call | None:
        with self.transaction() as tx:
            found = tx.rows(f"SELECT {_CALL_COLUMNS} FROM dialer_calls WHERE id = ?", (call_id,))
        return _call(found[0]) if found else None

    def attempts(self, call_id: str) -> list[Attempt]:
        with self.transaction() as tx:
            return _attempts(tx, call_id)

    def in_flight(self) -> list[Attempt]:
        with self.transaction() as tx:
            found = tx.rows(
                f"SELECT {_ATTEMPT_COLUMNS} FROM dialer_attempts WHERE state != 'ended' "
                "ORDER BY started_at"
            )
        return [_attempt(row) for row in found]

    # --- claims --------------------------------------------------------------------------

    def claim(
        self,
        *,
        now: datetime,
        limits: ClaimLimits,
        plan: Planner,
        room_for: Callable[[str, int], str],
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
        self,
        tx: Tx,
        *,
        now: datetime,
        wanted: int,
        plan: Planner,
        room_for: Callable[[str, int], str],
    ) -> list[Claim]:
        campaigns = {c.name: c for c in _campaigns(tx)}
        room_left = _campaign_room(tx, campaigns)
        full = [name for name, left in room_left.items() if left <= 0]
        excluded = f"AND campaign NOT IN ({', '.join('?' * len(full))}) " if full else ""
        candidates = tx.rows(
            f"SELECT {_CALL_COLUMNS} FROM dialer_calls WHERE next_at IS NOT NULL AND next_at <= ? "
            f"{excluded}ORDER BY next_at, created_at LIMIT ?{self.skip_locked}",
            (ts(now), *full, wanted * 4),
        )
        claims: list[Claim] = []
        for row in candidates:
            call = _call(row)
            campaign = campaigns.get(call.campaign) if call.campaign else None
            allowed = plan(call, campaign)
            if allowed > now:  # outside calling hours: wait for them, keep what it waits for
                tx.run(
                    "UPDATE dialer_calls SET next_at = ?, updated_at = ?, status = CASE WHEN "
                    "status = 'queued' THEN 'scheduled' ELSE status END WHERE id = ?",
                    (ts(allowed), ts(now), call.id),
                )
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

    def record_progress(
        self, call_id: str, number: int, state: Literal["ringing", "answered"], *, now: datetime
    ) -> bool:
        with self.transaction() as tx:
            changed = tx.run(
                "UPDATE dialer_attempts SET state = ? WHERE call_id = ? AND number = ? "
                "AND state != 'ended'",
                (state, call_id, number),
            )
            if changed:
                tx.run(
                    "UPDATE dialer_calls SET status = ?, updated_at = ? WHERE id = ?",
                    (state, ts(now), call_id),
                )
            return bool(changed)

    def finish_attempt(
        self, call_id: str, number: int, *, decide: Decider, notify: Notifier
    ) -> bool:
        """End attempt ``number`` once: a second report, or a report after the reconciler
        closed the attempt, changes nothing and answers False."""
        with self.transaction() as tx:
            found = tx.rows(
                f"SELECT {_CALL_COLUMNS} FROM dialer_calls WHERE id = ?{self.for_update}",
                (call_id,),
            )
            if not found:
                return False
            call = _call(found[0])
            attempts = _attempts(tx, call_id)
            current = [a for a in attempts if a.number == number and a.state != "ended"]
            if not current:
                return False
            campaign = _campaign(tx, call.campaign)
            ending = decide(call, attempts, campaign)
            _end_attempt(tx, call, number, ending)
            after = _call(
                tx.rows(f"SELECT {_CALL_COLUMNS} FROM dialer_calls WHERE id = ?", (call_id,))[0]
            )
            for message in notify(after, _attempts(tx, call_id)):
                tx.run(
                    f"INSERT INTO dialer_webhooks ({_WEBHOOK_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, 0, ?, NULL, NULL) ON CONFLICT DO NOTHING",
                    (_delivery_id(message.event_id, message.url), message.event_id,
                     message.url, message.body, ts(ending.ended_at)),
                )  # fmt: skip
            return True

    # --- campaigns -----------------------------------------------------------------------

    def put_campaign(self, campaign: Campaign) -> None:
        with self.transaction() as tx:
            tx.run(
                "INSERT INTO dialer_campaigns (name, config) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET config = excluded.config",
                (campaign.name, campaign_json(campaign)),
            )

    def campaign(self, name: str) -> Campaign | None:
        with self.transaction() as tx:
            return _campaign(tx, name)

    def campaigns(self) -> list[Campaign]:
        with self.transaction() as tx:
            return _campaigns(tx)

    # --- do not call ---------------------------------------------------------------------

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
            return bool(tx.rows("SELECT 1 FROM dialer_dnc WHERE phone = ?", (phone,)))

    def dnc_entries(self) -> list[DncEntry]:
        with self.transaction() as tx:
            rows = tx.rows("SELECT phone, reason, added_at FROM dialer_dnc ORDER BY added_at")
        return [DncEntry(phone, reason, _ts(added)) for phone, reason, added in rows]

    # --- API keys ------------------------------------------------------------------------

    def add_key(self, key: ApiKey) -> None:
        with self.transaction() as tx:
            tx.run(
                "INSERT INTO dialer_api_keys (id, name, token_hash, created_at, revoked_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (key.id, key.name, key.token_hash, ts(key.created_at), opt_ts(key.revoked_at)),
            )

    def key(self, key_id: str) -> ApiKey | None:
        with self.transaction() as tx:
            rows = tx.rows(
                "SELECT id, name, token_hash, created_at, revoked_at FROM dialer_api_keys "
                "WHERE id = ?",
                (key_id,),
            )
        return _key(rows[0]) if rows else None

    def keys(self) -> list[ApiKey]:
        with self.transaction() as tx:
            rows = tx.rows(
                "SELECT id, name, token_hash, created_at, revoked_at FROM dialer_api_keys "
                "ORDER BY created_at, name"
            )
        return [_key(row) for row in rows]

    def revoke_key(self, name_or_id: str, *, now: datetime) -> bool:
        with self.transaction() as tx:
            return bool(
                tx.run(
                    "UPDATE dialer_api_keys SET revoked_at = ? "
                    "WHERE (name = ? OR id = ?) AND revoked_at IS NULL",
                    (ts(now), name_or_id, name_or_id),
                )
            )

    # --- webhooks ------------------------------------------------------------------------

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


# --- statements shared by the methods above ---------------------------------------------


def _idempotent_answer(tx: Tx, key: IdempotencyKey) -> Admission | None:
    rows = tx.rows(
        "SELECT fingerprint, outcome, call_id, status, next_at FROM dialer_idempotency "
        "WHERE scope = ? AND key = ?",
        (key.scope, key.key),
    )
    if not rows:
        return None
    fingerprint, outcome, call_id, status, next_at = rows[0]
    if fingerprint != key.fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was used for a different request")
    return Admission(outcome, call_id, status, parse_ts(next_at), replayed=True)


def _remember_answer(tx: Tx, key: IdempotencyKey, admission: Admission, *, at: datetime) -> None:
    tx.run(
        "INSERT INTO dialer_idempotency (scope, key, fingerprint, outcome, call_id, status, "
        "next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (key.scope, key.key, key.fingerprint, admission.outcome, admission.call_id,
         admission.status, opt_ts(admission.next_at), ts(at)),
    )  # fmt: skip


def _insert_call(tx: Tx, call: Call) -> None:
    tx.run(
        f"INSERT INTO dialer_calls ({_CALL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (call.id, call.lead.phone, call.campaign, call.zone, lead_json(call.lead), call.status,
         opt_ts(call.next_at), call.attempts, ts(call.created_at), ts(call.updated_at),
         call.reason, result_json(call.result)),
    )  # fmt: skip


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


def _start_attempt(
    tx: Tx, call: Call, *, now: datetime, room_for: Callable[[str, int], str]
) -> Claim:
    last = tx.rows("SELECT max(number) FROM dialer_attempts WHERE call_id = ?", (call.id,))
    number = int(last[0][0] or 0) + 1  # numbers count every claim; call.attempts the dials
    attempt = Attempt(
        call_id=call.id, number=number, room=room_for(call.id, number), state="dialing",
        started_at=now,
    )  # fmt: skip
    tx.run(
        f"INSERT INTO dialer_attempts ({_ATTEMPT_COLUMNS}) "
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


def _end_attempt(tx: Tx, call: Call, number: int, ending: Ending) -> None:
    tx.run(
        "UPDATE dialer_attempts SET state = 'ended', outcome = ?, sip_status = ?, detail = ?, "
        "ended_at = ? WHERE call_id = ? AND number = ?",
        (ending.outcome, ending.sip_status, ending.detail, ts(ending.ended_at), call.id, number),
    )
    tx.run(
        "UPDATE dialer_calls SET status = ?, next_at = ?, reason = ?, "
        "result = COALESCE(?, result), updated_at = ?, attempts = ? WHERE id = ?",
        (ending.status, opt_ts(ending.next_at), ending.reason, result_json(ending.result),
         ts(ending.ended_at), call.attempts - (0 if ending.counts else 1), call.id),
    )  # fmt: skip


def _attempts(tx: Tx, call_id: str) -> list[Attempt]:
    rows = tx.rows(
        f"SELECT {_ATTEMPT_COLUMNS} FROM dialer_attempts WHERE call_id = ? ORDER BY number",
        (call_id,),
    )
    return [_attempt(row) for row in rows]


def _campaign(tx: Tx, name: str | None) -> Campaign | None:
    if name is None:
        return None
    rows = tx.rows("SELECT config FROM dialer_campaigns WHERE name = ?", (name,))
    return campaign_from_json(name, rows[0][0]) if rows else None


def _campaigns(tx: Tx) -> list[Campaign]:
    rows = tx.rows("SELECT name, config FROM dialer_campaigns ORDER BY name")
    return [campaign_from_json(name, config) for name, config in rows]


def _ts(value: str) -> datetime:
    parsed = parse_ts(value)
    assert parsed is not None
    return parsed


def _call(row: tuple[Any, ...]) -> Call:
    (call_id, _phone, campaign, zone, lead, status, next_at, attempts, created, updated,
     reason, result) = row  # fmt: skip
    return Call(
        id=call_id, lead=lead_from_json(lead), zone=zone, campaign=campaign, status=status,
        created_at=_ts(created), updated_at=_ts(updated), attempts=int(attempts),
        next_at=parse_ts(next_at), reason=reason, result=result_from_json(result),
    )  # fmt: skip


def _attempt(row: tuple[Any, ...]) -> Attempt:
    call_id, number, room, state, started, dispatch_id, outcome, sip, detail, ended = row
    return Attempt(
        call_id=call_id, number=int(number), room=room, state=state, started_at=_ts(started),
        dispatch_id=dispatch_id, outcome=outcome, sip_status=sip, detail=detail,
        ended_at=parse_ts(ended),
    )  # fmt: skip


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, name, token_hash, created, revoked = row
    return ApiKey(key_id, name, token_hash, _ts(created), parse_ts(revoked))


def _delivery(row: tuple[Any, ...]) -> WebhookDelivery:
    delivery_id, event_id, url, body, attempts, next_at, delivered, error = row
    return WebhookDelivery(
        id=delivery_id, event_id=event_id, url=url, body=body, attempts=int(attempts),
        next_at=parse_ts(next_at), delivered_at=parse_ts(delivered), last_error=error,
    )  # fmt: skip


def _delivery_id(event_id: str, url: str) -> str:
    return hashlib.sha256(f"{event_id}|{url}".encode()).hexdigest()[:32]
