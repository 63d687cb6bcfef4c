"""A campaign's state in the queue, on both engines: progress by status, pause and resume
honoured by the claim, cancel ending the waiting calls with their webhooks and closing the
campaign to new leads; and a store made before campaigns had a state."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dialer.model import CALL_STATUSES, Campaign, Claim
from dialer.outcomes import AttemptReport, OutcomeReporter
from dialer.pace import Pace
from dialer.postgres_store import PostgresStore
from dialer.sql.calls import insert_call
from dialer.sql.campaigns import campaign_state
from dialer.sql.engine import Tx
from dialer.sql_store import SqlStore
from dialer.sqlite_store import SqliteStore
from dialer.store import ClaimLimits
from tests.conftest import Clock
from tests.dialer_support import (
    ENGINES,
    MONDAY_10_NY,
    engine_store,
    make_call,
    make_policy,
)
from tests.pg_cluster import postgres_url  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

LIMITS = ClaimLimits(max_concurrent=50, pace=Pace(1000.0), batch=50)
WEBHOOK = "http://127.0.0.1:9/hook"


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    yield from engine_store(request, tmp_path)


_seconds = itertools.count()


def claim(store: SqlStore) -> list[Claim]:
    """Each claim a second after the last, so the trunk's pace never holds one back."""
    now = MONDAY_10_NY + timedelta(seconds=next(_seconds))
    return store.claim(now=now, limits=LIMITS, plan=lambda call, campaign: now,
                       room_for=lambda call_id, n: f"dial-{call_id}-{n}")  # fmt: skip


def reporter(store: SqlStore, clock: Clock) -> OutcomeReporter:
    return OutcomeReporter(queue=store, policy=make_policy(), webhook_urls=[WEBHOOK], now=clock)


def queue(store: SqlStore, campaign: str | None, count: int, *, first: int = 100) -> list[str]:
    ids = []
    for n in range(first, first + count):
        call = make_call(phone=f"+1212555{n:04d}", campaign=campaign)
        assert store.admit(call, idempotency=None, dedupe_since=None).outcome == "created"
        ids.append(call.id)
    return ids


def claimed_ids(claims: list[Claim]) -> set[str]:
    return {c.call.id for c in claims}


def test_a_campaign_is_created_once(store: SqlStore) -> None:
    assert store.create_campaign(Campaign(name="spring", max_concurrent=3))
    assert not store.create_campaign(Campaign(name="spring", max_concurrent=9))
    assert store.campaign("spring") == Campaign(name="spring", max_concurrent=3)
    assert store.campaign_state("spring") == "active"
    assert store.campaign_state("autumn") is None


def test_progress_counts_the_campaigns_calls_by_status(store: SqlStore, clock: Clock) -> None:
    store.create_campaign(Campaign(name="spring"))
    queue(store, "spring", 2)
    busy, _dialing = claim(store)
    queue(store, "spring", 2, first=110)
    queue(store, None, 2, first=200)  # not the campaign's: not counted
    reporter(store, clock).report(AttemptReport(busy.call.id, busy.attempt.number, "busy"))
    counts = store.campaign_progress("spring")
    assert set(counts) == set(CALL_STATUSES)
    assert (counts["queued"], counts["dialing"], counts["busy"]) == (2, 1, 1)
    assert sum(counts.values()) == 4


def test_pause_stops_claims_and_resume_restarts_them(store: SqlStore, clock: Clock) -> None:
    store.create_campaign(Campaign(name="spring"))
    first = queue(store, "spring", 1)
    dialing = claim(store)
    assert claimed_ids(dialing) == set(first)
    spring = queue(store, "spring", 3, first=110)
    other = queue(store, None, 2, first=200)
    assert store.pause_campaign("spring", now=clock()).state == "paused"
    assert claimed_ids(claim(store)) == set(other)  # the paused campaign's calls wait
    assert claim(store) == []
    # The call already dialing goes on and ends as any call does.
    attempt = dialing[0].attempt
    assert reporter(store, clock).report(AttemptReport(attempt.call_id, attempt.number, "answered"))
    assert store.campaign_progress("spring")["completed"] == 1
    assert store.resume_campaign("spring", now=clock()).state == "active"
    assert claimed_ids(claim(store)) == set(spring)


def test_a_full_or_paused_campaign_holds_back_only_its_own_calls(
    store: SqlStore, clock: Clock
) -> None:
    """Calls without a campaign are claimed beside a campaign that is full or paused (SQL's
    NOT IN is never true for a NULL campaign, so the claim must say so)."""
    store.create_campaign(Campaign(name="capped", max_concurrent=1))
    store.create_campaign(Campaign(name="spring"))
    queue(store, "capped", 1)
    assert len(claim(store)) == 1  # capped is full now
    queue(store, "capped", 1, first=110)
    store.pause_campaign("spring", now=clock())
    queue(store, "spring", 1, first=120)
    loose = queue(store, None, 2, first=200)
    assert claimed_ids(claim(store)) == set(loose)


def test_cancel_ends_waiting_calls_with_their_webhooks_and_refuses_new_leads(
    store: SqlStore, clock: Clock
) -> None:
    store.create_campaign(Campaign(name="spring"))
    queue(store, "spring", 2)
    retrying, still_dialing = claim(store)
    results = reporter(store, clock)
    results.report(AttemptReport(retrying.call.id, retrying.attempt.number, "busy"))
    assert store.call(retrying.call.id).next_at is not None  # type: ignore[union-attr]
    waiting = queue(store, "spring", 2, first=110)
    later = make_call(phone="+12125550150", campaign="spring",
                      next_at=MONDAY_10_NY + timedelta(days=1))  # fmt: skip
    store.admit(later, idempotency=None, dedupe_since=None)

    change = results.cancel_campaign("spring")
    assert (change.outcome, change.state, change.ended) == ("changed", "cancelled", 4)
    for call_id in (*waiting, later.id, retrying.call.id):
        call = store.call(call_id)
        assert call is not None and call.final
        assert (call.status, call.reason) == ("failed", "campaign_cancelled")
        [delivery] = store.webhooks(f"evt_{call_id}")
        assert json.loads(delivery.body)["call"]["reason"] == "campaign_cancelled"
    assert store.campaign_state("spring") == "cancelled"
    dialing = store.call(still_dialing.call.id)
    assert (
        dialing is not None
        and dialing.status == "dialing"
        and not store.webhooks(f"evt_{dialing.id}")
    )

    # The call in flight ends, and is not retried in a cancelled campaign.
    ref = still_dialing.attempt
    assert results.report(AttemptReport(ref.call_id, ref.number, "no_answer"))
    ended = store.call(ref.call_id)
    assert ended is not None and ended.final and ended.reason == "campaign_cancelled"
    assert store.webhooks(f"evt_{ref.call_id}")

    late = make_call(phone="+12125550160", campaign="spring")
    assert store.admit(late, idempotency=None, dedupe_since=None).outcome == "campaign_cancelled"
    assert store.call(late.id) is None
    assert store.resume_campaign("spring", now=clock()).outcome == "cancelled"
    assert store.pause_campaign("spring", now=clock()).outcome == "cancelled"
    assert results.cancel_campaign("spring").outcome == "cancelled"
    assert store.campaign_state("spring") == "cancelled"
    assert claim(store) == []


def test_a_cancelled_campaigns_config_is_frozen(store: SqlStore, clock: Clock) -> None:
    assert store.put_campaign(Campaign(name="spring", max_concurrent=3)).state == "active"
    assert store.pause_campaign("spring", now=clock()).outcome == "changed"
    changed = store.put_campaign(Campaign(name="spring", max_concurrent=4))
    assert (changed.outcome, changed.state) == ("changed", "paused")  # paused: still editable
    reporter(store, clock).cancel_campaign("spring")
    refused = store.put_campaign(Campaign(name="spring", max_concurrent=9))
    assert (refused.outcome, refused.state) == ("cancelled", "cancelled")
    assert store.campaign("spring") == Campaign(name="spring", max_concurrent=4)
    assert store.campaign_state("spring") == "cancelled"


def test_the_campaign_list_has_each_ones_state_and_progress(store: SqlStore, clock: Clock) -> None:
    for name in ("autumn", "spring", "winter"):
        store.create_campaign(Campaign(name=name))
    queue(store, "spring", 3)
    queue(store, "autumn", 1, first=120)
    queue(store, None, 2, first=200)  # in no campaign: in no count
    claim(store)  # all four are dialing now
    queue(store, "spring", 1, first=130)
    store.pause_campaign("spring", now=clock())
    reporter(store, clock).cancel_campaign("winter")
    summaries = {s.campaign.name: s for s in store.campaign_summaries()}
    assert list(summaries) == ["autumn", "spring", "winter"]
    assert {n: s.state for n, s in summaries.items()} == {
        "autumn": "active", "spring": "paused", "winter": "cancelled",
    }  # fmt: skip
    for name, summary in summaries.items():
        assert summary.calls == store.campaign_progress(name)
        assert summary.campaign == store.campaign(name)
    assert (summaries["spring"].calls["dialing"], summaries["spring"].calls["queued"]) == (3, 1)
    assert summaries["autumn"].calls["dialing"] == 1
    assert set(summaries["winter"].calls.values()) == {0}


def test_changing_an_unknown_campaign_says_so(store: SqlStore, clock: Clock) -> None:
    assert store.pause_campaign("nope", now=clock()).outcome == "unknown"
    assert reporter(store, clock).cancel_campaign("nope").outcome == "unknown"


def test_a_store_made_before_campaign_states_gains_them_at_start(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "dialer.sqlite3"
    SqliteStore(path).close()
    with sqlite3.connect(path) as old:  # as the store was before campaigns had a state
        old.execute("DROP TABLE dialer_campaign_states")
        old.execute("INSERT INTO dialer_campaigns (name, config) VALUES ('spring', '{}')")
    store = SqliteStore(path)
    try:
        assert store.campaign_state("spring") == "active"
        ids = queue(store, "spring", 2)
        assert store.pause_campaign("spring", now=clock()).outcome == "changed"
        assert claim(store) == []
        store.resume_campaign("spring", now=clock())
        assert claimed_ids(claim(store)) == set(ids)
    finally:
        store.close()


def _blocked_until_released(
    store: SqlStore, hold: Callable[[Tx], None], act: Callable[[], Any]
) -> tuple[bool, Any]:
    """Run ``act`` in a thread while this thread holds what ``hold`` locks; answer whether it
    waited for the release, and what it returned."""
    done = threading.Event()
    result: list[Any] = []

    def run() -> None:
        result.append(act())
        done.set()

    with store.transaction() as tx:
        hold(tx)
        worker = threading.Thread(target=run)
        worker.start()
        waited = not done.wait(0.5)
    worker.join(timeout=10)
    return waited, result[0]


def test_on_postgres_a_pause_waits_for_a_claim_in_progress(
    postgres_url: str,  # noqa: F811
    clock: Clock,
) -> None:
    """A claim that read the campaign as active finishes before the pause returns, so once
    the pause has returned no claim can take the campaign's calls."""
    store = PostgresStore(postgres_url)
    try:
        store.create_campaign(Campaign(name="spring"))
        waited, change = _blocked_until_released(
            store, store.lock_claims, lambda: store.pause_campaign("spring", now=clock())
        )
        assert waited and change.state == "paused"
    finally:
        store.close()


def test_on_postgres_a_cancel_waits_for_an_admission_in_progress(
    postgres_url: str,  # noqa: F811
    clock: Clock,
) -> None:
    """An admission holds its campaign's row until it commits, so the cancel that follows sees
    its call and ends it: no lead slips into a cancelled campaign."""
    store = PostgresStore(postgres_url)
    try:
        store.create_campaign(Campaign(name="spring"))
        call = make_call(phone="+12125550170", campaign="spring")

        def admit_in(tx: Tx) -> None:
            assert campaign_state(tx, "spring", lock=store.for_share) == "active"
            insert_call(tx, call)

        waited, change = _blocked_until_released(
            store, admit_in, lambda: reporter(store, clock).cancel_campaign("spring")
        )
        assert waited and change.ended == 1
        ended = store.call(call.id)
        assert ended is not None and ended.reason == "campaign_cancelled"
    finally:
        store.close()
