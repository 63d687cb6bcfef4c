"""Builders and fakes the dialer and lead API tests share."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dialer.dispatch import DispatchError, DispatchRequest
from dialer.hours import CallingHours
from dialer.model import Call, Consent, Lead
from dialer.pace import Pace
from dialer.policy import DialPolicy
from dialer.retry import RetryPolicy
from dialer.sql_store import SqlStore
from dialer.sqlite_store import SqliteStore

# Monday 23 November 2026, 10:00 in New York.
MONDAY_10_NY = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
_ids = itertools.count(1)


def make_policy(**changes: object) -> DialPolicy:
    values: dict[str, object] = {
        "hours": CallingHours(),
        "retry": RetryPolicy(max_attempts=3, busy=(10,), no_answer=(60,), failed=(15,)),
        "max_concurrent": 5,
        "pace": Pace(100.0),
        "ring_timeout": timedelta(seconds=45),
        "max_call": timedelta(minutes=15),
        "business_zone": "America/New_York",
    }
    values.update(changes)
    return DialPolicy(**values)  # type: ignore[arg-type]


def make_call(
    *,
    phone: str = "+12125550100",
    now: datetime = MONDAY_10_NY,
    campaign: str | None = None,
    next_at: datetime | None = None,
    call_id: str | None = None,
) -> Call:
    return Call(
        id=call_id or f"call_{next(_ids):04d}",
        lead=Lead(
            phone=phone,
            name="Ada Lovelace",
            email="ada@example.com",
            company="Engines",
            source="web",
            fields={"plan": "pro"},
            consent=Consent(given=True, wording="You may call me", time=now, source="form"),
        ),
        zone="America/New_York",
        campaign=campaign,
        status="queued",
        created_at=now,
        updated_at=now,
        next_at=next_at or now,
    )


ENGINES = ["sqlite", "postgres"]


def engine_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """The body of a ``store`` fixture parametrised over ENGINES: the store on that engine
    (PostgreSQL in a fresh database of the session's cluster), closed after the test."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    opened = open_test_store(request.param, tmp_path, url)
    yield opened
    opened.close()


def open_test_store(kind: str, tmp_path: Path, postgres_url: str | None) -> SqlStore:
    if kind == "sqlite":
        return SqliteStore(tmp_path / "dialer.sqlite3")
    from dialer.postgres_store import PostgresStore

    assert postgres_url is not None
    return PostgresStore(postgres_url)


@dataclass
class RecordingDispatcher:
    """Stands in for LiveKit: records each dispatch; rooms stay live until ended."""

    requests: list[DispatchRequest] = field(default_factory=list)
    live: set[str] = field(default_factory=set)
    fail_with: str | None = None
    unreachable: bool = False
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def dispatch(self, request: DispatchRequest) -> str:
        if self.fail_with:
            raise DispatchError(self.fail_with)
        self.requests.append(request)
        self.live.add(request.room)
        return f"AD_{next(self._ids)}"

    async def is_live(self, room: str) -> bool:
        if self.unreachable:
            raise DispatchError("LiveKit unreachable")
        return room in self.live
