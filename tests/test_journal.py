"""The call journal: a call whose worker dies is still recorded, once, marked interrupted; a
call still going is left alone; a booking cut off half-way is settled by the calendar."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest

from calls.call_files import CallFiles
from calls.slots import booking_event_id
from calls.wrapup import WrapUp
from integrations.errors import IntegrationError
from integrations.scheduling import EventRequest
from journal import CallJournal, recover
from tests.agent_harness import new_call, running_agent
from tests.scripted_llm import say
from tests.test_agent_behaviour import CALLER, QUALIFY_AND_BOOK, QUALIFY_AND_BOOK_LINES

# Up to the booking; the call is cut off before the goodbye.
TO_BOOKING = [*QUALIFY_AND_BOOK[:-1], say("You're booked.")]

pytestmark = pytest.mark.integration


async def _recover(world, data_dir):
    return await recover(
        data_dir, crm=world.services.crm, calendar=world.services.calendar, outbox=world.outbox
    )


async def test_a_call_cut_off_after_booking_is_recorded_once_as_interrupted(world, tmp_path):
    data_dir = tmp_path / "data"
    the_call = new_call(world.services, caller_phone=CALLER, call_id="call-cut")
    journal = CallJournal.open(the_call, data_dir=data_dir)
    async with running_agent(the_call, TO_BOOKING) as (session, _llm, _h):
        journal.follow(session)
        for line in QUALIFY_AND_BOOK_LINES:
            await session.run(user_input=line)
        await asyncio.sleep(0.1)
        # Still going: the journal is locked, so nothing is recovered.
        assert await _recover(world, data_dir) == []
        assert world.logged_calls() == []
        journal.finish(recorded=False)  # as the OS leaves it when the process dies: unlocked

    [record] = await _recover(world, data_dir)
    assert record.disposition == "booked" and "interrupted" in record.qualification
    [logged] = world.logged_calls()
    assert logged["disposition"] == "booked"
    assert "forecasting" in logged["transcript"] and "jane@acme.com" in logged["transcript"]
    [contact] = world.contacts()
    assert contact["company"] == "Acme" and logged["contact_id"] == contact["id"]
    [event] = world.events()
    assert event.status == "confirmed"
    [deal] = world.deals()
    assert deal["contact_id"] == contact["id"]
    assert not CallFiles(data_dir).journal("call-cut").exists()
    # A second worker start finds nothing more to deliver; nothing doubled.
    assert await _recover(world, data_dir) == []
    assert len(world.logged_calls()) == 1 and len(world.events()) == 1
    assert len(world.deals()) == 1


async def test_a_finished_call_leaves_no_journal_and_is_not_recorded_twice(world, tmp_path):
    data_dir = tmp_path / "data"
    the_call = new_call(world.services, caller_phone=CALLER, call_id="call-done")
    journal = CallJournal.open(the_call, data_dir=data_dir)
    async with running_agent(the_call, QUALIFY_AND_BOOK) as (session, _llm, _h):
        journal.follow(session)
        for line in QUALIFY_AND_BOOK_LINES:
            await session.run(user_input=line)
        await asyncio.sleep(0.1)
    recorded = await WrapUp(the_call, summarizer=None, outbox=world.outbox).run(session.history)
    journal.finish(recorded=recorded is not None)
    assert not CallFiles(data_dir).journal("call-done").exists()
    assert await _recover(world, data_dir) == []
    assert len(world.logged_calls()) == 1


async def _booking_cut_off(world, data_dir, *, inserted: bool):
    """A call that died inside book_meeting: the effect noted, the insert made or not, the
    tool's result never seen."""
    the_call = new_call(world.services, caller_phone=CALLER, call_id="call-mid-booking")
    journal = CallJournal.open(the_call, data_dir=data_dir)
    start = world.services.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    event_id = booking_event_id(booking_key=CALLER, start=start)
    the_call.note_effect("booking", event_id=event_id, start=start.isoformat())
    if inserted:
        await world.services.calendar.create_event(
            EventRequest(event_id=event_id, start=start, end=start + timedelta(minutes=30),
                         time_zone="America/New_York", summary="Intro", description="")
        )  # fmt: skip
    journal.finish(recorded=False)
    return start


async def test_a_booking_the_crash_cut_short_is_recorded_as_the_calendar_has_it(world, tmp_path):
    start = await _booking_cut_off(world, tmp_path / "data", inserted=True)
    [record] = await _recover(world, tmp_path / "data")
    assert record.disposition == "booked"
    assert datetime.fromisoformat(record.qualification["meeting"]) == start
    assert len(world.events()) == 1 and len(world.deals()) == 1


async def test_a_booking_that_never_reached_the_calendar_is_not_recorded_as_booked(world, tmp_path):
    await _booking_cut_off(world, tmp_path / "data", inserted=False)
    [record] = await _recover(world, tmp_path / "data")
    assert record.disposition == "interrupted"
    assert world.events() == [] and world.deals() == []
    [logged] = world.logged_calls()
    assert logged["disposition"] == "interrupted"


class DownCrm:
    """A CRM that is down: every call fails as the real clients fail."""

    def __getattr__(self, name):
        async def down(*_args, **_kwargs):
            raise IntegrationError("the CRM is down")

        return down


async def test_an_interrupted_call_the_crm_refuses_waits_in_the_outbox(world, tmp_path):
    data_dir = tmp_path / "data"
    the_call = new_call(world.services, caller_phone=CALLER, call_id="call-queued")
    CallJournal.open(the_call, data_dir=data_dir).finish(recorded=False)
    [record] = await recover(
        data_dir, crm=DownCrm(), calendar=world.services.calendar, outbox=world.outbox
    )
    assert record.disposition == "interrupted"
    [(queued, _deal, _updates)] = world.outbox.pending()
    assert queued.call_id == "call-queued"
    assert not CallFiles(data_dir).journal("call-queued").exists()
    assert await world.outbox.replay(world.services.crm) == 1
    assert len(world.logged_calls()) == 1


async def test_a_journal_cut_mid_line_is_still_recovered(world, tmp_path):
    data_dir = tmp_path / "data"
    the_call = new_call(world.services, caller_phone=CALLER, call_id="call-torn")
    journal = CallJournal.open(the_call, data_dir=data_dir)
    journal.finish(recorded=False)
    path = CallFiles(data_dir).journal("call-torn")
    with path.open("a") as torn:
        torn.write(json.dumps({"kind": "line", "text": "Caller: hello"}) + "\n")
        torn.write('{"kind": "line", "text": "Caller: and the')  # the kill came mid-write
    [record] = await _recover(world, data_dir)
    assert record.transcript == "Caller: hello"
