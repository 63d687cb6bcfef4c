"""A store opened while another process holds the write lock waits for it instead of failing:
SQLite refuses the switch to WAL at once there, whatever the busy timeout."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from integrations.sqlite_wal import enable_wal

pytestmark = pytest.mark.unit


def held_for(path: Path, seconds: float) -> threading.Event:
    """Another connection holds the write lock on a fresh rollback-journal file for a while."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE first (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO first VALUES (1)")
    released = threading.Event()

    def release() -> None:
        other.execute("COMMIT")
        other.close()
        released.set()

    threading.Timer(seconds, release).start()
    return released


def test_the_switch_to_wal_waits_for_a_writer_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    released = held_for(path, 0.3)
    db = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    enable_wal(db, timeout_s=5, schema="CREATE TABLE IF NOT EXISTS second (y);")
    assert released.is_set()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM first").fetchone()[0] == 1
    db.execute("INSERT INTO second VALUES (2)")


def test_without_the_retry_sqlite_refuses_at_once(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    released = held_for(path, 3.0)
    db = sqlite3.connect(path, isolation_level=None, timeout=2.0)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        db.execute("PRAGMA journal_mode=WAL")
    assert time.monotonic() - started < 1.0  # not the 2 s busy timeout
    released.wait(5)


def test_a_writer_held_past_the_timeout_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    released = held_for(path, 1.0)
    db = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(db, timeout_s=0.2)
    released.wait(5)
