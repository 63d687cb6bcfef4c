"""A caller's "uh-huh" over the agent is listening, not a turn: the agent carries on.

LiveKit stops the agent as soon as the caller has talked over it for the minimum interruption
time, and then answers whatever the STT heard. For "uh-huh", "mm-hmm", "okay" or "right" that
is wrong: the caller was only showing they listen, and the agent dropped its answer to reply
to a backchannel (measured with bench/false_stops.py: every backchannel stopped the agent and
was answered as a turn). LiveKit's own fix, its adaptive interruption model, runs on LiveKit
Cloud only; here the words themselves decide.

So when the caller's whole turn is backchannel words and it cut the agent off, the agent says
the rest of its interrupted reply, from the start of the sentence it was in, and the LLM is
not asked. Anything else ("okay, but what does it cost?", "no", a question) is a real turn.
The words are English, plus the other languages the prompts carry (`BACKCHANNELS`).
"""

from __future__ import annotations

import re

# Lower case, punctuation and hyphens removed. A turn made only of these (repeats included:
# "yeah yeah", "okay right") is a backchannel. Not "yes" or "no": over a question they answer it.
BACKCHANNELS: frozenset[str] = frozenset(
    {
        # English
        "uh huh", "mm hmm", "mhm", "mm", "hmm", "um hum", "okay", "ok", "yeah", "yep",
        "right", "sure", "i see", "got it", "alright", "all right", "cool", "ah", "oh",
        # Spanish
        "ajá", "aja", "vale", "claro", "ya", "mhm sí", "entiendo", "de acuerdo",
    }
)  # fmt: skip
_LONGEST = max(len(phrase.split()) for phrase in BACKCHANNELS)
_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*\s+")


def normalise(text: str) -> list[str]:
    """The words of a transcript: lower case, hyphens as spaces, other punctuation gone."""
    text = text.lower().replace("-", " ")
    return re.sub(r"[^\w\s]", " ", text).split()


def is_backchannel(text: str) -> bool:
    """Whether the whole of `text` is backchannel words (an empty turn is not)."""
    words = normalise(text)
    if not words:
        return False
    at = 0
    while at < len(words):
        for size in range(min(_LONGEST, len(words) - at), 0, -1):
            if " ".join(words[at : at + size]) in BACKCHANNELS:
                at += size
                break
        else:
            return False
    return True


def rest_of_reply(full: str, heard: str) -> str | None:
    """What is left to say of `full` when the caller heard only `heard` of it: from the start
    of the sentence it was cut in. None if `heard` is not where `full` begins (a reply the
    agent did not compose this way) or nothing is left."""
    full_words, heard_words = full.split(), heard.split()
    if not heard_words or full_words[: len(heard_words)] != heard_words:
        return None
    if len(heard_words) == len(full_words):
        return None  # heard to the end
    # the offset in `full` just past the heard words
    cut = 0
    for word in heard_words:
        cut = full.index(word, cut) + len(word)
    start = 0
    for end in _SENTENCE_END.finditer(full, 0, cut + 1):
        start = end.end()
    rest = full[start:].strip()
    return rest or None
