"""The function tools the LLM calls. Each one validates its input, talks to the CRM or calendar
through their protocols, and turns every failure into a sentence the agent can act on."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from livekit.agents import RunContext, ToolError, function_tool
from pydantic import Field

import prompts
from agent.state import CallState  # runtime import: LiveKit resolves tool type hints
from tools.crm import Contact, CrmConflict
from tools.errors import IntegrationError, OutcomeUnknown, TemporarilyUnavailable
from tools.phone import InvalidPhoneNumber, normalise_phone
from tools.scheduling import Event, EventRequest, Interval
from tools.slots import (
    InvalidTimeZone,
    booking_event_id,
    candidate_slots,
    free_slots,
    resolve_time_zone,
    say_time,
    spread,
)

logger = logging.getLogger("tools")
T = TypeVar("T")

EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
OFFER_COUNT = 3


@asynccontextmanager
async def speakable_failures(system: str) -> AsyncIterator[None]:
    """Integration failures become ``ToolError``s the agent can say truthfully."""
    try:
        yield
    except TimeoutError:
        raise ToolError(
            f"The {system} did not answer in time, so nothing was changed. Tell the caller "
            "honestly and offer to have someone from the team follow up by email."
        ) from None
    except TemporarilyUnavailable:
        raise ToolError(
            f"The {system} is unavailable right now, so nothing was changed. Tell the caller "
            "honestly and offer to have someone from the team follow up by email."
        ) from None
    except OutcomeUnknown:
        raise ToolError(
            f"The {system} did not confirm the change. Do not tell the caller it is done; say "
            "the team will confirm by email."
        ) from None
    except IntegrationError as exc:
        logger.warning("%s error: %s", system, exc)
        raise ToolError(
            f"The {system} rejected the request. Do not claim it succeeded; offer to have "
            "someone follow up by email."
        ) from None


def as_json(payload: dict[str, Any]) -> str:
    """Tool results go to the LLM as JSON text, which models read more reliably than reprs."""
    return json.dumps(payload, default=str)


async def _timed(state: CallState, work: Awaitable[T]) -> T:
    return await asyncio.wait_for(work, timeout=state.services.tool_timeout_s)


def normalise_email(raw: str) -> str:
    """Accept what an STT writes for a spoken address ("jane at acme dot com")."""
    text = raw.strip().lower()
    text = re.sub(r"\s+at\s+", "@", text)
    text = re.sub(r"\s+dot\s+", ".", text)
    text = text.replace(" ", "")
    if not EMAIL_RE.match(text):
        raise ToolError(
            f"'{raw}' is not a valid email address. Ask the caller to spell it, then try again."
        )
    return text


# --- contact -----------------------------------------------------------------------------------


@function_tool
async def save_contact_details(
    context: RunContext[CallState],
    first_name: str | None = None,
    last_name: str | None = None,
    email: str | None = None,
    company: str | None = None,
    job_title: str | None = None,
    phone: str | None = None,
) -> str:
    """Save the caller's name, email, company, job title or a callback number to the CRM as
    soon as you learn them.

    Args:
        first_name: The caller's first name.
        last_name: The caller's last name.
        email: The caller's email address.
        company: The caller's company.
        job_title: The caller's job title.
        phone: A callback number the caller gave, if different from the one they call from.
    """
    state = context.userdata
    properties = {
        key: value.strip()
        for key, value in {
            "firstname": first_name,
            "lastname": last_name,
            "company": company,
            "jobtitle": job_title,
        }.items()
        if value and value.strip()
    }
    if email:
        properties["email"] = normalise_email(email)
    if phone:
        properties["phone"] = _callback_number(state, phone)
    if not properties:
        raise ToolError("Nothing to save: pass at least one detail.")
    contact = await save_contact(state, properties)
    return as_json({"saved": sorted(properties), "contact_name": contact.firstname})


async def save_contact(state: CallState, properties: dict[str, str]) -> Contact:
    """Create or update the caller's contact, keeping its id for the rest of the call (searching
    again right after a create is how duplicates happen: CRM search lags writes)."""
    crm = state.services.crm
    contact_id = state.contact.id if state.contact else None

    async def write() -> Contact:
        return await crm.upsert_contact(
            contact_id=contact_id, phone_e164=state.caller_phone, properties=properties
        )

    async with speakable_failures("CRM"):
        try:
            contact = await _timed(state, state.shielded(write()))
        except CrmConflict:
            # The email belongs to another record: keep the rest, do not steal the address.
            properties.pop("email", None)
            if not properties:
                raise ToolError(
                    "That email is already on another contact in our CRM; do not change it. "
                    "The team will sort it out."
                ) from None
            contact = await _timed(state, state.shielded(write()))
    state.contact = contact
    return contact


def _callback_number(state: CallState, raw: str) -> str:
    try:
        return normalise_phone(raw, default_region=state.services.default_region)
    except InvalidPhoneNumber:
        raise ToolError(
            f"'{raw}' is not a valid phone number. Ask the caller to repeat it with the area code."
        ) from None


# --- qualification -----------------------------------------------------------------------------


def qualification_tool(criteria_schema: dict[str, Any]) -> Any:
    """The qualification tool, whose parameters are the fields of the business's criteria."""

    async def record_qualification(raw_arguments: dict[str, Any], context: RunContext) -> Any:
        state: CallState = context.userdata
        problems = state.qualification.record(raw_arguments)
        return as_json(qualification_status(state, problems))

    return function_tool(
        record_qualification,
        raw_schema={
            "name": "record_qualification",
            "description": (
                "Record qualification answers as soon as the caller gives them (only the ones "
                "you heard). Returns what is already known, the next questions to ask, and the "
                "route once it is decided."
            ),
            "parameters": criteria_schema,
        },
    )


def qualification_status(state: CallState, problems: dict[str, str] | None = None) -> dict:
    qual = state.qualification
    status: dict[str, Any] = {
        "known": qual.as_text(),
        "ask_next": [{"field": c.key, "question": c.question} for c in qual.still_needed()],
    }
    if problems:
        status["not_recorded"] = problems
    decided = qual.route()
    if decided is not None:
        outcome, reason = decided
        status["route"] = outcome
        if reason:
            status["route_reason"] = reason
    return status


# --- calendar ----------------------------------------------------------------------------------


@function_tool
async def set_time_zone(context: RunContext[CallState], time_zone: str) -> str:
    """Set the caller's time zone once they confirm it (e.g. "Eastern", "Pacific",
    "Europe/London").

    Args:
        time_zone: The time zone the caller confirmed.
    """
    state = context.userdata
    try:
        state.caller_zone = resolve_time_zone(time_zone)
    except InvalidTimeZone:
        raise ToolError(
            f"'{time_zone}' is not a time zone I know. Ask for their city or state instead."
        ) from None
    state.zone_confirmed = True
    state.offered = []
    return as_json({"time_zone": state.caller_zone.key})


@function_tool
async def offer_slots(
    context: RunContext[CallState],
    day: Annotated[str | None, Field(description="YYYY-MM-DD, only if the caller asked")] = None,
    part_of_day: Literal["morning", "afternoon", "evening"] | None = None,
) -> str:
    """Find free meeting times to offer the caller. Read the 'say' texts to the caller as they
    are; offer two or three, not more.

    Args:
        day: A specific date the caller asked for, as YYYY-MM-DD.
        part_of_day: morning, afternoon or evening, if the caller has a preference.
    """
    state = context.userdata
    if state.caller_zone is None:
        raise ToolError("Ask which time zone the caller is in, then call set_time_zone first.")
    now = state.now()
    on_day = _parse_day(state, day) if day else None
    hours = state.services.hours
    window_end = now + timedelta(days=hours.horizon_days + 1)
    async with speakable_failures("calendar"):
        busy = await _timed(state, state.services.calendar.busy(now, window_end))
    slots = free_slots(
        hours,
        now=now,
        busy=busy,
        caller_zone=state.caller_zone,
        on_day=on_day,
        part_of_day=part_of_day,
    )
    if not slots and on_day is not None:
        return as_json({"slots": [], "note": "Nothing free that day. Ask about another day."})
    if not slots:
        raise ToolError(
            "There are no free times in the next two weeks. Offer to have the team email them."
        )
    state.offered = spread(slots, OFFER_COUNT)
    return as_json(_offer_payload(state, state.offered))


def _offer_payload(state: CallState, slots: list[Interval]) -> dict[str, Any]:
    assert state.caller_zone is not None
    payload: dict[str, Any] = {
        "slots": [
            {
                "start": s.start.isoformat(),
                "say": say_time(s.start, zone=state.caller_zone, now=state.now()),
            }
            for s in slots
        ],
    }
    if not state.zone_confirmed:
        payload["time_zone_unconfirmed"] = (
            f"Times are in {state.caller_zone.key}, guessed from their number: confirm it."
        )
    return payload


def _parse_day(state: CallState, text: str) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"'{text}' is not a date; use YYYY-MM-DD.") from None
    today = state.now().astimezone(state.services.hours.zone).date()
    if day < today:
        raise ToolError(
            f"{day:%A %B %d, %Y} is in the past; today is {today:%A %B %d, %Y}. "
            "Ask the caller which upcoming day they meant."
        )
    if day > today + timedelta(days=state.services.hours.horizon_days):
        raise ToolError("That is too far out to book; offer a day within the next two weeks.")
    return day


def _parse_start(state: CallState, text: str) -> Interval:
    try:
        start = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"'{text}' is not a time; pass a start from offer_slots.") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=state.caller_zone or state.services.hours.zone)
    hours = state.services.hours
    if start <= state.now():
        raise ToolError("That time is in the past. Offer upcoming times with offer_slots.")
    local_day = start.astimezone(hours.zone).date()
    for slot in candidate_slots(hours, now=state.now(), days=[local_day]):
        if slot.start == start:
            return slot
    raise ToolError(
        "That time is outside our meeting hours or too soon. Offer times from offer_slots."
    )


@function_tool
async def book_meeting(
    context: RunContext[CallState],
    start: str,
    email: str | None = None,
) -> str:
    """Book the meeting time the caller chose. Only tell the caller it is booked if this returns
    booked true.

    Args:
        start: The chosen slot's start, exactly as offer_slots returned it.
        email: Where to send the invite, if the caller gave an email.
    """
    state = context.userdata
    slot = _parse_start(state, start)
    if state.caller_zone is None:
        raise ToolError("Confirm the caller's time zone with set_time_zone before booking.")
    if email:
        await save_contact(state, {"email": normalise_email(email)})
    if state.booking is not None and state.booking.status == "confirmed":
        if state.booking.start == slot.start:
            return as_json(_booked_payload(state))
        raise ToolError("A meeting is already booked on this call; use reschedule_meeting.")
    async with speakable_failures("calendar"):
        taken = await _timed(state, state.services.calendar.busy(slot.start, slot.end))
        if any(b.overlaps(slot) for b in taken):
            return as_json(await _slot_taken(state))
        event = await _timed(state, state.shielded(_create_event(state, slot)))
    state.booking = event
    logger.info("meeting booked", extra={"call_id": state.call_id, "event_id": event.id})
    return as_json(_booked_payload(state))


async def _slot_taken(state: CallState) -> dict[str, Any]:
    now = state.now()
    assert state.caller_zone is not None
    hours = state.services.hours
    busy = await state.services.calendar.busy(now, now + timedelta(days=hours.horizon_days + 1))
    state.offered = spread(
        free_slots(hours, now=now, busy=busy, caller_zone=state.caller_zone), OFFER_COUNT
    )
    return {
        "booked": False,
        "reason": "That time was just taken by someone else. Apologise and offer these instead.",
        **_offer_payload(state, state.offered),
    }


async def _create_event(state: CallState, slot: Interval) -> Event:
    business = state.services.business
    contact = state.contact
    name = (contact.firstname if contact else None) or "a new lead"
    summary = state.qualification.as_text()
    description = prompts.render(
        business.meeting_description,
        agent_name=business.agent_name,
        summary="\n".join(f"{k}: {v}" for k, v in summary.items()),
    )
    key = (contact.id if contact else None) or state.caller_phone or state.call_id
    assert state.caller_zone is not None
    request = EventRequest(
        event_id=booking_event_id(booking_key=key, start=slot.start),
        start=slot.start,
        end=slot.end,
        time_zone=state.caller_zone.key,
        summary=prompts.render(business.meeting_title, name=name),
        description=description,
        attendee_email=contact.email if contact else None,
        attendee_name=" ".join(filter(None, [contact.firstname, contact.lastname]))
        if contact
        else None,
    )
    return await state.services.calendar.create_event(request)


def _booked_payload(state: CallState) -> dict[str, Any]:
    assert state.booking is not None and state.caller_zone is not None
    return {
        "booked": True,
        "say": say_time(state.booking.start, zone=state.caller_zone, now=state.now()),
        "invite_sent_to": state.contact.email if state.contact and state.contact.email else None,
        "video_link": bool(state.booking.meet_link),
    }


@function_tool
async def reschedule_meeting(context: RunContext[CallState], start: str) -> str:
    """Move the meeting booked on this call to another time the caller chose.

    Args:
        start: The new start, exactly as offer_slots returned it.
    """
    state = context.userdata
    if state.booking is None or state.booking.status != "confirmed":
        raise ToolError("No meeting is booked on this call; use book_meeting instead.")
    slot = _parse_start(state, start)
    booking = state.booking
    async with speakable_failures("calendar"):
        taken = await _timed(state, state.services.calendar.busy(slot.start, slot.end))
        if any(b.overlaps(slot) and b != Interval(booking.start, booking.end) for b in taken):
            return as_json(await _slot_taken(state))
        moved = state.services.calendar.move_event(booking.id, start=slot.start, end=slot.end)
        state.booking = await _timed(state, state.shielded(moved))
    return as_json(_booked_payload(state))


@function_tool
async def cancel_meeting(context: RunContext[CallState]) -> str:
    """Cancel the meeting booked on this call, when the caller asks to."""
    state = context.userdata
    if state.booking is None or state.booking.status != "confirmed":
        raise ToolError("No meeting is booked on this call.")
    booking = state.booking
    async with speakable_failures("calendar"):
        await _timed(state, state.shielded(state.services.calendar.cancel_event(booking.id)))
    state.booking = None
    return as_json({"cancelled": True})


# --- routing and the end of the call ---------------------------------------------------------


@function_tool
async def request_follow_up(
    context: RunContext[CallState],
    how: Literal["email_times", "email_information", "call_back"],
    detail: str | None = None,
) -> str:
    """Record that the team should follow up, e.g. email the caller meeting times when the
    calendar is unavailable, or send information to a lead who is not ready yet.

    Args:
        how: What the team should do.
        detail: Anything the team needs to know, in one sentence.
    """
    state = context.userdata
    state.follow_up = how + (f": {detail}" if detail else "")
    return as_json({"recorded": True})


@function_tool
async def hand_to_rep(context: RunContext[CallState], reason: str) -> str:
    """Hand a hot lead to a sales rep when the qualification route says hand_to_rep.

    Args:
        reason: One sentence on why this lead is hot, for the rep.
    """
    state = context.userdata
    state.handoff_reason = reason
    state.outcome = "qualified"
    return as_json({"next": "Tell the caller a specialist will call them back within the hour."})


@function_tool
async def log_support_issue(context: RunContext[CallState], issue: str) -> str:
    """Record an existing customer's support issue, in one sentence.

    Args:
        issue: The problem in the caller's words.
    """
    state = context.userdata
    state.support_issue = issue
    state.outcome = "support"
    return as_json({"next": "Tell them support will follow up, then end the call."})


EndOutcome = Literal["booked", "qualified", "nurture", "disqualified", "support"]


@function_tool
async def end_call(context: RunContext[CallState], outcome: EndOutcome) -> None:
    """End the call, once the next step is settled and the caller has nothing else. This says
    goodbye for you: do not say goodbye yourself.

    Args:
        outcome: How the call ended.
    """
    state = context.userdata
    if outcome != "booked" or state.booking is None:
        state.outcome = "qualified" if outcome == "booked" else outcome
    goodbye = prompts.load_yaml("closings.yaml")["goodbye"][state.disposition()]
    handle = context.session.say(goodbye, allow_interruptions=False)
    # Awaiting the goodbye here would wait on this tool's own turn: hang up from outside it.
    state.hang_up_after(handle)
    return None
