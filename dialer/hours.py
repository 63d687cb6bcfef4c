"""Calling hours in the lead's local time, and the first moment a call may be placed.

Whatever a campaign configures, no call starts before 08:00 or after 21:00 in the lead's
zone: the configured window is clamped to that, and a window left empty by the clamp is
refused when the campaign is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from calls.time_zones import InvalidTimeZone, resolve_time_zone, zone_for_phone

EARLIEST = time(8)
LATEST = time(21)
WEEKDAYS = frozenset(range(5))
_SEARCH_DAYS = 8  # a week plus today: every allowed weekday is within reach


@dataclass(frozen=True)
class CallingHours:
    """Start (inclusive) and end (exclusive) of calling, local to the lead, on ``weekdays``
    (Monday is 0)."""

    start: time = time(9)
    end: time = time(20)
    weekdays: frozenset[int] = WEEKDAYS

    def __post_init__(self) -> None:
        if not self.weekdays or not self.weekdays <= frozenset(range(7)):
            raise ValueError("calling days must be a non-empty set of weekdays 0-6")
        if self.effective_start() >= self.effective_end():
            raise ValueError(
                f"calling hours {self.start:%H:%M}-{self.end:%H:%M} leave no time within "
                f"{EARLIEST:%H:%M}-{LATEST:%H:%M}"
            )

    def effective_start(self) -> time:
        return max(self.start, EARLIEST)

    def effective_end(self) -> time:
        return min(self.end, LATEST)


def first_allowed(at: datetime, *, zone: ZoneInfo, hours: CallingHours) -> datetime:
    """``at`` itself when a call may start then, else the next start of calling hours (UTC)."""
    local = at.astimezone(zone)
    for offset in range(_SEARCH_DAYS):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in hours.weekdays:
            continue
        opens = _wall_clock(day, hours.effective_start(), zone)
        closes = _wall_clock(day, hours.effective_end(), zone)
        if at < opens:
            return opens
        if at < closes:
            return at.astimezone(UTC)
    raise AssertionError("unreachable: some weekday in the next eight days is allowed")


def is_allowed(at: datetime, *, zone: ZoneInfo, hours: CallingHours) -> bool:
    return first_allowed(at, zone=zone, hours=hours) == at


def _wall_clock(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time. DST changes happen at night, outside
    08:00-21:00, so the times used here always exist exactly once."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def lead_zone(*, time_zone: str | None, phone: str, business_zone: str) -> ZoneInfo:
    """The lead's zone: the one given with the lead, else the phone number's, else ours."""
    if time_zone:
        return resolve_time_zone(time_zone)
    guessed = zone_for_phone(phone)
    if guessed is not None:
        return guessed
    try:
        return resolve_time_zone(business_zone)
    except InvalidTimeZone:
        return ZoneInfo("UTC")
