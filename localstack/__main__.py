"""Runs the local stack in the foreground until Ctrl-C: `uv run python -m localstack`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from localstack.ports import StackPorts
from localstack.processes import StackStartError
from localstack.stack import DEV_API_KEY, DEV_API_SECRET, LocalStack, StackNotInstalled

log = logging.getLogger("localstack")
_HEALTH_INTERVAL_SECONDS = 2.0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = StackPorts()
    parser = argparse.ArgumentParser(prog="python -m localstack", description=__doc__)
    parser.add_argument("--http-port", type=int, default=defaults.http)
    parser.add_argument("--rtc-udp-port", type=int, default=defaults.rtc_udp)
    parser.add_argument("--redis-port", type=int, default=defaults.redis)
    parser.add_argument("--sip-port", type=int, default=defaults.sip)
    parser.add_argument(
        "--rtp-ports", default=f"{defaults.rtp_start}-{defaults.rtp_end}", help="START-END"
    )
    parser.add_argument("--free-ports", action="store_true", help="pick free ports instead")
    parser.add_argument("--no-sip", action="store_true", help="do not start the SIP bridge")
    parser.add_argument("--log-dir", type=Path, default=None, help="default: .stack/logs")
    return parser.parse_args(argv)


def _ports(args: argparse.Namespace) -> StackPorts:
    if args.free_ports:
        return StackPorts.free()
    rtp_start, rtp_end = (int(part) for part in args.rtp_ports.split("-", 1))
    return StackPorts(
        http=args.http_port,
        rtc_udp=args.rtc_udp_port,
        redis=args.redis_port,
        sip=args.sip_port,
        rtp_start=rtp_start,
        rtp_end=rtp_end,
    )


def _announce(stack: LocalStack) -> None:
    log.info("stack ready; logs in %s", stack.log_dir)
    for name, value in stack.env().items():
        print(f"export {name}={value}")
    if stack.with_sip:
        log.info("SIP bridge on %s (udp+tcp)", stack.sip_address)
    log.info("Ctrl-C to stop")


def _run_until_signalled(stack: LocalStack) -> None:
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    while not stopping.wait(_HEALTH_INTERVAL_SECONDS):
        stack.raise_if_exited()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[localstack] %(message)s")
    args = _parse_args(argv)
    stack = LocalStack(
        ports=_ports(args),
        api_key=DEV_API_KEY,
        api_secret=DEV_API_SECRET,
        log_dir=args.log_dir,
        with_sip=not args.no_sip,
    )
    try:
        with stack:
            _announce(stack)
            _run_until_signalled(stack)
    except (StackNotInstalled, StackStartError) as exc:
        log.error("%s", exc)
        return 1
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
