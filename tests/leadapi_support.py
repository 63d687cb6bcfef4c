"""The lead API on a real socket: uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import uvicorn
from fastapi import FastAPI

from dialer.outcomes import OutcomeReporter
from dialer.sql_store import SqlStore
from leadapi.admission import AdmissionRules
from leadapi.app import ApiDeps, build_app
from leadapi.keys import KeyRing
from leadapi.rate_limits import RateLimiter
from privacy.forget import ContactEraser
from tests.conftest import Clock
from tests.dialer_support import make_policy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_app(
    store: SqlStore,
    clock: Clock,
    *,
    consent_required: bool = True,
    dedupe_hours: float = 24,
    webhook_urls: tuple[str, ...] = (),
    eraser: ContactEraser | None = None,
    limiter: RateLimiter | None = None,
) -> tuple[FastAPI, KeyRing]:
    policy = make_policy()
    counter = itertools.count(1)
    keys = KeyRing(store, now=clock, new_parts=lambda: (f"k{next(counter)}", "s3cret-token"))
    deps = ApiDeps(
        store=store,
        keys=keys,
        reporter=OutcomeReporter(queue=store, policy=policy, webhook_urls=webhook_urls, now=clock),
        rules=AdmissionRules(
            policy=policy,
            default_region="US",
            consent_required=consent_required,
            dedupe_window=timedelta(hours=dedupe_hours),
        ),
        now=clock,
        random_hex=lambda: f"{next(counter):06d}",
        eraser=eraser,
        **({"limiter": limiter} if limiter is not None else {}),
    )
    return build_app(deps), keys


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app on a real loopback socket; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the lead API did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def at(value: datetime) -> str:
    return value.isoformat()
