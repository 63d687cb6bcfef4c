"""The queue in an embedded SQLite file: one host, any number of processes (WAL; every
transaction takes the write lock first, so claims are serialised across processes)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path
from typing import Any

from dialer.sql.engine import Tx
from dialer.sql_store import SqlStore
from dialer.wake import Wakes, send_wake, udp_wakes, wake_file
from integrations.sqlite_wal import enable_wal

BUSY_TIMEOUT_MS = 10_000


class _SqliteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, params).rowcount

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()


class SqliteStore(SqlStore):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        enable_wal(self._db, timeout_s=BUSY_TIMEOUT_MS / 1000)
        self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._lock = threading.RLock()  # one connection, shared by the API's worker threads
        self.create_schema()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the single writer, from the first statement
            try:
                yield _SqliteTx(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def lock_claims(self, tx: Tx) -> None:
        """BEGIN IMMEDIATE already holds the database's write lock."""

    def lock_phone(self, tx: Tx, phone: str) -> None:
        """BEGIN IMMEDIATE already holds the database's write lock."""

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def wake_dialer(self) -> None:
        send_wake(wake_file(self.path))

    def dialer_wakes(self) -> AbstractAsyncContextManager[Wakes]:
        return udp_wakes(wake_file(self.path))

    def close(self) -> None:
        with self._lock:
            self._db.close()
