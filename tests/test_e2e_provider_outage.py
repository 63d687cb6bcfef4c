"""A provider down in the middle of a real SIP call (issue 11), over the local LiveKit stack and
the real worker: with a second LLM endpoint the call goes on; with every endpoint down the
caller hears the apology recorded ahead of time, one callback is queued and the record says
why."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import prompts
from callab.harness import CallLab
from callab.phone import TestPhone
from callab.scenarios import BOOKING_EMAIL, BOOKING_LINES, BOOKING_SCRIPT, CALLER, SUMMARY
from tests.e2e_support import StartLab, eventually, spoken_texts

pytestmark = pytest.mark.e2e

CLOSINGS = prompts.load_yaml("closings.yaml")
APOLOGY = prompts.load_yaml("outage.yaml")


def tool_calls_in(requests: list[Any]) -> list[str]:
    """The tools called in the longest conversation an LLM stand-in saw (the last call, whose
    result no request carried, is not among them)."""
    last = max((r for r in requests if r.tool_names), key=lambda r: len(r.messages))
    return [call["function"]["name"] for m in last.messages for call in m.get("tool_calls") or []]


async def _answer_then(phone: TestPhone, *, since: float) -> None:
    """Until the agent has answered (spoken after ``since``) and paused."""
    await phone.agent_starts_speaking(after=since, limit_s=60)
    await phone.agent_goes_quiet(for_s=0.8, limit_s=60)


async def _booking_call_with_a_fallback_llm(
    start_lab: StartLab, phones: list[TestPhone]
) -> tuple[CallLab, TestPhone]:
    """The booking call placed, on a lab whose worker has a second LLM endpoint."""
    lab = await start_lab(
        script=BOOKING_SCRIPT, utterances=[line.heard for line in BOOKING_LINES], vendors=True,
        fallback_llm=True,
    )  # fmt: skip
    assert lab.llm_fallback is not None
    phone = await lab.place_call(CALLER)
    phones.append(phone)
    return lab, phone


async def test_the_primary_llm_down_mid_call_the_fallback_answers_and_the_booking_is_written_once(
    start_lab: StartLab, phones: list[TestPhone]
) -> None:
    lab, phone = await _booking_call_with_a_fallback_llm(start_lab, phones)

    since = phone.joined_at
    assert since is not None
    for index, line in enumerate(BOOKING_LINES):
        await _answer_then(phone, since=since)
        if index == 1:  # the first question answered; the primary LLM goes down
            await lab.llm.go_down()
        since = (await phone.say(line.spoken)).ended_at
    await phone.line_closes(limit_s=60)
    await eventually(lambda: lab.hubspot.deals, limit_s=40)

    assert lab.llm.refused >= 1
    switch_s = lab.llm_fallback.requests[0].received_at - lab.llm.refused_at[0]
    print(f"\nprimary LLM refused, fallback asked {switch_s * 1000:.0f} ms later")
    assert switch_s < 1.0
    # end_call's answer ends the call: its goodbye is checked below
    assert tool_calls_in(lab.llm_fallback.requests) == [
        "save_contact_details", "record_qualification", "record_qualification",
        "set_time_zone", "offer_slots", "book_meeting",
    ]  # fmt: skip
    (call,) = lab.hubspot.calls.values()
    assert SUMMARY in call.properties["hs_call_body"]  # the summary came from the fallback
    (note,) = lab.hubspot.notes.values()
    assert "cut_short" not in note.properties["hs_note_body"]
    (deal,) = lab.hubspot.deals.values()
    assert deal.properties["dealstage"] == "appointmentscheduled"
    (event,) = lab.calendar.events.values()
    assert event["status"] == "confirmed"
    assert [a["email"] for a in event.get("attendees", [])] == [BOOKING_EMAIL]
    assert spoken_texts(lab)[-1] == CLOSINGS["goodbye"]["booked"]
    assert "cut short" not in lab.worker_log()


async def test_every_llm_endpoint_down_mid_call_the_caller_hears_the_apology_and_is_called_back(
    start_lab: StartLab, phones: list[TestPhone]
) -> None:
    lab, phone = await _booking_call_with_a_fallback_llm(start_lab, phones)
    assert phone.joined_at is not None
    started = datetime.now(UTC)

    await _answer_then(phone, since=phone.joined_at)
    first = await phone.say(BOOKING_LINES[0].spoken)
    await _answer_then(phone, since=first.ended_at)
    # Every LLM endpoint goes down, and the TTS with them: the apology must not need it.
    for server in (lab.llm, lab.llm_fallback, lab.tts):
        await server.go_down()
    said = await phone.say(BOOKING_LINES[1].spoken)
    closed = await phone.line_closes(limit_s=60)
    await eventually(lambda: lab.hubspot.notes, limit_s=40)

    after = [s for s in phone.recording.spans() if s.start > said.ended_at and s.end <= closed]
    heard_s = sum(s.duration for s in after)
    print(f"\nheard {heard_s:.1f} s of apology; the line closed {closed - said.ended_at:.1f} s "
          "after the caller's line")  # fmt: skip
    assert heard_s > 2.0  # the apology is ~6 s; nothing else can speak with the TTS down
    assert lab.llm.refused >= 1 and lab.llm_fallback.refused >= 1
    assert "outage apology played" in lab.worker_log()
    # synthesised ahead of time, at the worker's start, not on this call
    assert APOLOGY["callback"] in [c.text for c in lab.tts.contexts]

    rows = _queued_calls(lab, CALLER)
    assert len(rows) == 1, rows  # exactly one callback
    lead, next_at = rows[0]
    assert lead["source"] == "provider_outage_callback"
    assert datetime.fromisoformat(next_at) >= started + timedelta(minutes=29)
    assert len(lab.hubspot.calls) == 1  # one record
    (note,) = lab.hubspot.notes.values()
    body = note.properties["hs_note_body"]
    assert "cut_short: provider outage (LLM)" in body
    assert "call_back_at: " in body
    assert not lab.hubspot.deals and not lab.calendar.events


def _queued_calls(lab: CallLab, phone: str) -> list[tuple[dict[str, Any], str]]:
    with sqlite3.connect(lab.config.workdir / "data" / "dialer.sqlite3") as db:
        rows = db.execute("SELECT lead, next_at FROM dialer_calls WHERE phone = ?", (phone,))
        return [(json.loads(lead), next_at) for lead, next_at in rows.fetchall()]
