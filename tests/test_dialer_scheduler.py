"""The dialer's loop against an embedded queue and a recording dispatcher: what is dispatched,
when, under which caps, and what a crash leaves behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dialer.model import Campaign
from dialer.outcomes import AttemptRef, AttemptReport, OutcomeReporter
from dialer.pace import Pace
from dialer.policy import DialPolicy
from dialer.scheduler import Scheduler
from dialer.sqlite_store import SqliteStore
from tests.conftest import Clock
from tests.dialer_support import RecordingDispatcher, make_call, make_policy

pytestmark = pytest.mark.integration

TRUNK = "ST_outbound"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "dialer.sqlite3")
    yield opened
    opened.close()


class World:
    def __init__(self, store: SqliteStore, clock: Clock, policy: DialPolicy) -> None:
        self.store = store
        self.clock = clock
        self.dispatcher = RecordingDispatcher()
        self.reporter = OutcomeReporter(
            queue=store, policy=policy, webhook_urls=["http://127.0.0.1:9/h"], now=clock
        )
        self.policy = policy
        self.scheduler = self.restart()

    def restart(self) -> Scheduler:
        """A new dialer process on the same queue (after a crash, or a second replica)."""
        self.scheduler = Scheduler(
            queue=self.store, dnc=self.store, dispatcher=self.dispatcher, reporter=self.reporter,
            policy=self.policy, agent_name="sales-agent", sip_trunk_id=TRUNK, now=self.clock,
        )  # fmt: skip
        return self.scheduler

    def queue(self, **changes: object) -> str:
        call = make_call(now=self.clock.value, **changes)  # type: ignore[arg-type]
        self.store.admit(call, idempotency=None, dedupe_since=None)
        return call.id

    def status(self, call_id: str) -> tuple[str, datetime | None]:
        call = self.store.call(call_id)
        assert call is not None
        return call.status, call.next_at


def world(store: SqliteStore, clock: Clock, **policy: object) -> World:
    return World(store, clock, make_policy(**policy))


async def test_a_due_call_is_dispatched_with_the_lead_and_the_trunk(store, clock) -> None:
    w = world(store, clock)
    call_id = w.queue(campaign=None)
    claims = await w.scheduler.tick()
    assert len(claims) == 1
    (request,) = w.dispatcher.requests
    assert (request.agent_name, request.room) == ("sales-agent", f"dial-{call_id}-1")
    metadata = json.loads(request.metadata)
    assert metadata["phone_number"] == "+12125550100"
    assert metadata["sip_trunk_id"] == TRUNK
    assert (metadata["call_id"], metadata["attempt"]) == (call_id, 1)
    assert metadata["lead"]["name"] == "Ada Lovelace"
    (attempt,) = store.attempts(call_id)
    assert attempt.dispatch_id == "AD_1" and attempt.state == "dialing"
    assert w.status(call_id) == ("dialing", None)
    assert await w.scheduler.tick() == []  # never dispatched twice


async def test_a_number_put_on_the_list_after_queueing_is_not_dialed(store, clock) -> None:
    w = world(store, clock)
    call_id = w.queue()
    store.add_dnc("+12125550100", reason="asked by phone", now=clock.value)
    await w.scheduler.tick()
    assert w.dispatcher.requests == []
    call = store.call(call_id)
    assert call is not None and (call.status, call.reason, call.final) == (
        "failed", "do_not_call", True,
    )  # fmt: skip


async def test_a_refused_dispatch_fails_the_attempt_and_retries_it(store, clock) -> None:
    w = world(store, clock)
    call_id = w.queue()
    w.dispatcher.fail_with = "LiveKit refused the dispatch: 503"
    await w.scheduler.tick()
    assert w.status(call_id) == ("failed", clock.value + timedelta(minutes=15))
    (attempt,) = store.attempts(call_id)
    assert (attempt.outcome, attempt.detail) == ("failed", "LiveKit refused the dispatch: 503")


async def test_the_global_cap_holds_until_a_call_ends(store, clock) -> None:
    w = world(store, clock, max_concurrent=2)
    ids = [w.queue(phone=f"+1212555010{n}") for n in range(3)]
    await w.scheduler.tick()
    assert len(w.dispatcher.requests) == 2
    await w.scheduler.tick()
    assert len(w.dispatcher.requests) == 2
    w.reporter.report(AttemptReport(ids[0], 1, "completed"))
    await w.scheduler.tick()
    assert [json.loads(r.metadata)["call_id"] for r in w.dispatcher.requests] == ids


async def test_a_campaign_cap_leaves_room_for_other_campaigns(store, clock) -> None:
    w = world(store, clock, max_concurrent=5)
    store.put_campaign(Campaign(name="spring", max_concurrent=1))
    spring = [w.queue(phone=f"+1212555010{n}", campaign="spring") for n in range(3)]
    other = w.queue(phone="+12125550109", campaign="autumn")
    await w.scheduler.tick()
    dialed = {json.loads(r.metadata)["call_id"] for r in w.dispatcher.requests}
    assert dialed == {spring[0], other}


async def test_the_pace_spaces_calls_by_the_clock(store, clock) -> None:
    w = world(store, clock, pace=Pace(1.0))
    for n in range(3):
        w.queue(phone=f"+1212555010{n}")
    await w.scheduler.tick()
    await w.scheduler.tick()
    assert len(w.dispatcher.requests) == 1
    clock.value += timedelta(seconds=1)
    await w.scheduler.tick()
    assert len(w.dispatcher.requests) == 2


async def test_a_call_due_after_hours_waits_for_the_morning(store, clock) -> None:
    w = world(store, clock)
    call_id = w.queue()
    clock.value = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # 21:00 in New York
    await w.scheduler.tick()
    assert w.dispatcher.requests == []
    assert w.status(call_id) == ("scheduled", datetime(2026, 11, 24, 14, 0, tzinfo=UTC))


async def test_a_crash_before_the_dispatch_is_dialed_again_once(store, clock) -> None:
    w = world(store, clock)
    call_id = w.queue()
    # The dialer claimed the call and died before dispatching it.
    store.claim(now=clock.value, limits=w.policy.limits(), plan=lambda c, k: clock.value,
                room_for=lambda c, n: f"dial-{c}-{n}")  # fmt: skip
    w.restart()
    clock.value += timedelta(seconds=30)
    await w.scheduler.tick()
    assert w.dispatcher.requests == []  # not overdue yet: it might still be dispatching
    clock.value += timedelta(seconds=90)
    await w.scheduler.tick()
    (request,) = w.dispatcher.requests
    assert request.room == f"dial-{call_id}-2"
    first, second = store.attempts(call_id)
    assert (first.outcome, second.state) == ("not_dispatched", "dialing")
    call = store.call(call_id)
    assert call is not None and call.attempts == 1  # the lost claim did not count


async def test_a_lost_report_is_looked_up_in_livekit_then_retried_once(store, clock) -> None:
    w = world(store, clock)
    call_id = w.queue()
    await w.scheduler.tick()
    room = w.dispatcher.requests[0].room
    w.restart()
    clock.value += timedelta(minutes=5)
    await w.scheduler.tick()
    assert w.status(call_id) == ("dialing", None)  # the room is still there: leave it
    w.dispatcher.live.discard(room)  # the call ended, the worker's report never came
    await w.scheduler.tick()
    assert w.status(call_id) == ("failed", clock.value + timedelta(minutes=15))
    clock.value += timedelta(minutes=15)
    await w.scheduler.tick()
    assert len(w.dispatcher.requests) == 2
    w.dispatcher.live.clear()
    clock.value += timedelta(minutes=5)
    await w.scheduler.tick()
    call = store.call(call_id)
    assert call is not None and call.final and call.status == "failed"
    assert [a.outcome for a in store.attempts(call_id)] == ["unknown", "unknown"]


async def test_an_answered_call_is_given_the_longest_call_before_reconciling(store, clock) -> None:
    w = world(store, clock)
    call_id = w.queue()
    await w.scheduler.tick()
    w.dispatcher.live.clear()
    w.reporter.progress(AttemptRef(call_id, 1), "answered")
    clock.value += timedelta(minutes=10)
    await w.scheduler.tick()
    assert w.status(call_id) == ("answered", None)
    clock.value += timedelta(minutes=6)
    await w.scheduler.tick()
    assert w.status(call_id)[0] == "failed"


async def test_nothing_is_closed_while_livekit_cannot_be_asked(store, clock) -> None:
    w = world(store, clock)
    call_id = w.queue()
    await w.scheduler.tick()
    w.dispatcher.unreachable = True
    clock.value += timedelta(hours=1)
    assert await w.scheduler.reconcile() == 0
    assert w.status(call_id) == ("dialing", None)
