"""The agent on whole conversations: a real AgentSession, the real tools and integrations, a
scripted LLM. Assertions are on tool calls and on what ended up in the CRM and calendar."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from livekit.agents import AgentSession

import prompts
from agent.sales_agent import SalesAgent, greeting
from agent.worker import start_call_state
from calls.call import Call as LiveCall
from calls.wrapup import WrapUp
from integrations.outbox import Outbox
from integrations.scheduling import Calendar, Event, EventRequest, Interval
from tests.agent_harness import Hangups, new_call, running_agent
from tests.scripted_llm import Call, ScriptedLLM, Step, call, offered_slot, say, tool_output

pytestmark = pytest.mark.integration

CALLER = "+14155550100"


def first_offered(ctx) -> dict:
    return {"start": tool_output(ctx, "offer_slots")["slots"][0]["start"]}


QUALIFY_AND_BOOK = [
    Step(
        calls=[
            Call("save_contact_details", {"first_name": "Jane", "company": "Acme"}),
            Call("record_qualification", {"existing_customer": False, "need": "forecasting"}),
        ]
    ),
    say("How many sellers are on your team?"),
    call("record_qualification", {"company_size": 20, "crm_system": "hubspot"}),
    say("Are you the decision maker?"),
    call("record_qualification", {"decision_role": "decision_maker", "timeline": "this_quarter"}),
    say("Great, let's find a time. Are you on Pacific time?"),
    call("set_time_zone", {"time_zone": "Pacific"}),
    call("offer_slots"),
    say("I have a few times."),
    call("book_meeting", lambda ctx: {**first_offered(ctx), "email": "jane@acme.com"}),
    Step(text="You're booked.", calls=[Call("end_call")]),
]


# What the caller says to QUALIFY_AND_BOOK, line by line.
QUALIFY_AND_BOOK_LINES = (
    "Hi, I'm Jane from Acme, we need forecasting",
    "About twenty sellers, on HubSpot",
    "Yes it's my call, this quarter",
    "Yes, Pacific",
    "The first one works, jane@acme.com",
)


async def finish(world, the_call, session) -> None:
    await WrapUp(the_call, summarizer=None, outbox=world.outbox).run(session.history)


async def test_known_caller_is_greeted_by_name_and_not_asked_again(world):
    world.seed_contact(phone=CALLER, firstname="Dana", numemployees="40")
    sip_caller = SimpleNamespace(
        attributes={"sip.phoneNumber": "+1 (415) 555-0100", "sip.trunkPhoneNumber": "+14155550199"}
    )
    state = await start_call_state(
        world.services, call_id="c-known", direction="inbound", participant=sip_caller
    )
    the_call = LiveCall(state=state, services=world.services, control=Hangups())
    assert the_call.state.contact is not None and the_call.state.contact.firstname == "Dana"
    assert the_call.state.qualification.answers["company_size"] == 40

    steps = [call("record_qualification", {"need": "forecasting"}), say("Thanks.")]
    async with running_agent(the_call, steps) as (session, _llm, _hangups):
        result = await session.run(user_input="I want better forecasts")
    spoken = [i.text_content for i in session.history.items if i.type == "message" and
              i.role == "assistant"]  # fmt: skip
    assert spoken[0] == greeting(the_call)
    assert "Dana" in spoken[0]
    status = result.expect.next_event().is_function_call(name="record_qualification")
    output = tool_output(session.history, "record_qualification")
    asked = {q["field"] for q in output["ask_next"]}
    assert "company_size" not in asked and output["known"]["company_size"] == "40"
    assert status is not None


async def test_new_lead_is_qualified_and_booked(world):
    the_call = new_call(world.services, caller_phone=CALLER)
    async with running_agent(the_call, QUALIFY_AND_BOOK) as (session, scripted, hangups):
        for line in QUALIFY_AND_BOOK_LINES:
            await session.run(user_input=line)
        await asyncio.sleep(0.1)
    await finish(world, the_call, session)

    assert scripted.remaining == 0 and hangups.count == 1
    [event] = world.events()
    assert event.attendees == ("jane@acme.com",) and event.meet_link
    assert event.start == the_call.state.offered[0].start
    [contact] = world.contacts()
    assert (contact["firstname"], contact["company"], contact["email"]) == (
        "Jane", "Acme", "jane@acme.com",
    )  # fmt: skip
    [logged] = world.logged_calls()
    assert logged["disposition"] == "booked" and logged["contact_id"] == contact["id"]
    assert "forecasting" in logged["transcript"]
    assert len(world.notes()) == 1
    [deal] = world.deals()
    assert deal["contact_id"] == contact["id"]
    assert contact["numemployees"] == "20"  # criteria's crm_property, written back


async def test_hot_lead_disposition_comes_from_the_rules_with_the_marked_deal_amount(world):
    answers = {"existing_customer": False, "need": "forecasting", "company_size": 60,
               "crm_system": "salesforce", "decision_role": "decision_maker",
               "timeline": "this_month", "budget_usd": "2k"}  # fmt: skip
    steps = [
        call("record_qualification", answers),
        call("hand_to_rep", {"reason": "60 sellers, buying this month"}),
        Step(text="A specialist will call you.", calls=[Call("end_call")]),
    ]
    the_call = new_call(world.services, caller_phone=CALLER)
    async with running_agent(the_call, steps) as (session, _llm, hangups):
        await session.run(user_input="We have 60 sellers and want it this month, budget 2k")
        await asyncio.sleep(0.1)
    await finish(world, the_call, session)
    assert hangups.count == 1
    [logged] = world.logged_calls()
    assert logged["disposition"] == "qualified"
    [deal] = world.deals()
    assert float(deal["amount"]) == 2000.0
    [contact] = world.contacts()
    assert contact["numemployees"] == "60"


async def test_disqualified_lead_is_closed_politely(world):
    steps = [
        call(
            "record_qualification",
            {"existing_customer": False, "need": "pipeline reports", "crm_system": "none"},
        ),
        say("Thanks for telling me."),
        Step(text="Best of luck.", calls=[Call("end_call")]),
    ]
    the_call = new_call(world.services, caller_phone=CALLER)
    async with running_agent(the_call, steps) as (session, _llm, hangups):
        result = await session.run(user_input="We don't use a CRM, we want pipeline reports")
        assert tool_output(session.history, "record_qualification")["route"] == "disqualify"
        result = await session.run(user_input="OK, thanks anyway")
        result.expect.contains_function_call(name="end_call")
        await asyncio.sleep(0.1)
    await finish(world, the_call, session)
    assert hangups.count == 1
    [logged] = world.logged_calls()
    assert logged["disposition"] == "disqualified"
    assert world.deals() == [] and world.events() == []


async def test_slot_taken_between_offer_and_booking_offers_another(world):
    the_call = new_call(world.services, caller_phone=CALLER)
    steps = [
        call("set_time_zone", {"time_zone": "Eastern"}),
        call("offer_slots"),
        say("I have Tuesday at ten."),
        call("book_meeting", first_offered),
        say("Sorry, that one just went. How about another?"),
        call(
            "book_meeting",
            offered_slot(0, tool="book_meeting"),
        ),
        say("Booked."),
    ]
    async with running_agent(the_call, steps) as (session, _llm, _h):
        await session.run(user_input="Can we meet? I'm on Eastern time")
        taken = the_call.state.offered[0]
        world.seed_busy(taken.start, taken.end)
        await session.run(user_input="The first one")
        refused = tool_output(session.history, "book_meeting")
        assert refused["booked"] is False
        assert all(s["start"] != taken.start.isoformat() for s in refused["slots"])
        await session.run(user_input="Sure, the first of those")
        assert tool_output(session.history, "book_meeting")["booked"] is True
    [event] = world.events()
    assert event.start != taken.start and event.start == the_call.state.offered[0].start


async def test_robot_question_gets_an_honest_answer(world):
    the_call = new_call(world.services, caller_phone=CALLER)
    steps = [say("I'm Northwind's AI assistant. Want a person to call you back?")]
    async with running_agent(the_call, steps) as (session, scripted, _h):
        await session.run(user_input="Wait, am I talking to a robot?")
    disclosure = prompts.load_yaml("greeting.yaml")["ai_disclosure"]
    assert disclosure in greeting(the_call)
    instructions = scripted.requests[0].items[0].text_content
    assert "Never claim to be human" in instructions


class SlowCalendar:
    """A calendar whose writes take a while, standing in for a slow Google insert."""

    def __init__(self, inner: Calendar, delay_s: float) -> None:
        self.inner, self.delay_s, self.name = inner, delay_s, "slow"

    async def busy(self, start: datetime, end: datetime) -> list[Interval]:
        return await self.inner.busy(start, end)

    async def create_event(self, request: EventRequest) -> Event:
        await asyncio.sleep(self.delay_s)
        return await self.inner.create_event(request)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


async def test_caller_hangs_up_mid_booking_and_the_crm_is_written_once(world):
    from dataclasses import replace

    services = replace(world.services, calendar=SlowCalendar(world.services.calendar, 0.5))
    the_call = new_call(services, caller_phone=CALLER)
    steps = [
        call("set_time_zone", {"time_zone": "Eastern"}),
        call("offer_slots"),
        say("I have a few times."),
        call("book_meeting", first_offered),
        say("Booked."),
    ]
    async with running_agent(the_call, steps) as (session, _llm, _h):
        await session.run(user_input="Book me in, Eastern time")
        session.run(user_input="The first one")
        await asyncio.sleep(0.2)  # the insert is under way ...
    # ... when the caller hangs up: the session is gone, and every end-of-call path fires.
    await asyncio.gather(*(finish(world, the_call, session) for _ in range(3)))
    [event] = world.events()
    [logged] = world.logged_calls()
    assert logged["disposition"] == "booked"
    assert event.start == the_call.state.offered[0].start
    assert len(world.deals()) == 1


async def test_past_and_impossible_dates_get_clear_errors(world):
    the_call = new_call(world.services, caller_phone=CALLER)
    yesterday = (world.services.now() - timedelta(days=1)).date().isoformat()
    steps = [
        Step(
            calls=[
                Call("set_time_zone", {"time_zone": "Eastern"}),
                Call("offer_slots", {"day": yesterday}),
                Call("offer_slots", {"day": "2026-02-30"}),
                Call("book_meeting", {"start": "2026-11-24T03:00:00-05:00"}),
                Call("save_contact_details", {"email": "jane at acme"}),
                Call("save_contact_details", {"phone": "555-12"}),
            ]
        ),
        say("Sorry, which day did you mean?"),
    ]
    async with running_agent(the_call, steps) as (session, _llm, _h):
        result = await session.run(user_input="Yesterday works")
    errors = [e.item for e in result.events if e.type == "function_call_output" and e.item.is_error]
    assert len(errors) == 5
    assert "in the past" in errors[0].output and "not a date" in errors[1].output
    assert (
        "outside our meeting hours" in errors[2].output and "not a valid email" in errors[3].output
    )
    assert world.events() == [] and world.contacts() == []


async def test_crm_outage_at_wrap_up_is_queued_not_lost(world, tmp_path):
    the_call = new_call(world.services, caller_phone=CALLER)
    the_call.state.ended_by_agent = True  # undecided by the rules: a lead to nurture

    class DownCrm:
        name = "down"

        async def upsert_contact(self, **_kw):
            from integrations.errors import TemporarilyUnavailable

            raise TemporarilyUnavailable("503")

    down = type(world.services)(**{**world.services.__dict__, "crm": DownCrm()})
    the_call.services = down
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    result = await WrapUp(the_call, summarizer=None, outbox=outbox).run(_empty_history())
    assert result is not None and result.queued
    assert world.logged_calls() == []
    assert await outbox.replay(world.services.crm) == 1
    assert await outbox.replay(world.services.crm) == 0
    [logged] = world.logged_calls()
    assert logged["disposition"] == "nurture"


def _empty_history():
    from livekit.agents import ChatContext

    return ChatContext.empty()


async def test_outbound_callee_hello_gets_the_opener_not_the_llm(world):
    # Text input skips the end-of-turn hook, so the hook is driven as the audio path drives it
    # (the SIP e2e test covers the spoken path).
    from livekit.agents import ChatContext, ChatMessage, StopResponse

    the_call = new_call(world.services, caller_phone=CALLER, direction="outbound")
    async with AgentSession[LiveCall](llm=ScriptedLLM([]), userdata=the_call) as session:
        agent = SalesAgent(the_call, greet_on_enter=False)
        await session.start(agent)
        assert spoken_lines(session) == []  # nothing before the callee picks up and speaks
        hello = ChatMessage(role="user", content=["Hello?"])
        with pytest.raises(StopResponse):
            await agent.on_user_turn_completed(ChatContext.empty(), hello)
        await asyncio.sleep(0.2)
        assert spoken_lines(session) == [greeting(the_call)]
        await agent.on_user_turn_completed(ChatContext.empty(), hello)  # later turns: the LLM
    assert next(i.id for i in session.history.items if i.type == "message") == hello.id


async def test_outbound_callee_who_stays_quiet_is_greeted_anyway(world):
    the_call = new_call(world.services, caller_phone=CALLER, direction="outbound")
    async with AgentSession[LiveCall](llm=ScriptedLLM([]), userdata=the_call) as session:
        agent = SalesAgent(the_call, greet_on_enter=False)
        await session.start(agent)
        agent.callee_answered(quiet_s=0.1)
        await asyncio.sleep(0.4)
        assert spoken_lines(session) == [greeting(the_call)]


async def test_a_mailbox_is_never_answered_once_the_agent_stops_the_conversation(world):
    from livekit.agents import ChatContext, ChatMessage, StopResponse

    the_call = new_call(world.services, caller_phone=CALLER, direction="outbound")
    async with AgentSession[LiveCall](llm=ScriptedLLM([]), userdata=the_call) as session:
        agent = SalesAgent(the_call, greet_on_enter=False)
        await session.start(agent)
        agent.stop_conversation()  # the screen decided: a machine
        greeting_turn = ChatMessage(role="user", content=["Hi, you've reached Dana."])
        for _ in range(2):  # its greeting, then whatever else it says
            with pytest.raises(StopResponse):
                await agent.on_user_turn_completed(ChatContext.empty(), greeting_turn)
        agent.callee_answered(quiet_s=0.05)
        await asyncio.sleep(0.3)
        assert spoken_lines(session) == []  # no opener, no LLM reply
    assert any(i.id == greeting_turn.id for i in session.history.items)  # kept in the transcript


async def test_a_turn_heard_while_the_screen_decides_is_kept_and_not_answered(world):
    # The quiet callee's opener is already queued (the screen holds it back) when a mailbox's
    # greeting ends: the session would drop a turn whose reply never plays, so the agent keeps
    # it itself and leaves the answer to the screen's verdict.
    from livekit.agents import ChatContext, ChatMessage, StopResponse

    the_call = new_call(world.services, caller_phone=CALLER, direction="outbound")
    async with AgentSession[LiveCall](llm=ScriptedLLM([]), userdata=the_call) as session:
        agent = SalesAgent(the_call, greet_on_enter=False)
        await session.start(agent)
        agent.begin_screening()
        agent.callee_answered(quiet_s=0.05)
        await asyncio.sleep(0.2)  # the opener is queued
        greeting_turn = ChatMessage(role="user", content=["Hi, you've reached Dana."])
        with pytest.raises(StopResponse):
            await agent.on_user_turn_completed(ChatContext.empty(), greeting_turn)
        assert any(i.id == greeting_turn.id for i in session.history.items)
        agent.open_conversation()  # a person after all: their next turn is the LLM's
        await agent.on_user_turn_completed(ChatContext.empty(), greeting_turn)


def spoken_lines(session) -> list[str]:
    return [i.text_content for i in session.history.items
            if i.type == "message" and i.role == "assistant"]  # fmt: skip


async def test_stop_calling_me_goes_on_the_do_not_call_list_and_in_the_crm(world, tmp_path):
    from dataclasses import replace

    from agent.backends import DialerDoNotCall
    from dialer.sqlite_store import SqliteStore

    if hasattr(world, "hubspot"):
        world.hubspot.define_property("contacts", "do_not_call")  # the portal's custom property
    queue = SqliteStore(tmp_path / "dialer.sqlite3")
    services = replace(world.services, do_not_call=DialerDoNotCall(queue, now=world.services.now))
    the_call = new_call(services, caller_phone=CALLER, direction="outbound")
    steps = [
        call("stop_calling", {"reason": "not interested"}),
        Step(text="Understood, we won't call again.", calls=[Call("end_call")]),
    ]
    async with running_agent(the_call, steps) as (session, _llm, hangups):
        await session.run(user_input="Please take me off your list and stop calling me")
        await asyncio.sleep(0.1)
    await finish(world, the_call, session)
    assert queue.is_dnc(CALLER) and hangups.count == 1
    [contact] = world.contacts()
    assert contact["do_not_call"] == "true"
    [note] = world.notes()
    assert "do_not_call" in note  # the rep reads it in the call's note too
    queue.close()


@pytest.mark.parametrize("world", ["vendor"], indirect=True)
async def test_an_opt_out_stands_even_when_the_portal_lacks_the_crm_property(world, tmp_path):
    from dataclasses import replace

    from agent.backends import DialerDoNotCall
    from dialer.sqlite_store import SqliteStore

    queue = SqliteStore(tmp_path / "dialer.sqlite3")
    services = replace(world.services, do_not_call=DialerDoNotCall(queue, now=world.services.now))
    the_call = new_call(services, caller_phone=CALLER)
    steps = [call("stop_calling"), say("Understood.")]
    async with running_agent(the_call, steps) as (session, _llm, _h):
        await session.run(user_input="Stop calling me")
    assert tool_output(session.history, "stop_calling")["recorded"] is True
    assert queue.is_dnc(CALLER) and the_call.state.do_not_call
    queue.close()


async def test_call_me_back_at_four_records_the_time_in_their_zone(world):
    the_call = new_call(world.services, caller_phone=CALLER, direction="outbound")
    the_call.state.caller_zone = ZoneInfo("America/Los_Angeles")
    today = world.services.now().astimezone(the_call.state.caller_zone).date()
    steps = [
        Step(
            calls=[
                Call("schedule_callback", {"at": "2020-01-01T16:00"}),
                Call("schedule_callback", {"at": f"{today}T16:00"}),
            ]
        ),
        say("I'll call you back then."),
    ]
    async with running_agent(the_call, steps) as (session, _llm, _h):
        result = await session.run(user_input="I'm driving, call me back at four")
    outputs = [e.item for e in result.events if e.type == "function_call_output"]
    assert outputs[0].is_error and "already passed" in outputs[0].output
    assert tool_output(session.history, "schedule_callback")["say"].startswith("today at four")
    assert the_call.state.callback_at == datetime(
        today.year, today.month, today.day, 16, tzinfo=ZoneInfo("America/Los_Angeles")
    )
