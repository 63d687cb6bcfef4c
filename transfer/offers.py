"""Transfers offered to reps in the browser console, in the dialer's store: the worker's desk
writes an offer, the API service shows it to the rep and records their answer, the desk reads
the answer back. The store is the one place both processes see, and the record of what each
rep was offered, took and noted afterwards ("today's calls").

An offer is ``ringing`` until the rep answers (``accepted``, ``declined``), the time runs out
(``no_answer``), or the desk withdraws it (``caller_hung_up``, ``withdrawn``, ``failed``). An
accepted offer is ``ended_at`` once the call is over, and carries the rep's notes after it.

The console checks in every few seconds (``seen``): a console that has not checked in within
``LIVE_WITHIN_S`` is not offered calls, and its rep goes ``away``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from transfer.roster import Store

OfferState = Literal[
    "ringing", "accepted", "declined", "no_answer", "caller_hung_up", "withdrawn", "failed"
]
LIVE_WITHIN_S = 15.0

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS console_offers (
        id TEXT PRIMARY KEY, rep_id TEXT NOT NULL, call_id TEXT NOT NULL,
        caller_room TEXT NOT NULL, consult_room TEXT NOT NULL, brief TEXT NOT NULL,
        offered_at TEXT NOT NULL, decide_by TEXT NOT NULL, state TEXT NOT NULL,
        answered_at TEXT, detail TEXT, ended_at TEXT, notes TEXT, disposition TEXT,
        noted_at TEXT)""",
    "CREATE INDEX IF NOT EXISTS console_offers_rep ON console_offers (rep_id, offered_at)",
    """CREATE TABLE IF NOT EXISTS console_seen (
        rep_id TEXT PRIMARY KEY, seen_at TEXT NOT NULL)""",
)
_COLUMNS = (
    "id, rep_id, call_id, caller_room, consult_room, brief, offered_at, decide_by, state, "
    "answered_at, detail, ended_at, notes, disposition, noted_at"
)


class OfferClosed(ValueError):
    """The offer can no longer be answered: the message says what happened to it."""


@dataclass(frozen=True)
class Offer:
    id: str
    rep_id: str
    call_id: str
    caller_room: str
    consult_room: str
    brief: dict[str, Any]  # Brief.written()
    offered_at: datetime
    decide_by: datetime
    state: OfferState
    answered_at: datetime | None
    detail: str | None
    ended_at: datetime | None
    notes: str | None
    disposition: str | None
    noted_at: datetime | None

    @property
    def in_call(self) -> bool:
        return self.state == "accepted" and self.ended_at is None


class ConsoleOffers:
    def __init__(self, store: Store, *, now: Callable[[], datetime] | None = None) -> None:
        self._store = store
        self._now = now or (lambda: datetime.now(UTC))
        with store.transaction() as tx:
            for statement in SCHEMA:
                tx.run(statement)

    # --- the console checking in ----------------------------------------------------------

    def seen(self, rep_id: str) -> None:
        now = self._now().isoformat()
        with self._store.transaction() as tx:
            if not tx.run("UPDATE console_seen SET seen_at = ? WHERE rep_id = ?", (now, rep_id)):
                tx.run("INSERT INTO console_seen (rep_id, seen_at) VALUES (?, ?)", (rep_id, now))

    def gone(self, rep_id: str) -> None:
        """The rep signed out or closed the page."""
        with self._store.transaction() as tx:
            tx.run("DELETE FROM console_seen WHERE rep_id = ?", (rep_id,))

    def live(self, rep_id: str) -> bool:
        """The rep's console checked in within LIVE_WITHIN_S: a call can be offered there."""
        with self._store.transaction() as tx:
            rows = tx.rows("SELECT seen_at FROM console_seen WHERE rep_id = ?", (rep_id,))
        return bool(rows) and self._now() - datetime.fromisoformat(rows[0][0]) <= timedelta(
            seconds=LIVE_WITHIN_S
        )

    def stale(self) -> list[str]:
        """Reps whose console stopped checking in (the page dropped), forgotten as listed."""
        cutoff = (self._now() - timedelta(seconds=LIVE_WITHIN_S)).isoformat()
        with self._store.transaction() as tx:
            rows = tx.rows("SELECT rep_id FROM console_seen WHERE seen_at < ?", (cutoff,))
            tx.run("DELETE FROM console_seen WHERE seen_at < ?", (cutoff,))
        return [row[0] for row in rows]

    # --- the desk's side --------------------------------------------------------------------

    def open(
        self,
        *,
        rep_id: str,
        call_id: str,
        caller_room: str,
        consult_room: str,
        brief: dict[str, Any],
        decide_s: float,
    ) -> Offer:
        now = self._now()
        offer = Offer(
            id=f"offer_{secrets.token_hex(8)}", rep_id=rep_id, call_id=call_id,
            caller_room=caller_room, consult_room=consult_room, brief=brief, offered_at=now,
            decide_by=now + timedelta(seconds=decide_s), state="ringing", answered_at=None,
            detail=None, ended_at=None, notes=None, disposition=None, noted_at=None,
        )  # fmt: skip
        with self._store.transaction() as tx:
            tx.run(
                f"INSERT INTO console_offers ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                _row(offer),
            )
        return offer

    def close(self, offer_id: str, state: OfferState, detail: str | None = None) -> bool:
        """The desk ends a ringing offer (time ran out, caller gone); False if it had an
        answer already."""
        with self._store.transaction() as tx:
            return bool(
                tx.run(
                    "UPDATE console_offers SET state = ?, detail = ?, answered_at = ? "
                    "WHERE id = ? AND state = 'ringing'",
                    (state, detail, self._now().isoformat(), offer_id),
                )
            )

    def end_call(self, offer_id: str) -> None:
        with self._store.transaction() as tx:
            tx.run(
                "UPDATE console_offers SET ended_at = ? WHERE id = ? AND state = 'accepted' "
                "AND ended_at IS NULL",
                (self._now().isoformat(), offer_id),
            )

    # --- the rep's side ---------------------------------------------------------------------

    def get(self, offer_id: str) -> Offer | None:
        with self._store.transaction() as tx:
            rows = tx.rows(f"SELECT {_COLUMNS} FROM console_offers WHERE id = ?", (offer_id,))
        return _offer(rows[0]) if rows else None

    def answer(self, offer_id: str, *, rep_id: str, accept: bool) -> Offer:
        """The rep's answer, taken only while the offer rings and its time has not run out."""
        now = self._now()
        state = "accepted" if accept else "declined"
        detail = None if accept else "passed on the call"
        with self._store.transaction() as tx:
            taken = tx.run(
                "UPDATE console_offers SET state = ?, detail = ?, answered_at = ? "
                "WHERE id = ? AND rep_id = ? AND state = 'ringing' AND decide_by >= ?",
                (state, detail, now.isoformat(), offer_id, rep_id, now.isoformat()),
            )
        offer = self.get(offer_id)
        if offer is None or offer.rep_id != rep_id:
            raise OfferClosed("no such offer")
        if not taken:
            raise OfferClosed(_why_closed(offer, now))
        return offer

    def note(self, offer_id: str, *, rep_id: str, notes: str, disposition: str) -> Offer:
        with self._store.transaction() as tx:
            changed = tx.run(
                "UPDATE console_offers SET notes = ?, disposition = ?, noted_at = ? "
                "WHERE id = ? AND rep_id = ? AND state = 'accepted' AND noted_at IS NULL",
                (notes, disposition, self._now().isoformat(), offer_id, rep_id),
            )
        offer = self.get(offer_id)
        if offer is None or offer.rep_id != rep_id or offer.state != "accepted":
            raise OfferClosed("notes go on a call you took")
        if not changed:
            raise OfferClosed("the notes for this call are already saved")
        return offer

    def current(self, rep_id: str) -> Offer | None:
        """What the console shows: the offer ringing, else the call in progress, else None."""
        with self._store.transaction() as tx:
            rows = tx.rows(
                f"SELECT {_COLUMNS} FROM console_offers WHERE rep_id = ? AND "
                "((state = 'ringing' AND decide_by >= ?) OR "
                "(state = 'accepted' AND ended_at IS NULL)) ORDER BY offered_at DESC LIMIT 1",
                (rep_id, self._now().isoformat()),
            )
        return _offer(rows[0]) if rows else None

    def since(self, rep_id: str, since: datetime) -> list[Offer]:
        with self._store.transaction() as tx:
            rows = tx.rows(
                f"SELECT {_COLUMNS} FROM console_offers WHERE rep_id = ? AND offered_at >= ? "
                "ORDER BY offered_at DESC",
                (rep_id, since.astimezone(UTC).isoformat()),
            )
        return [_offer(row) for row in rows]

    def may_join(self, rep_id: str, room: str) -> Offer | None:
        """The offer that lets this rep into ``room``: the consult room while it rings, the
        caller's room once they accepted and until the call ends. None: not theirs."""
        current = self.current(rep_id)
        if current is None:
            return None
        if current.state == "ringing" and room == current.consult_room:
            return current
        if current.in_call and room == current.caller_room:
            return current
        return None


def _why_closed(offer: Offer, now: datetime) -> str:
    if offer.state == "ringing" and offer.decide_by < now:
        return "the time to answer ran out"
    return {
        "accepted": "you already took this call",
        "declined": "you already passed on this call",
        "no_answer": "the time to answer ran out; the call went to someone else",
        "caller_hung_up": "the caller hung up while on hold",
    }.get(offer.state, "this call is no longer offered")


def _row(offer: Offer) -> tuple[Any, ...]:
    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at else None

    return (
        offer.id, offer.rep_id, offer.call_id, offer.caller_room, offer.consult_room,
        json.dumps(offer.brief), iso(offer.offered_at), iso(offer.decide_by), offer.state,
        iso(offer.answered_at), offer.detail, iso(offer.ended_at), offer.notes,
        offer.disposition, iso(offer.noted_at),
    )  # fmt: skip


def _offer(row: tuple[Any, ...]) -> Offer:
    def at(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    (oid, rep_id, call_id, caller_room, consult_room, brief, offered_at, decide_by, state,
     answered_at, detail, ended_at, notes, disposition, noted_at) = row  # fmt: skip
    return Offer(
        id=oid, rep_id=rep_id, call_id=call_id, caller_room=caller_room,
        consult_room=consult_room, brief=json.loads(brief),
        offered_at=datetime.fromisoformat(offered_at), decide_by=datetime.fromisoformat(decide_by),
        state=state, answered_at=at(answered_at), detail=detail, ended_at=at(ended_at),
        notes=notes, disposition=disposition, noted_at=at(noted_at),
    )  # fmt: skip
