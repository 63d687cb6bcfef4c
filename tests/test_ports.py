"""The loopback ports tests and the call lab pick: free, and out of the range the kernel gives
outgoing connections, so none of those can take a port before its server binds it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from callab.harness import free_tcp_port
from callab.sip_phone import free_udp_port
from localstack import StackPorts
from localstack.ports import PICK_FLOOR, ephemeral_range, free_port, is_bindable

pytestmark = pytest.mark.unit


def test_the_ephemeral_range_is_read_from_the_kernel_or_linux_s_default(tmp_path: Path) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("40000\t50000\n")
    assert ephemeral_range(setting) == (40000, 50000)
    assert ephemeral_range(tmp_path / "absent") == (32768, 60999)
    setting.write_text("garbled")
    assert ephemeral_range(setting) == (32768, 60999)


def test_picked_ports_are_free_and_below_the_ephemeral_range() -> None:
    low, _ = ephemeral_range()
    if low - PICK_FLOOR < 1000:
        pytest.skip(f"this kernel's ephemeral range starts at {low}: the kernel picks")
    picked = [free_tcp_port() for _ in range(20)] + [free_udp_port() for _ in range(20)]
    assert all(PICK_FLOOR <= port < low for port in picked)
    assert all(is_bindable(port, socket.SOCK_STREAM) for port in picked[:20])
    assert free_port(socket.SOCK_DGRAM, size=20) + 20 <= low  # a whole RTP range below it


def test_a_stack_s_ports_are_all_below_the_ephemeral_range_and_distinct() -> None:
    low, _ = ephemeral_range()
    if low - PICK_FLOOR < 1000:
        pytest.skip(f"this kernel's ephemeral range starts at {low}: the kernel picks")
    ports = StackPorts.free()
    singles = [ports.http, ports.rtc_udp, ports.stun, ports.redis, ports.sip]
    assert len(set(singles)) == len(singles)
    assert all(PICK_FLOOR <= port < low for port in [*singles, ports.rtp_start, ports.rtp_end])
    assert ports.rtp_start % 2 == 0 and not set(singles) & set(
        range(ports.rtp_start, ports.rtp_end + 1)
    )


def test_a_port_in_use_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        choices = iter([busy, busy, busy + 1 if busy < 65535 else busy - 1])
        monkeypatch.setattr("localstack.ports.random.randint", lambda a, b: next(choices))
        monkeypatch.setattr("localstack.ports.ephemeral_range", lambda: (60000, 61000))
        assert free_port(socket.SOCK_STREAM) != busy
