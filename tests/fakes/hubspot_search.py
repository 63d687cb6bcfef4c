"""What the fake HubSpot's search matches, and the limits it enforces.

Filter groups are ORed, filters within a group ANDed, with HubSpot's size limits.
``hs_searchable_calculated_phone_number`` and ``..._mobile_number`` are approximated as the
national digits of the stored number, read in a default region when it has no country code.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import phonenumbers

from tests.fakes.hubspot_http import BadRequest

_MAX_GROUPS, _MAX_FILTERS_PER_GROUP, _MAX_FILTERS = 5, 6, 18


def check_search_limits(groups: list[dict[str, Any]], limit: int) -> None:
    sizes = [len(g.get("filters") or []) for g in groups]
    if len(groups) > _MAX_GROUPS or any(n > _MAX_FILTERS_PER_GROUP for n in sizes):
        raise BadRequest(400, "too many filter groups or filters", "VALIDATION_ERROR")
    if sum(sizes) > _MAX_FILTERS or not 0 < limit <= 200:
        raise BadRequest(400, "too many filters or bad limit", "VALIDATION_ERROR")


def group_matches(group: dict[str, Any], properties: dict[str, str]) -> bool:
    return all(_filter_matches(f, properties) for f in group.get("filters") or [])


def _filter_matches(spec: dict[str, Any], properties: dict[str, str]) -> bool:
    stored = properties.get(spec["propertyName"]) or ""
    operator, value = spec["operator"], spec.get("value")
    if operator == "HAS_PROPERTY":
        return bool(stored)
    if operator == "NOT_HAS_PROPERTY":
        return not stored
    if operator in ("EQ", "NEQ"):
        equal = bool(stored) and stored.lower() == str(value).lower()
        return equal if operator == "EQ" else not equal
    if operator in ("IN", "NOT_IN"):
        # HubSpot compares IN values with the lowercased stored value.
        inside = bool(stored) and stored.lower() in [str(v) for v in spec.get("values") or []]
        return inside if operator == "IN" else not inside
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        found = any(fnmatch.fnmatchcase(t, str(value).lower()) for t in _tokens(stored))
        return found if operator == "CONTAINS_TOKEN" else not found
    raise BadRequest(400, f"unsupported operator {operator}", "VALIDATION_ERROR")


def _tokens(text: str) -> set[str]:
    lowered = text.lower()
    return set(re.findall(r"[a-z0-9]+", lowered)) | set(lowered.split())


def national_digits(value: str, region: str) -> str:
    """What HubSpot calculates into ``hs_searchable_calculated_*_number`` from ``value``."""
    if not value:
        return ""
    try:
        return phonenumbers.national_significant_number(phonenumbers.parse(value, region))
    except phonenumbers.NumberParseException:
        return re.sub(r"\D", "", value).lstrip("0")
