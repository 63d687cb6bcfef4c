"""The lead API wakes the dialer when it queues a call due now, on both engines (a loopback
datagram beside the SQLite file; LISTEN / NOTIFY on PostgreSQL), and the dialer's pause
between passes ends at a wake, at its poll, or at a stop."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from dialer.model import Campaign
from dialer.service import until_woken
from dialer.sql_store import SqlStore
from dialer.wake import NoWakes, Wakes, send_wake, wake_file
from tests.dialer_support import ENGINES, MONDAY_10_NY, make_call, open_test_store
from tests.pg_cluster import postgres_url  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

SILENT_S = 0.3  # long enough for a datagram or a notification on loopback to arrive


@pytest.fixture(params=ENGINES)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SqlStore, SqlStore]]:
    """The dialer's store and the lead API's, two connections to one queue."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    dialer = open_test_store(request.param, tmp_path, url)
    api = open_test_store(request.param, tmp_path, url)
    yield dialer, api
    api.close()
    dialer.close()


async def woken(wakes: Wakes, within_s: float = 5.0) -> bool:
    try:
        await asyncio.wait_for(wakes.next_wake(), within_s)
    except TimeoutError:
        return False
    return True


async def test_a_lead_due_now_wakes_the_dialer_and_a_scheduled_one_does_not(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    dialer, api = stores
    async with dialer.dialer_wakes() as wakes:
        later = make_call(phone="+12125550101", next_at=MONDAY_10_NY + timedelta(days=1))
        api.admit(dataclasses.replace(later, status="scheduled"), idempotency=None,
                  dedupe_since=None)  # fmt: skip
        assert not await woken(wakes, SILENT_S)
        started = time.monotonic()
        api.admit(make_call(phone="+12125550102"), idempotency=None, dedupe_since=None)
        assert await woken(wakes)
        assert time.monotonic() - started < 1.0
        # A duplicate of a queued number queues nothing, so it wakes no one.
        api.admit(make_call(phone="+12125550102"), idempotency=None,
                  dedupe_since=MONDAY_10_NY - timedelta(hours=1))  # fmt: skip
        assert not await woken(wakes, SILENT_S)


async def test_a_burst_of_leads_is_one_wake_and_one_before_the_wait_still_counts(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    dialer, api = stores
    async with dialer.dialer_wakes() as wakes:
        for n in range(5):  # all before anyone waits: the dialer is busy with a pass
            api.admit(make_call(phone=f"+1212555020{n}"), idempotency=None, dedupe_since=None)
        await asyncio.sleep(SILENT_S)
        assert await woken(wakes, SILENT_S)
        assert not await woken(wakes, SILENT_S)


async def test_resuming_a_campaign_wakes_the_dialer(stores: tuple[SqlStore, SqlStore]) -> None:
    dialer, api = stores
    api.create_campaign(Campaign(name="spring"))
    async with dialer.dialer_wakes() as wakes:
        api.pause_campaign("spring", now=MONDAY_10_NY)
        assert not await woken(wakes, SILENT_S)
        api.resume_campaign("spring", now=MONDAY_10_NY)
        assert await woken(wakes)


async def test_with_no_dialer_listening_a_wake_is_nothing(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    _dialer, api = stores
    api.wake_dialer()  # no dialer: no error, and the lead is queued as ever
    admitted = api.admit(make_call(phone="+12125550301"), idempotency=None, dedupe_since=None)
    assert admitted.outcome == "created"


def test_a_stale_or_garbled_port_file_is_ignored(tmp_path: Path) -> None:
    port_file = wake_file(tmp_path / "dialer.sqlite3")
    send_wake(port_file)  # missing
    port_file.write_text("not a port")
    send_wake(port_file)
    port_file.write_text("9")  # nobody listens there
    send_wake(port_file)


async def test_the_sqlite_dialer_unpublishes_its_port_when_it_stops(tmp_path: Path) -> None:
    store = open_test_store("sqlite", tmp_path, None)
    try:
        port_file = wake_file(tmp_path / "dialer.sqlite3")
        async with store.dialer_wakes():
            assert int(port_file.read_text()) > 0
        assert not port_file.exists()
    finally:
        store.close()


class _WakeAfter:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    async def next_wake(self) -> None:
        await asyncio.sleep(self.delay_s)


@pytest.mark.parametrize(
    ("wakes", "stop_after_s", "expected_s"),
    [
        (_WakeAfter(0.05), None, 0.05),  # a wake ends the pause
        (NoWakes(), None, 0.4),  # none: the poll does
        (NoWakes(), 0.05, 0.05),  # a stop does
    ],
)
async def test_the_pause_between_passes_ends_at_a_wake_the_poll_or_a_stop(
    wakes: Wakes, stop_after_s: float | None, expected_s: float
) -> None:
    stop = asyncio.Event()
    if stop_after_s is not None:
        asyncio.get_running_loop().call_later(stop_after_s, stop.set)
    started = time.monotonic()
    await until_woken(wakes, stop, poll_s=0.4)
    assert abs((time.monotonic() - started) - expected_s) < 0.15
