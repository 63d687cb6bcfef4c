"""Everything an end-to-end call needs, started together and stopped together.

    async with CallLab(LabConfig(workdir=tmp, script=..., utterances=[...])) as lab:
        phone = await lab.place_call("+14155550123")
        ...

starts, all on loopback and free ports: redis + livekit-server (LocalStack), the Deepgram,
OpenAI and Cartesia stand-ins (in this process, so tests can read what they received),
optionally the HubSpot and Google Calendar fakes, and the worker as a subprocess
(`python -m agent`, or the module the config names, with its environment built here and its
cwd in `workdir`, so no `.env` is read), and our SIP bridge. Calls are real SIP calls: the
test phone calls our inbound number on the bridge, and the trunk and dispatch rule that
provisioning creates route it to a new room with the agent dispatched, as a carrier's call
would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from livekit import api

import config
from callab.phone import TRUNK_NUMBER, TestPhone
from callab.standins.cartesia_tts import CartesiaTTSStandin
from callab.standins.chat_script import ChatScript
from callab.standins.deepgram_stt import DeepgramSTTStandin
from callab.standins.openai_chat import OpenAIChatStandin
from localstack import LocalStack, StackPorts, ports
from telephony.provision import SipPlan, provision

AGENT_NAME = "sales-agent"
WORKER_READY_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 20.0
# livekit-server gives a worker this long to answer a job request (AssignJobTimeout), then
# drops the dispatch; it never retries one that no worker took.
DISPATCH_ANSWER_S = 10.0
GOOGLE_ACCOUNT = "agent@fake-project.iam.gserviceaccount.com"
GOOGLE_USER = "sales@example.com"
# A shell's provider keys or LiveKit URL must never reach the worker under test.
_SCRUBBED_PREFIXES = (
    "HUBSPOT_", "GOOGLE_", "DEEPGRAM_", "OPENAI_", "CARTESIA_", "LIVEKIT_", "SIP_",
)  # fmt: skip
_rooms = itertools.count(1)


def free_tcp_port() -> int:
    return ports.free_port(socket.SOCK_STREAM)


async def _wait_http_ok(url: str, *, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {limit_s:.0f} s")
            await asyncio.sleep(0.2)


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a worker drains its calls), then SIGKILL to its group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=WORKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


class CallRefused(RuntimeError):
    """No worker took the call: LiveKit dropped its dispatch, and nobody will answer it."""


@dataclass(frozen=True)
class Latencies:
    """What the stand-ins are told to take: STT final after the end of speech is detected,
    LLM time to first token, TTS time to first audio."""

    stt_final_ms: float
    llm_ttft_ms: float
    tts_ttfb_ms: float


PROFILES = {
    "typical": Latencies(stt_final_ms=250, llm_ttft_ms=400, tts_ttfb_ms=150),
    "fast": Latencies(stt_final_ms=100, llm_ttft_ms=150, tts_ttfb_ms=60),
}


@dataclass
class LabConfig:
    workdir: Path
    script: ChatScript
    utterances: Sequence[str]
    latencies: Latencies = PROFILES["fast"]
    vendors: bool = False  # HubSpot and Google fakes instead of the embedded CRM/calendar
    settings: Mapping[str, str] = field(default_factory=dict)  # worker settings, by env name
    log_level: str = "INFO"
    with_sip: bool = True  # our SIP bridge: every call is a SIP call; off for dispatch-only tests
    tagged_utterances: Mapping[str, Sequence[str]] = field(default_factory=dict)  # by STT tag
    fallback_llm: bool = False  # a second LLM stand-in, the worker's OPENAI_FALLBACK_BASE_URL
    # The language Deepgram's multilingual mode hears an utterance in, by its text (else "en").
    utterance_languages: Mapping[str, str] = field(default_factory=dict)
    # The CPUs the worker and its job processes run on (None: any); a benchmark keeps its load
    # generators off them.
    worker_cpus: frozenset[int] | None = None
    # What runs as the worker: `python -m <worker_module> <worker_args>`; the benchmark's
    # reference (bench/reference_agent.py) is another module on the same stack and stand-ins.
    worker_module: str = "agent"
    worker_args: tuple[str, ...] = ()


class CallLab:
    def __init__(self, config: LabConfig) -> None:
        self.config = config
        self.stack = LocalStack(
            ports=StackPorts.free(), log_dir=config.workdir / "stack", with_sip=config.with_sip
        )
        self.stt = DeepgramSTTStandin(
            utterances=config.utterances, final_delay_ms=config.latencies.stt_final_ms,
            tagged=config.tagged_utterances, languages=config.utterance_languages,
        )  # fmt: skip
        self.llm = OpenAIChatStandin(script=config.script, ttft_ms=config.latencies.llm_ttft_ms)
        self.tts = CartesiaTTSStandin(ttfb_ms=config.latencies.tts_ttfb_ms)
        self.llm_fallback = (
            OpenAIChatStandin(script=config.script, ttft_ms=config.latencies.llm_ttft_ms)
            if config.fallback_llm
            else None
        )
        self.hubspot: Any = None
        self.calendar: Any = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_log_path = config.workdir / "worker.log"
        self.worker_http_port = free_tcp_port()
        self._exits = contextlib.AsyncExitStack()
        self._lkapi: api.LiveKitAPI | None = None
        self.outbound_env: dict[str, str] = {}
        self._inbound_ready = False
        self._worker_started_env: dict[str, str] = {}
        # an outbound trunk nobody answers at, until a test points it at its phone
        self._outbound_address = "127.0.0.1:5999"

    async def __aenter__(self) -> CallLab:
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _start(self) -> None:
        self.config.workdir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.stack.start)
        self._exits.callback(self.stack.stop)
        for server in (self.stt, self.llm, self.tts, self.llm_fallback):
            if server is not None:
                await self._exits.enter_async_context(server)
        vendor_env = self._start_vendor_fakes() if self.config.vendors else {}
        self._lkapi = api.LiveKitAPI(self.stack.url, self.stack.api_key, self.stack.api_secret)
        self._worker_started_env = {**self.worker_env(), **vendor_env}
        self.worker = self._spawn_worker(self._worker_started_env)
        await self._wait_worker_registered()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop_worker)
        self.write_stt_report()
        if self._lkapi is not None:
            await self._lkapi.aclose()
            self._lkapi = None
        await self._exits.aclose()

    def write_stt_report(self) -> Path:
        """What the STT stand-in heard and answered on each stream, to `stt.json` in the lab's
        directory: when a call goes wrong, whether the caller's words reached it says which
        side to look at."""
        streams = [
            {
                "request_id": s.request_id,
                "params": s.params,
                "audio_seconds": round(s.audio_seconds, 3),
                "closed": s.closed,
                "control_messages": s.control_messages,
                "utterances": [dataclasses.asdict(u) for u in s.utterances],
                "finals": s.final_texts,
            }
            for s in self.stt.sessions
        ]
        self.config.workdir.mkdir(parents=True, exist_ok=True)
        path = self.config.workdir / "stt.json"
        path.write_text(json.dumps(streams, indent=1), encoding="utf-8")
        return path

    # --- the worker ------------------------------------------------------------------------

    def worker_env(self) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_SCRUBBED_PREFIXES) and k not in config.variable_names()
        }
        return {
            **base,
            **self.stack.env(),
            "AGENT_NAME": AGENT_NAME,
            "DEEPGRAM_API_KEY": "e2e-test",
            "DEEPGRAM_BASE_URL": self.stt.base_url,
            "OPENAI_API_KEY": "e2e-test",
            "OPENAI_BASE_URL": self.llm.base_url,
            "CARTESIA_API_KEY": "e2e-test",
            "CARTESIA_BASE_URL": self.tts.base_url,
            **(
                {"OPENAI_FALLBACK_BASE_URL": self.llm_fallback.base_url}
                if self.llm_fallback
                else {}
            ),
            "DATA_DIR": str(self.config.workdir / "data"),
            "LOG_LEVEL": self.config.log_level,
            "PYTHONUNBUFFERED": "1",
            # its health port too, so labs side by side never collide (8081 by default)
            "WORKER_HTTP_PORT": str(self.worker_http_port),
            **self.config.settings,
        }

    def _spawn_worker(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.worker_log_path.open("ab")
        try:
            worker = subprocess.Popen(
                [sys.executable, "-m", self.config.worker_module, *self.config.worker_args],
                cwd=self.config.workdir,  # no developer .env is read from here
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its job processes can be stopped as one group
            )
        finally:
            log.close()
        if self.config.worker_cpus:
            # Before its imports are done, so the forkserver and every job process inherit it.
            os.sched_setaffinity(worker.pid, self.config.worker_cpus)
        return worker

    async def _wait_worker_registered(self) -> None:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while "registered worker" not in self.worker_log():
            assert self.worker is not None
            if self.worker.poll() is not None:
                raise RuntimeError(f"the worker exited at start:\n{self.worker_log()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not register:\n{self.worker_log()[-4000:]}")
            await asyncio.sleep(0.1)

    async def worker_status(self) -> dict[str, Any]:
        """What the worker reports about itself (its `/worker` endpoint): `active_jobs`,
        `worker_load` ..."""
        url = f"http://127.0.0.1:{self.worker_http_port}/worker"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            response.raise_for_status()
            status: dict[str, Any] = await response.json(content_type=None)
            return status

    async def wait_worker_idle(self, *, limit_s: float = 30.0) -> None:
        """Until the worker holds no call (calls just hung up still wrap up for a moment)."""
        deadline = time.monotonic() + limit_s
        while (await self.worker_status()).get("active_jobs", 0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker still holds calls after {limit_s:.0f} s")
            await asyncio.sleep(0.1)

    def stack_log(self, service: str = "livekit-server") -> str:
        """A stack service's log: livekit-server's reports a dropped dispatch, the bridge's
        (``sipbridge``) a call offered again."""
        try:
            return (self.stack.log_dir / f"{service}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def worker_log(self) -> str:
        try:
            return self.worker_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def worker_log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.worker_log().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def stop_worker(self) -> None:
        """SIGTERM (the worker drains its calls), then SIGKILL to its group if it lingers."""
        worker, self.worker = self.worker, None
        if worker is None or worker.poll() is not None:
            return
        _stop_process(worker)
        # job processes left behind by a killed worker share its process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)

    def kill_worker(self) -> None:
        """SIGKILL to the worker and its job processes at once, as a crash or the OOM killer
        would leave them: no shutdown callback, no wrap-up."""
        worker, self.worker = self.worker, None
        assert worker is not None, "no worker is running"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)

    async def restart_worker(self) -> None:
        """A new worker on the same settings and data directory, as a supervisor restarts one;
        its log goes on in the same file."""
        assert self.worker is None, "the worker is still running"
        registered = self.worker_log().count("registered worker")
        self.worker = self._spawn_worker(self._worker_started_env)
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while self.worker_log().count("registered worker") <= registered:
            if self.worker.poll() is not None:
                raise RuntimeError(f"the worker exited at start:\n{self.worker_log()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not register:\n{self.worker_log()[-4000:]}")
            await asyncio.sleep(0.1)

    # --- vendors ---------------------------------------------------------------------------

    def _start_vendor_fakes(self) -> dict[str, str]:
        from tests.fakes.google_calendar import FakeGoogleCalendar
        from tests.fakes.hubspot import FakeHubSpot

        self.hubspot = self._exits.enter_context(FakeHubSpot())
        self.calendar = self._exits.enter_context(FakeGoogleCalendar(calendar_id=GOOGLE_USER))
        key = self.calendar.new_service_account_key(GOOGLE_ACCOUNT)
        key_file = self.config.workdir / "service-account.json"
        key_file.write_text(json.dumps(key))
        return {
            "HUBSPOT_ACCESS_TOKEN": self.hubspot.token,
            "HUBSPOT_BASE_URL": self.hubspot.base_url,
            "GOOGLE_SERVICE_ACCOUNT_FILE": str(key_file),
            "GOOGLE_DELEGATED_USER": GOOGLE_USER,
            "GOOGLE_CALENDAR_ID": GOOGLE_USER,
            "GOOGLE_BASE_URL": self.calendar.base_url,
        }

    # --- the outbound side: the dialer and the lead API, as `make run` starts them ----------

    async def start_outbound_side(self, settings: Mapping[str, str] | None = None) -> str:
        """``python -m dialer`` and ``python -m leadapi`` beside the worker, sharing its data
        directory and LiveKit; returns the lead API's base URL."""
        port = free_tcp_port()
        env = {**self.worker_env(), "LEADAPI_PORT": str(port), **(settings or {})}
        self.outbound_env = env
        for module in ("dialer", "leadapi"):
            process = self._spawn(module, env)
            self._exits.callback(_stop_process, process)
        base_url = f"http://127.0.0.1:{port}"
        await _wait_http_ok(f"{base_url}/health", limit_s=WORKER_READY_TIMEOUT_S)
        return base_url

    def create_api_key(self, name: str = "e2e") -> str:
        """A lead API key, through the keys CLI a sales-ops person uses."""
        done = subprocess.run(
            [sys.executable, "-m", "leadapi", "keys", "create", name],
            cwd=self.config.workdir, env=self.outbound_env, capture_output=True, text=True,
            check=True, timeout=60,
        )  # fmt: skip
        return done.stdout.strip().splitlines()[-1].split()[-1]

    def _spawn(self, module: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        with (self.config.workdir / f"{module}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", module], cwd=self.config.workdir, env=dict(env),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def process_log(self, module: str) -> str:
        path = self.config.workdir / f"{module}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- calls -----------------------------------------------------------------------------

    @property
    def lkapi(self) -> api.LiveKitAPI:
        assert self._lkapi is not None, "the lab is not started"
        return self._lkapi

    async def place_call(
        self, caller_number: str, *, wait_answer: bool = True, refer_result: int | None = None
    ) -> TestPhone:
        """An inbound call from ``caller_number`` to our number, over SIP through the bridge;
        returns once the agent has answered it (unless not ``wait_answer``)."""
        if not self.config.with_sip:
            raise RuntimeError("calls go through the SIP bridge: LabConfig(with_sip=True)")
        if not self._inbound_ready:
            await self.provision_sip(outbound_address=self._outbound_address)
        phone = TestPhone(
            call_to=f"sip:{TRUNK_NUMBER}@{self.stack.sip_address}", from_number=caller_number,
            refer_result=refer_result,
        )  # fmt: skip
        try:
            await phone.dial(wait_answer=wait_answer)
        except BaseException:
            await phone.hang_up()
            raise
        return phone

    async def room_of(self, caller_number: str, *, limit_s: float = 10.0) -> str:
        """The room the dispatch rule put the call from ``caller_number`` in (a room per
        caller: ``call-_<number>_<random>``)."""
        deadline = time.monotonic() + limit_s
        while True:
            for room in (await self.lkapi.room.list_rooms(api.ListRoomsRequest())).rooms:
                listed = await self.lkapi.room.list_participants(
                    api.ListParticipantsRequest(room=room.name)
                )
                for participant in listed.participants:
                    if participant.attributes.get("sip.phoneNumber") == caller_number:
                        return str(room.name)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no room holds a call from {caller_number}")
            await asyncio.sleep(0.1)

    async def provision_sip(self, *, outbound_address: str) -> str:
        """Our trunks and dispatch rule on the lab's LiveKit, with the outbound trunk pointing
        at ``outbound_address`` (a test phone); returns the outbound trunk's id."""
        plan = SipPlan(agent_name=AGENT_NAME, outbound_address=outbound_address)
        *_, outbound = await provision(self.lkapi, plan)
        self._outbound_address, self._inbound_ready = outbound_address, True
        return outbound.id

    async def dispatch_outbound(
        self, number: str, *, sip_trunk_id: str, lead: Mapping[str, str] | None = None
    ) -> str:
        """An outbound call as the dialer asks for one: the agent dispatched to a new room with
        the number to dial (and who the lead is) in its metadata. Returns the room's name."""
        room = f"out-e2e-{next(_rooms):04d}"
        request = {"phone_number": number, "sip_trunk_id": sip_trunk_id, "lead": dict(lead or {})}
        metadata = json.dumps(request)
        await self.lkapi.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=AGENT_NAME, room=room, metadata=metadata)
        )
        return room

    async def wait_taken(self, room: str, *, limit_s: float = DISPATCH_ANSWER_S + 2) -> str:
        """The identity of the agent that took the call in `room` (or its job id). CallRefused
        if none did: a dropped dispatch never gets a job, and the caller would wait forever.
        (The dispatch lists its job only seconds after the agent joined, so both are read.)"""
        deadline = time.monotonic() + limit_s
        agent = api.ParticipantInfo.Kind.AGENT
        while True:
            listed = await self.lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
            for participant in listed.participants:
                if participant.kind == agent:
                    return str(participant.identity)
            for dispatch in await self.lkapi.agent_dispatch.list_dispatch(room_name=room):
                if dispatch.agent_name == AGENT_NAME and dispatch.state.jobs:
                    return str(dispatch.state.jobs[0].id)
            if time.monotonic() > deadline:
                raise CallRefused(f"no worker took the call in {room} within {limit_s:.0f} s")
            await asyncio.sleep(0.1)
