"""Which reps are offered a hot lead, in which order: the rules in ``prompts/routing.yaml``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import phonenumbers
import yaml

import prompts
from calls.qualification import OPERATORS, holds
from transfer.roster import Rep, iter_available

REGION = "region"  # the caller's country, from their number


class RoutingError(ValueError):
    """routing.yaml is not valid; the message names the group and the problem."""


@dataclass(frozen=True)
class Group:
    name: str
    when: Mapping[str, Mapping[str, Any]]
    territory: str | None  # reps with this tag; both None: every rep
    segment: str | None
    fallback: tuple[str, ...]
    cold_transfer: str | None = None  # a number or SIP URI the caller is sent to (SIP REFER)

    def matches(self, facts: Mapping[str, Any]) -> bool:
        return all(key in facts and holds(facts[key], cond) for key, cond in self.when.items())

    def members(self, reps: Sequence[Rep]) -> list[Rep]:
        return [
            r
            for r in reps
            if (self.territory is None or self.territory in r.territories)
            and (self.segment is None or self.segment in r.segments)
        ]


@dataclass(frozen=True)
class Routing:
    groups: tuple[Group, ...]
    ring_seconds: float
    max_reps: int

    def cold_target(self, facts: Mapping[str, Any]) -> str | None:
        """Where the caller is sent without a warm hand-off, when the first matching group
        says so: a ``tel:`` or ``sip:`` URI, as SIP REFER takes it."""
        first = next((g for g in self.groups if g.matches(facts)), None)
        return first.cold_transfer if first is not None else None

    def candidates(self, facts: Mapping[str, Any], reps: Sequence[Rep], now: datetime) -> list[Rep]:
        """The reps to offer the call to, in order: the first matching group's available
        reps idle longest first, then its fallbacks'; each rep once, at most ``max_reps``."""
        first = next((g for g in self.groups if g.matches(facts)), None)
        if first is None:
            return []
        by_name = {g.name: g for g in self.groups}
        order = [first, *(by_name[name] for name in first.fallback)]
        chosen: dict[str, Rep] = {}
        for group in order:
            for rep in iter_available(group.members(reps), now):
                chosen.setdefault(rep.id, rep)
        return list(chosen.values())[: self.max_reps]


def load_routing(path: Path | None = None, *, field_keys: Sequence[str] = ()) -> Routing:
    """The routing rules (``prompts/routing.yaml``, or the file at ``path``); with
    ``field_keys`` (the criteria's), conditions on anything else are refused, so a typo
    cannot silently never match."""
    if path is None:
        raw = prompts.load_yaml("routing.yaml")
    else:
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise RoutingError(f"routing file {path}: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise RoutingError("the routing file must hold a mapping with `groups`")
    return parse_routing(raw, field_keys=field_keys)


def _transfer_uri(group: str, value: object) -> str:
    """A cold-transfer target as SIP REFER takes it: an E.164 number becomes ``tel:+1...``."""
    text = str(value).strip()
    if text.startswith(("sip:", "sips:", "tel:")):
        return text
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise RoutingError(
            f"group {group!r}: cold_transfer must be an E.164 number (+14155550100) or a "
            f"sip: / tel: URI, not {text!r}"
        )
    return "tel:" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_routing(raw: Mapping[str, Any], *, field_keys: Sequence[str] = ()) -> Routing:
    groups: list[Group] = []
    known = {*field_keys, REGION}
    for index, entry in enumerate(raw.get("groups") or []):
        name = str(entry.get("name") or "")
        if not name:
            raise RoutingError(f"routing group #{index + 1} has no name")
        when = entry.get("when") or {}
        for key, condition in when.items():
            if field_keys and key not in known:
                raise RoutingError(f"group {name!r}: condition on unknown field {key!r}")
            if not isinstance(condition, Mapping) or not set(condition) <= OPERATORS:
                raise RoutingError(f"group {name!r}: condition on {key!r} must use {OPERATORS}")
        reps = entry.get("reps", "all")
        territory = segment = None
        if reps != "all":
            if not isinstance(reps, Mapping) or not set(reps) <= {"territory", "segment"}:
                raise RoutingError(
                    f"group {name!r}: reps is 'all', {{territory: ..}} or {{segment: ..}}"
                )
            territory = str(reps["territory"]).lower() if "territory" in reps else None
            segment = str(reps["segment"]).lower() if "segment" in reps else None
        fallback = tuple(str(f) for f in entry.get("fallback") or ())
        cold = entry.get("cold_transfer")
        cold_uri = _transfer_uri(name, cold) if cold else None
        groups.append(Group(name, when, territory, segment, fallback, cold_uri))
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise RoutingError("routing group names must be unique")
    for group in groups:
        for target in group.fallback:
            if target not in names:
                raise RoutingError(f"group {group.name!r}: fallback to unknown group {target!r}")
    if not groups:
        raise RoutingError("routing.yaml has no groups")
    ring = float(raw.get("ring_seconds", 20))
    max_reps = int(raw.get("max_reps", 3))
    if ring <= 0 or max_reps < 1:
        raise RoutingError("ring_seconds must be positive and max_reps at least 1")
    return Routing(groups=tuple(groups), ring_seconds=ring, max_reps=max_reps)
