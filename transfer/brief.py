"""The brief a rep gets before taking a caller: spoken in the consult call, and the same facts
written for the console, so the caller never repeats themselves."""

from __future__ import annotations

from dataclasses import dataclass

from calls.state import CallState


@dataclass(frozen=True)
class Brief:
    caller: str  # "Dana Smith" or "a new caller"
    company: str | None
    phone: str | None
    reason: str  # why the agent is handing over, in one sentence
    facts: tuple[tuple[str, str], ...]  # qualification answers, in the criteria's order
    promised: tuple[str, ...]  # anything already promised: a meeting, a callback, a follow-up
    transcript: str  # the call so far

    @property
    def first_name(self) -> str | None:
        return self.caller.split()[0] if self.caller != "a new caller" else None

    def spoken(self) -> str:
        """A few sentences for the rep's ear, in the order a rep wants them."""
        who = self.caller + (f" from {self.company}" if self.company else "")
        parts = [f"{who[0].upper()}{who[1:]}.", self.reason.rstrip(".") + "."]
        if self.facts:
            parts.append("; ".join(f"{_label(k)}: {v}" for k, v in self.facts) + ".")
        if self.promised:
            parts.append("Already promised: " + "; ".join(self.promised) + ".")
        return " ".join(parts)

    def written(self) -> dict[str, object]:
        """The same, for the console and the CRM note."""
        return {
            "caller": self.caller,
            "company": self.company,
            "phone": self.phone,
            "reason": self.reason,
            "facts": dict(self.facts),
            "promised": list(self.promised),
            "transcript": self.transcript,
        }


def brief_for(state: CallState, *, reason: str, transcript: str) -> Brief:
    contact = state.contact
    name = " ".join(p for p in (contact.firstname, contact.lastname) if p) if contact else ""
    if not name and state.lead is not None:
        name = state.lead.name or ""
    company = (contact.company if contact else None) or (state.lead.company if state.lead else None)
    answers = state.qualification.as_text()
    order = [c.key for c in state.qualification.criteria.fields]
    facts = tuple((k, answers[k]) for k in order if k in answers)
    promised = []
    if state.booking is not None:
        promised.append(f"a meeting at {state.booking.start.isoformat(timespec='minutes')}")
    if state.callback_at is not None:
        promised.append(f"a callback at {state.callback_at.isoformat(timespec='minutes')}")
    if state.follow_up:
        promised.append(state.follow_up)
    return Brief(
        caller=name or "a new caller",
        company=company or None,
        phone=state.caller_phone,
        reason=reason.strip() or "They asked to speak with someone from sales",
        facts=facts,
        promised=tuple(promised),
        transcript=transcript,
    )


def _label(key: str) -> str:
    return key.replace("_usd", "").replace("_", " ")
