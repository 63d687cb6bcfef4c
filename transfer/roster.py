"""The sales reps who take hot leads live: who they are, when they work, and whether they can
take a call right now.

The roster lives in the dialer's store (SQLite in the data directory by default, PostgreSQL
when ``DATABASE_URL`` is set), so the worker, the API service and the CLI see one roster.
Presence is set by the rep (available, away, offline) and by the calls themselves: a rep who
takes a transfer is ``on_call`` until it ends, then available again, and the rep idle
longest is offered the next call.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, Literal, Protocol, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from integrations.phone import InvalidPhoneNumber, normalise_phone

Presence = Literal["available", "on_call", "away", "offline"]
PRESENCES: tuple[str, ...] = get_args(Presence)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS transfer_reps (
        id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL, phone TEXT,
        territories TEXT NOT NULL, segments TEXT NOT NULL, hours TEXT,
        presence TEXT NOT NULL, presence_at TEXT NOT NULL, last_call_ended_at TEXT,
        created_at TEXT NOT NULL)""",
)
_COLUMNS = (
    "id, email, name, phone, territories, segments, hours, presence, presence_at, "
    "last_call_ended_at, created_at"
)


class Tx(Protocol):
    def run(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class Store(Protocol):
    """The dialer's store as the roster uses it: transactions with ``?`` placeholders."""

    def transaction(self) -> AbstractContextManager[Tx]: ...

    def is_unique_violation(self, exc: BaseException) -> bool: ...


class RosterError(ValueError):
    """A rep that cannot be added or changed as asked; the message says why."""


class UnknownRep(RosterError):
    pass


@dataclass(frozen=True)
class WorkingHours:
    """When a rep takes calls: days of the week and a daily window, in the rep's zone."""

    days: tuple[str, ...]
    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str) -> WorkingHours:
        """``"mon-fri 09:00-17:30 America/New_York"`` (days as a range or comma list)."""
        parts = text.split()
        if len(parts) != 3:
            raise RosterError(f"working hours {text!r}: want 'mon-fri 09:00-17:30 Area/City'")
        days_text, window, zone_name = parts
        days = _parse_days(days_text)
        try:
            start_text, end_text = window.split("-")
            start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
        except ValueError:
            raise RosterError(f"working hours {text!r}: the window must be HH:MM-HH:MM") from None
        if end <= start:
            raise RosterError(f"working hours {text!r}: the window ends before it starts")
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise RosterError(f"working hours {text!r}: unknown time zone {zone_name!r}") from None
        return cls(days=days, start=start, end=end, zone=zone)

    def __str__(self) -> str:
        return f"{','.join(self.days)} {self.start:%H:%M}-{self.end:%H:%M} {self.zone.key}"

    def covers(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        return DAYS[local.weekday()] in self.days and self.start <= local.time() < self.end


def _parse_days(text: str) -> tuple[str, ...]:
    days: list[str] = []
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise RosterError(f"days {text!r}: use mon..sun, as a range (mon-fri) or a list")
        if not last:
            days.append(first)
            continue
        i, j = DAYS.index(first), DAYS.index(last)
        days += DAYS[i : j + 1] if i <= j else DAYS[i:] + DAYS[: j + 1]
    return tuple(dict.fromkeys(days))


@dataclass(frozen=True)
class Rep:
    id: str
    email: str
    name: str
    phone: str | None  # E.164; a rep with a phone can be reached by phone as well as the console
    territories: tuple[str, ...]
    segments: tuple[str, ...]
    hours: WorkingHours | None  # None: whenever they are signed in and available
    presence: Presence
    presence_at: datetime
    last_call_ended_at: datetime | None
    created_at: datetime

    @property
    def idle_since(self) -> datetime:
        """Since when the rep has had no call: the idle-longest rep is offered the next one."""
        return self.last_call_ended_at or self.created_at

    def can_take_calls(self, now: datetime) -> bool:
        return self.presence == "available" and (self.hours is None or self.hours.covers(now))


class Roster:
    def __init__(self, store: Store, *, now: Callable[[], datetime] | None = None) -> None:
        self._store = store
        self._now = now or (lambda: datetime.now(UTC))
        with store.transaction() as tx:
            for statement in SCHEMA:
                tx.run(statement)

    def add(
        self,
        *,
        name: str,
        email: str,
        phone: str | None = None,
        territories: Sequence[str] = (),
        segments: Sequence[str] = (),
        hours: str | None = None,
        default_region: str = "US",
    ) -> Rep:
        """A new rep, offline until they sign in and switch to available."""
        name, email = name.strip(), email.strip().lower()
        if not name:
            raise RosterError("a rep needs a name")
        if "@" not in email or email.startswith("@") or email.endswith("@"):
            raise RosterError(f"{email!r} is not an email address")
        e164 = None
        if phone:
            try:
                e164 = normalise_phone(phone, default_region=default_region)
            except InvalidPhoneNumber as exc:
                raise RosterError(f"phone {phone!r}: {exc}") from None
        parsed_hours = WorkingHours.parse(hours) if hours else None
        now = self._now()
        rep = Rep(
            id=f"rep_{secrets.token_hex(6)}",
            email=email,
            name=name,
            phone=e164,
            territories=_tags(territories),
            segments=_tags(segments),
            hours=parsed_hours,
            presence="offline",
            presence_at=now,
            last_call_ended_at=None,
            created_at=now,
        )
        try:
            with self._store.transaction() as tx:
                tx.run(
                    f"INSERT INTO transfer_reps ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    _row(rep),
                )
        except Exception as exc:
            if self._store.is_unique_violation(exc):
                raise RosterError(f"a rep with email {email} already exists") from None
            raise
        return rep

    def remove(self, rep_id: str) -> None:
        with self._store.transaction() as tx:
            if not tx.run("DELETE FROM transfer_reps WHERE id = ?", (rep_id,)):
                raise UnknownRep(f"no rep {rep_id}")

    def get(self, rep_id: str) -> Rep:
        with self._store.transaction() as tx:
            rows = tx.rows(f"SELECT {_COLUMNS} FROM transfer_reps WHERE id = ?", (rep_id,))
        if not rows:
            raise UnknownRep(f"no rep {rep_id}")
        return _rep(rows[0])

    def find(self, key: str) -> Rep:
        """A rep by id or email."""
        with self._store.transaction() as tx:
            rows = tx.rows(
                f"SELECT {_COLUMNS} FROM transfer_reps WHERE id = ? OR email = ?",
                (key, key.strip().lower()),
            )
        if not rows:
            raise UnknownRep(f"no rep {key}")
        return _rep(rows[0])

    def all(self) -> list[Rep]:
        with self._store.transaction() as tx:
            rows = tx.rows(f"SELECT {_COLUMNS} FROM transfer_reps ORDER BY name, email")
        return [_rep(row) for row in rows]

    def set_presence(self, rep_id: str, presence: str) -> Rep:
        """What the rep chose in the console (or an admin for them)."""
        if presence not in PRESENCES:
            raise RosterError(f"presence {presence!r}: one of {', '.join(PRESENCES)}")
        with self._store.transaction() as tx:
            changed = tx.run(
                "UPDATE transfer_reps SET presence = ?, presence_at = ? WHERE id = ?",
                (presence, self._now().isoformat(), rep_id),
            )
        if not changed:
            raise UnknownRep(f"no rep {rep_id}")
        return self.get(rep_id)

    def reserve(self, rep_id: str) -> bool:
        """Take an available rep for a call (``on_call``); False if someone else got them
        first or they are no longer available. One call offers a rep at a time."""
        with self._store.transaction() as tx:
            taken = tx.run(
                "UPDATE transfer_reps SET presence = 'on_call', presence_at = ? "
                "WHERE id = ? AND presence = 'available'",
                (self._now().isoformat(), rep_id),
            )
        return bool(taken)

    def release(self, rep_id: str, *, took_call: bool) -> None:
        """The offer or the call is over: the rep is available again (unless they went away
        or offline meanwhile); a call they took restarts their idle time."""
        now = self._now().isoformat()
        with self._store.transaction() as tx:
            tx.run(
                "UPDATE transfer_reps SET presence = 'available', presence_at = ? "
                "WHERE id = ? AND presence = 'on_call'",
                (now, rep_id),
            )
            if took_call:
                tx.run(
                    "UPDATE transfer_reps SET last_call_ended_at = ? WHERE id = ?", (now, rep_id)
                )


def _tags(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip().lower() for v in values if v.strip()))


def _row(rep: Rep) -> tuple[Any, ...]:
    return (
        rep.id, rep.email, rep.name, rep.phone, json.dumps(list(rep.territories)),
        json.dumps(list(rep.segments)), str(rep.hours) if rep.hours else None, rep.presence,
        rep.presence_at.isoformat(),
        rep.last_call_ended_at.isoformat() if rep.last_call_ended_at else None,
        rep.created_at.isoformat(),
    )  # fmt: skip


def _rep(row: Sequence[Any]) -> Rep:
    (rep_id, email, name, phone, territories, segments, hours, presence, presence_at,
     ended_at, created_at) = row  # fmt: skip
    return Rep(
        id=rep_id,
        email=email,
        name=name,
        phone=phone,
        territories=tuple(json.loads(territories)),
        segments=tuple(json.loads(segments)),
        hours=WorkingHours.parse(hours) if hours else None,
        presence=presence,
        presence_at=datetime.fromisoformat(presence_at),
        last_call_ended_at=datetime.fromisoformat(ended_at) if ended_at else None,
        created_at=datetime.fromisoformat(created_at),
    )


def iter_available(reps: Sequence[Rep], now: datetime) -> Iterator[Rep]:
    """Reps who can take a call now, idle longest first."""
    yield from sorted((r for r in reps if r.can_take_calls(now)), key=lambda r: r.idle_since)
