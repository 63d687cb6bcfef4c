"""Warm transfers over real SIP: the caller calls our number, asks for a person, hears hold
music while the agent rings a rep's phone (a second SIP call, into a consult room) and briefs
them; the rep presses 1, and caller and rep hear each other while the agent steps out.

On this livekit-server MoveParticipant is not implemented, so the join goes through the
agent's bridge between the two rooms; the test checks which path was taken from the log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from callab.harness import CallLab
from callab.phone import SaidLine, TestPhone
from callab.scenarios import CALLER, TRANSFER_LINES, TRANSFER_REASON, TRANSFER_SCRIPT
from tests.e2e_support import StartLab, eventually, spoken_texts

pytestmark = pytest.mark.e2e

REP_PHONE = "+14155550142"
REP_HELLO = "Hi Dana this is Sam from sales how can I help"
CALLER_TO_REP = "Hi Sam thanks for picking up so quickly"
RING_S = 6.0  # the rep's phone rings this long: the caller is on hold meanwhile


def add_rep(lab_env: dict[str, str], workdir: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "transfer", "reps", "add", "--name", "Sam Lee",
         "--email", "sam@example.com", "--phone", REP_PHONE, "--territory", "north-america",
         "--available"],
        cwd=workdir, env=lab_env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def max_run(quiet: list[float], *, since: float, until: float, step: float = 0.01) -> float:
    """The longest stretch of consecutive quiet 10 ms windows between ``since`` and ``until``."""
    longest = run = 0.0
    previous = None
    for at in (q for q in quiet if since <= q < until):
        run = run + step if previous is not None and at - previous <= 1.5 * step else step
        longest, previous = max(longest, run), at
    return longest


async def caller_asks_for_sales(
    start_lab: StartLab, phones: list[TestPhone], tmp_path: Path, **rep_phone: Any
) -> tuple[CallLab, TestPhone, TestPhone, SaidLine]:
    """The lab with Sam on the roster, Sam's phone (``rep_phone``: its ringing and keys) at the
    end of the outbound trunk, and a caller who has asked for someone in sales."""
    lab = await start_lab(
        script=TRANSFER_SCRIPT, utterances=[line.heard for line in TRANSFER_LINES], vendors=True
    )
    add_rep(lab.worker_env(), tmp_path / "lab")
    rep = TestPhone(call_to=None, **rep_phone)
    phones.append(rep)
    await rep.dial(wait_answer=False)
    await lab.provision_sip(outbound_address=rep.address)
    caller = await lab.place_call(CALLER)
    phones.append(caller)
    assert caller.joined_at is not None
    (line,) = TRANSFER_LINES
    asked = await caller.say_after_agent(line.spoken, since=caller.joined_at)
    return lab, rep, caller, asked


async def test_caller_asks_for_a_person_waits_on_hold_and_is_joined_to_the_rep_who_accepts(
    start_lab: StartLab, phones: list[TestPhone], tmp_path: Path
) -> None:
    lab, rep, caller, asked = await caller_asks_for_sales(
        start_lab, phones, tmp_path, ring_s=RING_S, digits="1"
    )  # takes the call with 1
    rep_answered = await rep.answered(limit_s=40)
    briefed = await rep.agent_starts_speaking(after=rep_answered, limit_s=10)
    # The agent introduces the rep to the caller; once it is quiet the rep says hello.
    intro = await caller.agent_starts_speaking(after=rep_answered + 1.0, limit_s=20)
    intro_end = await caller.agent_goes_quiet(for_s=0.8, limit_s=20)
    hello = await rep.say(REP_HELLO)
    caller_heard_rep = await caller.agent_starts_speaking(after=hello.started_at, limit_s=5)
    said = await caller.say(CALLER_TO_REP)
    rep_heard_caller = await rep.agent_starts_speaking(after=said.started_at, limit_s=5)
    await caller.hang_up()
    await rep.line_closes(limit_s=20)  # the caller hanging up ends the rep's call too

    texts = spoken_texts(lab)
    hold_line = next(i for i, t in enumerate(texts) if "music while you wait" in t)
    assert any(t.startswith("Hi Sam, this is the") for t in texts[hold_line:])  # the brief
    assert any("Dana, I have Sam from our sales team" in t for t in texts)  # the intro
    assert rep_answered - asked.ended_at >= RING_S  # the caller really was on hold

    # Hold music, never silence: while the rep's phone rang the caller heard sound nearly all
    # the time (the music is continuous; speech would have gaps), and no silence longer than
    # a breath from their request to the end of the intro.
    held = [lvl for at, lvl in caller.recording.windows if rep_answered - 4.5 <= at < rep_answered]
    assert sum(lvl > -45 for lvl in held) / len(held) > 0.9
    quiet = [at for at, lvl in caller.recording.windows if lvl <= -45]
    longest = max_run(quiet, since=asked.ended_at + 3.0, until=intro_end)
    assert longest < 1.5, f"the caller sat in {longest:.1f} s of silence"
    assert intro > briefed  # the rep was briefed before the caller was put through
    # Caller and rep hear each other, each within a moment of the other speaking.
    print(
        f"hold {rep_answered - asked.ended_at:.1f} s; caller heard the rep "
        f"{1000 * (caller_heard_rep - hello.started_at):.0f} ms and the rep heard the caller "
        f"{1000 * (rep_heard_caller - said.started_at):.0f} ms after they spoke"
    )
    assert "bridging" in lab.worker_log()  # MoveParticipant is refused by this server
    (deal,) = await eventually(lambda: list(lab.hubspot.deals.values()), limit_s=40)  # written last
    (note,) = lab.hubspot.notes.values()
    body = note.properties["hs_note_body"]
    assert "rep_accepted" in body and "Sam Lee" in body and TRANSFER_REASON in body
    assert deal.properties["dealstage"] == "qualifiedtobuy"


async def test_a_rep_who_passes_sends_the_agent_back_to_the_caller_with_another_offer(
    start_lab: StartLab, phones: list[TestPhone], tmp_path: Path
) -> None:
    lab, rep, caller, _ = await caller_asks_for_sales(
        start_lab, phones, tmp_path, ring_s=0.5, digits="2"
    )  # passes on the call with 2
    rep_answered = await rep.answered(limit_s=40)
    await rep.line_closes(limit_s=20)  # passed: the agent hangs up on the rep
    back = await caller.agent_starts_speaking(after=rep.disconnected_at or rep_answered, limit_s=15)
    await caller.agent_goes_quiet(for_s=1.0, limit_s=30)
    await caller.hang_up()

    texts = spoken_texts(lab)
    assert "none of our sales team can pick up right now" in " ".join(texts)
    assert back > rep_answered
    offered = [r for r in lab.llm.requests if "did not work out" in json.dumps(r.messages)]
    assert offered, "the agent was not told to offer a meeting or a callback"
    assert "the sales rep could not take the call" in json.dumps(offered[0].messages)
    (note,) = await eventually(lambda: list(lab.hubspot.notes.values()), limit_s=40)
    body = note.properties["hs_note_body"]
    assert "rep_declined" in body and "Sam Lee" in body and "passed on the call" in body


async def test_a_caller_who_hangs_up_on_hold_stops_the_rep_ringing_and_is_recorded(
    start_lab: StartLab, phones: list[TestPhone], tmp_path: Path
) -> None:
    lab, rep, caller, _ = await caller_asks_for_sales(
        start_lab, phones, tmp_path, ring_s=30.0
    )  # rings and rings
    await rep.sip_event("invite", limit_s=40)  # the rep's phone rings ...
    await caller.hang_up()  # ... and the caller gives up on hold
    stopped = await rep.sip_event("hangup", limit_s=15)
    assert stopped.fields.get("by") == "remote"  # the ringing was cancelled by us
    assert rep.answered_at is None

    (note,) = await eventually(lambda: list(lab.hubspot.notes.values()), limit_s=40)
    body = note.properties["hs_note_body"]
    assert "caller_hung_up" in body and "hung up on hold" in body


COLD_TARGET = "+14155550177"


@pytest.mark.parametrize(("refer_result", "outcome"), [(200, "cold_transferred"), (603, "failed")])
async def test_a_cold_transfer_sends_the_caller_on_with_sip_refer_or_comes_back_if_refused(
    start_lab: StartLab, phones: list[TestPhone], tmp_path: Path, refer_result: int, outcome: str
) -> None:
    # A team that wants no hand-off: every transfer goes straight to its desk's number. The
    # caller's carrier (the test phone) gets a REFER and reports how the new call went.
    routing = tmp_path / "routing.yaml"
    routing.write_text(yaml.safe_dump({"groups": [{"name": "desk", "cold_transfer": COLD_TARGET}]}))
    lab = await start_lab(
        script=TRANSFER_SCRIPT, utterances=[line.heard for line in TRANSFER_LINES], vendors=True,
        settings={"ROUTING_FILE": str(routing)},
    )  # fmt: skip
    caller = await lab.place_call(CALLER, refer_result=refer_result)
    phones.append(caller)
    assert caller.joined_at is not None
    (line,) = TRANSFER_LINES
    await caller.say_after_agent(line.spoken, since=caller.joined_at)
    refer = await caller.sip_event("refer", limit_s=40)
    assert refer.fields.get("refer_to", "").strip("<>") == f"tel:{COLD_TARGET}"
    texts = spoken_texts(lab)
    assert any("putting you through to our sales team" in t for t in texts)
    assert not any("music while you wait" in t for t in texts)  # no hold, no consult
    if refer_result == 200:
        await caller.line_closes(limit_s=20)  # transferred: our leg of the call ends
    else:  # the carrier could not place it: the agent is back with another way forward
        await caller.agent_starts_speaking(after=refer.at, limit_s=20)
        await caller.agent_goes_quiet(for_s=1.0, limit_s=30)
        await caller.hang_up()
        assert "none of our sales team can pick up right now" in " ".join(spoken_texts(lab))
    (note,) = await eventually(lambda: list(lab.hubspot.notes.values()), limit_s=40)
    body = note.properties["hs_note_body"]
    assert outcome in body
    if refer_result == 200:
        assert f"tel:{COLD_TARGET}" in body  # where the caller was sent
    else:
        assert "603" in body
