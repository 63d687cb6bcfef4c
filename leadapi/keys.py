"""API keys: random bearer tokens, stored only as their SHA-256, compared in constant time.

A token reads ``sva_<key id>_<secret>``: the id finds the row, the hash proves the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from dialer.store import ApiKey, ApiKeys

PREFIX = "sva"


def random_token_parts() -> tuple[str, str]:
    return secrets.token_hex(6), secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    token: str  # shown once, never stored


class KeyRing:
    def __init__(
        self,
        store: ApiKeys,
        *,
        now: Callable[[], datetime],
        new_parts: Callable[[], tuple[str, str]] = random_token_parts,
    ) -> None:
        self._store = store
        self._now = now
        self._new_parts = new_parts

    def create(self, name: str) -> CreatedKey:
        key_id, secret = self._new_parts()
        token = f"{PREFIX}_{key_id}_{secret}"
        key = ApiKey(id=key_id, name=name, token_hash=token_hash(token), created_at=self._now())
        self._store.add_key(key)
        return CreatedKey(key=key, token=token)

    def revoke(self, name_or_id: str) -> bool:
        return self._store.revoke_key(name_or_id, now=self._now())

    def list(self) -> list[ApiKey]:
        return self._store.keys()

    def verify(self, token: str) -> ApiKey | None:
        """The live key ``token`` belongs to, or None."""
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != PREFIX or not key_id or not secret:
            return None
        key = self._store.key(key_id)
        # Hash even when the id is unknown, so timing does not tell which ids exist.
        expected = key.token_hash if key is not None else token_hash("")
        if not hmac.compare_digest(expected, token_hash(token)):
            return None
        return key if key is not None and key.revoked_at is None else None
