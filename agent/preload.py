"""What every job process inherits from the forkserver, and the forkserver started early.

A job process is forked from LiveKit's forkserver, which imports these modules once. LiveKit
starts it when the worker starts its process pool, after the main process has imported the
same modules for itself, so the two imports ran one after the other: about 4 s and then 5 s
before the first call could be answered. `start_forkserver` starts it as soon as the
environment is set, and the forkserver imports while the main process does.

This module imports nothing of the agent's or LiveKit's: it runs before the imports it
overlaps.
"""

from __future__ import annotations

import multiprocessing.forkserver
import os
import ssl
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import LiveKitSettings

# Imported on first use inside a call, each blocking the job's loop for 100-550 ms (the SDK's
# loop monitor said so): imported in the forkserver instead.
LAZY_IMPORTS = (
    "anyio._backends._asyncio", "anyio.streams.memory", "openai.resources.models",
    # the first LLM request's: its HTTP transport, the chat resources, the streaming parser
    # (225-275 ms idle, on the call's loop as the caller's first turn ended)
    "httpcore2", "openai.resources.chat.chat", "openai.resources.chat.completions.completions",
    "jiter",
    # the beep detector's first window: numpy's FFT and median (113 ms as a mailbox beeped)
    "numpy.fft", "numpy.ma",
)  # fmt: skip

# The worker's own list (`AgentServer(preload_modules=...)`); agent.worker imports the LiveKit
# plugins, which LiveKit lists ahead of it. Last, the SDK's first-use work (agent/first_use.py).
PRELOAD_MODULES = ("agent.worker", *LAZY_IMPORTS, "agent.first_use")

# What LiveKit appends to every forkserver's list: its own warm-up (the local end-of-turn
# model, the rtc library, an SSL context), and last the freeze that keeps the pages shared.
LIVEKIT_TAIL = ("livekit.agents.ipc._preload", "livekit.agents.ipc._preload_freeze")


def forkserver_modules() -> list[str]:
    return [*PRELOAD_MODULES, *LIVEKIT_TAIL]


def start_forkserver(livekit: LiveKitSettings) -> bool:
    """Start the forkserver with the modules LiveKit would give it; LiveKit's own start later
    finds it running and uses it (a running forkserver keeps the list it started with).

    A job process inherits the forkserver's environment, not the worker's at the time it is
    forked, so the variables LiveKit sets for its job processes when the worker starts are
    set here first, with the same values: the server's URL and key, by which `ctx.api`
    connects. On a host with no trust store LiveKit also points `SSL_CERT_FILE` at a bundle
    of its own; there the start is left to LiveKit. So is it when the jobs run in threads or
    off Linux (where LiveKit spawns instead). Returns whether it was started here."""
    if livekit.worker_job_executor != "process" or not sys.platform.startswith("linux"):
        return False
    if not _trusts_some_ca():
        return False
    for name, value in (("LIVEKIT_URL", livekit.livekit_url),
                        ("LIVEKIT_API_KEY", livekit.livekit_api_key),
                        ("LIVEKIT_API_SECRET", livekit.api_secret())):  # fmt: skip
        if value:
            os.environ[name] = value
    multiprocessing.forkserver.set_forkserver_preload(forkserver_modules())
    multiprocessing.forkserver.ensure_running()  # returns at once; the imports run in the server
    return True


def _trusts_some_ca() -> bool:
    """A CA file or directory is configured, or OpenSSL's default one is there."""
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return True
    paths = ssl.get_default_verify_paths()
    if paths.cafile and os.path.isfile(paths.cafile):
        return True
    return bool(paths.capath and os.path.isdir(paths.capath) and os.listdir(paths.capath))
