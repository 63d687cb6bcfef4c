"""The HTTP side of the fake HubSpot: routes, replies, injected faults and the handler.

``FakeHubSpot`` decides what to answer; this module names requests (``contacts.create``),
writes answers as HubSpot does, and hangs or drops connections when a fault says so.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

_OBJECT_PATH = re.compile(r"/crm/v3/objects/(\w+)(?:/(search|gdpr-delete|\d+))?/?")
_ASSOCIATIONS_PATH = re.compile(r"/crm/v4/objects/(\w+)/(\d+)/associations/(\w+)/?")

AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
    "see HubSpot's authentication documentation for more details"
)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    op: str  # "contacts.create", "calls.search", ... or "unknown"
    method: str
    path: str
    body: Any


@dataclass(slots=True)
class Fault:
    target: str  # operation ("calls.create"), HTTP method ("POST") or path prefix
    remaining: int | None  # None: every matching request
    status: int | None = None  # answer with this error instead of serving the request
    retry_after: float | None = None
    hang_s: float | None = None  # delay the answer; None with ``hang``: until the fake stops
    hang: bool = False
    drop: bool = False  # close the connection without answering
    apply: bool = False  # serve the request before hanging or dropping

    def matches(self, op: str, method: str, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.target.startswith("/"):
            return path.startswith(self.target)
        return self.target in (op, method)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class BadRequest(Exception):
    """A request HubSpot refuses: answered with ``status`` and an error body of ``category``."""

    def __init__(self, status: int, message: str, category: str) -> None:
        super().__init__(message)
        self.status, self.message, self.category = status, message, category


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.fake._handle(self)  # type: ignore[attr-defined]  # set in start()

    do_POST = do_PATCH = do_DELETE = do_GET

    def send(self, reply: Reply) -> None:
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout) before the answer came
            self.close_connection = True

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass


def operation(method: str, path: str) -> tuple[str, re.Match[str] | None]:
    """The request's operation name, and the path's (object type, id or "search") match."""
    linked = _ASSOCIATIONS_PATH.fullmatch(path)
    if linked is not None and method == "GET":
        return "associations.list", linked
    match = _OBJECT_PATH.fullmatch(path)
    if match is None:
        return "unknown", None
    object_type, rest = match[1], match[2]
    if rest in ("search", "gdpr-delete"):
        return f"{object_type}.{rest.replace('-', '_')}", match
    if rest is None:
        return (f"{object_type}.create" if method == "POST" else f"{object_type}.list"), match
    verbs = {"GET": "get", "PATCH": "update", "DELETE": "archive"}
    return f"{object_type}.{verbs.get(method, method.lower())}", match


def json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")
