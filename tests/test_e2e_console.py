"""Warm transfers to reps at the browser console, end to end: the real livekit-server, the
worker, our SIP bridge with the caller on a test phone, the lead API serving the console, and
two reps in the real console page in headless Chromium (Debian's package) whose microphones
play a WAV (Chromium's fake devices), driven by Playwright.

One lab and one browser serve every scenario, in order: sign-in and availability; a rep who
declines and the next who accepts, talks with the caller (each hears the other, from audio
levels on both sides) and writes notes; nobody left, so the agent comes back with a booking
offer; a caller who hangs up on hold, whose card disappears. Screenshots of each console
state are kept in the test's tmp directory.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from livekit import api

from callab.audio import phone_line, write_wav
from callab.harness import CallLab, LabConfig
from callab.phone import TestPhone
from callab.scenarios import CALLER, TRANSFER_LINES, TRANSFER_SCRIPT
from tests.e2e_support import eventually, spoken_texts

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "console" / "web" / "dist" / "app.js"
DOCS = REPO / "docs" / "console"  # the README's pictures, refreshed by each run
PASSWORD = "a long rep password"
REP_SAYS = "Hi Dana, this is Sam from sales. How can I help you today? " * 4
CALLER_TO_REP = "Hi Sam thanks for picking up so quickly"
REP_HEARD = "Hi Dana, this is Sam from sales. How can I help you today?"  # the rep's STT script
LOUD_DB = -40.0
WAIT_MS = 30_000


def epoch(monotonic: float) -> float:
    """A time.monotonic() instant (the phones' clock) as epoch seconds (the browser's)."""
    return monotonic + time.time() - time.monotonic()


@dataclass
class Console:
    """One rep's page."""

    name: str
    email: str
    page: Any
    shots: Path

    async def shot(self, name: str) -> None:
        await self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    async def samples(self, room: str, prefix: str) -> list[tuple[float, float]]:
        """(epoch seconds, dBFS) of the remote tracks in ``room`` whose identity starts so."""
        raw = await self.page.evaluate("window.consoleAudio.samples")
        return [(s["at"] / 1000, s["db"]) for s in raw
                if s["room"] == room and s["identity"].startswith(prefix)]  # fmt: skip


@dataclass
class Lab:
    lab: CallLab
    base_url: str
    env: dict[str, str]
    reps: dict[str, Console] = field(default_factory=dict)
    shots: Path = Path()
    figures: list[str] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", *args], cwd=self.lab.config.workdir,
                              env=self.env, check=True, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        return done.stdout.strip()

    async def call(self, phones: list[TestPhone]) -> TestPhone:
        """The caller calls and asks for someone in sales."""
        caller = await self.lab.place_call(CALLER)
        phones.append(caller)
        assert caller.joined_at is not None
        (line,) = TRANSFER_LINES
        await caller.say_after_agent(line.spoken, since=caller.joined_at)
        return caller

    def notes_with(self, text: str) -> list[str]:
        return [n.properties["hs_note_body"] for n in self.lab.hubspot.notes.values()
                if text in n.properties["hs_note_body"]]  # fmt: skip

    def timings(self) -> list[dict[str, str]]:
        pattern = (r"transfer (\w+): rep \S+, .*? decision_to_hold_ms=(\S+) "
                   r"accept_to_connected_ms=(\S+) hold_per_attempt_s=(\[[^\]]*\])")  # fmt: skip
        return [dict(zip(("outcome", "to_hold_ms", "to_connected_ms", "hold_s"), m, strict=True))
                for m in re.findall(pattern, self.lab.worker_log())]  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    if not await asyncio.to_thread(CHROMIUM.exists):
        pytest.fail("Chromium is missing: run scripts/install-stack.sh", pytrace=False)
    if not await asyncio.to_thread(BUNDLE.exists):
        pytest.fail("the console is not built: run make setup", pytrace=False)
    from playwright.async_api import async_playwright

    root = tmp_path_factory.mktemp("console")
    shots = root / "screenshots"
    shots.mkdir()
    (line,) = TRANSFER_LINES
    config = LabConfig(workdir=root / "lab", script=TRANSFER_SCRIPT,
                       utterances=[line.heard, CALLER_TO_REP], vendors=True,
                       tagged_utterances={"rep-transcript": [REP_HEARD] * 20})  # fmt: skip
    async with CallLab(config) as call_lab, async_playwright() as playwright:
        crm = {
            "HUBSPOT_ACCESS_TOKEN": call_lab.hubspot.token,
            "HUBSPOT_BASE_URL": call_lab.hubspot.base_url,
        }  # the rep's notes: the same CRM
        base_url = await call_lab.start_outbound_side(crm)
        env = {**call_lab.outbound_env, "CONSOLE_PUBLIC_URL": base_url}
        voice = write_wav(root / "rep-voice.wav", phone_line(REP_SAYS), 48000)
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                  f"--use-file-for-fake-audio-capture={voice}",
                  "--autoplay-policy=no-user-gesture-required", "--no-sandbox"],
        )  # fmt: skip
        world = Lab(lab=call_lab, base_url=base_url, env=env, shots=shots)
        for name, email in (("Kim Park", "kim@example.com"), ("Sam Lee", "sam@example.com")):
            world.cli("transfer", "reps", "add", "--name", name, "--email", email)
            context = await browser.new_context(viewport={"width": 1000, "height": 900})
            page = await context.new_page()
            world.reps[name.split()[0]] = Console(name, email, page, shots)
        try:
            yield world
        finally:
            print("\n".join(world.figures))
            await browser.close()


@pytest.fixture
async def phones(tmp_path: Path) -> AsyncIterator[list[TestPhone]]:
    placed: list[TestPhone] = []
    yield placed
    for index, phone in enumerate(placed):
        phone.write_recording(tmp_path / f"heard{index or ''}.wav")
        await phone.hang_up()


async def test_a_rep_follows_the_invite_signs_in_and_switches_to_available(lab: Lab) -> None:
    for first, rep in lab.reps.items():
        link = lab.cli("console", "invite", rep.email)
        assert link.startswith(f"{lab.base_url}/console/#invite=")
        page = rep.page
        await page.goto(link)
        await page.wait_for_selector("#set-password:not([hidden])")
        await page.fill("#new-password", "short")
        await page.click("#set-password button")
        await page.wait_for_selector("#set-password-error:has-text('at least 10')")
        await page.fill("#new-password", PASSWORD)
        if first == "Sam":
            await rep.shot("01-set-password")
        await page.click("#set-password button")
        await page.wait_for_selector("#desk:not([hidden])")
        if first == "Sam":  # sign out, a wrong password, then in
            await page.click("#sign-out")
            await page.wait_for_selector("#sign-in:not([hidden])")
            await page.fill("#email", rep.email)
            await page.fill("#password", "not my password")
            await page.click("#sign-in button")
            await page.wait_for_selector("#sign-in-error:has-text('wrong email or password')")
            await rep.shot("02-sign-in-refused")
            await page.fill("#password", PASSWORD)
            await page.click("#sign-in button")
            await page.wait_for_selector("#desk:not([hidden])")
        await page.check("#available")
        await page.wait_for_selector("#presence.available")
    await lab.reps["Sam"].shot("03-available")
    listed = lab.cli("transfer", "reps", "list")
    assert listed.count(" available ") == 2, listed


async def test_a_rep_who_declines_passes_it_to_the_next_who_accepts_and_talks_with_the_caller(
    lab: Lab, phones: list[TestPhone]
) -> None:
    kim, sam = lab.reps["Kim"], lab.reps["Sam"]  # Kim was added first: idle longest
    caller = await lab.call(phones)
    await kim.page.wait_for_selector("#incoming:not([hidden])", timeout=WAIT_MS)
    assert await kim.page.text_content("#brief") and "Dana Smith" in (
        await kim.page.text_content("#brief") or ""
    )
    await kim.page.wait_for_selector("#decline")
    await kim.page.click("#decline")
    await kim.page.wait_for_selector("#incoming", state="hidden")

    card = await sam.page.wait_for_selector("#incoming:not([hidden])", timeout=WAIT_MS)
    assert card is not None
    brief = await sam.page.text_content("#brief") or ""
    assert "Dana Smith" in brief and "Acme" in brief and "sales" in brief
    assert "talk to someone in sales" in (await sam.page.text_content("#brief-transcript") or "")
    countdown = int((await sam.page.text_content("#countdown") or "0 s").split()[0])
    assert 0 < countdown <= 50
    consult = await _consult_room(sam)
    # The rep hears the spoken brief in the consult room (the agent's voice, by level).
    heard = await _wait_loud(sam, consult, "sales-agent-consult", limit_s=20)
    await sam.shot("04-incoming-card")
    accepted_at = time.time()
    await sam.page.click("#accept")
    await sam.page.wait_for_selector("#call-status:has-text('connected')", timeout=WAIT_MS)
    joined_at = time.time()
    await sam.page.click("#mute")  # quiet while the agent introduces them
    room = await _caller_room(lab)
    # The agent's one-sentence intro reaches the caller; then it says nothing more.
    intro_end = await caller.agent_goes_quiet(for_s=0.8, limit_s=30)
    spoken_before = len(spoken_texts(lab.lab))
    unmuted = time.monotonic()
    await sam.page.click("#mute")
    caller_heard_rep = await caller.agent_starts_speaking(after=unmuted, limit_s=10)
    said = await caller.say(CALLER_TO_REP)
    caller_identity = await _caller_identity(lab, room)
    rep_heard_caller = await _wait_loud(sam, room, caller_identity, limit_s=10,
                                        after=epoch(said.started_at))  # fmt: skip
    await sam.page.wait_for_selector("#live-transcript:has-text('thanks for picking up')",
                                     timeout=WAIT_MS)  # fmt: skip
    # Both sides: the agent transcribes the rep too, shown to them as "You".
    await sam.page.wait_for_selector("#live-transcript:has-text('You: Hi Dana, this is Sam')",
                                     timeout=WAIT_MS)  # fmt: skip
    await sam.shot("05-in-call")
    await caller.hang_up()
    await sam.page.wait_for_selector("#after-call:not([hidden])", timeout=WAIT_MS)
    await sam.page.select_option("#disposition", "follow_up")
    await sam.page.fill("#notes", "CFO wants pricing for 80 seats by Friday.")
    await sam.shot("06-after-call-notes")
    await sam.page.click("#notes-form button")
    await sam.page.wait_for_selector("#notice:has-text('Notes saved to the CRM')")
    await sam.page.wait_for_selector("#today-rows tr")
    await sam.shot("07-todays-calls")

    texts = spoken_texts(lab.lab)
    assert any("Dana, I have Sam from our sales team" in t for t in texts)
    assert len(texts) == spoken_before, "the agent spoke again after the introduction"
    assert intro_end < unmuted < caller_heard_rep
    today = await sam.page.text_content("#today-rows") or ""
    assert "took the call" in today and "follow up" in today and "80 seats" in today
    (record,) = await eventually(lambda: lab.notes_with("rep_accepted"), limit_s=40)
    assert "Sam Lee" in record and "rep_declined" not in record
    (rep_note,) = await eventually(lambda: lab.notes_with("80 seats"), limit_s=20)
    assert "Sales rep Sam Lee" in rep_note
    assert "Hi Sam thanks for picking up" in record  # the agent kept the caller's words
    assert "Rep (Sam): Hi Dana, this is Sam from sales" in record  # and the rep's
    (timing,) = [t for t in lab.timings() if t["outcome"] == "rep_accepted"]
    hold = json.loads(timing["hold_s"])
    assert len(hold) == 2  # Kim, then Sam
    lab.figures.append(
        f"console accept: decision->hold music {timing['to_hold_ms']} ms; accept->rep in the "
        f"caller's room (desk) {timing['to_connected_ms']} ms; accept click->page connected "
        f"{1000 * (joined_at - accepted_at):.0f} ms; hold per attempt {hold} s; rep heard the "
        f"brief {1000 * (heard - epoch(caller.joined_at or 0)):.0f} ms into the call; caller "
        f"heard the rep {1000 * (caller_heard_rep - unmuted):.0f} ms after unmute; rep heard "
        f"the caller {1000 * (rep_heard_caller - epoch(said.started_at)):.0f} ms after they spoke"
    )


async def test_when_no_rep_is_left_the_agent_comes_back_with_a_booking_offer(
    lab: Lab, phones: list[TestPhone]
) -> None:
    kim, sam = lab.reps["Kim"], lab.reps["Sam"]
    await sam.page.uncheck("#available")  # Sam steps away: only Kim is left
    await sam.page.wait_for_selector("#presence.away")
    caller = await lab.call(phones)
    await kim.page.wait_for_selector("#incoming:not([hidden])", timeout=WAIT_MS)
    declined = time.monotonic()
    await kim.page.click("#decline")
    back = await caller.agent_starts_speaking(after=declined + 0.3, limit_s=20)
    await caller.agent_goes_quiet(for_s=1.0, limit_s=30)
    await caller.hang_up()

    assert back > declined
    assert "none of our sales team can pick up right now" in " ".join(spoken_texts(lab.lab))
    offered = [r for r in lab.lab.llm.requests if "did not work out" in json.dumps(r.messages)]
    assert offered and "the sales rep could not take the call" in json.dumps(offered[-1].messages)
    (note,) = await eventually(lambda: lab.notes_with("rep_declined"), limit_s=40)
    assert "Kim Park" in note and "passed on the call" in note
    assert not await sam.page.is_visible("#incoming")  # an away rep is never offered it
    (timing,) = [t for t in lab.timings() if t["outcome"] == "rep_declined"]
    lab.figures.append(f"console decline: hold per attempt {timing['hold_s']} s")
    await sam.page.check("#available")


async def test_a_poll_answered_after_the_rep_switches_does_not_switch_them_back(lab: Lab) -> None:
    page = lab.reps["Sam"].page
    await page.uncheck("#available")
    await page.wait_for_selector("#presence.away")
    asked, fetched, answered = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def late(route: Any) -> None:
        if asked.is_set():  # only the first poll is held back
            await route.continue_()
            return
        asked.set()
        response = await route.fetch()  # the desk as it is now: Sam away
        fetched.set()
        await asyncio.sleep(1.0)
        await route.fulfill(response=response)
        answered.set()

    await page.route("**/state", late)
    try:
        await asyncio.wait_for(fetched.wait(), 5)
        await page.check("#available")  # while that poll's answer is still on its way
        await asyncio.wait_for(answered.wait(), 5)
        await asyncio.sleep(0.3)
        assert await page.is_checked("#available")
        assert await page.get_attribute("#presence", "class") == "pill available"
    finally:
        await page.unroute_all(behavior="wait")  # no handler left running into the next test
    await page.wait_for_selector("#presence.available")


async def test_a_caller_who_hangs_up_on_hold_clears_the_card_and_is_recorded(
    lab: Lab, phones: list[TestPhone]
) -> None:
    sam = lab.reps["Sam"]
    await lab.reps["Kim"].page.uncheck("#available")
    await sam.page.wait_for_selector("#presence.available")
    caller = await lab.call(phones)
    await sam.page.wait_for_selector("#incoming:not([hidden])", timeout=WAIT_MS)
    await caller.hang_up()
    await sam.page.wait_for_selector("#incoming", state="hidden", timeout=WAIT_MS)
    await sam.page.wait_for_selector("#notice:has-text('The caller hung up while on hold')")
    await sam.page.wait_for_selector("#today-rows:has-text('caller hung up on hold')")
    await sam.shot("08-caller-hung-up")
    (note,) = await eventually(lambda: lab.notes_with("caller_hung_up"), limit_s=40)
    assert "hung up on hold" in note
    # The offer is over: Sam is available again for the next call.
    listed = lab.cli("transfer", "reps", "list").splitlines()
    assert " available " in next(line for line in listed if "Sam Lee" in line)
    await asyncio.to_thread(_copy_to_docs, lab.shots)


async def test_a_rep_whose_console_drops_after_taking_the_call_gives_the_caller_back_to_the_agent(
    lab: Lab, phones: list[TestPhone]
) -> None:
    sam = lab.reps["Sam"]
    await sam.page.wait_for_selector("#presence.available")
    caller = await lab.call(phones)
    await sam.page.wait_for_selector("#incoming:not([hidden])", timeout=WAIT_MS)
    await sam.page.click("#accept")
    await sam.page.wait_for_selector("#call-status:has-text('connected')", timeout=WAIT_MS)
    await sam.page.click("#mute")
    await caller.agent_goes_quiet(for_s=0.8, limit_s=30)  # the introduction is over
    spoken_before = len(spoken_texts(lab.lab))
    dropped = time.monotonic()
    await sam.page.goto("about:blank")  # the tab is gone: no hang-up, no notes
    back = await caller.agent_starts_speaking(after=dropped + 1.0, limit_s=30)
    await caller.agent_goes_quiet(for_s=1.0, limit_s=30)
    await caller.hang_up()

    assert any("lost Sam's line" in t for t in spoken_texts(lab.lab)[spoken_before:])
    offered = [r for r in lab.lab.llm.requests if "line dropped" in json.dumps(r.messages)]
    assert offered, "the agent was not told to offer a meeting or a callback"
    (note,) = await eventually(lambda: lab.notes_with("console dropped"), limit_s=40)
    assert "failed" in note and "Sam Lee" in note
    lab.figures.append(
        f"console drop: the agent was back {back - dropped:.1f} s after the tab closed"
    )


def _copy_to_docs(shots: Path) -> None:
    if DOCS.is_dir():
        for shot in sorted(shots.glob("*.png")):
            shutil.copy(shot, DOCS / shot.name)


async def _wait_loud(
    rep: Console, room: str, prefix: str, *, limit_s: float, after: float = 0.0
) -> float:
    """When ``rep``'s page first measured a loud sample from ``prefix``'s track in ``room``."""

    async def loud() -> float | None:
        for at, db in await rep.samples(room, prefix):
            if at >= after and db > LOUD_DB:
                return at
        return None

    deadline = time.monotonic() + limit_s
    while (found := await loud()) is None:
        if time.monotonic() > deadline:
            raw = await rep.page.evaluate("window.consoleAudio.samples")
            levels: dict[str, float] = {}
            for sample in raw:
                key = f"{sample['room']}/{sample['identity']}"
                levels[key] = max(levels.get(key, -200.0), sample["db"])
            raise TimeoutError(f"{rep.name} heard nothing from {prefix}* in {room}: {levels}")
        await rep.page.wait_for_timeout(100)
    return found


async def _consult_room(rep: Console) -> str:
    deadline = time.monotonic() + 15
    while True:
        rooms = await rep.page.evaluate(
            "[...new Set(window.consoleAudio.samples.map(s => s.room))]"
        )
        consult = [r for r in rooms if "-consult-" in r]
        if consult:
            return str(consult[-1])
        if time.monotonic() > deadline:
            raise TimeoutError(f"{rep.name}'s page never joined a consult room")
        await rep.page.wait_for_timeout(100)


async def _caller_room(lab: Lab) -> str:
    return await lab.lab.room_of(CALLER)


async def _caller_identity(lab: Lab, room: str) -> str:
    listed = await lab.lab.lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    (caller,) = [p for p in listed.participants if p.attributes.get("sip.phoneNumber") == CALLER]
    return str(caller.identity)
