"""Tools that offer, book, move and cancel meetings on the calendar."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from livekit.agents import RunContext, ToolError, function_tool
from pydantic import Field

import prompts
from agent.state import CallState  # runtime import: LiveKit resolves tool type hints
from tools.contact_tools import normalise_email, save_contact
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
from tools.tool_support import as_json, speakable_failures, timed

logger = logging.getLogger("tools")
OFFER_COUNT = 3


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
    on_day = _parse_day(state, day) if day else None
    async with speakable_failures("calendar"):
        slots = await _free_slots(state, on_day=on_day, part_of_day=part_of_day)
    if not slots and on_day is not None:
        return as_json({"slots": [], "note": "Nothing free that day. Ask about another day."})
    if not slots:
        raise ToolError(
            "There are no free times in the next two weeks. Offer to have the team email them."
        )
    state.offered = spread(slots, OFFER_COUNT)
    return as_json(_offer_payload(state, state.offered))


async def _free_slots(
    state: CallState, *, on_day: date | None = None, part_of_day: str | None = None
) -> list[Interval]:
    """Free slots from now to the booking horizon, read fresh from the calendar."""
    assert state.caller_zone is not None
    now, hours = state.now(), state.services.hours
    window_end = now + timedelta(days=hours.horizon_days + 1)
    busy = await timed(state, state.services.calendar.busy(now, window_end))
    return free_slots(
        hours,
        now=now,
        busy=busy,
        caller_zone=state.caller_zone,
        on_day=on_day,
        part_of_day=part_of_day,
    )


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
        taken = await timed(state, state.services.calendar.busy(slot.start, slot.end))
        if any(b.overlaps(slot) for b in taken):
            return as_json(await _slot_taken(state))
        event = await timed(state, state.shielded(_create_event(state, slot)))
    state.booking = event
    logger.info("meeting booked", extra={"call_id": state.call_id, "event_id": event.id})
    return as_json(_booked_payload(state))


async def _slot_taken(state: CallState) -> dict[str, Any]:
    state.offered = spread(await _free_slots(state), OFFER_COUNT)
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
        taken = await timed(state, state.services.calendar.busy(slot.start, slot.end))
        if any(b.overlaps(slot) and b != Interval(booking.start, booking.end) for b in taken):
            return as_json(await _slot_taken(state))
        moved = state.services.calendar.move_event(booking.id, start=slot.start, end=slot.end)
        state.booking = await timed(state, state.shielded(moved))
    return as_json(_booked_payload(state))


@function_tool
async def cancel_meeting(context: RunContext[CallState]) -> str:
    """Cancel the meeting booked on this call, when the caller asks to."""
    state = context.userdata
    if state.booking is None or state.booking.status != "confirmed":
        raise ToolError("No meeting is booked on this call.")
    booking = state.booking
    async with speakable_failures("calendar"):
        await timed(state, state.shielded(state.services.calendar.cancel_event(booking.id)))
    state.booking = None
    return as_json({"cancelled": True})
