"""A labelled set of outbound-call answers, built here: people answering in different ways,
personal mailboxes with and without a beep, carrier and business mailboxes, mailboxes that
take no message. Each is synthesised like the call lab's callers: espeak-ng speech through an
8 kHz phone channel (``callab.audio.phone_line``), generated beeps, line noise, and a G.711
round trip (mu-law or A-law, the codecs our SIP bridge carries).

    from bench.greetings import GREETINGS, render
    samples = render(GREETINGS[0])  # int16, 8 kHz
"""

from __future__ import annotations

import audioop  # G.711 as the codec defines it; deprecated from 3.11, present until 3.13
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from callab.audio import phone_line

RATE = 8000
Label = Literal["human", "machine"]


@dataclass(frozen=True)
class Say:
    text: str
    words_per_minute: int = 165


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Tone:
    hz: float
    seconds: float
    dbfs: float = -12.0


Segment = Say | Pause | Tone


@dataclass(frozen=True)
class Greeting:
    name: str
    label: Label
    segments: tuple[Segment, ...]
    noise_dbfs: float = -60.0  # line hiss
    codec: Literal["ulaw", "alaw"] = "ulaw"
    expect: Literal["open", "leave_message", "hang_up"] = field(default="open")

    @property
    def has_beep(self) -> bool:
        return any(isinstance(s, Tone) for s in self.segments)

    def utterances(self) -> list[str]:
        """What a perfect STT hears, one text per burst of sound the STT stand-in detects
        (speech separated by at least half a second; a beep is a burst with no words)."""
        texts: list[str] = []
        joined = False
        for segment in self.segments:
            if isinstance(segment, Pause):
                joined = joined and segment.seconds < 0.5
                continue
            text = segment.text if isinstance(segment, Say) else ""
            if joined and texts:
                texts[-1] = f"{texts[-1]} {text}".strip()
            else:
                texts.append(text)
            joined = True
        return texts


def person(name: str, *segments: Segment, **options: object) -> Greeting:
    return Greeting(name, "human", segments, expect="open", **options)  # type: ignore[arg-type]


def mailbox(name: str, *segments: Segment, **options: object) -> Greeting:
    return Greeting(name, "machine", segments, expect="leave_message", **options)  # type: ignore[arg-type]


def no_mailbox(name: str, *segments: Segment, **options: object) -> Greeting:
    return Greeting(name, "machine", segments, expect="hang_up", **options)  # type: ignore[arg-type]


LEAD_IN = Pause(0.4)
BEEP = Tone(1000, 0.5)

GREETINGS: tuple[Greeting, ...] = (
    # --- people ---------------------------------------------------------------------------
    person("hello", LEAD_IN, Say("Hello?")),
    person("this-is-dana", LEAD_IN, Say("Hello, this is Dana.")),
    person("dana-speaking", LEAD_IN, Say("Dana speaking.")),
    person("who-is-this", LEAD_IN, Say("Yeah, who's this?")),
    person("silence-then-hello", Pause(1.5), Say("Hello?")),
    person("full-name", LEAD_IN, Say("Hi, Dana Whitfield.")),
    person("yes", LEAD_IN, Say("Yes?")),
    person(
        "long-winded",
        LEAD_IN,
        Say(
            "Oh hi, yes, sorry, I was just getting into the car, give me one second. "
            "Okay, go ahead, who am I speaking with?"
        ),
    ),
    person("work-line", LEAD_IN, Say("Good afternoon, Acme sales, Dana here, how can I help?")),
    person("hello-hello", LEAD_IN, Say("Hello?"), Pause(1.2), Say("Hello?")),
    person("hey-noisy", LEAD_IN, Say("Hey."), noise_dbfs=-45.0),
    person(
        "formal-alaw", LEAD_IN, Say("Good morning, this is Dana Whitfield speaking."), codec="alaw"
    ),
    person("go-ahead", LEAD_IN, Say("Yeah, go ahead.")),
    person("quiet-then-anyone", Pause(2.6), Say("Hello, is anyone there?")),
    person("fast-who", LEAD_IN, Say("Who is calling please?", words_per_minute=220)),
    person(
        "in-a-hurry",
        LEAD_IN,
        Say("It's Dana, I'm just walking into a meeting, can you make it quick?"),
    ),
    person("slow-hello", LEAD_IN, Say("Hello, Dana here.", words_per_minute=110), noise_dbfs=-48.0),
    person("what-is-it", LEAD_IN, Say("Mm, yes, what is it?"), codec="alaw"),
    # --- personal mailboxes with a beep -----------------------------------------------------
    mailbox(
        "reached-dana-beep",
        LEAD_IN,
        Say("Hi, you've reached Dana. Please leave a message after the tone."),
        Pause(0.6),
        BEEP,
    ),
    mailbox(
        "cant-take-call-beep",
        LEAD_IN,
        Say(
            "Hey, it's Dana. I can't take your call right now, leave me a message and "
            "I'll get back to you."
        ),
        Pause(0.5),
        Tone(850, 0.4),
    ),
    mailbox(
        "away-from-desk-beep",
        LEAD_IN,
        Say(
            "This is Mark Jensen at Acme. I'm away from my desk, so please leave your "
            "name and number and I will call you back."
        ),
        Pause(0.7),
        Tone(1400, 0.25),
        codec="alaw",
    ),
    mailbox(
        "sounds-like-a-person",
        LEAD_IN,
        Say("Hi, this is Dana."),
        Pause(1.5),
        Say("Sorry I missed you. Leave a message."),
        Pause(0.5),
        BEEP,
    ),
    mailbox(
        "hello-prank",
        LEAD_IN,
        Say("Hello?"),
        Pause(2.0),
        Say("Ha, got you, this is my voicemail. Leave a message."),
        Pause(0.5),
        Tone(950, 0.4),
    ),
    mailbox(
        "noisy-low-beep",
        LEAD_IN,
        Say(
            "You've reached the voicemail of Dana Whitfield. At the tone, please record "
            "your message."
        ),
        Pause(0.5),
        Tone(440, 0.3, dbfs=-18.0),
        noise_dbfs=-44.0,
    ),
    mailbox(
        "long-greeting-short-beep",
        LEAD_IN,
        Say(
            "Hello, you have reached the office of Doctor Samuel Ortiz. The office is open "
            "Monday to Friday from nine to five. If this is an emergency, please hang up "
            "and dial nine one one. Otherwise, leave a message and we will return your "
            "call."
        ),
        Pause(0.8),
        Tone(1000, 0.2),
    ),
    mailbox(
        "high-beep",
        LEAD_IN,
        Say("Dana here, not available, leave a message."),
        Pause(0.6),
        Tone(1950, 0.35),
    ),
    mailbox("beep-only", Pause(0.8), BEEP),
    mailbox(
        "business-closed-beep",
        LEAD_IN,
        Say(
            "Thank you for calling Acme Analytics. Our office is currently closed. Please "
            "leave a message after the tone."
        ),
        Pause(0.6),
        Tone(1100, 0.45),
    ),
    # --- personal mailboxes with no beep ----------------------------------------------------
    mailbox(
        "reached-dana-no-beep", LEAD_IN, Say("Hi, you've reached Dana, please leave a message.")
    ),
    mailbox(
        "cant-take-call-no-beep",
        LEAD_IN,
        Say("I can't take your call right now. Leave a message and I'll get back to you."),
        noise_dbfs=-46.0,
    ),
    mailbox("short-no-beep", LEAD_IN, Say("This is Dana, leave a message."), codec="alaw"),
    # --- carrier mailboxes ----------------------------------------------------------------
    mailbox(
        "carrier-not-available",
        LEAD_IN,
        Say("The person you are calling is not available. Please leave a message after the tone."),
        Pause(0.6),
        BEEP,
    ),
    mailbox(
        "carrier-press-one",
        LEAD_IN,
        Say(
            "The wireless customer you are trying to reach is not available. At the tone, "
            "please record your message. When you have finished recording, you may hang "
            "up, or press 1 for more options."
        ),
        Pause(0.7),
        Tone(1004, 0.5),
    ),
    mailbox(
        "carrier-number",
        LEAD_IN,
        Say(
            "The number you have dialed, 5 5 5, 0 1 0 0, is not available. Please leave a message."
        ),
        Pause(0.5),
        Tone(1000, 0.3),
        codec="alaw",
    ),
    no_mailbox(
        "carrier-mailbox-full",
        LEAD_IN,
        Say("The mailbox is full and cannot accept any messages at this time. Goodbye."),
    ),
    no_mailbox(
        "carrier-not-set-up",
        LEAD_IN,
        Say(
            "The person you are calling has a voice mailbox that has not been set up yet. Goodbye."
        ),
    ),
)


def render(greeting: Greeting, *, seed: int = 7) -> np.ndarray:
    """The greeting as the agent receives it: int16 at 8 kHz, noise and G.711 included."""
    audio = np.concatenate([segment_audio(s) for s in greeting.segments])
    rng = np.random.default_rng(seed)
    audio = audio + rng.normal(0.0, 32767 * 10 ** (greeting.noise_dbfs / 20), audio.size)
    return g711(np.clip(audio, -32768, 32767).astype(np.int16), greeting.codec)


def segment_audio(segment: Segment) -> np.ndarray:
    if isinstance(segment, Pause):
        return np.zeros(round(segment.seconds * RATE))
    if isinstance(segment, Tone):
        t = np.arange(round(segment.seconds * RATE)) / RATE
        amplitude = 32767 * np.sqrt(2) * 10 ** (segment.dbfs / 20)
        ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)  # 5 ms edges, no click
        return amplitude * ramp * np.sin(2 * np.pi * segment.hz * t)
    speech = phone_line(segment.text, sample_rate=RATE, words_per_minute=segment.words_per_minute)
    return speech.astype(np.float64)


def timeline(greeting: Greeting) -> tuple[float, float, float | None]:
    """End of the first words, end of all sound, end of the last beep, in seconds."""
    at, first_words, beep_end = 0.0, None, None
    for segment in greeting.segments:
        at += segment_audio(segment).size / RATE
        if isinstance(segment, Say) and first_words is None:
            first_words = at
        if isinstance(segment, Tone):
            beep_end = at
    return first_words or 0.0, at, beep_end


def g711(samples: np.ndarray, codec: Literal["ulaw", "alaw"]) -> np.ndarray:
    """Encoded and decoded again, as a phone call carries it."""
    raw = samples.astype("<i2").tobytes()
    if codec == "ulaw":
        back = audioop.ulaw2lin(audioop.lin2ulaw(raw, 2), 2)
    else:
        back = audioop.alaw2lin(audioop.lin2alaw(raw, 2), 2)
    return np.frombuffer(back, dtype="<i2").copy()


def line_noise(seconds: float, noise_dbfs: float, *, seed: int = 11) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 32767 * 10 ** (noise_dbfs / 20), round(seconds * RATE))
    return np.clip(noise, -32768, 32767).astype(np.int16)
