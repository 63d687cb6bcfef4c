"""Meeting slots: business hours, free time and how a time is said aloud.

Everything here is pure: the clock and the busy intervals come in as arguments.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from calls.time_zones import zone_label
from integrations.scheduling import Interval

PARTS_OF_DAY: dict[str, tuple[time, time]] = {
    "morning": (time(0), time(12)),
    "afternoon": (time(12), time(17)),
    "evening": (time(17), time(23, 59)),
}


@dataclass(frozen=True, slots=True)
class BusinessHours:
    time_zone: str = "America/New_York"
    open_at: time = time(9)
    close_at: time = time(17)
    weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    slot_minutes: int = 30
    min_notice_minutes: int = 120
    horizon_days: int = 14
    caller_earliest: time = time(8)  # never offer a time before 8 am where the caller is
    caller_latest: time = time(20)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def candidate_slots(hours: BusinessHours, *, now: datetime, days: Iterable[date]) -> list[Interval]:
    """Every slot of business hours on ``days``, in the business's zone, after the notice."""
    zone = hours.zone
    earliest = now + timedelta(minutes=hours.min_notice_minutes)
    length = timedelta(minutes=hours.slot_minutes)
    slots: list[Interval] = []
    for day in days:
        if day.weekday() not in hours.weekdays:
            continue
        # Wall-clock arithmetic per slot, so a day that crosses a DST change still has its
        # slots at 9:00, 9:30 ... local time.
        cursor = datetime.combine(day, hours.open_at)
        close = datetime.combine(day, hours.close_at)
        while cursor + length <= close:
            start = cursor.replace(tzinfo=zone)
            if start >= earliest:
                slots.append(Interval(start, start + length))
            cursor += length
    return slots


def free_slots(
    hours: BusinessHours,
    *,
    now: datetime,
    busy: Sequence[Interval],
    caller_zone: tzinfo,
    on_day: date | None = None,
    part_of_day: str | None = None,
) -> list[Interval]:
    """Free slots within business hours, that suit the caller's local day, soonest first."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(hours.zone).date()
    if on_day is not None:
        days: list[date] = [on_day]
    else:
        days = [today + timedelta(days=n) for n in range(hours.horizon_days + 1)]
    window = PARTS_OF_DAY.get(part_of_day) if part_of_day else None
    result = []
    for slot in candidate_slots(hours, now=now, days=days):
        local = slot.start.astimezone(caller_zone)
        local_end = slot.end.astimezone(caller_zone)
        if local.time() < hours.caller_earliest or local_end.time() > hours.caller_latest:
            continue
        if window and not (window[0] <= local.time() < window[1]):
            continue
        if any(slot.overlaps(b) for b in busy):
            continue
        result.append(slot)
    return result


def spread(slots: Sequence[Interval], count: int) -> list[Interval]:
    """Pick ``count`` slots, preferring different days and then different parts of a day, so
    the caller hears real choices rather than 9:00, 9:30 and 10:00."""
    chosen: list[Interval] = []
    seen_days: set[date] = set()
    for slot in slots:
        if slot.start.date() not in seen_days:
            chosen.append(slot)
            seen_days.add(slot.start.date())
        if len(chosen) == count:
            return chosen
    for slot in slots:
        if slot not in chosen and all(
            abs(slot.start - c.start) >= timedelta(hours=2) for c in chosen
        ):
            chosen.append(slot)
        if len(chosen) == count:
            break
    return sorted(chosen, key=lambda s: s.start)


_HOURS = [
    "twelve", "one", "two", "three", "four", "five", "six",
    "seven", "eight", "nine", "ten", "eleven",
]  # fmt: skip
_ONES = [
    "", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
]  # fmt: skip
_TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty"}


def _minute_words(minute: int) -> str:
    if minute == 0:
        return ""
    if minute < 10:
        return f"oh {_ONES[minute]}"
    if minute < 20:
        return _ONES[minute]
    tens, ones = divmod(minute, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def say_time(moment: datetime, *, zone: tzinfo, now: datetime) -> str:
    """How a person says a meeting time: "tomorrow at two thirty in the afternoon, Eastern"."""
    local = moment.astimezone(zone)
    today = now.astimezone(zone).date()
    if local.date() == today:
        day = "today"
    elif local.date() == today + timedelta(days=1):
        day = "tomorrow"
    elif local.date() < today + timedelta(days=7):
        day = local.strftime("%A")
    else:
        day = f"{local.strftime('%A, %B')} {local.day}"
    if local.hour == 12 and local.minute == 0:
        clock = "noon"
    else:
        words = " ".join(w for w in (_HOURS[local.hour % 12], _minute_words(local.minute)) if w)
        period = "in the morning" if local.hour < 12 else "in the afternoon"
        if local.hour >= 17:
            period = "in the evening"
        clock = f"{words} {period}"
    return f"{day} at {clock}, {zone_label(zone, moment)}"


def booking_event_id(*, booking_key: str, start: datetime) -> str:
    """A Google-compatible event id (base32hex, lowercase) derived from the booking.

    The same caller booking the same start always yields the same id, so a retried insert
    is answered with 409 instead of a second meeting.
    """
    digest = hashlib.sha256(
        f"{booking_key}|{start.astimezone(ZoneInfo('UTC')).isoformat()}".encode()
    )
    return base64.b32hexencode(digest.digest()[:20]).decode().lower().rstrip("=")
