"""Call recordings over a real SIP call: the OGG file the worker writes holds the caller on the
left and the agent on the right, on the call's clock, the agent's reply cut where the caller
cut it; with the recording notice off, nothing is recorded."""

from __future__ import annotations

import pytest

from callab.audio import Span, ogg_channels, speech_spans_in
from callab.harness import CallLab
from callab.phone import TestPhone
from callab.scenarios import BARGE_IN_LINES, BARGE_IN_REPLY, BARGE_IN_SCRIPT, CALLER, script
from prompts.lines import greeting_lines
from recording import CHANNELS
from tests.e2e_support import StartLab, eventually, spoken_texts
from tests.worlds import EmbeddedWorld

pytestmark = pytest.mark.e2e


def overlaps(span: Span, others: list[Span]) -> bool:
    return any(o.start < span.end and span.start < o.end for o in others)


async def logged_call(lab: CallLab) -> dict[str, object]:
    world = EmbeddedWorld(lab.config.workdir / "data" / "embedded.sqlite3", services=None)  # type: ignore[arg-type]  # reads the db only
    (logged,) = await eventually(world.logged_calls, limit_s=40)
    return logged


async def test_the_recording_holds_both_sides_in_time_and_the_cut_reply(
    start_lab: StartLab, phones: list[TestPhone]
) -> None:
    question, interruption = BARGE_IN_LINES
    lab = await start_lab(script=BARGE_IN_SCRIPT, utterances=[question.heard, interruption.heard])
    phone = await lab.place_call(CALLER)
    phones.append(phone)
    assert phone.joined_at is not None

    asked = await phone.say_after_agent(question.spoken, since=phone.joined_at)
    barge = await phone.say_over_agent(interruption.spoken, since=asked.ended_at, after_onset_s=2.0)
    reply_at = await phone.agent_starts_speaking(after=barge.ended_at, limit_s=30)
    await phone.agent_goes_quiet(for_s=1.0, limit_s=30)
    await phone.hang_up()  # the caller ends the call: the recording closes in the wrap-up
    logged = await logged_call(lab)

    assert greeting_lines().recording_notice in spoken_texts(lab)[0]
    assert BARGE_IN_REPLY in spoken_texts(lab)
    recordings = lab.config.workdir / "data" / "recordings"
    (path,) = recordings.glob("*.ogg")
    assert logged["recording"] == f"recordings/{path.name}"
    assert logged["call_id"] == path.stem  # named by the call, never by a number
    channels = dict(zip(CHANNELS, ogg_channels(path), strict=True))
    caller, agent = speech_spans_in(channels["caller"]), speech_spans_in(channels["agent"])
    print(f"caller spans {caller}\nagent spans {agent}")
    print(f"{path.stat().st_size} bytes for {channels['agent'].size / 48000:.1f} s")

    # The caller's two lines, each as long as the phone said it, as far apart as it said them.
    said_q, said_b = caller
    assert abs(said_q.duration - (asked.ended_at - asked.started_at)) < 0.4
    assert abs(said_b.duration - (barge.ended_at - barge.started_at)) < 0.4
    assert abs((said_b.start - said_q.start) - (barge.started_at - asked.started_at)) < 0.3
    # The agent greeted first, answered after the question and stopped under the caller.
    greeting, *_ = agent
    assert greeting.end < said_q.start
    cut = next(s for s in agent if s.start < said_b.start < s.end)
    assert 1.5 < said_b.start - cut.start < 2.6  # the caller cut in 2 s into the answer
    assert cut.end - said_b.start < 1.5  # cut short in the file too, not the whole answer
    reply = next(s for s in agent if s.start > said_b.end)
    heard_reply_after = reply_at - barge.ended_at
    assert abs((reply.start - said_b.end) - heard_reply_after) < 0.4
    # Each side on its own channel: nothing of the agent under the caller's question.
    assert not overlaps(said_q, agent)
    assert not overlaps(greeting, caller)


async def test_no_recording_without_the_notice(
    start_lab: StartLab, phones: list[TestPhone]
) -> None:
    lab = await start_lab(
        script=script([]), utterances=[], settings={"ANNOUNCE_RECORDING": "false"}
    )
    phone = await lab.place_call(CALLER)
    phones.append(phone)
    assert phone.joined_at is not None
    await phone.agent_starts_speaking(after=phone.joined_at, limit_s=30)
    await phone.agent_goes_quiet(for_s=0.5, limit_s=30)
    await phone.hang_up()
    logged = await logged_call(lab)

    assert greeting_lines().recording_notice not in spoken_texts(lab)[0]
    assert logged["recording"] is None
    assert not (lab.config.workdir / "data" / "recordings").exists()
