"""Calling hours in the lead's local time: weekends, DST, the 08:00-21:00 clamp, the zone."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from dialer.hours import CallingHours, first_allowed, is_allowed, lead_zone

pytestmark = pytest.mark.unit

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
DEFAULT = CallingHours()


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def test_inside_hours_is_now() -> None:
    at = local(NY, 2026, 11, 23, 10, 30)  # a Monday
    assert first_allowed(at, zone=NY, hours=DEFAULT) == at
    assert is_allowed(at, zone=NY, hours=DEFAULT)


def test_before_opening_waits_for_nine_local() -> None:
    at = local(NY, 2026, 11, 23, 7, 15)
    assert first_allowed(at, zone=NY, hours=DEFAULT) == local(NY, 2026, 11, 23, 9, 0)


def test_end_is_exclusive_and_the_evening_waits_for_tomorrow() -> None:
    assert is_allowed(local(NY, 2026, 11, 23, 19, 59, 59), zone=NY, hours=DEFAULT)
    at = local(NY, 2026, 11, 23, 20, 0)
    assert first_allowed(at, zone=NY, hours=DEFAULT) == local(NY, 2026, 11, 24, 9, 0)


def test_friday_evening_and_the_weekend_wait_for_monday() -> None:
    monday_nine = local(NY, 2026, 11, 30, 9, 0)
    assert first_allowed(local(NY, 2026, 11, 27, 20, 30), zone=NY, hours=DEFAULT) == monday_nine
    assert first_allowed(local(NY, 2026, 11, 28, 12, 0), zone=NY, hours=DEFAULT) == monday_nine
    assert first_allowed(local(NY, 2026, 11, 29, 23, 0), zone=NY, hours=DEFAULT) == monday_nine


def test_the_window_follows_the_leads_clock_across_a_dst_change() -> None:
    # US clocks spring forward on Sunday 8 March 2026: 9:00 is 14:00 UTC on Friday the 6th
    # and 13:00 UTC on Monday the 9th.
    friday_evening = datetime(2026, 3, 7, 2, 0, tzinfo=UTC)  # Fri 21:00 EST
    monday = first_allowed(friday_evening, zone=NY, hours=DEFAULT)
    assert monday == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
    assert monday.astimezone(NY).hour == 9
    # And back in autumn: Sunday 1 November 2026; Monday 9:00 EST is 14:00 UTC.
    saturday = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    assert first_allowed(saturday, zone=NY, hours=DEFAULT) == datetime(
        2026, 11, 2, 14, 0, tzinfo=UTC
    )


def test_the_same_instant_is_inside_hours_in_one_zone_and_not_another() -> None:
    at = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 09:00 New York, 14:00 London, 06:00 LA
    la = ZoneInfo("America/Los_Angeles")
    assert is_allowed(at, zone=NY, hours=DEFAULT)
    assert is_allowed(at, zone=LONDON, hours=DEFAULT)
    assert first_allowed(at, zone=la, hours=DEFAULT) == local(la, 2026, 11, 23, 9, 0)


def test_configured_hours_are_clamped_to_eight_to_nine_pm() -> None:
    wide = CallingHours(start=time(6), end=time(23), weekdays=frozenset(range(7)))
    assert first_allowed(local(NY, 2026, 11, 23, 7, 0), zone=NY, hours=wide) == local(
        NY, 2026, 11, 23, 8, 0
    )
    assert first_allowed(local(NY, 2026, 11, 23, 21, 0), zone=NY, hours=wide) == local(
        NY, 2026, 11, 24, 8, 0
    )
    assert is_allowed(local(NY, 2026, 11, 28, 20, 59), zone=NY, hours=wide)  # a Saturday


def test_hours_left_empty_by_the_clamp_are_refused() -> None:
    with pytest.raises(ValueError, match="no time within"):
        CallingHours(start=time(21, 30), end=time(23))
    with pytest.raises(ValueError, match="weekdays"):
        CallingHours(weekdays=frozenset())


def test_lead_zone_prefers_the_lead_then_the_number_then_the_business() -> None:
    assert lead_zone(time_zone="Pacific", phone="+12125550100", business_zone="UTC").key == (
        "America/Los_Angeles"
    )
    assert lead_zone(time_zone=None, phone="+12125550100", business_zone="UTC").key == (
        "America/New_York"
    )
    # +1 800 numbers have no single zone: the business's zone applies.
    assert lead_zone(time_zone=None, phone="+18005550100", business_zone="Europe/Berlin").key == (
        "Europe/Berlin"
    )
