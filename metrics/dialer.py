"""The dialer process's metrics: its passes over the queue and the attempts they claimed,
served on ``DIALER_METRICS_PORT`` by prometheus_client's own small HTTP server."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

_PASS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DialerMetrics:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.claims = Counter(
            "dialer_claims", "Attempts claimed from the queue to dial (then dispatched, or "
            "closed as do_not_call or failed)", registry=self.registry,
        )  # fmt: skip
        self.pass_failures = Counter(
            "dialer_pass_failures", "Passes that failed (database or LiveKit) and are retried",
            registry=self.registry,
        )  # fmt: skip
        self.pass_seconds = Histogram(
            "dialer_pass_seconds", "One pass: reconcile, claim, dispatch, deliver webhooks",
            buckets=_PASS_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.last_pass = Gauge(
            "dialer_last_pass_timestamp_seconds", "Unix time the last successful pass ended: "
            "alert when it falls behind", registry=self.registry,
        )  # fmt: skip

    @contextlib.contextmanager
    def timed_pass(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except Exception:
            self.pass_failures.inc()
            raise
        else:
            self.last_pass.set(self._clock())
        finally:
            self.pass_seconds.observe(time.perf_counter() - started)

    def claimed(self, count: int) -> None:
        self.claims.inc(count)

    def serve(self, port: int, *, host: str = "127.0.0.1") -> Any:
        """``GET /metrics`` from a daemon thread; returns the server (``.server_port``)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
