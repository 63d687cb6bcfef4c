"""Readiness probes over real sockets: redis PING, HTTP GET, SIP OPTIONS."""

from __future__ import annotations

import itertools
import os
import socket
import urllib.error
import urllib.request

from localstack.ports import LOOPBACK

_probe_ids = itertools.count(1)


def redis_answers(port: int, *, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def http_answers(url: str, *, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def sip_options_status(port: int, *, transport: str = "udp", timeout: float = 1.0) -> int | None:
    """Sends SIP OPTIONS to 127.0.0.1:port; returns the response status code, None if none."""
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    try:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.settimeout(timeout)
            sock.bind((LOOPBACK, 0))
            sock.connect((LOOPBACK, port))
            local_port = sock.getsockname()[1]
            sock.sendall(_options_request(port, local_port, transport))
            return _status_code(sock.recv(4096))
    except OSError:
        return None


def _options_request(port: int, local_port: int, transport: str) -> bytes:
    probe = f"{os.getpid()}-{next(_probe_ids)}"
    lines = [
        f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {LOOPBACK}:{local_port};branch=z9hG4bK-{probe}",
        "Max-Forwards: 70",
        f"From: <sip:probe@{LOOPBACK}>;tag={probe}",
        f"To: <sip:{LOOPBACK}:{port}>",
        f"Call-ID: localstack-probe-{probe}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:probe@{LOOPBACK}:{local_port};transport={transport}>",
        "Accept: application/sdp",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status_code(response: bytes) -> int | None:
    parts = response.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"SIP/2.0"):
        return None
    try:
        return int(parts[1])
    except ValueError:
        return None
