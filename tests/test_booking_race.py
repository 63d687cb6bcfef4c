"""Two calls racing for one slot end with exactly one meeting.

In one process, a booking that lands between our free/busy check and our insert is caught
at the insert, on both backends. Then the real race: two worker processes
(``tests/booking_racer.py``) book the same slot at the same moment through the real
``book_meeting`` tool, against one embedded SQLite file or one (fake) Google Calendar; and
a reschedule (``reschedule_meeting``) races a booking, or another reschedule, into one slot.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from calls.slots import BusinessHours, candidate_slots
from integrations.embedded import EmbeddedCalendar, EmbeddedStore
from integrations.errors import TemporarilyUnavailable
from integrations.scheduling import Calendar, EventRequest, Interval, SlotTaken
from tests.agent_harness import new_call
from tests.booking_racer import racer_email
from tests.conftest import FIXED_NOW
from tests.fakes.google_calendar import FakeGoogleCalendar
from tools.calendar_tools import book_meeting

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
PHONES = ("+14155550101", "+14155550102")
ROUNDS = 16  # per backend; every other round holds free/busy so both racers pass the check
HOLD_S = 0.15
MOVE_ROUNDS = 8  # per backend: a move against a booking, then two moves, with and without hold


def racing_slots(count: int) -> list[Interval]:
    days = [(FIXED_NOW + timedelta(days=d)).date() for d in range(1, 8)]
    slots = candidate_slots(BusinessHours(), now=FIXED_NOW, days=days)
    return slots[: count * 2 : 2]  # every other slot: no two rounds' meetings touch


class StaleFreeBusy:
    """The real calendar, whose free/busy answer predates the other call's booking."""

    def __init__(self, inner: Calendar) -> None:
        self._inner = inner
        self.name = inner.name

    async def busy(self, start: datetime, end: datetime) -> list[Interval]:
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_a_slot_booked_after_our_check_is_refused_at_the_insert(world):
    slot = racing_slots(1)[0]
    first = new_call(world.services, caller_phone=PHONES[0], call_id="call-a")
    stale = replace(world.services, calendar=StaleFreeBusy(world.services.calendar))
    second = new_call(stale, caller_phone=PHONES[1], call_id="call-b")

    won = json.loads(
        await book_meeting(SimpleNamespace(userdata=first), start=slot.start.isoformat())
    )
    lost = json.loads(
        await book_meeting(SimpleNamespace(userdata=second), start=slot.start.isoformat())
    )

    assert won["booked"] is True and lost["booked"] is False
    assert lost["slots"] and slot.start.isoformat() not in [s["start"] for s in lost["slots"]]
    assert [e.start for e in world.events()] == [slot.start]
    assert second.state.booking is None


@contextmanager
def racers(backend_args: list[str]) -> Iterator[list[subprocess.Popen[str]]]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.booking_racer",
                "--phone",
                phone,
                "--now",
                FIXED_NOW.isoformat(),
                *backend_args,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for phone in PHONES
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline()) == {"ready": True}
        yield procs
    finally:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in procs:
            proc.wait(timeout=30)


Order = dict[str, Any]


def order(call: str, action: str, slot: Interval, *, round_: int) -> Order:
    """Start together in 0.3 s; even rounds slow free/busy so both pass the check."""
    hold = HOLD_S if round_ % 2 == 0 else 0.0
    return {"call": call, "action": action, "start": slot.start.isoformat(),
            "at": time.time() + 0.3, "hold_s": hold}  # fmt: skip


def send(orders: list[tuple[subprocess.Popen[str], Order]]) -> list[dict[str, Any]]:
    for proc, one in orders:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(one) + "\n")
        proc.stdin.flush()
    answers = []
    for proc, _one in orders:
        assert proc.stdout is not None
        answers.append(json.loads(proc.stdout.readline()))
    return answers


def race(procs: list[subprocess.Popen[str]], round_: int, slot: Interval) -> list[dict[str, Any]]:
    return send([(p, order(f"race-{round_}", "book", slot, round_=round_)) for p in procs])


def check_round(answers: list[dict[str, Any]], slot: Interval, round_: int) -> None:
    booked = [a for a in answers if a["booked"]]
    assert len(booked) == 1, f"round {round_}: {answers}"
    [lost] = [a for a in answers if not a["booked"]]
    assert slot.start.isoformat() not in [s["start"] for s in lost["slots"]]
    if round_ % 2 == 0:  # both passed the free/busy check: the insert (or move) decided
        assert all(a["wrote"] for a in answers), f"round {round_}: {answers}"


def embedded_meetings(path: Path, slot: Interval) -> list[str]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT id, start, \"end\" FROM events WHERE status = 'confirmed'")
        spans = [
            (r[0], Interval(datetime.fromisoformat(r[1]), datetime.fromisoformat(r[2])))
            for r in rows
        ]
    finally:
        db.close()
    return [event_id for event_id, span in spans if span.overlaps(slot)]


def test_two_worker_processes_racing_on_the_embedded_calendar_book_once(tmp_path):
    store = tmp_path / "embedded.sqlite3"
    with racers(["embedded", "--store", str(store)]) as procs:
        for round_, slot in enumerate(racing_slots(ROUNDS)):
            check_round(race(procs, round_, slot), slot, round_)
            assert len(embedded_meetings(store, slot)) == 1, f"round {round_}"


def google_meetings(google: FakeGoogleCalendar, slot: Interval) -> list[dict[str, Any]]:
    return [
        e
        for e in google.events.values()
        if e["status"] == "confirmed"
        and datetime.fromisoformat(e["start"]["dateTime"]) == slot.start
    ]


def test_two_worker_processes_racing_on_google_calendar_book_once(tmp_path):
    with FakeGoogleCalendar(calendar_id="sales@example.com") as google:
        key_file = tmp_path / "service-account.json"
        key_file.write_text(json.dumps(google.new_service_account_key("agent@example.iam")))
        args = ["google", "--base-url", google.base_url, "--key-file", str(key_file)]
        with racers(args) as procs:
            for round_, slot in enumerate(racing_slots(ROUNDS)):
                before = len(google.writes)
                check_round(race(procs, round_, slot), slot, round_)
                [held] = google_meetings(google, slot)
                assert [a["email"] for a in held["attendees"]] in [[racer_email(p)] for p in PHONES]
                # Only the meeting that stayed invited anyone; a withdrawn one went unseen.
                noticed = {w.event_id for w in google.writes[before:] if w.send_updates != "none"}
                assert noticed == {held["id"]}, f"round {round_}"


async def test_the_embedded_calendar_refuses_a_move_into_a_taken_slot(tmp_path):
    store = EmbeddedStore(tmp_path / "embedded.sqlite3", now=lambda: FIXED_NOW)
    calendar = EmbeddedCalendar(store)
    first, second = racing_slots(2)

    def request(event_id: str, slot: Interval) -> EventRequest:
        return EventRequest(event_id=event_id, start=slot.start, end=slot.end,
                            time_zone="UTC", summary="Intro", description="")  # fmt: skip

    await calendar.create_event(request("aaaaa", first))
    await calendar.create_event(request("bbbbb", second))
    with pytest.raises(SlotTaken):
        await calendar.move_event("bbbbb", start=first.start, end=first.end)
    with pytest.raises(SlotTaken):
        await calendar.create_event(request("ccccc", first))
    moved = await calendar.get_event("bbbbb")
    assert moved is not None and moved.start == second.start
    store.close()


async def test_a_store_locked_by_another_process_past_the_timeout_is_unavailable(tmp_path):
    path = tmp_path / "embedded.sqlite3"
    store = EmbeddedStore(path, now=lambda: FIXED_NOW, busy_timeout_s=0.1)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another worker in the middle of its write
    slot = racing_slots(1)[0]
    request = EventRequest(event_id="aaaaa", start=slot.start, end=slot.end, time_zone="UTC",
                           summary="Intro", description="")  # fmt: skip
    with pytest.raises(TemporarilyUnavailable):
        await EmbeddedCalendar(store).create_event(request)
    other.execute("ROLLBACK")
    other.close()
    assert (await EmbeddedCalendar(store).create_event(request)).status == "confirmed"
    store.close()


# a reschedule racing a booking, and two reschedules


def move_rounds() -> Iterator[tuple[int, Interval, tuple[Interval, Interval]]]:
    """Each round's target slot and the two racers' own slots to move from."""
    slots = racing_slots(MOVE_ROUNDS * 3)
    for round_ in range(MOVE_ROUNDS):
        target, first, second = slots[round_ * 3 : round_ * 3 + 3]
        yield round_, target, (first, second)


def both_move(round_: int) -> bool:
    return round_ % 4 >= 2  # rounds 0, 1: racer 0 moves, racer 1 books; 2, 3: both move


def book_origins(procs: list[subprocess.Popen[str]], round_: int,
                 origins: tuple[Interval, Interval]) -> None:  # fmt: skip
    movers = procs if both_move(round_) else procs[:1]
    setup = [(p, {**order(f"move-{round_}", "book", o, round_=1), "at": 0})
             for p, o in zip(movers, origins, strict=False)]  # fmt: skip
    assert all(a["booked"] for a in send(setup)), f"round {round_}"


def race_moves(procs: list[subprocess.Popen[str]], round_: int,
               target: Interval) -> list[dict[str, Any]]:  # fmt: skip
    second = "reschedule" if both_move(round_) else "book"
    actions = ("reschedule", second)
    return send([(p, order(f"move-{round_}", a, target, round_=round_))
                 for p, a in zip(procs, actions, strict=True)])  # fmt: skip


def check_origins(answers: list[dict[str, Any]], round_: int, origins: tuple[Interval, Interval],
                  meetings_at: Callable[[Interval], int]) -> None:  # fmt: skip
    """A mover that won left its old time; one that lost kept its meeting there."""
    movers = 2 if both_move(round_) else 1
    for answer, origin in list(zip(answers, origins, strict=True))[:movers]:
        expected = 0 if answer["booked"] else 1
        assert meetings_at(origin) == expected, f"round {round_}: {answers}"


def test_reschedules_racing_on_the_embedded_calendar_leave_one_meeting(tmp_path):
    store = tmp_path / "embedded.sqlite3"
    with racers(["embedded", "--store", str(store)]) as procs:
        for round_, target, origins in move_rounds():
            book_origins(procs, round_, origins)
            answers = race_moves(procs, round_, target)
            check_round(answers, target, round_)
            assert len(embedded_meetings(store, target)) == 1, f"round {round_}"
            check_origins(answers, round_, origins, lambda s: len(embedded_meetings(store, s)))


def test_reschedules_racing_on_google_calendar_leave_one_meeting(tmp_path):
    with FakeGoogleCalendar(calendar_id="sales@example.com") as google:
        key_file = tmp_path / "service-account.json"
        key_file.write_text(json.dumps(google.new_service_account_key("agent@example.iam")))
        args = ["google", "--base-url", google.base_url, "--key-file", str(key_file)]
        with racers(args) as procs:
            for round_, target, origins in move_rounds():
                book_origins(procs, round_, origins)
                before = len(google.writes)
                answers = race_moves(procs, round_, target)
                check_round(answers, target, round_)
                [held] = google_meetings(google, target)
                check_origins(answers, round_, origins, lambda s: len(google_meetings(google, s)))
                # Only the winner's meeting told its attendee; the loser's attempt went unseen.
                noticed = {w.event_id for w in google.writes[before:] if w.send_updates != "none"}
                assert noticed == {held["id"]}, f"round {round_}"
