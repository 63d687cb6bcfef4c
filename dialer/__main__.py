"""`python -m dialer`: dial what the lead API queued, within hours, caps and pace."""

from __future__ import annotations

import asyncio
import signal
import sys

from config import SettingsError
from config.logs import setup_logging
from dialer.service import load_dialer_settings, serve


async def _run() -> None:
    settings = load_dialer_settings()
    setup_logging(settings.livekit.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


def main() -> int:
    try:
        asyncio.run(_run())
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
