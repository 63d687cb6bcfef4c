"""The queue in PostgreSQL, shared by any number of lead API and dialer replicas."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from dialer.sql.engine import Tx
from dialer.sql.schema import SCHEMA
from dialer.sql_store import SqlStore
from dialer.wake import Wakes, never

logger = logging.getLogger("dialer.postgres")

_SCHEMA_LOCK = 7_246_001  # pg_advisory_xact_lock key: one replica creates the schema at a time
_PHONE_LOCK_SPACE = 7_246_002
_WAKE_CHANNEL = "dialer_due"


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
        self._url = url
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

    def wake_dialer(self) -> None:
        """NOTIFY every dialer LISTENing, on any host (see dialer.wake)."""
        try:
            with self._pool.connection(timeout=1.0) as conn:
                conn.execute(f"NOTIFY {_WAKE_CHANNEL}")
        except psycopg.Error as exc:  # PoolTimeout too: the dialers poll anyway
            logger.warning("could not wake the dialers: %s", exc)

    def dialer_wakes(self) -> AbstractAsyncContextManager[Wakes]:
        return _listening(self._url)

    def close(self) -> None:
        self._pool.close()


class _PgWakes:
    """LISTEN on a connection of its own, reopened after a failure (polling meanwhile)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def next_wake(self) -> None:
        try:
            conn = await self.listening()
            async for _ in conn.notifies(stop_after=1):
                pass
            async for _ in conn.notifies(timeout=0):  # a burst of leads is one wake
                pass
        except psycopg.Error as exc:
            logger.warning("no wakes from PostgreSQL (%s); polling", exc)
            await self.aclose()
            await never()  # until the poll; the next wait connects again

    async def listening(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=5
            )
            await self._conn.execute(f"LISTEN {_WAKE_CHANNEL}")
        return self._conn

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


@asynccontextmanager
async def _listening(url: str) -> AsyncIterator[Wakes]:
    wakes = _PgWakes(url)
    try:
        try:  # LISTEN now, so a lead queued before the first wait still wakes it
            await wakes.listening()
        except psycopg.Error as exc:
            logger.warning("no wakes from PostgreSQL yet (%s); polling", exc)
        yield wakes
    finally:
        await wakes.aclose()


def _placeholders(sql: str) -> str:
    """Our statements use ``?``; psycopg wants ``%s``. They contain no literal ``?`` or ``%``."""
    return sql.replace("?", "%s")
