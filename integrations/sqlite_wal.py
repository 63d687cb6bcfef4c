"""Opening a SQLite file that several processes share, in WAL mode.

Switching a database to WAL takes an exclusive lock, and when another process holds the write
lock at that moment (two job processes opening a fresh store together, one of them creating
its tables) SQLite answers "database is locked" at once, without waiting out the busy timeout:
waiting there could deadlock. Giving up the attempt and trying again cannot, so the switch and
the schema are retried until the timeout."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

RETRY_EVERY_S = 0.02


def enable_wal(db: sqlite3.Connection, *, timeout_s: float, schema: str = "") -> None:
    """WAL mode, then ``schema`` (a script of idempotent statements), retried while another
    connection holds the lock, for up to ``timeout_s``."""
    _retry_locked(lambda: db.execute("PRAGMA journal_mode=WAL"), timeout_s)
    if schema:
        _retry_locked(lambda: db.executescript(schema), timeout_s)


def _retry_locked(step: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(RETRY_EVERY_S)
