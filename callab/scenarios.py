"""What callers say and what the scripted LLM answers, for the e2e tests and the benchmark.

Each caller line has the words the phone speaks (espeak-ng, no commas: a pause inside a
line would split it into two utterances at the STT stand-in) and the text the STT stand-in
returns for it. LLM steps use our real tool names; every step offers-guards on `end_call`,
so only the agent's own turns (not the wrap-up summary request) advance the script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callab.script import CallScript
from callab.standins.chat_script import ChatScript

CALLER = "+14155550123"  # San Francisco: the agent guesses Pacific time from it
SUMMARY = "Dana Smith of Acme booked a forecasting demo."


@dataclass(frozen=True)
class Line:
    spoken: str
    heard: str


def agent_turn(
    *,
    after_user: str | None = None,
    after_tool: str | None = None,
    say: str | None = None,
    call: tuple[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    when: dict[str, Any] = {"offers_tool": "end_call"}
    if after_user is not None:
        when |= {"last_role": "user", "last_user_contains": after_user}
    if after_tool is not None:
        when |= {"last_tool": after_tool}
    step: dict[str, Any] = {"when": when}
    if say is not None:
        step["say"] = say
    if call is not None:
        step["tool_calls"] = [{"name": call[0], "arguments": dict(call[1])}]
    return step


def script(steps: Sequence[dict[str, Any]]) -> CallScript:
    return CallScript.build(steps, summary=SUMMARY)


# --- (a) an inbound call that qualifies and books ---------------------------------------------

BOOKING_LINES = (
    Line(
        "Hi this is Dana Smith from Acme and we need better sales forecasting",
        "Hi, this is Dana Smith from Acme, and we need better sales forecasting.",
    ),
    Line(
        "We have twenty sellers on HubSpot and I make the call and we want it this quarter",
        "We have twenty sellers on HubSpot, I make the call, and we want it this quarter.",
    ),
    Line(
        "The first time works for me and my email is dana at acme dot com",
        "The first time works for me, and my email is dana at acme dot com.",
    ),
)
BOOKING_EMAIL = "dana@acme.com"
# Every turn up to the booking (the goodbye follows in BOOKING_SCRIPT).
BOOKING_TURNS = [
    agent_turn(
        after_user="Dana Smith",
        call=(
            "save_contact_details",
            {"first_name": "Dana", "last_name": "Smith", "company": "Acme"},
        ),
    ),
    agent_turn(
        after_tool="save_contact_details",
        call=(
            "record_qualification",
            {"existing_customer": False, "need": "better sales forecasting"},
        ),
    ),
    agent_turn(
        after_tool="record_qualification",
        say="Thanks Dana. How many sellers do you have, which CRM, and when do you need it?",
    ),
    agent_turn(
        after_user="twenty sellers",
        call=(
            "record_qualification",
            {
                "company_size": 20,
                "crm_system": "hubspot",
                "decision_role": "decision_maker",
                "timeline": "this_quarter",
            },
        ),
    ),
    agent_turn(
        after_tool="record_qualification",
        call=("set_time_zone", {"time_zone": "America/Los_Angeles"}),
    ),
    agent_turn(after_tool="set_time_zone", call=("offer_slots", {})),
    agent_turn(
        after_tool="offer_slots",
        say="I have a few times open for a demo. Does the first one work for you?",
    ),
    agent_turn(
        after_user="first time",
        call=(
            "book_meeting",
            {"start": "$result:offer_slots:slots.0.start", "email": BOOKING_EMAIL},
        ),
    ),
]
BOOKING_SCRIPT = script(
    [
        *BOOKING_TURNS,
        agent_turn(after_tool="book_meeting", call=("end_call", {"outcome": "booked"})),
    ]
)

# --- (b) the caller talks over a long answer --------------------------------------------------

BARGE_IN_LINES = (
    Line("Hi what does Northwind actually do", "Hi, what does Northwind actually do?"),
    Line(
        "Sorry to cut in but can you just email me the details",
        "Sorry to cut in, but can you just email me the details?",
    ),
)
LONG_ANSWER = (
    "Northwind builds sales forecasting on top of the CRM your team already uses. "
    "It reads your pipeline every night, scores each open deal by how likely it is to close, "
    "and rolls that up into a forecast your managers can trust. Most teams see their forecast "
    "error drop by half within one quarter, and reps spend less time updating spreadsheets."
)
BARGE_IN_REPLY = "Of course. I will email you the details today."
BARGE_IN_SCRIPT = script(
    [
        agent_turn(after_user="Northwind", say=LONG_ANSWER),
        agent_turn(after_user="email me", say=BARGE_IN_REPLY),
    ]
)

# --- (d) a pause in the middle of a sentence ---------------------------------------------------

PAUSE_OPENING = Line("Hi I am Dana from Acme", "Hi, I'm Dana from Acme.")
PAUSE_FIRST_HALF = Line("My budget is", "My budget is")
PAUSE_SECOND_HALF = Line("around fifty thousand a year", "around fifty thousand a year.")
PAUSE_SECONDS = 1.5
BUDGET_QUESTION = "Thanks Dana. What budget do you have in mind?"
BUDGET_REPLY = "Got it, fifty thousand a year."
PAUSE_SCRIPT = script(
    [
        agent_turn(after_user="Dana", say=BUDGET_QUESTION),
        agent_turn(
            after_user="fifty thousand", call=("record_qualification", {"budget_usd": 50000})
        ),
        agent_turn(after_tool="record_qualification", say=BUDGET_REPLY),
    ]
)

# --- the benchmark call: three plain turns, a mid-sentence pause, a barge-in ------------------

BENCH_TURNS = (
    (Line("Hi this is Dana from Acme", "Hi, this is Dana from Acme."),
     "Dana", "Nice to meet you Dana. What made you call today?"),
    (Line("We need better sales forecasting", "We need better sales forecasting."),
     "forecasting", "Got it. How many sellers are on your team?"),
    (Line("About twenty sellers", "About twenty sellers."),
     "twenty", "Thanks. And which CRM do you use?"),
)  # fmt: skip
BENCH_PAUSE = (Line("We use", "We use"), Line("HubSpot for everything", "HubSpot for everything."))
BENCH_PAUSE_REPLY = "Great, we work well with HubSpot."
BENCH_BARGE = (
    Line("What does Northwind cost", "What does Northwind cost?"),
    Line("Sorry can you just email me the pricing", "Sorry, can you just email me the pricing?"),
)
BENCH_BARGE_REPLY = "Of course. I will email you the pricing today."
BENCH_UTTERANCES = (
    *(line.heard for line, _, _ in BENCH_TURNS),
    *(line.heard for line in BENCH_PAUSE),
    *(line.heard for line in BENCH_BARGE),
)
BENCH_SCRIPT = script(
    [
        *(agent_turn(after_user=key, say=reply) for _, key, reply in BENCH_TURNS),
        agent_turn(after_user="HubSpot for everything", say=BENCH_PAUSE_REPLY),
        agent_turn(after_user="cost", say=LONG_ANSWER),
        agent_turn(after_user="email me", say=BENCH_BARGE_REPLY),
    ]
)


def bench_reference_script(greeting: str) -> ChatScript:
    """The benchmark call for the reference worker (bench/reference_agent.py): the same
    replies, word for word, as plain text. It offers no tools, so no step waits for
    `end_call`; it greets through the LLM, so the first step is our greeting's text."""
    turns = [(key, reply) for _, key, reply in BENCH_TURNS]
    turns += [("HubSpot for everything", BENCH_PAUSE_REPLY), ("cost", LONG_ANSWER),
              ("email me", BENCH_BARGE_REPLY)]  # fmt: skip
    steps: list[dict[str, Any]] = [{"say": greeting}]
    steps += [
        {"when": {"last_role": "user", "last_user_contains": key}, "say": reply}
        for key, reply in turns
    ]
    return ChatScript.from_data({"steps": steps})


# --- (f) a warm transfer: the caller asks for a person and a rep takes the call ---------------

TRANSFER_LINES = (
    Line(
        "Hi this is Dana Smith from Acme and I would like to talk to someone in sales please",
        "Hi, this is Dana Smith from Acme, and I would like to talk to someone in sales, please.",
    ),
)
TRANSFER_REASON = "Dana from Acme asked to talk to sales about forecasting."
TRANSFER_SCRIPT = script(
    [
        agent_turn(
            after_user="talk to someone in sales",
            call=(
                "save_contact_details",
                {"first_name": "Dana", "last_name": "Smith", "company": "Acme"},
            ),
        ),
        agent_turn(
            after_tool="save_contact_details",
            call=("hand_to_rep", {"reason": TRANSFER_REASON}),
        ),
    ]
)
