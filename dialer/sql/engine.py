"""What the statements need from an engine: a transaction, and how claims, admissions and
read-then-write rows are serialised. ``SqliteStore`` and ``PostgresStore`` supply it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Protocol

from dialer.sql.schema import SCHEMA
from dialer.wake import Wakes


class Tx(Protocol):
    """A transaction as the statements see it; SQL uses ``?`` placeholders on both engines."""

    def run(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class SqlEngine(ABC):
    skip_locked = ""  # the suffix that takes due rows without waiting on locked ones
    for_update = ""  # row lock for a read-then-write (PostgreSQL; SQLite holds the db lock)
    for_share = ""  # a lock that keeps a row from changing while others may read it too

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

    @abstractmethod
    def wake_dialer(self) -> None:
        """A call is due now: wake the dialers (a hint; never raises). See dialer.wake."""

    @abstractmethod
    def dialer_wakes(self) -> AbstractAsyncContextManager[Wakes]:
        """What a dialer waits on between passes."""

    def create_schema(self) -> None:
        with self.transaction() as tx:
            for statement in SCHEMA:
                tx.run(statement)
