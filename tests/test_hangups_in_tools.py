"""The caller hangs up while a tool is in the middle of a vendor request, for every tool that
makes one: the write lands once or not at all, and the call record (the wrap-up fired by
every end-of-call path at once) agrees with what the CRM and calendar hold."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime

import pytest

from calls.wrapup import WrapUp
from tests.agent_harness import new_call, running_agent
from tests.scripted_llm import Call, Step, call, offered_slot, say
from tests.test_agent_behaviour import CALLER, first_offered

pytestmark = pytest.mark.integration

SLOW_S = 0.5


class Slowed:
    """One of our own backends with one method taking a while, as a slow vendor would."""

    def __init__(self, inner: object, method: str) -> None:
        self.inner, self.method = inner, method

    def __getattr__(self, name: str):
        attribute = getattr(self.inner, name)
        if name != self.method:
            return attribute

        async def slow(*args, **kwargs):
            await asyncio.sleep(SLOW_S)
            return await attribute(*args, **kwargs)

        return slow


BOOK = [
    call("set_time_zone", {"time_zone": "Eastern"}),
    call("offer_slots"),
    say("I have a few times."),
    call("book_meeting", first_offered),
    say("Booked."),
]
# (the tool, which backend method is slow, the lines before it, the tool call, the caller's
# words that trigger it)
CASES = {
    "save_contact_details": ("crm", "upsert_contact", [],
        [call("save_contact_details", {"first_name": "Jane", "email": "jane@acme.com"}),
         say("Thanks Jane.")], "I'm Jane, jane@acme.com"),
    "offer_slots": ("calendar", "busy", [],
        [call("set_time_zone", {"time_zone": "Eastern"}), call("offer_slots"), say("Times.")],
        "When can we meet? Eastern"),
    "book_meeting": ("calendar", "create_event", BOOK[:3], BOOK[3:], "The first one"),
    "reschedule_meeting": ("calendar", "move_event",
        [*BOOK, call("offer_slots"), say("Here are others.")],
        [call("reschedule_meeting", offered_slot(1)), say("Moved.")], "Actually the second one"),
    "cancel_meeting": ("calendar", "cancel_event", BOOK,
        [call("cancel_meeting"), say("Cancelled.")], "Cancel it please"),
    "stop_calling": ("crm", "upsert_contact", [],
        [call("stop_calling", {"reason": "not interested"}), say("Done.")],
        "Stop calling me"),
}  # fmt: skip
BEFORE_LINES = {
    "book_meeting": ["Book me in, Eastern time"],
    "reschedule_meeting": ["Book me in, Eastern time", "The first one", "Any other times?"],
    "cancel_meeting": ["Book me in, Eastern time", "The first one"],
}


@pytest.mark.parametrize("tool", sorted(CASES))
async def test_the_caller_hangs_up_in_the_middle_of_a_tool(world, tool):
    backend, method, before, steps, words = CASES[tool]
    slowed = Slowed(getattr(world.services, backend), method)
    the_call = new_call(replace(world.services, **{backend: slowed}), caller_phone=CALLER)
    async with running_agent(the_call, [*before, *steps]) as (session, _llm, _h):
        for line in BEFORE_LINES.get(tool, []):
            await session.run(user_input=line)
        session.run(user_input=words)
        await asyncio.sleep(SLOW_S / 2)  # the vendor request is under way ...
    # ... when the caller hangs up: every end-of-call path fires the wrap-up at once.
    wrapup = WrapUp(the_call, summarizer=None, outbox=world.outbox)
    await asyncio.gather(*(wrapup.run(session.history) for _ in range(3)))
    await asyncio.sleep(SLOW_S)  # anything still running has landed by now

    [logged] = world.logged_calls()
    contacts = world.contacts()
    assert len(contacts) <= 1 and logged["contact_id"] == contacts[0]["id"]
    confirmed = [e for e in world.events() if e.status == "confirmed"]
    assert len(confirmed) <= 1
    if confirmed:  # the record says booked, and at the time the calendar holds
        assert logged["disposition"] == "booked"
        booking = the_call.state.booking
        assert booking is not None and booking.start == confirmed[0].start
        assert len(world.deals()) == 1
    else:
        assert logged["disposition"] != "booked" and the_call.state.booking is None
    if tool == "save_contact_details":
        assert contacts[0]["email"] == "jane@acme.com"
    if tool == "stop_calling":
        assert the_call.state.do_not_call
    if tool == "reschedule_meeting":
        assert confirmed and confirmed[0].start == the_call.state.offered[1].start
    if tool == "cancel_meeting":
        assert not confirmed


_ = (Call, Step, datetime)
