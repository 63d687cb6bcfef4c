"""Rate limits per API key on the lead API: a burst, then 429 with Retry-After, per key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dialer.sql_store import SqlStore
from dialer.sqlite_store import SqliteStore
from leadapi.rate_limits import RateLimiter
from tests.conftest import Clock, Seconds
from tests.leadapi_support import make_app, serving

pytestmark = pytest.mark.integration


def test_a_bucket_allows_its_burst_then_refills_at_the_sustained_rate() -> None:
    clock = Seconds()
    limiter = RateLimiter(per_minute=30, burst=3, monotonic=clock)  # one request per 2 s

    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == pytest.approx(2.0)
    assert limiter.take("b") is None  # another key has its own bucket
    clock.value += 1.0
    assert limiter.take("a") == pytest.approx(1.0)
    clock.value += 1.0
    assert limiter.take("a") is None
    assert RateLimiter(per_minute=0, burst=1).take("a") is None  # 0: no limit


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqliteStore(tmp_path / "dialer.sqlite3")
    yield opened
    opened.close()


LEAD = {"phone": "+12125550100", "consent": {"given": True, "wording": "ok"}}


def test_past_its_limit_a_key_gets_429_with_retry_after_and_nothing_is_stored(
    store: SqlStore, clock: Clock
) -> None:
    ticks = Seconds()
    limiter = RateLimiter(per_minute=60, burst=2, monotonic=ticks)
    app, keys = make_app(store, clock, limiter=limiter)
    first, second = keys.create("website").token, keys.create("crm-sync").token
    with serving(app) as base:
        one = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {first}"})
        other = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {second}"})
        allowed = [one.get("/v1/dnc").status_code for _ in range(2)]
        refused = one.post("/v1/leads", json=LEAD)
        neighbour = other.get("/v1/dnc")
        anonymous = httpx.get(f"{base}/v1/dnc")
        health = [httpx.get(f"{base}/health").status_code for _ in range(5)]
        ticks.value += 1.0
        later = one.post("/v1/leads", json=LEAD)

    assert allowed == [200, 200]
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json()["detail"]["reason"] == "rate_limited"
    assert "retry after 1 s" in refused.json()["detail"]["message"]
    assert neighbour.status_code == 200
    assert anonymous.status_code == 401  # no key: refused before any bucket is spent
    assert health == [200] * 5
    assert later.status_code == 202  # the refused lead was never queued: this one is new
    assert later.json()["duplicate"] is False
