"""The dialer end to end over real SIP: leads posted to the lead API (`python -m leadapi`),
dialed by `python -m dialer` through livekit-server, the worker (`python -m agent`) and our
SIP bridge, to the Go test phone, which counts every INVITE it receives.

One lab (stack, stand-ins, worker, dialer and lead API) serves the whole module, as
`make run` would serve a sales team; each test has its own numbers and campaign, and its
own phone on the port the outbound trunk points at.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio

from callab.harness import CallLab, LabConfig
from callab.scenarios import script
from callab.sip_phone import SipPhone, free_udp_port
from localstack import StackNotInstalled

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

BUSY_RETRY_MINUTES = 0.2  # 12 s: DIALER_RETRY_BUSY_MINUTES, short enough to watch it happen
# The module's dialer and lead API, as every process reads them from one .env.
OUTBOUND_SETTINGS = {
    "DIALER_POLL_SECONDS": "0.2",
    "DIALER_CALLING_DAYS": "mon,tue,wed,thu,fri,sat,sun",
    "DIALER_RETRY_BUSY_MINUTES": str(BUSY_RETRY_MINUTES),
    "DIALER_MAX_ATTEMPTS": "2",
    "DIALER_MAX_CONCURRENT_CALLS": "2",
    "DIALER_CALLS_PER_SECOND": "10",
    "DIALER_RING_TIMEOUT_SECONDS": "10",
}
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def zone_at_midday(now: datetime) -> str:
    """A fixed-offset zone where it is around 13:00 now, so a lead's calling hours are open
    (or, for a campaign, about to open) whenever the test runs."""
    offset = min(range(-12, 15), key=lambda o: (abs((now.hour + o) % 24 - 13), abs(o)))
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"


@dataclass
class Outbound:
    """The module's outbound side, driven as a sales-ops person drives it: over the API."""

    lab: CallLab
    api_url: str
    http: aiohttp.ClientSession
    phone_port: int
    zone: str
    restarted: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def phone(self, tmp_path: Path, **behaviour: Any) -> SipPhone:
        """The lead's phone, on the address the outbound trunk dials."""
        return SipPhone(port=self.phone_port, record=tmp_path / "heard.wav", **behaviour)

    async def post_lead(self, phone: str, **extra: Any) -> dict[str, Any]:
        lead = {
            "name": "Dana Whitfield", "phone": phone, "company": "Acme",
            "consent": {"given": True}, "time_zone": self.zone, **extra,
        }  # fmt: skip
        async with self.http.post(f"{self.api_url}/v1/leads", json=lead) as response:
            assert response.status == 202, await response.text()
            accepted: dict[str, Any] = await response.json()
        return accepted

    async def put_campaign(self, name: str, body: dict[str, Any]) -> None:
        async with self.http.put(f"{self.api_url}/v1/campaigns/{name}", json=body) as response:
            assert response.status == 200, await response.text()

    async def add_dnc(self, phone: str) -> None:
        body = {"phone": phone, "reason": "asked on the web form"}
        async with self.http.post(f"{self.api_url}/v1/dnc", json=body) as response:
            assert response.status == 201, await response.text()

    async def status(self, call_id: str) -> dict[str, Any]:
        async with self.http.get(f"{self.api_url}/v1/calls/{call_id}") as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
        return body

    async def until(
        self, call_id: str, done: Callable[[dict[str, Any]], bool], *, limit_s: float
    ) -> dict[str, Any]:
        """The call's status once ``done`` holds, polled until ``limit_s``."""
        deadline = time.monotonic() + limit_s
        while not done(status := await self.status(call_id)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{call_id} is still {status}\n{self.dialer_logs()[-3000:]}")
            await asyncio.sleep(0.2)
        return status

    def dialer_logs(self) -> str:
        restarted = self.lab.config.workdir / "dialer-restarted.log"
        later = restarted.read_text(errors="replace") if restarted.exists() else ""
        return self.lab.process_log("dialer") + later

    def kill_dialer(self) -> None:
        """SIGKILL the running dialer: no handler runs, nothing is flushed or closed."""
        if self.restarted:
            pid = self.restarted[-1].pid
        else:
            (pid,) = _children_running("dialer", cwd=self.lab.config.workdir)
        os.kill(pid, signal.SIGKILL)

    def start_dialer(self) -> None:
        """A new ``python -m dialer`` on the same queue and settings, as a supervisor would."""
        workdir = self.lab.config.workdir
        with (workdir / "dialer-restarted.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "dialer"], cwd=workdir, env=self.lab.outbound_env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.restarted.append(process)

    def stop_restarted(self) -> None:
        for process in self.restarted:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


def _children_running(module: str, *, cwd: Path) -> list[int]:
    """This process's children running ``python -m module`` in ``cwd`` (the lab's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ours = parent == os.getpid() and argv[1:3] == [b"-m", module.encode()]
            if ours and Path(os.readlink(entry / "cwd")) == cwd.resolve():
                found.append(int(entry.name))
    return found


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def outbound(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Outbound]:
    workdir = tmp_path_factory.mktemp("dialer-e2e") / "lab"
    settings = {**OUTBOUND_SETTINGS, "WORKER_MAX_CALLS": "3"}
    lab = CallLab(LabConfig(workdir=workdir, script=script([]), utterances=[], with_sip=True,
                            settings=settings))  # fmt: skip
    try:
        await lab.__aenter__()
    except StackNotInstalled as exc:
        pytest.fail(f"{exc}", pytrace=False)
    side: Outbound | None = None
    try:
        phone_port = free_udp_port()
        await lab.provision_sip(outbound_address=f"127.0.0.1:{phone_port}")
        api_url = await lab.start_outbound_side()
        key = await asyncio.to_thread(lab.create_api_key)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
            side = Outbound(lab, api_url, http, phone_port, zone_at_midday(datetime.now(UTC)))
            yield side
    finally:
        if side is not None:
            await asyncio.to_thread(side.stop_restarted)
        await lab.aclose()


def invites_by_number(phone: SipPhone) -> Counter[str]:
    """INVITEs the phone received, by the number dialed (the user part of the To URI)."""
    return Counter(
        str(e.fields["to"]).split(":", 1)[1].split("@", 1)[0]
        for e in phone.events
        if e.kind == "invite"
    )


def invite_times(phone: SipPhone, number: str) -> list[datetime]:
    return [
        datetime.fromisoformat(e.fields["time"])
        for e in phone.events
        if e.kind == "invite" and f":{number}@" in str(e.fields["to"])
    ]


async def until_phone(
    phone: SipPhone, check: Callable[[], bool], *, limit_s: float, what: str
) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the phone did not see {what}: {phone.kinds()}")
        await asyncio.sleep(0.1)


def at(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


async def test_a_busy_lead_is_retried_on_the_busy_schedule_then_given_up(
    outbound: Outbound, tmp_path: Path
) -> None:
    number = "+12125550131"
    async with outbound.phone(tmp_path, reject=486) as phone:
        accepted = await outbound.post_lead(number)
        first = await outbound.until(
            accepted["id"], lambda s: s["status"] == "busy" and s["attempts"], limit_s=30
        )
        (attempt,) = first["attempts"]
        assert (attempt["outcome"], attempt["sip_status"]) == ("busy", 486)
        retry_at = at(first["next_attempt_at"])
        assert retry_at - at(attempt["ended_at"]) == timedelta(minutes=BUSY_RETRY_MINUTES)
        assert not first["final"]
        assert len(invite_times(phone, number)) == 1
        final = await outbound.until(accepted["id"], lambda s: s["final"], limit_s=40)
    first_invite, second_invite = invite_times(phone, number)
    # Dialed again on schedule: not before the retry was due, and within a few dialer polls.
    assert retry_at <= second_invite < retry_at + timedelta(seconds=8), (retry_at, second_invite)
    assert first_invite < at(attempt["ended_at"])
    assert [(a["outcome"], a["sip_status"]) for a in final["attempts"]] == [("busy", 486)] * 2
    assert (final["status"], final["reason"], final["next_attempt_at"]) == (
        "busy", "max_attempts", None
    )  # fmt: skip


async def test_a_number_put_on_do_not_call_after_it_was_scheduled_is_never_dialed(
    outbound: Outbound, tmp_path: Path
) -> None:
    """Two leads wait for their campaign's calling hours to open; one number is put on the
    list meanwhile. When the hours open, the other is dialed and this one never is."""
    listed, control = "+12125550141", "+12125550142"
    local_now = datetime.now(UTC).astimezone(ZoneInfo(outbound.zone))
    # Hours are kept to the minute: they open at the next minute with time to spare.
    opens = (local_now + timedelta(seconds=63)).replace(second=0, microsecond=0)
    await outbound.put_campaign("webinar", {
        "calling_hours": {"start": f"{opens:%H:%M}", "end": "21:00", "days": ALL_DAYS},
        "retry": {"max_attempts": 1},
    })  # fmt: skip
    async with outbound.phone(tmp_path, reject=486) as phone:
        accepted = [await outbound.post_lead(n, campaign="webinar") for n in (listed, control)]
        for lead in accepted:
            assert lead["status"] == "scheduled" and at(lead["scheduled_for"]) == opens
        await outbound.add_dnc(listed)
        wait_s = (opens - datetime.now(UTC)).total_seconds()
        ended = await outbound.until(accepted[0]["id"], lambda s: s["final"], limit_s=wait_s + 20)
        dialed = await outbound.until(accepted[1]["id"], lambda s: s["final"], limit_s=20)
        await asyncio.sleep(1.0)  # a dial that slipped through would reach the phone by now
    assert invites_by_number(phone) == Counter({control: 1})
    assert (ended["status"], ended["reason"]) == ("failed", "do_not_call")
    assert [a["outcome"] for a in ended["attempts"]] == ["do_not_call"]
    assert [a["outcome"] for a in dialed["attempts"]] == ["busy"]
    assert at(dialed["attempts"][0]["started_at"]) >= opens


async def test_a_dialer_killed_mid_campaign_and_restarted_dials_every_lead_once(
    outbound: Outbound, tmp_path: Path
) -> None:
    numbers = [f"+1212555015{i}" for i in range(1, 6)]
    await outbound.put_campaign("spring", {
        "calling_hours": {"start": "08:00", "end": "21:00", "days": ALL_DAYS},
        "max_concurrent": 2,
    })  # fmt: skip
    # Each call is answered and lasts a few seconds, so two are in flight at the kill.
    async with outbound.phone(tmp_path, ring_s=0.5, hangup_after_s=2.0) as phone:
        calls = [(await outbound.post_lead(n, campaign="spring"))["id"] for n in numbers]
        await until_phone(phone, lambda: phone.kinds().count("invite") >= 2, limit_s=30,
                          what="the campaign's first two INVITEs")  # fmt: skip
        outbound.kill_dialer()
        dialed_before = sum(invites_by_number(phone).values())
        assert dialed_before < len(numbers)  # killed with leads still to dial
        # While no dialer runs, the calls in flight end (the worker reports them) and the
        # rest wait in the queue: nothing new is dialed, nothing is lost.
        await until_phone(phone, lambda: phone.kinds().count("hangup") >= dialed_before,
                          limit_s=20, what="the calls in flight at the kill end")  # fmt: skip
        waiting = [s for s in [await outbound.status(c) for c in calls] if not s["attempts"]]
        assert len(waiting) == len(numbers) - dialed_before
        assert sum(invites_by_number(phone).values()) == dialed_before
        outbound.start_dialer()
        finals = [await outbound.until(c, lambda s: s["final"], limit_s=60) for c in calls]
    assert invites_by_number(phone) == Counter({n: 1 for n in numbers})
    for status in finals:
        assert status["status"] == "completed", status
        assert [a["outcome"] for a in status["attempts"]] == ["completed"]
