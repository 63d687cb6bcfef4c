"""The HTTP side of the fake Google Calendar: routes, Google's error bodies, the handler.

``FakeGoogleCalendar`` decides what to answer; this module names each request
(``events.insert``, ``token``, ...), parses its query, form or JSON body, and writes answers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from tests.fakes.google_calendar import FakeGoogleCalendar

_EVENTS_PATH = re.compile(r"/calendar/v3/calendars/([^/]+)/events(?:/([^/]+))?")
_EVENT_OPS = {
    "GET": "events.get",
    "PATCH": "events.patch",
    "PUT": "events.update",
    "DELETE": "events.delete",
}


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any] | None = None


def google_error(status: int, reason: str, message: str) -> Reply:
    error = {"domain": "global", "reason": reason, "message": message}
    return Reply(status, {"error": {"errors": [error], "code": status, "message": message}})


class BadRequest(Exception):
    """A request Google refuses with 400 and ``reason``."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reply = google_error(400, reason, message)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeGoogleCalendar) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _dispatch(self, method: str) -> None:
        assert isinstance(self.server, Server)
        fake = self.server.fake
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        route = _route(method, url.path)
        if route is None:
            self._send(google_error(404, "notFound", "Not Found"))
            return
        op, params = route
        repeated = parse_qs(url.query)
        params["query"] = {k: v[-1] for k, v in repeated.items()}
        params["query_lists"] = repeated  # parameters Google allows more than once
        params["authorization"] = self.headers.get("Authorization", "")
        try:
            params["form"] = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
            params["body"] = json.loads(raw) if raw and op != "token" else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._send(google_error(400, "parseError", "Parse Error"))
            return
        reply, hang = fake._handle(op, method, params)
        if hang:
            fake._release.wait(timeout=30)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            if payload:
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a hang it timed out on)


def _route(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    if (method, path) == ("POST", "/token"):
        return "token", {}
    if (method, path) == ("POST", "/calendar/v3/freeBusy"):
        return "freebusy.query", {}
    match = _EVENTS_PATH.fullmatch(path)
    if match is None:
        return None
    calendar_id, event_id = unquote(match[1]), match[2] and unquote(match[2])
    if event_id is None:
        op = {"POST": "events.insert", "GET": "events.list"}.get(method)
    else:
        op = _EVENT_OPS.get(method)
    if op is None:
        return None
    return op, {"calendar_id": calendar_id, "event_id": event_id}
