"""Which addresses a process listens on, read from /proc (Linux), to prove loopback-only."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"


@dataclass(frozen=True)
class ListeningSocket:
    protocol: str  # "tcp" | "udp" | "tcp6" | "udp6"
    address: str
    port: int


def listening_sockets(pid: int) -> list[ListeningSocket]:
    """TCP sockets in LISTEN and unconnected UDP sockets owned by pid."""
    inodes = _socket_inodes(pid)
    found: list[ListeningSocket] = []
    for protocol, wanted_state in (
        ("tcp", _TCP_LISTEN),
        ("tcp6", _TCP_LISTEN),
        ("udp", _UDP_UNCONNECTED),
        ("udp6", _UDP_UNCONNECTED),
    ):
        found.extend(_read_table(pid, protocol, wanted_state, inodes))
    return found


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _read_table(
    pid: int, protocol: str, wanted_state: str, inodes: set[str]
) -> list[ListeningSocket]:
    table = Path(f"/proc/{pid}/net/{protocol}")
    if not table.exists():
        return []
    found = []
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == wanted_state and inode in inodes:
            address, port = _decode(local, ipv6=protocol.endswith("6"))
            found.append(ListeningSocket(protocol, address, port))
    return found


def _decode(hex_address: str, *, ipv6: bool) -> tuple[str, int]:
    address_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(address_hex)
    # /proc stores the address as host-order 32-bit words.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    return socket.inet_ntop(family, words), int(port_hex, 16)
