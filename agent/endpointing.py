"""When the caller is done: LiveKit's local end-of-turn model, with the words as a second opinion
on phone audio.

The model reads the last 1.2 s of audio. On a phone line (8 kHz, G.711) it rates nearly every
turn end as unlikely: over our SIP bridge it gave 0.30 after "Hi, I'm Dana from Acme.", 0.25
after "My budget is" and 0.22 after "around fifty thousand a year." against its English
threshold of 0.36, so every turn waited the whole `MAX_ENDPOINTING_DELAY` (2.5 s), and a
caller pausing mid-sentence was held only because everything was. The transcript knows what
the audio cannot: a turn whose last word is "is", "the", "and" or "um" is not finished. So,
for the languages whose words we list:

- the last word leaves the sentence open: the turn is unlikely to be over, whatever the model
  says (wait up to the maximum delay, for the rest of the sentence);
- the words end cleanly: the turn is over after the minimum delay, whatever the model says;
- no words yet (the final transcript has not arrived): the model decides, and the decision is
  made again when the transcript arrives.

One exception: a backchannel said over the agent ("mm-hmm", "okay") is over after the minimum
delay, in any language `agent/backchannel.py` lists, so the agent carries on at once. Alone,
"hmm" is a filler that leaves a sentence open; over the agent's voice it is listening.
"""

from __future__ import annotations

import re
from typing import Any

from livekit.agents import AgentSession, inference
from livekit.agents.language import LanguageCode
from livekit.agents.voice.events import (
    AgentStateChangedEvent,
    UserInputTranscribedEvent,
    UserStateChangedEvent,
)

from agent.backchannel import is_backchannel


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words an English sentence does not end on (articles, possessives, prepositions, conjunctions,
# "that", subject pronouns, fillers), and auxiliaries, which end one only after a pronoun ("yes, it
# is" is whole; "my budget is" is not). A wrong guess costs the maximum delay, never a caller
# cut off; a question or an exclamation is whole whatever its last word ("what is it for?").
OPEN_ENDINGS: dict[str, frozenset[str]] = {
    "en": _words(
        """a an the my your our their his its to of for with from by about into onto at than
        per via and or but because if although though unless whether that i we they he she
        um uh er erm hmm mm"""
    ),
}
AUXILIARIES: dict[str, frozenset[str]] = {
    "en": _words(
        """is are was were am be been being have has had do does did will would can could
        should shall might must may"""
    ),
}
# Verbs that want an object: after a pronoun they leave the sentence open ("we use", "I need");
# verbs that end short answers ("I see", "I know", "I agree") are not among them.
OBJECT_VERBS: dict[str, frozenset[str]] = {
    "en": _words(
        """use need want like get make take mean think sell buy run pay spend call send
        tell give bring offer prefer love hate try using needed wanted"""
    ),
}
RELATIVES: dict[str, frozenset[str]] = {"en": _words("what which that who whatever")}
SUBJECTS: dict[str, frozenset[str]] = {
    "en": _words("i we you they he she it that there this who i'd we'd you'd they'd i'll we'll"),
}
_WORD = re.compile(r"[\w']+")
_TRAILING_OPEN = re.compile(r"(,|;|:|-|\.\.\.|…)\s*$")
_TRAILING_WHOLE = re.compile(r"[?!]\s*$")
ALWAYS_UNLIKELY = 1.01  # above any probability: wait for the maximum delay
NEVER_UNLIKELY = 0.0  # below any probability: the minimum delay


def sentence_left_open(text: str, language: str) -> bool | None:
    """Whether the words leave the sentence open; None when we cannot tell (no words, or a
    language whose words we do not list)."""
    words = _WORD.findall(text.lower())
    code = LanguageCode(language).language
    if not words or code not in OPEN_ENDINGS:
        return None
    if _TRAILING_WHOLE.search(text):
        return False
    if _TRAILING_OPEN.search(text) or words[-1] in OPEN_ENDINGS[code]:
        return True
    after_subject = len(words) > 1 and words[-2] in SUBJECTS[code]
    if after_subject:  # "what we use" has its object before it
        fronted = len(words) > 2 and words[-3] in RELATIVES[code]
        return words[-1] in OBJECT_VERBS[code] and not fronted
    return words[-1] in AUXILIARIES[code]


class TranscriptGate:
    """The words of the caller's current turn (its latest final transcript)."""

    def __init__(self, language: str) -> None:
        self.language = language
        self._last_final = ""
        self._agent_speaking = False
        self._over_agent = False  # the caller's current turn began while the agent spoke

    def heard(self, event: UserInputTranscribedEvent) -> None:
        if event.is_final and event.transcript.strip():
            self._last_final = event.transcript

    def speaking(self, event: UserStateChangedEvent) -> None:
        if event.new_state == "speaking":
            self._last_final = ""  # the caller went on: their earlier words no longer end it
            self._over_agent = self._agent_speaking

    def agent(self, event: AgentStateChangedEvent) -> None:
        self._agent_speaking = event.new_state == "speaking"

    def threshold(self, model_threshold: float | None, language: str | None) -> float | None:
        """The end-of-turn threshold for this decision: the model's own when the words say
        nothing."""
        if self._over_agent and is_backchannel(self._last_final):
            return NEVER_UNLIKELY
        left_open = sentence_left_open(self._last_final, language or self.language)
        if left_open is None:
            return model_threshold
        return ALWAYS_UNLIKELY if left_open else NEVER_UNLIKELY

    def follow(self, session: AgentSession[Any]) -> None:
        session.on("user_input_transcribed", self.heard)
        session.on("user_state_changed", self.speaking)
        session.on("agent_state_changed", self.agent)


class PhoneTurnDetector(inference.TurnDetector):
    """LiveKit's local ``v1-mini`` end-of-turn model, its threshold decided per turn by the
    gate. Left to choose, dev mode would pick the cloud model, hence the pinned version."""

    def __init__(self, gate: TranscriptGate) -> None:
        super().__init__(version="v1-mini")
        self.gate = gate

    def stream(self, **kwargs: Any) -> Any:
        stream = super().stream(**kwargs)
        model_threshold = stream.unlikely_threshold

        async def unlikely_threshold(language: Any) -> float | None:
            return self.gate.threshold(await model_threshold(language), language)

        # The session asks the stream, not the detector, for the threshold of each decision.
        setattr(stream, "unlikely_threshold", unlikely_threshold)  # noqa: B010
        return stream
