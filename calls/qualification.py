"""Qualification: the business's criteria file, the answers so far, and the route they imply."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import prompts

FieldType = Literal["text", "integer", "number", "boolean", "choice"]
Outcome = Literal["book_meeting", "hand_to_rep", "nurture", "support", "disqualify"]
OUTCOMES: tuple[str, ...] = ("book_meeting", "hand_to_rep", "nurture", "support", "disqualify")
NUMERIC = frozenset({"integer", "number"})
OPERATORS = frozenset({"equals", "in", "gte", "lte", "gt", "lt", "present"})
# A text answer is the caller's words for one question, not a document: longer is refused.
MAX_TEXT_ANSWER = 300
NUMBER_RE = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*([kKmM](?![a-zA-Z]))?")


class CriteriaError(ValueError):
    """The criteria file does not describe a usable qualification."""


class InvalidAnswer(ValueError):
    """An answer does not fit its field (wrong type, not one of the options)."""


@dataclass(frozen=True, slots=True)
class Criterion:
    key: str
    type: FieldType
    question: str
    layer: str
    options: tuple[str, ...] = ()
    optional: bool = False
    crm_property: str | None = None
    deal_amount: bool = False  # this answer is the deal's amount


@dataclass(frozen=True, slots=True)
class Rule:
    outcome: Outcome
    when: Mapping[str, Mapping[str, Any]]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Criteria:
    layers: tuple[str, ...]
    fields: tuple[Criterion, ...]
    rules: tuple[Rule, ...]
    default_outcome: Outcome = "nurture"

    def field(self, key: str) -> Criterion:
        for criterion in self.fields:
            if criterion.key == key:
                return criterion
        raise KeyError(key)

    @property
    def amount_field(self) -> Criterion | None:
        return next((c for c in self.fields if c.deal_amount), None)

    def crm_properties(self) -> frozenset[str]:
        """The CRM contact properties the criteria file names; answers are written back there."""
        return frozenset(c.crm_property for c in self.fields if c.crm_property)

    def json_schema(self) -> dict[str, Any]:
        """Parameters of the qualification tool: one optional property per field."""
        props: dict[str, Any] = {}
        for c in self.fields:
            schema: dict[str, Any] = (
                {"type": "string", "enum": list(c.options)}
                if c.type == "choice"
                else {"type": {"text": "string"}.get(c.type, c.type)}
            )
            props[c.key] = {**schema, "description": c.question}
        return {"type": "object", "properties": props, "required": []}


def load_criteria(name: str = "criteria.yaml") -> Criteria:
    raw = prompts.load_yaml(name)
    if not isinstance(raw, dict) or "layers" not in raw:
        raise CriteriaError(f"prompts/{name} needs a 'layers' list")
    fields: list[Criterion] = []
    layer_names: list[str] = []
    for layer in raw["layers"]:
        layer_names.append(layer["name"])
        for f in layer["fields"]:
            fields.append(_parse_field(f, layer["name"]))
    keys = {f.key for f in fields}
    if len(keys) != len(fields):
        raise CriteriaError(f"prompts/{name} repeats a field key")
    amounts = [f.key for f in fields if f.deal_amount]
    if len(amounts) > 1:
        raise CriteriaError(f"prompts/{name} marks more than one deal_amount field: {amounts}")
    if amounts and fields[[f.key for f in fields].index(amounts[0])].type not in NUMERIC:
        raise CriteriaError(f"deal_amount field {amounts[0]!r} must be an integer or number")
    rules = tuple(_parse_rule(r, keys) for r in raw.get("routing", []))
    default = raw.get("default_outcome", "nurture")
    if default not in OUTCOMES:
        raise CriteriaError(f"unknown default_outcome {default!r}")
    return Criteria(tuple(layer_names), tuple(fields), rules, default)


def _parse_field(raw: Mapping[str, Any], layer: str) -> Criterion:
    kind = raw.get("type", "text")
    if kind not in ("text", "integer", "number", "boolean", "choice"):
        raise CriteriaError(f"field {raw.get('key')!r} has unknown type {kind!r}")
    options = tuple(str(o) for o in raw.get("options", ()))
    if kind == "choice" and not options:
        raise CriteriaError(f"choice field {raw['key']!r} needs options")
    return Criterion(
        key=raw["key"],
        type=kind,
        question=raw["question"],
        layer=layer,
        options=options,
        optional=bool(raw.get("optional", False)),
        crm_property=raw.get("crm_property"),
        deal_amount=bool(raw.get("deal_amount", False)),
    )


def _parse_rule(raw: Mapping[str, Any], keys: set[str]) -> Rule:
    if raw.get("outcome") not in OUTCOMES:
        raise CriteriaError(f"routing rule has unknown outcome {raw.get('outcome')!r}")
    when = raw.get("when") or {}
    for key, condition in when.items():
        if key not in keys:
            raise CriteriaError(f"routing rule names unknown field {key!r}")
        if not set(condition) <= OPERATORS:
            raise CriteriaError(f"routing rule on {key!r} uses {set(condition) - OPERATORS}")
    return Rule(outcome=raw["outcome"], when=when, reason=raw.get("reason"))


def coerce_answer(criterion: Criterion, value: Any) -> Any:
    """The answer in its field's type, or ``InvalidAnswer`` naming what would fit."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidAnswer(f"{criterion.key} is empty")
    if not isinstance(value, str | int | float):  # a list or an object is never one answer
        raise InvalidAnswer(f"{criterion.key} must be a single answer, not a list or an object")
    if criterion.type == "text":
        text = str(value).strip()
        if len(text) > MAX_TEXT_ANSWER:
            raise InvalidAnswer(f"{criterion.key} must be the caller's answer in one sentence")
        return text
    if criterion.type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("yes", "true", "y", "yeah", "yep"):
            return True
        if text in ("no", "false", "n", "nope"):
            return False
        raise InvalidAnswer(f"{criterion.key} must be yes or no")
    if criterion.type in ("integer", "number"):
        number = _parse_number(value)
        if number is None or number < 0 or not math.isfinite(number):
            raise InvalidAnswer(f"{criterion.key} must be one number")
        return round(number) if criterion.type == "integer" else number
    choice = str(value).strip().lower().replace(" ", "_").replace("-", "_")
    if choice not in criterion.options:
        raise InvalidAnswer(f"{criterion.key} must be one of: {', '.join(criterion.options)}")
    return choice


def _parse_number(value: Any) -> float | None:
    """A number, or one number in words ("about 25 people", "50k"); text holding two numbers
    is ambiguous (or something else than an answer) and gives None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    found = list(NUMBER_RE.finditer(str(value)))
    if len(found) != 1:
        return None
    match = found[0]
    number = float(match.group(1).replace(",", ""))
    suffix = (match.group(2) or "").lower()
    return number * {"": 1, "k": 1_000, "m": 1_000_000}[suffix]


@dataclass
class Qualification:
    """The answers gathered so far on one call."""

    criteria: Criteria
    answers: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # key -> "crm" | "caller"

    def prefill_from_crm(self, properties: Mapping[str, str | None]) -> None:
        for c in self.criteria.fields:
            value = properties.get(c.crm_property) if c.crm_property else None
            if value in (None, ""):
                continue
            try:
                self.answers[c.key] = coerce_answer(c, value)
                self.sources[c.key] = "crm"
            except InvalidAnswer:
                continue  # a messy CRM value is asked again rather than trusted

    def record(self, answers: Mapping[str, Any]) -> dict[str, str]:
        """Store valid answers; return the problems with the others, by field."""
        problems: dict[str, str] = {}
        for key, value in answers.items():
            if value is None:
                continue
            try:
                criterion = self.criteria.field(key)
            except KeyError:
                problems[key] = "not a qualification field"
                continue
            try:
                self.answers[key] = coerce_answer(criterion, value)
                self.sources[key] = "caller"
            except InvalidAnswer as exc:
                problems[key] = str(exc)
        return problems

    def still_needed(self) -> list[Criterion]:
        """The unanswered questions of the first layer that is not complete yet."""
        for layer in self.criteria.layers:
            missing = [
                c
                for c in self.criteria.fields
                if c.layer == layer and c.key not in self.answers and not c.optional
            ]
            if missing:
                return missing
        return [c for c in self.criteria.fields if c.key not in self.answers and c.optional][:1]

    def route(self) -> tuple[Outcome, str | None] | None:
        """The outcome once it is decided, with the rule's reason; None while it is not."""
        for rule in self.criteria.rules:
            verdict = self._evaluate(rule)
            if verdict is None:
                return None  # an earlier rule could still fire: keep asking
            if verdict:
                return rule.outcome, rule.reason
        if any(not c.optional and c.key not in self.answers for c in self.criteria.fields):
            return None
        return self.criteria.default_outcome, None

    def _evaluate(self, rule: Rule) -> bool | None:
        unknown = False
        for key, condition in rule.when.items():
            if key not in self.answers:
                unknown = True
                continue
            if not holds(self.answers[key], condition):
                return False
        return None if unknown else True

    def as_text(self) -> dict[str, str]:
        return {k: _spoken(v) for k, v in self.answers.items()}

    def deal_amount(self) -> float | None:
        """The answer to the field the criteria file marks as the deal amount, if given."""
        field = self.criteria.amount_field
        value = self.answers.get(field.key) if field else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def crm_updates(self) -> dict[str, str]:
        """What the caller told us that belongs in a CRM property: written back at wrap-up, so
        the next call finds it there. Answers that came from the CRM are not written again."""
        return {
            c.crm_property: _crm_value(self.answers[c.key])
            for c in self.criteria.fields
            if c.crm_property and c.key in self.answers and self.sources.get(c.key) == "caller"
        }


def holds(value: Any, condition: Mapping[str, Any]) -> bool:
    """Whether ``value`` meets every operator of ``condition`` (``{"gte": 50}`` ...)."""
    for op, target in condition.items():
        if op == "present" and bool(target) != (value not in (None, "")):
            return False
        if op == "equals" and value != target:
            return False
        if op == "in" and value not in target:
            return False
        if op in ("gte", "lte", "gt", "lt"):
            if not isinstance(value, int | float) or isinstance(value, bool):
                return False
            ok = {
                "gte": value >= target,
                "lte": value <= target,
                "gt": value > target,
                "lt": value < target,
            }[op]
            if not ok:
                return False
    return True


def _spoken(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _crm_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _spoken(value)
