"""Loopback ports used by the local stack, with a way to pick free ones for tests."""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
_RTP_RANGE_SIZE = 20  # ten concurrent call legs; livekit-sip uses even ports only
_ATTEMPTS = 200
# Picked ports come from below the kernel's ephemeral range, the ports it gives outgoing
# connections: one of those (a stand-in's client, the worker's own connections) could take a
# picked port between the pick and the server's bind (seen in CI: the worker's health port,
# "address already in use").
PICK_FLOOR = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LINUX_DEFAULT_EPHEMERAL = (32768, 60999)


@dataclass(frozen=True)
class StackPorts:
    """Every port the stack binds, all on 127.0.0.1. Defaults match livekit.yaml/sip.yaml."""

    http: int = 7880  # livekit-server HTTP/WebSocket (TCP)
    rtc_udp: int = 7882  # livekit-server WebRTC media (UDP mux)
    stun: int = 7883  # the STUN server clients are given: a loopback socket that never answers
    redis: int = 6390  # our redis, not a system redis on 6379
    sip: int = 5060  # livekit-sip signalling (UDP and TCP)
    rtp_start: int = 10000  # livekit-sip media (UDP)
    rtp_end: int = 10100

    @classmethod
    def free(cls) -> StackPorts:
        """Ports free right now, so a test stack never collides with a developer's stack."""
        taken: set[int] = set()
        http = _claim(taken, socket.SOCK_STREAM)
        redis = _claim(taken, socket.SOCK_STREAM)
        rtc_udp = _claim(taken, socket.SOCK_DGRAM)
        stun = _claim(taken, socket.SOCK_DGRAM)
        sip = _claim_tcp_and_udp(taken)
        rtp_start = _claim_udp_range(taken, _RTP_RANGE_SIZE)
        return cls(
            http=http,
            rtc_udp=rtc_udp,
            stun=stun,
            redis=redis,
            sip=sip,
            rtp_start=rtp_start,
            rtp_end=rtp_start + _RTP_RANGE_SIZE - 1,
        )


def is_bindable(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # As servers do, so a port left in TIME_WAIT by a stopped stack counts as free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def ephemeral_range(path: Path = _EPHEMERAL_RANGE) -> tuple[int, int]:
    """The ports the kernel gives outgoing connections (Linux's default off Linux)."""
    try:
        low, high = (int(v) for v in path.read_text().split())
    except (OSError, ValueError):
        return _LINUX_DEFAULT_EPHEMERAL
    return low, high


def free_port(kind: socket.SocketKind, *, size: int = 1) -> int:
    """A port (the first of ``size`` in a row) free now and below the ephemeral range, so no
    outgoing connection takes it before its server binds it; the kernel's own pick when the
    range leaves no room below it."""
    top = ephemeral_range()[0] - size
    if top - PICK_FLOOR < 1000:
        return _kernel_port(kind)
    for _ in range(_ATTEMPTS):
        port = random.randint(PICK_FLOOR, top)
        if is_bindable(port, kind):
            return port
    raise RuntimeError("no free loopback port found below the ephemeral range")


def _kernel_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _claim(taken: set[int], kind: socket.SocketKind) -> int:
    for _ in range(_ATTEMPTS):
        port = free_port(kind)
        if port not in taken:
            taken.add(port)
            return port
    raise RuntimeError("no free loopback port found")


def _claim_tcp_and_udp(taken: set[int]) -> int:
    for _ in range(_ATTEMPTS):
        port = free_port(socket.SOCK_STREAM)
        if port not in taken and is_bindable(port, socket.SOCK_DGRAM):
            taken.add(port)
            return port
    raise RuntimeError("no loopback port free for both TCP and UDP")


def _claim_udp_range(taken: set[int], size: int) -> int:
    for _ in range(_ATTEMPTS):
        start = free_port(socket.SOCK_DGRAM, size=size) & ~1  # even, as RTP wants
        ports = range(start, start + size)
        if ports[-1] > 65535 or taken.intersection(ports):
            continue
        if all(is_bindable(p, socket.SOCK_DGRAM) for p in ports):
            taken.update(ports)
            return start
    raise RuntimeError(f"no range of {size} free loopback UDP ports found")
