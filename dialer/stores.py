"""Open the queue the settings name: PostgreSQL when DATABASE_URL is set, else SQLite."""

from __future__ import annotations

from pathlib import Path

from config import QueueSettings
from dialer.sql_store import SqlStore

SQLITE_FILE = "dialer.sqlite3"


def open_store(queue: QueueSettings, *, data_dir: Path) -> SqlStore:
    if queue.database_url is not None:
        from dialer.postgres_store import PostgresStore

        return PostgresStore(queue.database_url.get_secret_value())
    from dialer.sqlite_store import SqliteStore

    return SqliteStore(data_dir / SQLITE_FILE)
