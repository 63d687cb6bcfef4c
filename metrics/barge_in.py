"""How long the agent keeps talking once the caller talks over it.

The SDK reports states, not barge-ins: the caller's VAD state (``user_state_changed``) and
the agent's (``agent_state_changed``). A barge-in starts when the caller starts speaking
while the agent is speaking, and its stop time ends when the agent leaves the speaking
state: its audio is paused (false-interruption resume is on) or cut. Leaving the speaking
state proves nothing by itself, since the agent may simply have finished its sentence while
the caller talked, so the stop is kept only once the speech it cut short tells how it ended:
interrupted (the agent yielded the turn) or resumed (a false interruption, the agent carried
on). A speech that ran to its end was not stopped and is not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

Outcome = Literal["interrupted", "resumed"]


class Speech(Protocol):
    """The part of LiveKit's ``SpeechHandle`` read here."""

    @property
    def interrupted(self) -> bool: ...

    def done(self) -> bool: ...

    def add_done_callback(self, callback: Callable[[Speech], None], /) -> None: ...


@dataclass
class Stop:
    """One barge-in: when the caller started talking over the agent and when the agent's
    speaking state ended (Unix times, as the session's events carry them)."""

    talked_over_at: float
    stopped_at: float
    speech: Speech | None = None

    @property
    def seconds(self) -> float:
        return self.stopped_at - self.talked_over_at


class BargeInClock:
    """Fed the session's state changes with their times; calls ``record`` once per stop."""

    def __init__(self, record: Callable[[Outcome, Stop], None]) -> None:
        self._record = record
        self._agent_speaking = False
        self._caller_speaking = False
        self._talked_over_at: float | None = None
        self._stop: Stop | None = None

    def caller_state(self, state: str, *, at: float) -> None:
        self._caller_speaking = state == "speaking"
        if self._caller_speaking and self._agent_speaking:
            self._talked_over_at = at
        elif not self._caller_speaking:
            self._talked_over_at = None  # the agent talked through it

    def agent_state(self, state: str, *, at: float, speech: Speech | None) -> None:
        was_speaking, self._agent_speaking = self._agent_speaking, state == "speaking"
        if not was_speaking or self._agent_speaking or self._talked_over_at is None:
            return
        stop = Stop(talked_over_at=self._talked_over_at, stopped_at=at, speech=speech)
        self._talked_over_at = None
        if speech is None or speech.interrupted:
            self._record("interrupted", stop)
            return
        if speech.done():
            return  # it finished its sentence: nothing was stopped
        self._stop = stop
        speech.add_done_callback(self._speech_done)

    def false_interruption(self, *, resumed: bool) -> None:
        if resumed and self._stop is not None:
            stop, self._stop = self._stop, None
            self._record("resumed", stop)

    def _speech_done(self, speech: Speech) -> None:
        stop = self._stop
        if stop is None or stop.speech is not speech:
            return
        self._stop = None
        if speech.interrupted:
            self._record("interrupted", stop)
