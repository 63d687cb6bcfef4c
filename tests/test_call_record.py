"""What a call's record says: the disposition from what happened and what the rules decided,
the deal amount from the field the criteria mark, the answers the CRM gets back, and an outbox
that keeps all of it."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from livekit.agents import stt
from livekit.agents.language import LanguageCode

from calls.qualification import Criterion, Qualification, load_criteria
from calls.state import CallState
from integrations.crm import CallRecord, DealRequest
from integrations.outbox import Outbox
from integrations.scheduling import Event
from tests.conftest import Seconds

pytestmark = pytest.mark.unit

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
HOT = {"existing_customer": False, "need": "forecasting", "company_size": 60,
       "crm_system": "hubspot", "decision_role": "decision_maker",
       "timeline": "this_month"}  # fmt: skip


def fresh_state(**answers: object) -> CallState:
    state = CallState(
        call_id="c1", direction="inbound", started_at=START,
        qualification=Qualification(load_criteria()),
    )  # fmt: skip
    assert state.qualification.record(answers) == {}
    return state


def test_nothing_decided_and_the_caller_hung_up():
    assert fresh_state().disposition() == "hung_up"


def test_the_agent_ending_an_undecided_call_is_at_most_nurture():
    state = fresh_state(need="just looking")
    state.ended_by_agent = True
    assert state.disposition() == "nurture"


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (HOT, "qualified"),  # hand_to_rep
        ({**HOT, "company_size": 10}, "qualified"),  # book_meeting, not booked yet
        ({**HOT, "crm_system": "none"}, "disqualified"),
        ({"existing_customer": True}, "support"),
        ({**HOT, "company_size": 10, "timeline": "no_timeline"}, "nurture"),
    ],
)
def test_the_route_the_rules_decided_is_the_disposition(answers, expected):
    state = fresh_state(**answers)
    state.ended_by_agent = True
    assert state.disposition() == expected


def test_what_happened_outranks_the_route():
    state = fresh_state(**HOT)
    state.transfer = "rep_accepted"
    assert state.disposition() == "transferred"
    state.booking = Event(id="e1", start=START, end=START, summary="Demo", status="confirmed")
    assert state.disposition() == "booked"
    unreached = fresh_state()
    unreached.dial_failure = "486 Busy Here"
    assert unreached.disposition() == "not_reached"
    declined = fresh_state(**HOT)
    declined.transfer = "rep_declined"
    assert declined.disposition() == "qualified"


def test_deal_amount_follows_the_marked_field_whatever_its_name():
    criteria = load_criteria()
    renamed = replace(
        criteria,
        fields=tuple(
            replace(c, key="monthly_spend") if c.deal_amount else c for c in criteria.fields
        ),
    )
    assert renamed.amount_field is not None and renamed.amount_field.key == "monthly_spend"
    qualification = Qualification(renamed)
    assert qualification.record({"monthly_spend": "1.5k"}) == {}
    assert qualification.deal_amount() == 1500.0
    unmarked = replace(
        criteria, fields=tuple(replace(c, deal_amount=False) for c in criteria.fields)
    )
    none_marked = Qualification(unmarked)
    none_marked.record({"budget_usd": 900})
    assert none_marked.deal_amount() is None


def test_only_what_the_caller_said_is_written_back_to_the_crm():
    qualification = Qualification(load_criteria())
    qualification.prefill_from_crm({"numemployees": "40"})
    assert qualification.crm_updates() == {}  # came from the CRM: not written again
    qualification.record({"company_size": 45, "need": "forecasting"})
    assert qualification.crm_updates() == {"numemployees": "45"}


def test_two_amount_fields_are_refused(monkeypatch):
    import prompts
    from calls.qualification import CriteriaError

    raw = prompts.load_yaml("criteria.yaml")
    raw["layers"][1]["fields"][0]["deal_amount"] = True  # company_size, beside budget_usd
    monkeypatch.setattr(prompts, "load_yaml", lambda _name: raw)
    with pytest.raises(CriteriaError, match="more than one deal_amount"):
        load_criteria()


def test_outbox_keeps_records_deals_and_write_backs(tmp_path):
    record = CallRecord(
        call_id="c1", contact_id="", direction="inbound", started_at=START, ended_at=START,
        from_number="+14155550100", to_number="+14155550199", disposition="qualified",
        summary="s", transcript="Caller: hi", qualification={"company_size": "60"},
    )  # fmt: skip
    deal = DealRequest(call_id="c1", contact_id="", name="Acme", amount=2000.0)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put(record, deal, contact_updates={"numemployees": "60"}, error="503")
    assert outbox.pending() == [(record, deal, {"numemployees": "60"})]


def test_outbox_keeps_the_recordings_path(tmp_path):
    record = CallRecord(
        call_id="c2", contact_id="7", direction="inbound", started_at=START, ended_at=START,
        from_number=None, to_number=None, disposition="nurture", summary="s", transcript="",
        qualification={}, recording="recordings/c2.ogg",
    )  # fmt: skip
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put(record, None, contact_updates={}, error="503")
    [(kept, _, _)] = outbox.pending()
    assert kept.recording == "recordings/c2.ogg"


def test_an_outbox_written_before_write_backs_still_replays(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE outbox (call_id TEXT PRIMARY KEY, record TEXT NOT NULL, deal TEXT, "
        "error TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0)"
    )
    old = {"call_id": "c0", "contact_id": "7", "direction": "outbound",
           "started_at": START.isoformat(), "ended_at": START.isoformat(),
           "from_number": None, "to_number": "+14155550100", "disposition": "nurture",
           "summary": "s", "transcript": "", "qualification": {}}  # fmt: skip
    db.execute("INSERT INTO outbox VALUES ('c0', ?, NULL, '503', 0)", (json.dumps(old),))
    db.commit()
    db.close()
    [(record, deal, updates)] = Outbox(path).pending()
    assert record.started_at == START and record.contact_id == "7"
    assert record.recording is None  # written before calls were recorded
    assert deal is None and updates == {}


def test_criterion_defaults_are_not_amounts():
    assert Criterion(key="k", type="number", question="?", layer="l").deal_amount is False


def test_the_transcript_names_a_rep_who_spoke_after_the_hand_off() -> None:
    from livekit.agents import ChatContext

    from calls.transcript import SPEAKER, transcript_text

    history = ChatContext.empty()
    history.add_message(role="user", content="I'd like to talk to someone.")
    history.add_message(role="assistant", content="Dana, I have Sam with you now.")
    history.add_message(role="user", content="Hi Dana, Sam here.", extra={SPEAKER: "Rep (Sam)"})
    assert transcript_text(history).splitlines() == [
        "Caller: I'd like to talk to someone.",
        "Agent: Dana, I have Sam with you now.",
        "Rep (Sam): Hi Dana, Sam here.",
    ]


def _transcript(text: str, *, final: bool = True) -> stt.SpeechEvent:
    return stt.SpeechEvent(
        type=stt.SpeechEventType.FINAL_TRANSCRIPT if final
        else stt.SpeechEventType.INTERIM_TRANSCRIPT,
        alternatives=[stt.SpeechData(language=LanguageCode("en"), text=text)],
    )  # fmt: skip


def test_a_caller_line_the_session_dropped_is_kept_where_it_was_said() -> None:
    from livekit.agents import ChatContext

    from calls.transcript import HeardWords, transcript_text

    clock = Seconds(100.0)
    heard = HeardWords(clock=clock)
    heard.observe(_transcript("Hi, you've", final=False))  # the greeting begins at 100
    clock.value = 103.0
    heard.observe(_transcript("Hi, you've reached Dana.  Leave a message."))
    history = ChatContext.empty()  # the message began at 104; the greeting's turn was dropped
    history.add_message(role="assistant", content="Hi Dana, this is Ava.", created_at=104.0)
    completed = heard.completed(history)
    assert transcript_text(completed).splitlines() == [
        "Caller: Hi, you've reached Dana. Leave a message.",
        "Agent: Hi Dana, this is Ava.",
    ]
    assert len(history.items) == 1  # the session's own history is left as it was


def test_lines_the_history_kept_are_not_added_twice() -> None:
    from livekit.agents import ChatContext

    from calls.transcript import HeardWords

    clock = Seconds(100.0)
    heard = HeardWords(clock=clock)
    for text in ("Yes.", "We use HubSpot,", "about sixty people.", "Yes."):
        heard.observe(_transcript(text))
        clock.value += 1
    history = ChatContext.empty()
    history.add_message(role="user", content="Yes.", created_at=100.5)
    history.add_message(role="user", content="We use HubSpot, about sixty people.")
    history.add_message(role="user", content="Yes.")
    assert heard.completed(history) is history


def test_a_repeated_answer_dropped_once_is_kept_once() -> None:
    from livekit.agents import ChatContext

    from calls.transcript import HeardWords, transcript_text

    clock = Seconds(100.0)
    heard = HeardWords(clock=clock)
    for text in ("Yes.", "Tuesday works.", "Yes."):  # the second "Yes." was dropped
        heard.observe(_transcript(text))
        clock.value += 10
    history = ChatContext.empty()
    history.add_message(role="user", content="Yes.", created_at=101.0)
    history.add_message(role="assistant", content="Does Tuesday work?", created_at=105.0)
    history.add_message(role="user", content="Tuesday works.", created_at=111.0)
    history.add_message(role="assistant", content="Booked. Anything else?", created_at=115.0)
    assert transcript_text(heard.completed(history)).splitlines() == [
        "Caller: Yes.",
        "Agent: Does Tuesday work?",
        "Caller: Tuesday works.",
        "Agent: Booked. Anything else?",
        "Caller: Yes.",
    ]
