"""The agent when the systems behind it misbehave: rate limits, outages, changes of mind.
These run the real HubSpot and Google clients against the fake servers' fault injection."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from calls.wrapup import WrapUp
from integrations.errors import IntegrationError
from tests.agent_harness import new_call, running_agent
from tests.scripted_llm import Call, Step, call, offered_slot, say, tool_output

pytestmark = pytest.mark.integration

CALLER = "+14155550100"


@pytest.fixture
def vendor(world):
    assert hasattr(world, "hubspot"), "fault injection needs the fake vendor servers"
    return world


@pytest.mark.parametrize("world", ["vendor"], indirect=True)
async def test_hubspot_429_is_retried_after_retry_after_then_succeeds(vendor):
    vendor.hubspot.fail_next("contacts.create", status=429, retry_after=2, times=1)
    the_call = new_call(vendor.services, caller_phone=CALLER)
    steps = [call("save_contact_details", {"first_name": "Ana", "email": "ana@x.io"}), say("Ok")]
    async with running_agent(the_call, steps) as (session, _llm, _h):
        result = await session.run(user_input="I'm Ana, ana@x.io")
    output = result.expect.next_event().is_function_call(name="save_contact_details")
    assert output is not None
    assert tool_output(session.history, "save_contact_details")["saved"] == ["email", "firstname"]
    [contact] = vendor.contacts()
    assert contact["email"] == "ana@x.io"
    ops = vendor.hubspot.ops()
    assert ops.count("contacts.create") == 2  # the 429, then the retry


@pytest.mark.parametrize("world", ["vendor"], indirect=True)
async def test_calendar_outage_never_invents_a_booking(vendor):
    vendor.google.fail_next("freebusy.query", status=503, times=50)
    the_call = new_call(vendor.services, caller_phone=CALLER)
    qualified = {"existing_customer": False, "need": "forecasting", "company_size": 20,
                 "crm_system": "hubspot", "decision_role": "decision_maker",
                 "timeline": "this_quarter"}  # fmt: skip
    steps = [
        call("record_qualification", qualified),
        call("set_time_zone", {"time_zone": "Pacific"}),
        call("offer_slots"),
        say("I can't reach our calendar right now. Can someone email you a few times?"),
        call("request_follow_up", {"how": "email_times"}),
        Step(text="Done.", calls=[Call("end_call")]),
    ]
    async with running_agent(the_call, steps) as (session, _llm, hangups):
        result = await session.run(user_input="Let's book a demo, I'm on Pacific time")
        failure = [e.item for e in result.events if e.type == "function_call_output"][-1]
        assert failure.is_error and "unavailable" in failure.output
        await session.run(user_input="Yes please email me")
        await asyncio.sleep(0.1)
    await WrapUp(the_call, summarizer=None, outbox=vendor.outbox).run(session.history)
    assert vendor.events() == [] and the_call.state.booking is None and hangups.count == 1
    [logged] = vendor.logged_calls()
    assert logged["disposition"] == "qualified"
    [note] = vendor.notes()
    assert "email_times" in note


async def test_reschedule_and_cancel_the_meeting_booked_on_this_call(world):
    the_call = new_call(world.services, caller_phone=CALLER)
    steps = [
        call("set_time_zone", {"time_zone": "Eastern"}),
        call("offer_slots"),
        call("book_meeting", offered_slot(0)),
        say("Booked."),
        call("reschedule_meeting", offered_slot(1)),
        say("Moved."),
        call("cancel_meeting"),
        say("Cancelled."),
    ]
    async with running_agent(the_call, steps) as (session, _llm, _h):
        await session.run(user_input="Book the first time, Eastern")
        first, second = the_call.state.offered[0], the_call.state.offered[1]
        [event] = world.events()
        assert event.start == first.start
        await session.run(user_input="Actually, the second time")
        [event] = world.events()
        assert event.start == second.start
        await session.run(user_input="Cancel it, sorry")
    assert world.events() == [] and the_call.state.booking is None


@pytest.mark.parametrize("world", ["vendor"], indirect=True)
async def test_a_whole_call_through_a_hubspot_storm_is_written_once(vendor):
    """429s on every kind of request, 5xx on reads, a call create that times out after it
    took effect and a note create whose connection drops after it took effect, plus a
    calendar hiccup: the call still books, and the CRM ends with one of everything."""
    from tests.test_agent_behaviour import QUALIFY_AND_BOOK, QUALIFY_AND_BOOK_LINES

    hubspot = vendor.hubspot
    hubspot.fail_next("POST", status=429, retry_after=0.01, times=3)  # within the retries
    hubspot.fail_next("GET", status=503, times=2)
    hubspot.fail_next("PATCH", status=502, times=2)
    hubspot.hang_next("calls.create", seconds=3.0, apply=True)  # past the client's 2 s timeout
    hubspot.drop_next("notes.create", apply=True)
    vendor.google.fail_next("freebusy.query", status=503, times=1)
    the_call = new_call(vendor.services, caller_phone=CALLER)
    async with running_agent(the_call, QUALIFY_AND_BOOK) as (session, _llm, hangups):
        for line in QUALIFY_AND_BOOK_LINES:
            await session.run(user_input=line)
        await asyncio.sleep(0.1)
    result = await WrapUp(the_call, summarizer=None, outbox=vendor.outbox).run(session.history)
    assert result is not None and hangups.count == 1
    assert result.queued  # a call create whose answer was lost is not blindly retried
    replays = 0
    while vendor.outbox.pending():  # as the worker replays it, every few minutes
        replays += 1
        assert replays <= 3, "the outbox never delivered the record"
        with contextlib.suppress(IntegrationError):
            await vendor.outbox.replay(vendor.services.crm)
    assert await vendor.outbox.replay(vendor.services.crm) == 0  # nothing more to send

    assert hubspot.ops().count("contacts.create") >= 2  # the storm did hit
    [contact] = vendor.contacts()
    assert (contact["firstname"], contact["email"]) == ("Jane", "jane@acme.com")
    [logged] = vendor.logged_calls()
    assert logged["disposition"] == "booked"
    assert len(vendor.notes()) == 1 and len(vendor.deals()) == 1
    [event] = vendor.events()
    assert event.status == "confirmed"
