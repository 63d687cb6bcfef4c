"""A phone on the SIP side: our Go test phone (sipbridge/cmd/testphone) as a subprocess.

It answers the calls our SIP bridge places (after ringing, or rejecting them with a status),
or places a call to our inbound number; it plays an 8 kHz WAV into each call and records what
it hears, or streams the call's audio through a unix socket (callab/phone.py speaks and
listens that way). Its JSON events (invite, ringing, answered, rejected, hangup, recorded ...)
are collected as they arrive, stamped with `time.monotonic()`.

    async with SipPhone(port=free_udp_port(), play=wav, record=tmp / "heard.wav") as phone:
        ... dispatch an outbound call to it ...
        invite = await phone.event("invite")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from localstack import find_binary
from localstack.ports import LOOPBACK, free_port


class TestPhoneMissing(RuntimeError):
    """The Go test phone is not built (scripts/install-stack.sh builds it)."""


@dataclass(frozen=True)
class PhoneEvent:
    at: float
    kind: str
    fields: dict[str, Any]


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


class SipPhone:
    def __init__(
        self,
        *,
        port: int,
        record: Path | None = None,
        play: Path | None = None,
        ring_s: float = 0.5,
        reject: int | None = None,
        hangup_after_s: float | None = None,
        call_to: str | None = None,
        from_number: str | None = None,
        audio_socket: Path | None = None,
        digits: str | None = None,
        refer_result: int | None = None,
    ) -> None:
        """Listens and answers; with ``call_to`` (a SIP URI) it places that one call instead,
        from ``from_number``. With ``audio_socket`` it streams each call's audio through that
        unix socket (see callab/phone.py)."""
        binary = find_binary("testphone")
        if binary is None:
            raise TestPhoneMissing("testphone is not built: run scripts/install-stack.sh")
        self.port = port
        self.record = record
        self.events: list[PhoneEvent] = []
        self._argv = [str(binary), "-host", LOOPBACK, "-port", str(port), "-ring", f"{ring_s}s"]
        if record is not None:
            self._argv += ["-record", str(record)]
        if audio_socket is not None:
            self._argv += ["-audio-socket", str(audio_socket)]
        if digits:
            self._argv += ["-digits", digits]  # DTMF, a second into each call
        if refer_result is not None:  # a REFER is accepted, then reported as this status
            self._argv += ["-refer-result", str(refer_result)]
        if play is not None:
            self._argv += ["-play", str(play)]
        if reject is not None:
            self._argv += ["-reject", str(reject)]
        if hangup_after_s is not None:
            self._argv += ["-hangup-after", f"{hangup_after_s}s"]
        if call_to is not None:
            self._argv += ["-call", call_to, "-from", from_number or "testphone"]
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    async def __aenter__(self) -> SipPhone:
        self._process = await asyncio.create_subprocess_exec(
            *self._argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        self._reader = asyncio.create_task(self._read_events())
        await self.event("listening", limit_s=10)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), 5)
            if self._process.returncode is None:
                self._process.kill()
                await self._process.wait()
        if self._reader is not None:
            await self._reader

    async def event(self, kind: str, *, limit_s: float | None = 30.0) -> PhoneEvent:
        """The first event of ``kind``, waiting up to ``limit_s`` (None: for ever) for it."""
        async with asyncio.timeout(limit_s), self._changed:
            while True:
                found = next((e for e in self.events if e.kind == kind), None)
                if found is not None:
                    return found
                if self._process is not None and self._process.returncode is not None:
                    raise RuntimeError(f"the test phone exited before {kind!r}: {self.events}")
                await self._changed.wait()

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    async def _read_events(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                raw = json.loads(line)
                if isinstance(raw, dict):
                    kind = str(raw.get("event") or raw.get("type") or "")
                    self.events.append(PhoneEvent(at=time.monotonic(), kind=kind, fields=raw))
            async with self._changed:
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()
