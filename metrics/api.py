"""Metrics for an HTTP service (the lead API): requests by route and status, their latency,
and the leads it accepted or refused; served at ``/metrics`` by the app itself.

Each app gets its own registry, so two apps in one process (tests) never mix counts.
"""

from __future__ import annotations

import re
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNMATCHED_ROUTE = "unmatched"  # a path no route serves: never the raw path, which is unbounded


class ApiMetrics:
    def __init__(self, *, prefix: str = "leadapi") -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            f"{prefix}_requests", "HTTP requests by method, route template and status",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.request_seconds = Histogram(
            f"{prefix}_request_seconds", "HTTP request latency by method and route template",
            ["method", "route"], buckets=_REQUEST_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.leads_accepted = Counter(
            f"{prefix}_leads_accepted", "Leads accepted: new (queued) or duplicate (the earlier "
            "call answered)", ["kind"], registry=self.registry,
        )  # fmt: skip
        self.leads_refused = Counter(
            f"{prefix}_leads_refused", "Leads refused, by reason (do_not_call, consent_required, "
            "invalid_<field>, idempotency_key_reused)", ["reason"], registry=self.registry,
        )  # fmt: skip

    def lead_accepted(self, *, duplicate: bool) -> None:
        self.leads_accepted.labels("duplicate" if duplicate else "new").inc()

    def lead_refused(self, reason: str) -> None:
        self.leads_refused.labels(reason).inc()

    def install(self, app: Any) -> None:
        """Time every request of a Starlette/FastAPI ``app`` and serve ``GET /metrics``."""
        app.add_middleware(RequestMetrics, metrics=self)
        app.add_route("/metrics", self.endpoint, methods=["GET"], include_in_schema=False)

    async def endpoint(self, _request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)


class RequestMetrics:
    """ASGI middleware. The route template is the one the router matched (it records it in the
    scope); for a request a middleware answered before routing (a 401), the documented path it
    matches (the app's OpenAPI paths)."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._documented: list[tuple[re.Pattern[str], str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raised before responding

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            self.metrics.observe(
                method=scope["method"], route=self._route_template(scope), status=status,
                seconds=time.perf_counter() - started,
            )  # fmt: skip

    def _route_template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None and getattr(route, "path", None):
            return str(route.path)
        if self._documented is None:
            self._documented = _documented_paths(scope.get("app"))
        path = scope.get("path", "")
        return next((t for regex, t in self._documented if regex.match(path)), UNMATCHED_ROUTE)


def _documented_paths(app: Any) -> list[tuple[re.Pattern[str], str]]:
    openapi = getattr(app, "openapi", None)
    paths = openapi().get("paths", {}) if callable(openapi) else {}
    return [(compile_path(template)[0], template) for template in paths]
