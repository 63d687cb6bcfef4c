from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from calls.slots import (
    BusinessHours,
    booking_event_id,
    candidate_slots,
    free_slots,
    say_time,
    spread,
)
from calls.time_zones import InvalidTimeZone, resolve_time_zone
from integrations.scheduling import Interval

pytestmark = pytest.mark.unit

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
MONDAY_10AM_NY = datetime(2026, 11, 23, 10, 0, tzinfo=NY)


def test_slots_fall_inside_business_hours_after_the_notice():
    hours = BusinessHours(min_notice_minutes=120)
    slots = candidate_slots(hours, now=MONDAY_10AM_NY, days=[date(2026, 11, 23)])
    assert slots[0].start == datetime(2026, 11, 23, 12, 0, tzinfo=NY)
    assert slots[-1].end == datetime(2026, 11, 23, 17, 0, tzinfo=NY)
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)


def test_weekends_are_closed():
    hours = BusinessHours()
    assert candidate_slots(hours, now=MONDAY_10AM_NY, days=[date(2026, 11, 28)]) == []


def test_slots_keep_local_wall_clock_across_the_dst_change():
    # Clocks went back on Sunday 1 November 2026 in New York; open the office that Sunday.
    hours = BusinessHours(weekdays=frozenset(range(7)), min_notice_minutes=0)
    before = datetime(2026, 10, 30, 12, 0, tzinfo=UTC)
    saturday, monday = date(2026, 10, 31), date(2026, 11, 2)
    sat = candidate_slots(hours, now=before, days=[saturday])[0]
    mon = candidate_slots(hours, now=before, days=[monday])[0]
    assert sat.start.astimezone(UTC).hour == 13  # 9:00 EDT = 13:00 UTC
    assert mon.start.astimezone(UTC).hour == 14  # 9:00 EST = 14:00 UTC
    assert sat.start.astimezone(NY).time() == mon.start.astimezone(NY).time() == time(9)


def test_busy_and_all_day_events_block_slots():
    hours = BusinessHours(min_notice_minutes=0)
    tuesday = date(2026, 11, 24)
    all_day = Interval(datetime(2026, 11, 24, tzinfo=NY), datetime(2026, 11, 25, tzinfo=NY))
    meeting = Interval(
        datetime(2026, 11, 25, 9, 0, tzinfo=NY), datetime(2026, 11, 25, 10, 0, tzinfo=NY)
    )
    free = free_slots(hours, now=MONDAY_10AM_NY, busy=[all_day, meeting], caller_zone=NY)
    assert not any(s.start.date() == tuesday for s in free)
    wednesday = [s for s in free if s.start.date() == date(2026, 11, 25)]
    assert wednesday[0].start == datetime(2026, 11, 25, 10, 0, tzinfo=NY)


def test_times_too_early_for_the_caller_are_not_offered():
    hours = BusinessHours(min_notice_minutes=0)
    free = free_slots(hours, now=MONDAY_10AM_NY, busy=[], caller_zone=LA)
    # 9:00 and 9:30 Eastern (6 and 6:30 Pacific) and 10:30 Eastern (7:30 Pacific) are too early.
    assert min(s.start.astimezone(LA).time() for s in free) == time(8)


def test_part_of_day_uses_the_callers_clock():
    hours = BusinessHours(min_notice_minutes=0)
    free = free_slots(hours, now=MONDAY_10AM_NY, busy=[], caller_zone=LA, part_of_day="afternoon")
    assert free and all(s.start.astimezone(LA).hour >= 12 for s in free)


def test_spread_prefers_different_days():
    hours = BusinessHours(min_notice_minutes=0)
    free = free_slots(hours, now=MONDAY_10AM_NY, busy=[], caller_zone=NY)
    picked = spread(free, 3)
    assert len({s.start.date() for s in picked}) == 3


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        (datetime(2026, 11, 24, 14, 30, tzinfo=NY), NY,
         "tomorrow at two thirty in the afternoon, Eastern"),
        (datetime(2026, 11, 23, 12, 0, tzinfo=NY), NY, "today at noon, Eastern"),
        (datetime(2026, 11, 26, 9, 5, tzinfo=NY), LA,
         "Thursday at six oh five in the morning, Pacific"),
        (datetime(2026, 12, 3, 17, 45, tzinfo=NY), NY,
         "Thursday, December 3 at five forty-five in the evening, Eastern"),
    ],
)  # fmt: skip
def test_times_are_said_the_way_people_say_them(moment, zone, expected):
    assert say_time(moment, zone=zone, now=MONDAY_10AM_NY) == expected


def test_spoken_and_iana_zone_names_resolve():
    assert resolve_time_zone("Pacific").key == "America/Los_Angeles"
    assert resolve_time_zone("central time").key == "America/Chicago"
    assert resolve_time_zone("Europe/Paris").key == "Europe/Paris"
    with pytest.raises(InvalidTimeZone):
        resolve_time_zone("Narnia")


def test_booking_ids_are_deterministic_and_google_compatible():
    start = datetime(2026, 11, 24, 14, 30, tzinfo=NY)
    one = booking_event_id(booking_key="contact-1", start=start)
    assert one == booking_event_id(booking_key="contact-1", start=start.astimezone(UTC))
    assert one != booking_event_id(booking_key="contact-2", start=start)
    assert set(one) <= set("0123456789abcdefghijklmnopqrstuv") and 5 <= len(one) <= 1024
