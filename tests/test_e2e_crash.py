"""A worker killed in the middle of a call (kill -9 to the worker and its job process, as the
OOM killer would): the next worker start records the call from its journal, marked
interrupted, and nothing the call wrote is doubled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callab.phone import TestPhone
from callab.scenarios import BOOKING_LINES, BOOKING_TURNS, CALLER, agent_turn, script
from tests.e2e_support import StartLab, eventually

pytestmark = pytest.mark.e2e

BOOKED_AND_ON = script(
    [*BOOKING_TURNS, agent_turn(after_tool="book_meeting", say="You're booked. Anything else?")]
)


def journal_facts(data_dir: Path) -> list[dict]:
    facts = []
    for path in (data_dir / "journals").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("kind") == "facts":
                facts.append(entry)
    return facts


async def test_a_worker_killed_mid_call_is_recorded_once_as_interrupted(
    start_lab: StartLab, phones: list[TestPhone]
) -> None:
    lab = await start_lab(
        script=BOOKED_AND_ON, utterances=[line.heard for line in BOOKING_LINES], vendors=True
    )
    data_dir = lab.config.workdir / "data"
    phone = await lab.place_call(CALLER)
    phones.append(phone)
    since = phone.joined_at
    assert since is not None
    for line in BOOKING_LINES:
        since = (await phone.say_after_agent(line.spoken, since=since)).ended_at
    # Killed once the booking is made and journaled, before any wrap-up could run.
    await eventually(
        lambda: any(f["record"]["disposition"] == "booked" for f in journal_facts(data_dir)),
        limit_s=30,
    )
    lab.kill_worker()
    assert lab.hubspot.calls == {} and lab.hubspot.notes == {}
    assert list((data_dir / "journals").glob("*.jsonl"))

    await lab.restart_worker()
    # Nobody is left to speak to the caller: the recovery hangs the line up.
    await phone.line_closes(limit_s=30)
    (call,) = (await eventually(lambda: lab.hubspot.calls, limit_s=30)).values()
    assert "Outcome: booked" in call.properties["hs_call_body"]
    assert "interrupted" in call.properties["hs_call_body"]
    (note,) = (await eventually(lambda: lab.hubspot.notes, limit_s=10)).values()
    for line in BOOKING_LINES:
        assert line.heard in note.properties["hs_note_body"]
    (deal,) = (await eventually(lambda: lab.hubspot.deals, limit_s=10)).values()
    assert deal.properties["dealstage"] == "appointmentscheduled"
    (contact,) = lab.hubspot.contacts.values()
    assert contact.properties["phone"] == CALLER
    (event,) = lab.calendar.events.values()
    assert event["status"] == "confirmed"
    assert not list((data_dir / "journals").glob("*.jsonl"))
    assert "recovered an interrupted call" in lab.worker_log()
