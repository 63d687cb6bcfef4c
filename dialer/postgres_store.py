"""The queue in PostgreSQL, shared by any number of lead API and dialer replicas."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from dialer.sql.engine import Tx
from dialer.sql.schema import SCHEMA
from dialer.sql_store import SqlStore

_SCHEMA_LOCK = 7_246_001  # pg_advisory_xact_lock key: one replica creates the schema at a time
_PHONE_LOCK_SPACE = 7_246_002


class _PostgresTx:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(_placeholders(sql), params).rowcount

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(_placeholders(sql), params).fetchall()


class PostgresStore(SqlStore):
    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"
    for_share = " FOR SHARE"

    def __init__(self, url: str, *, max_connections: int = 10) -> None:
        self._pool = ConnectionPool(
            url, min_size=1, max_size=max_connections, open=True, timeout=10.0,
            kwargs={"autocommit": True, "connect_timeout": 10},
        )  # fmt: skip
        self.create_schema()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._pool.connection() as conn, conn.transaction():
            yield _PostgresTx(conn)

    def create_schema(self) -> None:
        with self.transaction() as tx:
            tx.rows("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            for statement in SCHEMA:
                tx.run(statement)

    def lock_claims(self, tx: Tx) -> None:
        tx.rows("SELECT id FROM dialer_claim_lock WHERE id = 1 FOR UPDATE")

    def lock_phone(self, tx: Tx, phone: str) -> None:
        tx.rows("SELECT pg_advisory_xact_lock(?, hashtext(?))", (_PHONE_LOCK_SPACE, phone))

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)

    def close(self) -> None:
        self._pool.close()


def _placeholders(sql: str) -> str:
    """Our statements use ``?``; psycopg wants ``%s``. They contain no literal ``?`` or ``%``."""
    return sql.replace("?", "%s")
