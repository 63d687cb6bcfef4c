"""Waking the dialer the moment a lead may be dialed now, instead of at its next poll.

A wake is only a hint. The dialer still polls every ``DIALER_POLL_SECONDS`` and its claim
alone decides what is dialed (caps, pace, hours, do-not-call), so a lost wake costs at most
one poll and a spurious one an empty pass. The sender never blocks and never fails the lead.

On SQLite (one host) the dialer listens on a loopback UDP port it writes to a file beside the
queue (``dialer.sqlite3.wake``); the lead API sends one datagram there after it committed a
lead that is due now. PostgreSQL uses its own ``LISTEN`` / ``NOTIFY`` (``postgres_store``),
which reaches dialers on other hosts too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

logger = logging.getLogger("dialer.wake")


class Wakes(Protocol):
    async def next_wake(self) -> None:
        """Return once woken. Wakes that came while no one waited count once: the next call
        returns at once. The caller bounds the wait by its poll."""
        ...


async def never() -> None:
    await asyncio.Event().wait()


class NoWakes:
    """Polling only."""

    async def next_wake(self) -> None:
        await never()


def wake_file(queue_path: Path) -> Path:
    return queue_path.with_name(queue_path.name + ".wake")


def send_wake(port_file: Path) -> None:
    """One datagram to the dialer whose port is in ``port_file``; nothing if none listens."""
    try:
        port = int(port_file.read_text())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b"!", ("127.0.0.1", port))
    except (OSError, ValueError):
        return  # no dialer, or a full buffer: it polls anyway


class _UdpWakes:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    async def next_wake(self) -> None:
        await asyncio.get_running_loop().sock_recv(self._sock, 64)
        self._drain()  # a burst of leads is one wake: the pass claims them all

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._sock.recv(64):
                pass


@asynccontextmanager
async def udp_wakes(port_file: Path) -> AsyncIterator[Wakes]:
    """Listen on a free loopback port and publish it in ``port_file`` while listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        port = str(sock.getsockname()[1])
        _publish(port_file, port)
        try:
            yield _UdpWakes(sock)
        finally:
            _unpublish(port_file, port)


def _publish(port_file: Path, port: str) -> None:
    partial = port_file.with_name(f"{port_file.name}.{os.getpid()}")
    partial.write_text(port)
    partial.replace(port_file)  # a sender never reads half a number


def _unpublish(port_file: Path, port: str) -> None:
    with contextlib.suppress(OSError):
        if port_file.read_text() == port:  # not a newer dialer's
            port_file.unlink()
