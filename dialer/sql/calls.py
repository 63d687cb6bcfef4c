"""Calls and their attempts: the rows, and reading them."""

from __future__ import annotations

from typing import Any

from dialer.codec import (
    lead_from_json,
    lead_json,
    opt_ts,
    parse_ts,
    required_ts,
    result_from_json,
    result_json,
    ts,
)
from dialer.model import Attempt, Call
from dialer.sql.engine import SqlEngine, Tx

CALL_COLUMNS = (
    "id, phone, campaign, zone, lead, status, next_at, attempts, created_at, updated_at, "
    "reason, result"
)
ATTEMPT_COLUMNS = (
    "call_id, number, room, state, started_at, dispatch_id, outcome, sip_status, detail, ended_at"
)


class CallReads(SqlEngine):
    def call(self, call_id: str) -> Call | None:
        with self.transaction() as tx:
            return select_call(tx, call_id)

    def attempts(self, call_id: str) -> list[Attempt]:
        with self.transaction() as tx:
            return select_attempts(tx, call_id)

    def in_flight(self) -> list[Attempt]:
        with self.transaction() as tx:
            found = tx.rows(
                f"SELECT {ATTEMPT_COLUMNS} FROM dialer_attempts WHERE state != 'ended' "
                "ORDER BY started_at"
            )
        return [attempt_from_row(row) for row in found]


def select_call(tx: Tx, call_id: str, *, lock: str = "") -> Call | None:
    """The call, or None; ``lock`` is the engine's ``for_update`` to hold its row."""
    found = tx.rows(f"SELECT {CALL_COLUMNS} FROM dialer_calls WHERE id = ?{lock}", (call_id,))
    return call_from_row(found[0]) if found else None


def select_attempts(tx: Tx, call_id: str) -> list[Attempt]:
    rows = tx.rows(
        f"SELECT {ATTEMPT_COLUMNS} FROM dialer_attempts WHERE call_id = ? ORDER BY number",
        (call_id,),
    )
    return [attempt_from_row(row) for row in rows]


def insert_call(tx: Tx, call: Call) -> None:
    tx.run(
        f"INSERT INTO dialer_calls ({CALL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (call.id, call.lead.phone, call.campaign, call.zone, lead_json(call.lead), call.status,
         opt_ts(call.next_at), call.attempts, ts(call.created_at), ts(call.updated_at),
         call.reason, result_json(call.result)),
    )  # fmt: skip


def call_from_row(row: tuple[Any, ...]) -> Call:
    (call_id, _phone, campaign, zone, lead, status, next_at, attempts, created, updated,
     reason, result) = row  # fmt: skip
    return Call(
        id=call_id, lead=lead_from_json(lead), zone=zone, campaign=campaign, status=status,
        created_at=required_ts(created), updated_at=required_ts(updated),
        attempts=int(attempts), next_at=parse_ts(next_at), reason=reason,
        result=result_from_json(result),
    )  # fmt: skip


def attempt_from_row(row: tuple[Any, ...]) -> Attempt:
    call_id, number, room, state, started, dispatch_id, outcome, sip, detail, ended = row
    return Attempt(
        call_id=call_id, number=int(number), room=room, state=state,
        started_at=required_ts(started), dispatch_id=dispatch_id, outcome=outcome,
        sip_status=sip, detail=detail, ended_at=parse_ts(ended),
    )  # fmt: skip
