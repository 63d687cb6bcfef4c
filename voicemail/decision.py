"""Person or mailbox, and when to speak: the rules that combine LiveKit's answering-machine
verdict with the beep, on an injected clock (every method takes the time it happened).

- Before anything is decided, a beep means a mailbox that is recording: leave the message.
- AMD says ``human``: open the conversation at once. ``uncertain`` (a silent line, or words no
  one could classify) is treated as a person too: the opener is right for a person, and a
  mailbox gives itself away with its beep (below).
- AMD says ``machine-vm``: stop talking to it (``wait_for_beep``) and wait for the beep; if
  none comes, speak once the greeting has been
  over for ``no_beep_s`` (a callee speaking again restarts that wait), and never later than
  ``max_wait_s`` after the answer.
- AMD says ``machine-unavailable`` (a full or unset mailbox) or ``machine-ivr`` (a menu): no
  message can be left; hang up.
- A beep within ``late_beep_s`` of opening means the opener went to a mailbox (a greeting that
  sounded like a person, "Hi, this is Dana... leave a message"): leave the message instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["open", "wait_for_beep", "leave_message", "hang_up"]
_Phase = Literal["listening", "machine", "opened", "done"]
NO_MESSAGE_CATEGORIES = frozenset({"machine-unavailable", "machine-ivr"})


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str  # "amd:human", "beep", "no_beep", "beep_after_open", ...
    at: float
    amd_category: str | None = None


@dataclass(frozen=True, slots=True)
class ScreenTimings:
    no_beep_s: float = 2.5
    max_wait_s: float = 40.0
    late_beep_s: float = 10.0


class Screening:
    """The decisions of one answered call, in the order they were made."""

    def __init__(self, *, answered_at: float, timings: ScreenTimings | None = None) -> None:
        self.timings = timings or ScreenTimings()
        self.answered_at = answered_at
        self.decisions: list[Decision] = []
        self.amd_category: str | None = None
        self._phase: _Phase = "listening"
        self._speaking = False
        self._quiet_since = answered_at
        self._opened_at = 0.0

    @property
    def finished(self) -> bool:
        """Nothing can change any more: a message or hang-up was decided, or the opener has
        been playing for longer than a late beep could come."""
        return self._phase == "done"

    @property
    def decision(self) -> Decision | None:
        return self.decisions[-1] if self.decisions else None

    def on_amd(self, category: str, *, at: float) -> Decision | None:
        self.amd_category = category
        if self._phase != "listening":
            return None
        if category == "machine-vm":
            return self._decide("wait_for_beep", "amd:machine-vm", at, phase="machine")
        if category in NO_MESSAGE_CATEGORIES:
            return self._decide("hang_up", f"amd:{category}", at)
        self._opened_at = at
        return self._decide("open", f"amd:{category}", at, phase="opened")

    def on_beep(self, *, at: float) -> Decision | None:
        if self._phase in ("listening", "machine"):
            return self._decide("leave_message", "beep", at)
        if self._phase == "opened" and at - self._opened_at <= self.timings.late_beep_s:
            return self._decide("leave_message", "beep_after_open", at)
        return None

    def on_callee_speech(self, speaking: bool, *, at: float) -> None:
        if speaking == self._speaking:
            return
        self._speaking = speaking
        if not speaking:
            self._quiet_since = at

    def deadline(self) -> float | None:
        """When ``on_time`` next has something to decide, or None while waiting on events."""
        limit = self.answered_at + self.timings.max_wait_s
        if self._phase == "listening":
            return limit
        if self._phase == "machine":
            if self._speaking:
                return limit
            return min(limit, self._quiet_since + self.timings.no_beep_s)
        if self._phase == "opened":
            return self._opened_at + self.timings.late_beep_s
        return None

    def on_time(self, at: float) -> Decision | None:
        due = self.deadline()
        if due is None or at < due:
            return None
        if self._phase == "opened":
            self._phase = "done"
            return None
        if self._phase == "listening":  # AMD never answered: a person is the safe guess
            self._opened_at = at
            return self._decide("open", "no_verdict", at, phase="opened")
        over = at >= self.answered_at + self.timings.max_wait_s
        return self._decide("leave_message", "wait_limit" if over else "no_beep", at)

    def _decide(self, action: Action, reason: str, at: float, phase: _Phase = "done") -> Decision:
        decision = Decision(action, reason, at, self.amd_category)
        self.decisions.append(decision)
        self._phase = phase
        return decision
