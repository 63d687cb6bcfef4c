"""Whole calls through the real local LiveKit stack and the real worker process.

Each test starts its own stack (with our SIP bridge), stand-ins and worker (`python -m agent`)
on free loopback ports and stops them after. Every call is a SIP call: the test phone
(callab/phone.py, our Go phone underneath) calls our inbound number, or answers the calls the
bridge places, with G.711 audio at 8 kHz. Recordings of what the phone heard are left in each
test's tmp_path as `heard.wav`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil
import pytest
from aiohttp import web

import prompts
from callab.audio import level_dbfs, phone_line, speech_spans, write_wav
from callab.harness import CallLab, CallRefused
from callab.phone import TRUNK_NUMBER, TestPhone
from callab.scenarios import (
    BARGE_IN_LINES,
    BARGE_IN_REPLY,
    BARGE_IN_SCRIPT,
    BOOKING_EMAIL,
    BOOKING_LINES,
    BOOKING_SCRIPT,
    BUDGET_REPLY,
    CALLER,
    LONG_ANSWER,
    PAUSE_FIRST_HALF,
    PAUSE_OPENING,
    PAUSE_SCRIPT,
    PAUSE_SECOND_HALF,
    PAUSE_SECONDS,
    SUMMARY,
    script,
)
from callab.sip_phone import SipPhone, free_udp_port
from callab.standins.chat_script import message_text
from callab.standins.speech import parse_wav
from dialer.webhooks import verify
from integrations.masking import mask
from tests.e2e_support import (
    StartLab,
    eventually,
    eventually_async,
    spoken_texts,
    zone_at_midday,
)
from tests.log_leaks import leaks_in, secrets_in
from tests.worlds import EmbeddedWorld

pytestmark = pytest.mark.e2e

CLOSINGS = prompts.load_yaml("closings.yaml")


def tool_calls_made(lab: CallLab) -> list[tuple[str, dict[str, Any]]]:
    """Every tool call the agent made, in order: those in its longest conversation, then
    the ones the stand-in answered that conversation with."""
    last = max((r for r in lab.llm.requests if r.tool_names), key=lambda r: len(r.messages))
    made = [
        (call["function"]["name"], json.loads(call["function"]["arguments"]))
        for message in last.messages
        for call in message.get("tool_calls") or []
    ]
    reply = lab.llm.script.choose(last.messages, last.tool_names).step
    return made + [(call.name, dict(call.arguments)) for call in reply.tool_calls]


def tool_result(lab: CallLab, name: str) -> dict[str, Any]:
    history = max((r.messages for r in lab.llm.requests if r.tool_names), key=len)
    ids = {
        call["id"]
        for message in history
        for call in message.get("tool_calls") or []
        if call["function"]["name"] == name
    }
    (content,) = [m["content"] for m in history if m.get("tool_call_id") in ids]
    result: dict[str, Any] = json.loads(content)
    return result


@pytest.mark.parametrize("executor", ["process", "thread"])
async def test_inbound_call_qualifies_books_and_hangs_up(
    start_lab: StartLab, phones: list[TestPhone], executor: str
) -> None:
    lab = await start_lab(
        script=BOOKING_SCRIPT, utterances=[line.heard for line in BOOKING_LINES], vendors=True,
        settings={**DISTINCT_KEYS, "WORKER_JOB_EXECUTOR": executor}, log_level="DEBUG",
    )  # fmt: skip
    phone = await lab.place_call(CALLER)
    phones.append(phone)
    assert lab.worker is not None
    # A job process per call (from the forkserver), or the call in a thread of the worker.
    job_processes = psutil.Process(lab.worker.pid).children(recursive=True)
    assert bool(job_processes) == (executor == "process")

    since = phone.joined_at
    assert since is not None
    for line in BOOKING_LINES:
        since = (await phone.say_after_agent(line.spoken, since=since)).ended_at
    await phone.line_closes(limit_s=60)
    await eventually(lambda: lab.hubspot.deals, limit_s=40)  # the wrap-up writes it last

    assert [name for name, _ in tool_calls_made(lab)] == [
        "save_contact_details", "record_qualification", "record_qualification",
        "set_time_zone", "offer_slots", "book_meeting", "end_call",
    ]  # fmt: skip
    offered = tool_result(lab, "offer_slots")["slots"][0]["start"]
    assert tool_result(lab, "book_meeting")["booked"] is True
    (contact,) = lab.hubspot.contacts.values()
    named = ("firstname", "lastname", "company", "email")
    assert [contact.properties.get(k) for k in named] == ["Dana", "Smith", "Acme", BOOKING_EMAIL]
    assert contact.properties["phone"] == CALLER
    (call,) = lab.hubspot.calls.values()
    assert call.properties["hs_call_direction"] == "INBOUND"
    assert SUMMARY in call.properties["hs_call_body"]
    (note,) = lab.hubspot.notes.values()
    for line in BOOKING_LINES:
        assert line.heard in note.properties["hs_note_body"]
    (deal,) = lab.hubspot.deals.values()
    assert deal.properties["dealstage"] == "appointmentscheduled"
    (event,) = lab.calendar.events.values()
    assert event["status"] == "confirmed"
    assert datetime.fromisoformat(event["start"]["dateTime"]) == datetime.fromisoformat(offered)
    assert [a["email"] for a in event.get("attendees", [])] == [BOOKING_EMAIL]
    assert spoken_texts(lab)[-1] == CLOSINGS["goodbye"]["booked"]
    assert phone.disconnected_at is not None
    assert len(phone.recording.spans()) >= 4  # greeting, question, offer, goodbye
    assert phone.recording.peak_dbfs() > -30.0
    assert_logs_clean(lab, {"worker.log": lab.worker_log()})


# Provider keys the stand-ins accept, distinctive enough to be found in a log line.
DISTINCT_KEYS = {
    "DEEPGRAM_API_KEY": "dg-e2e-7c1f9a3b5d",
    "OPENAI_API_KEY": "sk-e2e-4b8d2f6a0c",
    "CARTESIA_API_KEY": "sk_car_e2e_9e3a7c1b",
}


def assert_logs_clean(lab: CallLab, logs: dict[str, str]) -> None:
    """No secret the processes were given, no unmasked number or email, in any line."""
    env = {**lab.worker_env(), **lab.outbound_env}
    if lab.config.vendors:
        env["HUBSPOT_ACCESS_TOKEN"] = lab.hubspot.token
    key_file = lab.config.workdir / "service-account.json"
    secrets = secrets_in(env, service_account_file=key_file if key_file.exists() else None)
    assert {"DEEPGRAM_API_KEY", "LIVEKIT_API_SECRET"} <= set(secrets)  # the check has teeth
    assert all(logs.values()), "a log to check is empty"
    leaks = leaks_in(logs, secrets=secrets, phones=[CALLER, TRUNK_NUMBER])
    assert not leaks, "\n".join(f"{k.where}: {k.what}: {k.line[:300]}" for k in leaks)


async def test_caller_barging_in_stops_the_agent_and_gets_an_answer(
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

    talking_over = [at for at in phone.recording.loud if barge.started_at <= at < reply_at]
    stopped_at = max(talking_over, default=barge.started_at)
    stop_ms = (stopped_at - barge.started_at) * 1000
    print(f"agent audio stopped {stop_ms:.0f} ms after the caller started talking over it")
    assert 0 < stop_ms < 1500
    assert stopped_at < barge.ended_at  # it did not just finish its sentence
    assert BARGE_IN_REPLY in spoken_texts(lab)
    answering = next(r for r in lab.llm.requests if r.step_index == 1)
    # prepared as the caller's words came in (agent/barge_in.py), and still with only what
    # the caller heard of the answer they cut off
    kept = [m for m in answering.messages if m["role"] == "assistant"][-1]
    heard = message_text(kept)
    assert 0 < len(heard) < len(LONG_ANSWER) and LONG_ANSWER.startswith(heard.rstrip(".… "))
    assert answering.messages[-1]["role"] == "user"


async def test_an_uh_huh_over_the_agent_is_not_answered_the_agent_carries_on(
    start_lab: StartLab, phones: list[TestPhone]
) -> None:
    """A backchannel is listening, not a turn: the agent stops (LiveKit cannot tell yet), then
    says the rest of its answer from the sentence it was in, and the LLM is never asked."""
    question = BARGE_IN_LINES[0]
    lab = await start_lab(script=BARGE_IN_SCRIPT, utterances=[question.heard, "Uh-huh."])
    phone = await lab.place_call(CALLER)
    phones.append(phone)
    assert phone.joined_at is not None

    asked = await phone.say_after_agent(question.spoken, since=phone.joined_at)
    # into the second sentence of the answer (about 5 s each)
    over = await phone.say_over_agent("uh huh", since=asked.ended_at, after_onset_s=7.0)
    await phone.agent_goes_quiet(for_s=2.0, limit_s=60)

    sentences = [s.strip() + "." for s in LONG_ANSWER.split(".") if s.strip()]
    later = [" ".join(sentences[n:]) for n in range(1, len(sentences))]
    spoken = spoken_texts(lab)
    assert spoken.count(LONG_ANSWER) == 1, spoken  # said once in full, never started over
    carried_on = [text for text in spoken if text in later]
    assert carried_on, f"the rest of the answer was not said: {spoken}"
    answered = [
        request for request in lab.llm.requests
        if any(m["role"] == "user" and "uh-huh" in message_text(m).lower()
               for m in request.messages)
    ]  # fmt: skip
    assert answered == [], "the backchannel was answered by the LLM"
    assert phone.recording.loud and max(phone.recording.loud) > over.ended_at + 1.0


async def test_silent_caller_is_nudged_twice_then_the_agent_hangs_up(
    start_lab: StartLab, phones: list[TestPhone], tmp_path: Path
) -> None:
    lab = await start_lab(
        script=script([]), utterances=[], settings={"SILENCE_TIMEOUT_SECONDS": "2"}
    )
    phone = await lab.place_call(CALLER)
    phones.append(phone)

    await phone.line_closes(limit_s=60)

    assert spoken_texts(lab)[1:] == [*CLOSINGS["silence_nudges"], CLOSINGS["silence_goodbye"]]
    bursts = speech_spans(phone.recording.windows, min_gap_s=1.5)
    assert len(bursts) == 4  # greeting, two nudges, goodbye
    gaps = [later.start - earlier.end for earlier, later in itertools.pairwise(bursts)]
    assert all(1.8 <= gap <= 5.0 for gap in gaps), gaps
    assert lab.stt.utterances == []
    database = tmp_path / "lab" / "data" / "embedded.sqlite3"
    world = EmbeddedWorld(database, services=None)  # type: ignore[arg-type]  # reads the db only
    (logged,) = await eventually(world.logged_calls, limit_s=30)
    assert logged["disposition"] == "hung_up"


# With the default settings: the end-of-turn model alone rates both halves alike on phone
# audio; the words ("My budget is") keep the turn open (agent/endpointing.py).
async def test_pause_mid_sentence_is_not_cut_off(
    start_lab: StartLab, phones: list[TestPhone]
) -> None:
    lines = [PAUSE_OPENING, PAUSE_FIRST_HALF, PAUSE_SECOND_HALF]
    lab = await start_lab(
        script=PAUSE_SCRIPT,
        utterances=[line.heard for line in lines],
    )
    phone = await lab.place_call(CALLER)
    phones.append(phone)
    assert phone.joined_at is not None

    opened = await phone.say_after_agent(PAUSE_OPENING.spoken, since=phone.joined_at)
    first = await phone.say_after_agent(PAUSE_FIRST_HALF.spoken, since=opened.ended_at)
    await asyncio.sleep(PAUSE_SECONDS)
    second = await phone.say(PAUSE_SECOND_HALF.spoken)
    reply_at = await phone.agent_starts_speaking(after=first.ended_at, limit_s=30)
    await phone.agent_goes_quiet(for_s=1.0, limit_s=30)

    assert reply_at >= second.ended_at, "the agent spoke during the caller's pause"
    assert [u.text for u in lab.stt.utterances] == [line.heard for line in lines]
    answered = [r for r in lab.llm.requests if r.step_index == 1]
    assert answered, "the LLM never saw the whole sentence"
    last_user = [message_text(m) for m in answered[0].messages if m["role"] == "user"][-1]
    assert PAUSE_FIRST_HALF.heard in last_user and PAUSE_SECOND_HALF.heard in last_user
    partial = [r for r in lab.llm.requests if r.step_index is None and r.tool_names]
    print(f"{len(partial)} LLM request(s) before the caller finished (preemptive, unspoken)")
    assert lab.llm.script.fallback not in spoken_texts(lab)
    assert BUDGET_REPLY in spoken_texts(lab)


async def test_an_outbound_call_that_cannot_be_placed_is_still_recorded(
    start_lab: StartLab, tmp_path: Path
) -> None:
    # No trunk by that id: LiveKit refuses the dial at once. The wrap-up is registered before
    # the dial, so the lead still gets a contact and a call record saying it was not reached.
    lab = await start_lab(script=script([]), utterances=[], with_sip=False)
    room = await lab.dispatch_outbound(CALLER, sip_trunk_id="ST_no_such_trunk")
    database = tmp_path / "lab" / "data" / "embedded.sqlite3"
    world = EmbeddedWorld(database, services=None)  # type: ignore[arg-type]  # reads the db only
    (logged,) = await eventually(world.logged_calls, limit_s=60)
    assert logged["disposition"] == "not_reached"
    assert logged["direction"] == "outbound" and logged["to_number"] == CALLER
    assert "not_found" in logged["qualification"]["not_reached"]
    (contact,) = world.contacts()
    assert contact["phone"] == CALLER and contact["id"] == logged["contact_id"]
    assert spoken_texts(lab) == []  # nobody answered, so nothing was said
    # Every line of the call carries its call id and room, stamped by the job's log context.
    records = lab.worker_log_records()
    ours = [r for r in records if r["msg"].startswith(("outbound call", "call written"))]
    assert len(ours) == 2 and all(r.get("call_id") and r.get("room") == mask(room) for r in ours)


async def test_a_full_worker_refuses_a_call_at_once_and_answers_it_once_a_slot_frees(
    start_lab: StartLab, phones: list[TestPhone]
) -> None:
    """One slot. The worker reports itself full as soon as the first call starts, so
    livekit-server drops the second call's dispatch (with more workers it would offer it to
    another); the bridge keeps offering it while it rings. Once the first caller hangs up the
    slot is free at once, while that call's job still winds down (LiveKit's session close,
    the wrap-up), and the second caller is answered. A third, while the second talks, is
    told busy after the bridge's agent wait instead of ringing out."""
    lab = await start_lab(
        script=script([]),
        utterances=[],
        # the second caller says nothing: no goodbye for silence before the third's answer
        settings={"WORKER_MAX_CALLS": "1", "SILENCE_TIMEOUT_SECONDS": "40"},
    )
    first_number, second_number, third_number = "+14155550101", "+14155550102", "+14155550103"
    first = await lab.place_call(first_number)
    phones.append(first)
    await lab.wait_taken(await lab.room_of(first_number))
    assert first.joined_at is not None
    await first.agent_starts_speaking(after=first.joined_at, limit_s=30)

    second = await lab.place_call(second_number, wait_answer=False)
    phones.append(second)
    second_room = await lab.room_of(second_number)
    with pytest.raises(CallRefused):  # offered again after 2 s: still full
        await lab.wait_taken(second_room, limit_s=4)
    assert '"no servers available' in lab.stack_log() or "sufficient capacity" in lab.stack_log()
    assert second.answered_at is None  # still ringing

    await first.hang_up()
    deadline = time.monotonic() + 5
    while True:  # MessageToJson leaves out a load of 0
        status = await lab.worker_status()
        if status.get("worker_load", 0) == 0:
            break
        assert time.monotonic() < deadline, f"the slot was not freed at the hang-up: {status}"
        await asyncio.sleep(0.05)
    assert status.get("active_jobs") == 1, "the first job had already finished: nothing tested"
    await lab.wait_taken(second_room, limit_s=5)  # the bridge's next offer
    await second.answered(limit_s=10)
    assert second.joined_at is not None
    await second.agent_starts_speaking(after=second.joined_at, limit_s=30)
    assert "offered again" in lab.stack_log("sipbridge")

    third = await lab.place_call(third_number, wait_answer=False)
    phones.append(third)
    refused = await third.sip_event("rejected", limit_s=30)
    assert refused.fields.get("status") == 486, refused  # Busy Here, after the agent wait
    assert third.dialed_at is not None
    assert 15 <= refused.at - third.dialed_at < 25
    assert second.is_connected


# --- outbound calls over SIP: our bridge dials the Go test phone --------------------------

LEAD = {"name": "Dana Whitfield", "company": "Acme", "reason": "sales forecasting"}
CALLEE_HELLO = "Hello, this is Dana."


def callee_wav(path: Path, text: str) -> Path:
    """What the callee says on picking up, as an 8 kHz phone line after half a second."""
    lead_in = np.zeros(4000, dtype=np.int16)
    return write_wav(path, np.concatenate([lead_in, phone_line(text, sample_rate=8000)]), 8000)


async def test_outbound_call_over_sip_rings_the_lead_and_opens_after_the_hello(
    start_lab: StartLab, tmp_path: Path
) -> None:
    lab = await start_lab(script=script([]), utterances=[CALLEE_HELLO], with_sip=True)
    async with SipPhone(
        port=free_udp_port(),
        play=callee_wav(tmp_path / "hello.wav", CALLEE_HELLO),
        record=tmp_path / "heard-sip.wav",
        ring_s=1.0,
        hangup_after_s=20,
    ) as phone:
        trunk = await lab.provision_sip(outbound_address=phone.address)
        await lab.dispatch_outbound(CALLER, sip_trunk_id=trunk, lead=LEAD)
        invite = await phone.event("invite", limit_s=30)
        await phone.event("answered", limit_s=10)
        await phone.event("hangup", limit_s=30)
        await phone.event("recorded", limit_s=10)
    assert CALLER.lstrip("+") in invite.fields["to"]
    assert phone.kinds().index("ringing") < phone.kinds().index("answered")
    # The callee's hello is answered with the opener, not by the LLM.
    opener = spoken_texts(lab)[0]
    assert opener.startswith("Hi Dana, this is") and "sales forecasting" in opener
    heard, rate = parse_wav((tmp_path / "heard-sip.wav").read_bytes())
    assert rate == 8000
    windows = [(i / 100, level_dbfs(heard[i * 80 : (i + 1) * 80])) for i in range(len(heard) // 80)]
    assert speech_spans(windows, min_gap_s=1.0)  # the agent's voice came down the phone line
    database = tmp_path / "lab" / "data" / "embedded.sqlite3"
    world = EmbeddedWorld(database, services=None)  # type: ignore[arg-type]  # reads the db only
    (logged,) = await eventually(world.logged_calls, limit_s=60)
    assert logged["direction"] == "outbound" and logged["to_number"] == CALLER
    assert logged["disposition"] == "hung_up"
    caller, agent = logged["transcript"].splitlines()[:2]
    assert caller.startswith("Caller: Hello") and agent == f"Agent: {opener}"


async def test_a_busy_lead_is_recorded_with_the_sip_status(
    start_lab: StartLab, tmp_path: Path
) -> None:
    lab = await start_lab(script=script([]), utterances=[], with_sip=True)
    async with SipPhone(port=free_udp_port(), record=tmp_path / "busy.wav", reject=486) as phone:
        trunk = await lab.provision_sip(outbound_address=phone.address)
        await lab.dispatch_outbound(CALLER, sip_trunk_id=trunk, lead=LEAD)
        await phone.event("rejected", limit_s=30)
        database = tmp_path / "lab" / "data" / "embedded.sqlite3"
        world = EmbeddedWorld(database, services=None)  # type: ignore[arg-type]  # reads the db
        (logged,) = await eventually(world.logged_calls, limit_s=60)
    assert logged["disposition"] == "not_reached"
    assert logged["qualification"]["not_reached"].startswith("486")
    assert spoken_texts(lab) == []


async def test_inbound_call_over_sip_is_routed_by_our_dispatch_rule_and_answered(
    start_lab: StartLab, tmp_path: Path
) -> None:
    # A real INVITE to our number: the bridge asks LiveKit for the trunk and the dispatch rule
    # provisioning created, the rule dispatches the agent, and the agent answers the phone.
    lab = await start_lab(script=script([]), utterances=[], with_sip=True)
    await lab.provision_sip(outbound_address="127.0.0.1:5999")
    async with SipPhone(
        port=free_udp_port(),
        record=tmp_path / "heard-inbound.wav",
        hangup_after_s=12,
        call_to=f"sip:{TRUNK_NUMBER}@{lab.stack.sip_address}",
        from_number=CALLER,
    ) as phone:
        await phone.event("answered", limit_s=60)
        await phone.event("recorded", limit_s=30)
    assert phone.kinds().index("ringing") < phone.kinds().index("answered")
    heard, _rate = parse_wav((tmp_path / "heard-inbound.wav").read_bytes())
    windows = [(i / 100, level_dbfs(heard[i * 80 : (i + 1) * 80])) for i in range(len(heard) // 80)]
    assert speech_spans(windows, min_gap_s=1.0)  # the greeting came down the line
    assert spoken_texts(lab)[0].startswith("Thanks for calling")
    database = tmp_path / "lab" / "data" / "embedded.sqlite3"
    world = EmbeddedWorld(database, services=None)  # type: ignore[arg-type]  # reads the db only
    (logged,) = await eventually(world.logged_calls, limit_s=60)
    # the caller's number and ours come from the SIP participant's attributes
    assert (logged["from_number"], logged["to_number"]) == (CALLER, TRUNK_NUMBER)
    assert logged["direction"] == "inbound"


# --- speed to lead: a web-form lead POSTed to the lead API, dialed over SIP ---------------

WEBHOOK_SECRET = "e2e-webhook-secret-0123456789"


async def test_a_web_form_lead_is_dialed_answered_reported_and_webhooked(
    start_lab: StartLab, tmp_path: Path
) -> None:
    received: list[tuple[str, str]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append((request.headers.get("X-Signature", ""), await request.text()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    hook_port = free_udp_port()  # any free number; TCP and UDP ports are separate
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    # The worker enqueues the result webhook when it reports the call, so it gets the
    # webhook settings too, as every process does from one .env.
    outbound = {
        "DIALER_POLL_SECONDS": "0.2",
        "DIALER_CALLING_DAYS": "mon,tue,wed,thu,fri,sat,sun",
        "WEBHOOK_URLS": f"http://127.0.0.1:{hook_port}/hook",
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    lab = await start_lab(
        script=script([]), utterances=[CALLEE_HELLO], with_sip=True, settings=outbound
    )
    try:
        async with SipPhone(
            port=free_udp_port(),
            play=callee_wav(tmp_path / "hello.wav", CALLEE_HELLO),
            record=tmp_path / "heard-lead.wav",
            ring_s=0.5,
            hangup_after_s=15,
        ) as phone:
            await lab.provision_sip(outbound_address=phone.address)
            api_url = await lab.start_outbound_side()
            key = await asyncio.to_thread(lab.create_api_key)
            lead = {
                "name": "Dana Whitfield", "phone": CALLER, "company": "Acme",
                "source": "pricing-page", "fields": {"interest": "sales forecasting"},
                "consent": {"given": True, "wording": "Call me about my request."},
                "time_zone": zone_at_midday(datetime.now(UTC)),
            }  # fmt: skip
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "form-1"}
            async with aiohttp.ClientSession(headers=headers) as http:
                posted_at = time.monotonic()
                async with http.post(f"{api_url}/v1/leads", json=lead) as response:
                    assert response.status == 202, await response.text()
                    accepted = await response.json()
                invite = await phone.event("invite", limit_s=30)
                print(f"speed to lead: POST -> INVITE {1000 * (invite.at - posted_at):.0f} ms")
                await phone.event("hangup", limit_s=60)

                async def completed() -> dict[str, Any] | None:
                    async with http.get(accepted["status_url"]) as answer:
                        body: dict[str, Any] = await answer.json()
                    return body if body["status"] == "completed" else None

                status = await eventually_async(completed, limit_s=60)
        assert status["result"]["disposition"] == "hung_up"
        assert [a["outcome"] for a in status["attempts"]] == ["completed"]
        assert "Hi Dana" in spoken_texts(lab)[0] and "sales forecasting" in spoken_texts(lab)[0]
        await eventually_async(lambda: asyncio.sleep(0, received), limit_s=30)
        header, body = received[0]
        assert verify(WEBHOOK_SECRET, header=header, body=body, now=int(time.time()))
        event = json.loads(body)
        assert event["id"] == f"evt_{accepted['id']}" and event["call"]["status"] == "completed"
        # The lead asks to be forgotten: the lead API process erases the queue's call and the
        # worker's embedded CRM record of it, in the data directory they share.
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.delete(f"{api_url}/v1/contacts/{CALLER}") as response:
                assert response.status == 200, await response.text()
                forgotten = (await response.json())["removed"]
            async with http.get(accepted["status_url"]) as gone:
                assert gone.status == 404
        assert (forgotten["queued_calls"], forgotten["call_attempts"]) == (1, 1)
        assert forgotten["result_webhooks"] == 1 and forgotten["embedded_calls"] == 1
        assert forgotten["embedded_contacts"] == 1
        logs = {f"{m}.log": lab.process_log(m) for m in ("dialer", "leadapi")}
        assert_logs_clean(lab, {"worker.log": lab.worker_log(), **logs})
    finally:
        await runner.cleanup()
