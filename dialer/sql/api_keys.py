"""The lead API's keys: only their hashes are stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dialer.codec import opt_ts, parse_ts, required_ts, ts
from dialer.sql.engine import SqlEngine
from dialer.store import ApiKey

_KEY_COLUMNS = "id, name, token_hash, created_at, revoked_at"


class ApiKeyRows(SqlEngine):
    def add_key(self, key: ApiKey) -> None:
        with self.transaction() as tx:
            tx.run(
                f"INSERT INTO dialer_api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (key.id, key.name, key.token_hash, ts(key.created_at), opt_ts(key.revoked_at)),
            )

    def key(self, key_id: str) -> ApiKey | None:
        with self.transaction() as tx:
            rows = tx.rows(f"SELECT {_KEY_COLUMNS} FROM dialer_api_keys WHERE id = ?", (key_id,))
        return _key(rows[0]) if rows else None

    def keys(self) -> list[ApiKey]:
        with self.transaction() as tx:
            rows = tx.rows(f"SELECT {_KEY_COLUMNS} FROM dialer_api_keys ORDER BY created_at, name")
        return [_key(row) for row in rows]

    def revoke_key(self, name_or_id: str, *, now: datetime) -> bool:
        with self.transaction() as tx:
            return bool(
                tx.run(
                    "UPDATE dialer_api_keys SET revoked_at = ? "
                    "WHERE (name = ? OR id = ?) AND revoked_at IS NULL",
                    (ts(now), name_or_id, name_or_id),
                )
            )


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, name, token_hash, created, revoked = row
    return ApiKey(key_id, name, token_hash, required_ts(created), parse_ts(revoked))
