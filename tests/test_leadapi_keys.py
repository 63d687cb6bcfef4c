"""API keys: stored hashed, verified in constant time, managed with `python -m leadapi keys`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import config
from dialer.sqlite_store import SqliteStore
from leadapi.keys import KeyRing, token_hash
from tests.conftest import Clock
from tests.leadapi_support import make_app, serving

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in config.variable_names()}
    env["DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-m", "leadapi", "keys", *args], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_only_the_hash_is_stored_and_only_the_exact_token_verifies(
    tmp_path: Path, clock: Clock
) -> None:
    store = SqliteStore(tmp_path / "dialer.sqlite3")
    ring = KeyRing(store, now=clock)
    created = ring.create("website")
    (stored,) = store.keys()
    assert stored.token_hash == token_hash(created.token) != created.token
    assert created.token not in (tmp_path / "dialer.sqlite3").read_bytes().decode(errors="ignore")
    assert ring.verify(created.token) == stored
    for wrong in (created.token[:-1], created.token + "x", "sva_nope_x", "", "Bearer x"):
        assert ring.verify(wrong) is None
    store.close()


def test_the_cli_creates_lists_and_revokes_keys_the_api_honours(
    tmp_path: Path, clock: Clock
) -> None:
    created = cli(tmp_path, "create", "website")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("sva_") and "shown once" in created.stderr
    assert cli(tmp_path, "create", "website").returncode == 1  # names are unique
    listed = cli(tmp_path, "list").stdout
    assert "website" in listed and "live" in listed and token not in listed

    store = SqliteStore(tmp_path / "data" / "dialer.sqlite3")
    app, _ = make_app(store, clock)
    with serving(app) as base:
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/v1/dnc", headers=headers).status_code == 200
        revoked = cli(tmp_path, "revoke", "website")
        assert revoked.returncode == 0, revoked.stderr
        assert httpx.get(f"{base}/v1/dnc", headers=headers).status_code == 401
    assert cli(tmp_path, "revoke", "website").returncode == 1
    assert "revoked" in cli(tmp_path, "list").stdout
    store.close()
