"""Time zones as callers say them, and a first guess from the caller's number.

The dialer uses the guess for calling hours; the agent confirms it before booking.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

# What a US caller says, mapped to the zone we store. Callers rarely say "America/Chicago".
_SPOKEN_ZONES: dict[str, str] = {
    "eastern": "America/New_York",
    "et": "America/New_York",
    "est": "America/New_York",
    "edt": "America/New_York",
    "central": "America/Chicago",
    "ct": "America/Chicago",
    "cst": "America/Chicago",
    "cdt": "America/Chicago",
    "mountain": "America/Denver",
    "mt": "America/Denver",
    "mst": "America/Denver",
    "mdt": "America/Denver",
    "arizona": "America/Phoenix",
    "pacific": "America/Los_Angeles",
    "pt": "America/Los_Angeles",
    "pst": "America/Los_Angeles",
    "pdt": "America/Los_Angeles",
    "alaska": "America/Anchorage",
    "hawaii": "Pacific/Honolulu",
    "uk": "Europe/London",
    "london": "Europe/London",
    "gmt": "Europe/London",
    "utc": "UTC",
    "central european": "Europe/Berlin",
    "cet": "Europe/Berlin",
}
_ZONE_NAMES: dict[str, str] = {
    "America/New_York": "Eastern",
    "America/Detroit": "Eastern",
    "America/Chicago": "Central",
    "America/Denver": "Mountain",
    "America/Phoenix": "Arizona time",
    "America/Los_Angeles": "Pacific",
    "America/Anchorage": "Alaska time",
    "Pacific/Honolulu": "Hawaii time",
    "Europe/London": "UK time",
    "UTC": "UTC",
}


class InvalidTimeZone(ValueError):
    """The caller's time zone could not be understood."""


def resolve_time_zone(name: str) -> ZoneInfo:
    """An IANA name ("America/Chicago") or a spoken one ("Central", "PST") as a ZoneInfo."""
    key = name.strip()
    spoken = _SPOKEN_ZONES.get(key.lower().removesuffix(" time").strip())
    try:
        return ZoneInfo(spoken or key)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimeZone(f"unknown time zone {name!r}") from None


def zone_label(zone: tzinfo, at: datetime) -> str:
    key = getattr(zone, "key", None)
    if key in _ZONE_NAMES:
        return _ZONE_NAMES[key]
    return at.astimezone(zone).tzname() or str(zone)


def zone_for_phone(phone: str | None) -> ZoneInfo | None:
    """The zone of a number's area code, when it has exactly one; ``None`` when unsure."""
    if not phone:
        return None
    try:
        zones = phone_timezones.time_zones_for_number(phonenumbers.parse(phone))
    except phonenumbers.NumberParseException:
        return None
    if len(zones) == 1 and zones[0] != "Etc/Unknown":
        return ZoneInfo(zones[0])
    return None
