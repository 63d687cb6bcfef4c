"""The queue on both engines: embedded SQLite and a real PostgreSQL cluster."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from dialer.hours import CallingHours
from dialer.model import CallResult, Campaign, Claim
from dialer.outcomes import AttemptRef, AttemptReport, OutcomeReporter
from dialer.pace import Pace
from dialer.retry import RetryPolicy
from dialer.sql_store import SqlStore
from dialer.store import ApiKey, ClaimLimits, IdempotencyConflict, IdempotencyKey, Planner
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

LIMITS = ClaimLimits(max_concurrent=10, pace=Pace(100.0))
WEBHOOK = "http://127.0.0.1:9/hook"


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    yield from engine_store(request, tmp_path)


def _now_plan(now: datetime) -> Planner:
    return lambda call, campaign: now


def _room(call_id: str, number: int) -> str:
    return f"dial-{call_id}-{number}"


def claim(
    store: SqlStore, now: datetime = MONDAY_10_NY, limits: ClaimLimits = LIMITS
) -> list[Claim]:
    return store.claim(now=now, limits=limits, plan=_now_plan(now), room_for=_room)


def reporter(store: SqlStore, clock: Clock, **policy: object) -> OutcomeReporter:
    return OutcomeReporter(
        queue=store, policy=make_policy(**policy), webhook_urls=[WEBHOOK], now=clock
    )


def test_a_call_round_trips_with_its_lead_and_consent(store: SqlStore) -> None:
    call = make_call()
    admission = store.admit(call, idempotency=None, dedupe_since=None)
    assert admission.outcome == "created" and admission.call_id == call.id
    assert store.call(call.id) == call
    assert store.attempts(call.id) == []


def test_the_same_idempotency_key_answers_the_same_and_adds_nothing(store: SqlStore) -> None:
    key = IdempotencyKey(scope="key1", key="abc", fingerprint="f1")
    first = store.admit(make_call(), idempotency=key, dedupe_since=None)
    again = store.admit(make_call(), idempotency=key, dedupe_since=None)
    assert again.call_id == first.call_id and again.replayed and not first.replayed
    assert len(claim(store)) == 1  # one call queued, not two
    with pytest.raises(IdempotencyConflict):
        store.admit(make_call(), idempotency=IdempotencyKey("key1", "abc", "f2"), dedupe_since=None)
    # Keys are per API key: another client's "abc" is its own.
    other = store.admit(make_call(), idempotency=IdempotencyKey("key2", "abc", "f2"),
                        dedupe_since=None)  # fmt: skip
    assert other.outcome == "created" and other.call_id != first.call_id


def test_a_second_lead_for_the_same_number_within_the_window_is_the_same_call(
    store: SqlStore,
) -> None:
    first = make_call(now=MONDAY_10_NY)
    store.admit(first, idempotency=None, dedupe_since=None)
    later = MONDAY_10_NY + timedelta(hours=2)
    dup = store.admit(make_call(now=later), idempotency=None,
                      dedupe_since=later - timedelta(hours=24))  # fmt: skip
    assert (dup.outcome, dup.call_id) == ("duplicate", first.id)
    next_day = MONDAY_10_NY + timedelta(hours=25)
    fresh = store.admit(make_call(now=next_day), idempotency=None,
                        dedupe_since=next_day - timedelta(hours=24))  # fmt: skip
    assert fresh.outcome == "created"


def test_a_batch_is_admitted_as_one_call_at_a_time_would_be(store: SqlStore) -> None:
    store.create_campaign(Campaign(name="spring"))
    store.create_campaign(Campaign(name="gone"))
    store.cancel_campaign("gone", now=MONDAY_10_NY, notify=lambda call, attempts: [])
    store.add_dnc("+12125550103", reason="asked", now=MONDAY_10_NY)
    earlier = make_call(phone="+12125550104", now=MONDAY_10_NY - timedelta(hours=1))
    store.admit(earlier, idempotency=None, dedupe_since=None)
    batch = [
        make_call(phone="+12125550101", campaign="spring"),
        make_call(phone="+12125550102", campaign="spring"),
        make_call(phone="+12125550101", campaign="spring"),  # the first row's number again
        make_call(phone="+12125550103", campaign="spring"),  # on the list
        make_call(phone="+12125550104", campaign="spring"),  # queued an hour ago
        make_call(phone="+12125550105", campaign="gone"),
    ]
    admissions = store.admit_many(batch, dedupe_since=MONDAY_10_NY - timedelta(hours=24))
    assert [a.outcome for a in admissions] == [
        "created", "created", "duplicate", "do_not_call", "duplicate", "campaign_cancelled",
    ]  # fmt: skip
    assert admissions[2].call_id == batch[0].id and admissions[4].call_id == earlier.id
    assert {c.call.id for c in claim(store)} == {earlier.id, batch[0].id, batch[1].id}
    assert store.call(batch[5].id) is None and store.call(batch[3].id) is None


def test_do_not_call_refuses_admission_and_is_listed(store: SqlStore) -> None:
    assert store.add_dnc("+12125550100", reason="asked", now=MONDAY_10_NY)
    assert not store.add_dnc("+12125550100", reason="again", now=MONDAY_10_NY)
    refused = store.admit(make_call(), idempotency=None, dedupe_since=None)
    assert refused.outcome == "do_not_call" and refused.call_id is None
    assert [(e.phone, e.reason) for e in store.dnc_entries()] == [("+12125550100", "asked")]
    assert store.is_dnc("+12125550100")
    assert store.remove_dnc("+12125550100") and not store.remove_dnc("+12125550100")
    assert store.admit(make_call(), idempotency=None, dedupe_since=None).outcome == "created"


def test_claims_take_due_calls_oldest_first_once(store: SqlStore) -> None:
    later = make_call(next_at=MONDAY_10_NY + timedelta(minutes=5))
    first = make_call(next_at=MONDAY_10_NY - timedelta(minutes=1))
    second = make_call(next_at=MONDAY_10_NY)
    for call in (later, second, first):
        store.admit(call, idempotency=None, dedupe_since=None)
    claims = claim(store)
    assert [c.call.id for c in claims] == [first.id, second.id]
    assert [c.attempt.room for c in claims] == [f"dial-{first.id}-1", f"dial-{second.id}-1"]
    assert claim(store) == []
    stored = store.call(first.id)
    assert stored is not None and stored.status == "dialing" and stored.attempts == 1


def test_a_call_outside_calling_hours_is_rescheduled_not_claimed(store: SqlStore) -> None:
    call = make_call()
    store.admit(call, idempotency=None, dedupe_since=None)
    tomorrow = MONDAY_10_NY + timedelta(days=1)
    claims = store.claim(now=MONDAY_10_NY, limits=LIMITS, plan=lambda c, k: tomorrow,
                         room_for=_room)  # fmt: skip
    assert claims == []
    stored = store.call(call.id)
    assert stored is not None and (stored.status, stored.next_at) == ("scheduled", tomorrow)


def test_busy_is_retried_after_its_delay_then_the_call_ends(store: SqlStore, clock: Clock) -> None:
    call = make_call()
    store.admit(call, idempotency=None, dedupe_since=None)
    report = reporter(store, clock, retry=RetryPolicy(max_attempts=2, busy=(10,)))
    assert len(claim(store, clock.value)) == 1
    assert report.report(AttemptReport(call.id, 1, "busy", sip_status=486))
    stored = store.call(call.id)
    assert stored is not None
    assert (stored.status, stored.next_at) == ("busy", clock.value + timedelta(minutes=10))
    assert claim(store, clock.value) == []
    clock.value += timedelta(minutes=10)
    (second,) = claim(store, clock.value)
    assert second.attempt.number == 2
    assert report.report(AttemptReport(call.id, 2, "busy", sip_status=486))
    ended = store.call(call.id)
    assert ended is not None and ended.final and (ended.status, ended.reason) == (
        "busy", "max_attempts",
    )  # fmt: skip
    assert [a.outcome for a in store.attempts(call.id)] == ["busy", "busy"]
    assert [w.event_id for w in store.webhooks()] == [f"evt_{call.id}"]


def test_a_retry_lands_in_calling_hours(store: SqlStore, clock: Clock) -> None:
    call = make_call()
    store.admit(call, idempotency=None, dedupe_since=None)
    clock.value = MONDAY_10_NY + timedelta(hours=9, minutes=55)  # 19:55 in New York
    claim(store, clock.value)
    reporter(store, clock).report(AttemptReport(call.id, 1, "no_answer", sip_status=480))
    stored = store.call(call.id)
    assert stored is not None and stored.next_at is not None
    assert stored.next_at == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # Tuesday 9:00 New York


def test_a_completed_call_keeps_its_result_and_a_second_report_changes_nothing(
    store: SqlStore, clock: Clock
) -> None:
    call = make_call()
    store.admit(call, idempotency=None, dedupe_since=None)
    report = reporter(store, clock)
    claim(store, clock.value)
    ref = AttemptRef(call.id, 1)
    assert report.progress(ref, "ringing")
    assert store.call(call.id).status == "ringing"
    assert report.progress(ref, "answered")
    result = CallResult(
        disposition="booked",
        summary="Booked a demo",
        qualification={"budget": "yes"},
        booking={"start": "2026-11-24T15:00:00+00:00"},
    )
    assert report.report(AttemptReport(call.id, 1, "completed", result=result))
    assert not report.report(AttemptReport(call.id, 1, "failed"))
    assert not report.progress(ref, "ringing")
    stored = store.call(call.id)
    assert stored is not None and stored.final
    assert (stored.status, stored.result) == ("completed", result)
    assert len(store.webhooks()) == 1


def test_a_claim_that_never_left_us_does_not_count(store: SqlStore, clock: Clock) -> None:
    call = make_call()
    store.admit(call, idempotency=None, dedupe_since=None)
    claim(store, clock.value)
    assert reporter(store, clock).close(call.id, 1, "not_dispatched")
    stored = store.call(call.id)
    assert stored is not None and (stored.status, stored.attempts, stored.next_at) == (
        "queued", 0, clock.value,
    )  # fmt: skip
    (again,) = claim(store, clock.value)
    assert again.attempt.number == 2 and again.call.attempts == 1  # a new room, one dial


def test_campaigns_round_trip(store: SqlStore) -> None:
    campaign = Campaign(
        name="spring", max_concurrent=2,
        hours=CallingHours(start=time(10), end=time(18), weekdays=frozenset({0, 2})),
        retry=RetryPolicy(max_attempts=4, busy=(5, 15)),
    )  # fmt: skip
    store.put_campaign(campaign)
    store.put_campaign(Campaign(name="plain"))
    assert store.campaign("spring") == campaign
    assert [c.name for c in store.campaigns()] == ["plain", "spring"]
    store.put_campaign(Campaign(name="spring", max_concurrent=1))
    assert store.campaign("spring") == Campaign(name="spring", max_concurrent=1)


def test_api_keys_are_stored_and_revoked(store: SqlStore) -> None:
    store.add_key(ApiKey("k1", "website", "hash1", MONDAY_10_NY))
    assert store.key("k1") == ApiKey("k1", "website", "hash1", MONDAY_10_NY)
    assert store.revoke_key("website", now=MONDAY_10_NY)
    assert not store.revoke_key("website", now=MONDAY_10_NY)
    revoked = store.key("k1")
    assert revoked is not None and revoked.revoked_at == MONDAY_10_NY


def test_webhook_deliveries_are_leased_and_retried(store: SqlStore, clock: Clock) -> None:
    call = make_call()
    store.admit(call, idempotency=None, dedupe_since=None)
    claim(store, clock.value)
    reporter(store, clock).report(AttemptReport(call.id, 1, "completed"))
    lease = timedelta(seconds=60)
    (delivery,) = store.claim_webhooks(now=clock.value, lease=lease, limit=10)
    assert store.claim_webhooks(now=clock.value, lease=lease, limit=10) == []  # leased
    store.webhook_failed(delivery.id, attempts=1, next_at=clock.value + timedelta(seconds=10),
                         error="HTTP 500")  # fmt: skip
    (again,) = store.claim_webhooks(now=clock.value + timedelta(seconds=10), lease=lease, limit=10)
    assert (again.id, again.attempts, again.last_error) == (delivery.id, 1, "HTTP 500")
    store.webhook_delivered(again.id, now=clock.value)
    assert store.claim_webhooks(now=clock.value + timedelta(hours=1), lease=lease, limit=10) == []
    assert store.webhooks()[0].delivered_at == clock.value


def test_a_callback_is_scheduled_when_the_lead_asked_within_calling_hours(
    store: SqlStore, clock: Clock
) -> None:
    call = make_call()
    store.admit(call, idempotency=None, dedupe_since=None)
    report = reporter(store, clock)
    assert len(claim(store, clock.value)) == 1
    four_pm_ny = clock.value.replace(hour=21)  # 16:00 in New York, same day
    assert report.report(AttemptReport(call.id, 1, "callback", callback_at=four_pm_ny))
    stored = store.call(call.id)
    assert stored is not None and not stored.final
    assert (stored.status, stored.next_at) == ("scheduled", four_pm_ny)
    assert [a.outcome for a in store.attempts(call.id)] == ["callback"]
    late = make_call(phone="+12125550199")
    store.admit(late, idempotency=None, dedupe_since=None)
    assert len(claim(store, clock.value)) == 1
    midnight_ny = clock.value.replace(hour=5) + timedelta(days=1)  # 00:00 in New York
    assert report.report(AttemptReport(late.id, 1, "callback", callback_at=midnight_ny))
    moved = store.call(late.id)
    assert moved is not None and moved.next_at is not None and moved.next_at > midnight_ny


def test_due_calls_are_read_in_claim_order_from_an_index_also_on_an_older_queue(
    tmp_path: Path,
) -> None:
    """A queue created before the index existed gets it at start; the claim query then reads
    leads sharing a due time (a campaign waiting for its hours) in order, without sorting them
    all on every claim."""
    import sqlite3

    from dialer.sql.calls import CALL_COLUMNS
    from dialer.sqlite_store import SqliteStore

    path = tmp_path / "dialer.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE dialer_calls (id TEXT PRIMARY KEY, phone TEXT NOT NULL, "
                    "campaign TEXT, zone TEXT NOT NULL, lead TEXT NOT NULL, status TEXT NOT NULL, "
                    "next_at TEXT, attempts INTEGER NOT NULL, created_at TEXT NOT NULL, "
                    "updated_at TEXT NOT NULL, reason TEXT, result TEXT)")  # fmt: skip
        old.execute("CREATE INDEX dialer_calls_due ON dialer_calls (next_at)")
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        indexes = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        plan = " ".join(
            row[-1]
            for row in db.execute(
                f"EXPLAIN QUERY PLAN SELECT {CALL_COLUMNS} FROM dialer_calls WHERE next_at IS "
                "NOT NULL AND next_at <= ? ORDER BY next_at, created_at LIMIT ?",
                ("9999", 40),
            )
        )
    assert "dialer_calls_due" not in indexes and "dialer_calls_due_in_order" in indexes
    assert "dialer_calls_due_in_order" in plan and "TEMP B-TREE" not in plan
