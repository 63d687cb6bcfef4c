"""Tools that offer, book, move and cancel meetings on the calendar."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from livekit.agents import RunContext, ToolError, function_tool
from pydantic import Field

import prompts
from calls.call import Call  # runtime import: LiveKit resolves tool type hints
from calls.slots import booking_event_id, candidate_slots, free_slots, say_time, spread
from calls.time_zones import InvalidTimeZone, resolve_time_zone
from integrations.scheduling import Event, EventRequest, Interval, SlotTaken
from tools.contact_tools import normalise_email, save_contact
from tools.tool_support import as_json, speakable_failures, timed

logger = logging.getLogger("tools")
OFFER_COUNT = 3
# Meetings one call may create, counting those it cancelled: a caller can change their mind,
# not fill the calendar (or someone's inbox with invites).
MAX_BOOKINGS_PER_CALL = 3


@function_tool
async def set_time_zone(context: RunContext[Call], time_zone: str) -> str:
    """Set the caller's time zone once they confirm it (e.g. "Eastern", "Pacific",
    "Europe/London").

    Args:
        time_zone: The time zone the caller confirmed.
    """
    call = context.userdata
    try:
        call.state.caller_zone = resolve_time_zone(time_zone)
    except InvalidTimeZone:
        raise ToolError(
            f"'{time_zone}' is not a time zone I know. Ask for their city or state instead."
        ) from None
    call.state.zone_confirmed = True
    call.state.offered = []
    return as_json({"time_zone": call.state.caller_zone.key})


@function_tool
async def offer_slots(
    context: RunContext[Call],
    day: Annotated[str | None, Field(description="YYYY-MM-DD, only if the caller asked")] = None,
    part_of_day: Literal["morning", "afternoon", "evening"] | None = None,
) -> str:
    """Find free meeting times to offer the caller. Read the 'say' texts to the caller as they
    are; offer two or three, not more.

    Args:
        day: A specific date the caller asked for, as YYYY-MM-DD.
        part_of_day: morning, afternoon or evening, if the caller has a preference.
    """
    call = context.userdata
    if call.state.caller_zone is None:
        raise ToolError("Ask which time zone the caller is in, then call set_time_zone first.")
    on_day = _parse_day(call, day) if day else None
    async with speakable_failures("calendar"):
        slots = await _free_slots(call, on_day=on_day, part_of_day=part_of_day)
    if not slots and on_day is not None:
        return as_json({"slots": [], "note": "Nothing free that day. Ask about another day."})
    if not slots:
        raise ToolError(
            "There are no free times in the next two weeks. Offer to have the team email them."
        )
    call.state.offered = spread(slots, OFFER_COUNT)
    return as_json(_offer_payload(call, call.state.offered))


async def _free_slots(
    call: Call, *, on_day: date | None = None, part_of_day: str | None = None
) -> list[Interval]:
    """Free slots from now to the booking horizon, read fresh from the calendar."""
    assert call.state.caller_zone is not None
    now, hours = call.now(), call.services.hours
    window_end = now + timedelta(days=hours.horizon_days + 1)
    busy = await timed(call, call.services.calendar.busy(now, window_end))
    return free_slots(
        hours,
        now=now,
        busy=busy,
        caller_zone=call.state.caller_zone,
        on_day=on_day,
        part_of_day=part_of_day,
    )


def _offer_payload(call: Call, slots: list[Interval]) -> dict[str, Any]:
    assert call.state.caller_zone is not None
    payload: dict[str, Any] = {
        "slots": [
            {
                "start": s.start.isoformat(),
                "say": say_time(s.start, zone=call.state.caller_zone, now=call.now()),
            }
            for s in slots
        ],
    }
    if not call.state.zone_confirmed:
        payload["time_zone_unconfirmed"] = (
            f"Times are in {call.state.caller_zone.key}, guessed from their number: confirm it."
        )
    return payload


def _parse_day(call: Call, text: str) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"'{text}' is not a date; use YYYY-MM-DD.") from None
    today = call.now().astimezone(call.services.hours.zone).date()
    if day < today:
        raise ToolError(
            f"{day:%A %B %d, %Y} is in the past; today is {today:%A %B %d, %Y}. "
            "Ask the caller which upcoming day they meant."
        )
    if day > today + timedelta(days=call.services.hours.horizon_days):
        raise ToolError("That is too far out to book; offer a day within the next two weeks.")
    return day


def _parse_start(call: Call, text: str) -> Interval:
    try:
        start = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"'{text}' is not a time; pass a start from offer_slots.") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=call.state.caller_zone or call.services.hours.zone)
    hours = call.services.hours
    if start <= call.now():
        raise ToolError("That time is in the past. Offer upcoming times with offer_slots.")
    local_day = start.astimezone(hours.zone).date()
    for slot in candidate_slots(hours, now=call.now(), days=[local_day]):
        if slot.start == start:
            return slot
    raise ToolError(
        "That time is outside our meeting hours or too soon. Offer times from offer_slots."
    )


@function_tool
async def book_meeting(
    context: RunContext[Call],
    start: str,
    email: str | None = None,
) -> str:
    """Book the meeting time the caller chose. Only tell the caller it is booked if this returns
    booked true.

    Args:
        start: The chosen slot's start, exactly as offer_slots returned it.
        email: Where to send the invite, if the caller gave an email.
    """
    call = context.userdata
    slot = _parse_start(call, start)
    if call.state.caller_zone is None:
        raise ToolError("Confirm the caller's time zone with set_time_zone before booking.")
    # The LLM may call this several times in one turn; they run at once unless serialised.
    async with call.booking_lock:
        booking = call.state.booking
        if booking is not None and booking.status == "confirmed":
            if booking.start == slot.start:
                return as_json(_booked_payload(call))
            raise ToolError(
                "A meeting is already booked on this call, and a call books only one. To move "
                "it use reschedule_meeting; do not book another."
            )
        if call.state.bookings_made >= MAX_BOOKINGS_PER_CALL:
            raise ToolError(
                "This call has already booked and cancelled meetings too many times, so "
                "nothing was booked. Offer to have the team email them a time."
            )
        if email:
            await save_contact(call, {"email": normalise_email(email)})
        return as_json(await _book(call, slot))


async def _book(call: Call, slot: Interval) -> dict[str, Any]:
    async with speakable_failures("calendar"):
        taken = await timed(call, call.services.calendar.busy(slot.start, slot.end))
        if any(b.overlaps(slot) for b in taken):
            return await _slot_taken(call)
        try:
            event = await timed(call, call.writes.shielded(_create_event(call, slot)))
        except SlotTaken:  # another call booked it between our check and our insert
            logger.info("slot lost to a concurrent booking", extra={"call_id": call.state.call_id})
            return await _slot_taken(call)
    call.state.booking = event
    call.state.bookings_made += 1
    logger.info("meeting booked", extra={"call_id": call.state.call_id, "event_id": event.id})
    return _booked_payload(call)


async def _slot_taken(call: Call) -> dict[str, Any]:
    call.state.offered = spread(await _free_slots(call), OFFER_COUNT)
    return {
        "booked": False,
        "reason": "That time was just taken by someone else. Apologise and offer these instead.",
        **_offer_payload(call, call.state.offered),
    }


async def _create_event(call: Call, slot: Interval) -> Event:
    business = call.services.business
    contact = call.state.contact
    name = (contact.firstname if contact else None) or "a new lead"
    summary = call.state.qualification.as_text()
    description = prompts.render(
        business.meeting_description,
        agent_name=business.agent_name,
        summary="\n".join(f"{k}: {v}" for k, v in summary.items()),
    )
    key = (contact.id if contact else None) or call.state.caller_phone or call.state.call_id
    assert call.state.caller_zone is not None
    request = EventRequest(
        event_id=booking_event_id(booking_key=key, start=slot.start),
        start=slot.start,
        end=slot.end,
        time_zone=call.state.caller_zone.key,
        summary=prompts.render(business.meeting_title, name=name),
        description=description,
        attendee_email=contact.email if contact else None,
        attendee_name=" ".join(filter(None, [contact.firstname, contact.lastname]))
        if contact
        else None,
        caller_phone=call.state.caller_phone,
    )
    call.note_effect("booking", event_id=request.event_id, start=slot.start.isoformat())
    return await call.services.calendar.create_event(request)


def _booked_payload(call: Call) -> dict[str, Any]:
    assert call.state.booking is not None and call.state.caller_zone is not None
    return {
        "booked": True,
        "say": say_time(call.state.booking.start, zone=call.state.caller_zone, now=call.now()),
        "invite_sent_to": call.state.contact.email
        if call.state.contact and call.state.contact.email
        else None,
        "video_link": bool(call.state.booking.meet_link),
    }


@function_tool
async def reschedule_meeting(context: RunContext[Call], start: str) -> str:
    """Move the meeting booked on this call to another time the caller chose.

    Args:
        start: The new start, exactly as offer_slots returned it.
    """
    call = context.userdata
    if call.state.booking is None or call.state.booking.status != "confirmed":
        raise ToolError("No meeting is booked on this call; use book_meeting instead.")
    slot = _parse_start(call, start)
    async with call.booking_lock:
        return as_json(await _reschedule(call, slot))


async def _reschedule(call: Call, slot: Interval) -> dict[str, Any]:
    booking = call.state.booking
    if booking is None or booking.status != "confirmed":
        raise ToolError("No meeting is booked on this call; use book_meeting instead.")
    async with speakable_failures("calendar"):
        taken = await timed(call, call.services.calendar.busy(slot.start, slot.end))
        if any(b.overlaps(slot) and b != Interval(booking.start, booking.end) for b in taken):
            return await _slot_taken(call)
        moved = call.services.calendar.move_event(booking.id, start=slot.start, end=slot.end)
        try:
            call.state.booking = await timed(call, call.writes.shielded(moved))
        except SlotTaken:
            return await _slot_taken(call)
    return _booked_payload(call)


@function_tool
async def cancel_meeting(context: RunContext[Call]) -> str:
    """Cancel the meeting booked on this call, when the caller asks to."""
    call = context.userdata
    async with call.booking_lock:
        booking = call.state.booking
        if booking is None or booking.status != "confirmed":
            raise ToolError("No meeting is booked on this call.")
        async with speakable_failures("calendar"):
            cancelled = call.services.calendar.cancel_event(booking.id)
            await timed(call, call.writes.shielded(cancelled))
        call.state.booking = None
    return as_json({"cancelled": True})
