"""A small stateful fake of the HubSpot CRM v3 objects API.

The real hubspot-api-client talks to it over a real socket, so tests exercise the same
request building, auth, serialisation and error handling as production. JSON shapes follow
HubSpot's: ``SimplePublicObject`` records, ``{"total", "results", "paging"}`` search pages,
and ``{"status": "error", "message", "correlationId", "category"}`` errors.

Modelled behaviour: Bearer-token auth; create, get, update (PATCH merges) and search of
contacts, calls, notes, deals and companies; unknown or read-only properties rejected;
inline associations on create (with HubSpot's type ids checked); unique contact emails
(409 ``Contact already exists. Existing ID: N``); search with filter groups (OR across
groups, AND within, HubSpot's size limits) and an optional search lag, since HubSpot's
search index trails writes by seconds. ``hs_searchable_calculated_phone_number`` and
``..._mobile_number`` are approximated as the national digits of the stored number,
read in ``default_region`` when it has no country code. The portal's state and its rules
are ``hubspot_store``, search matching ``hubspot_search``, and the HTTP handler
``hubspot_http``.

    with FakeHubSpot() as hs:
        hs.add_contact(firstname="Ada", phone="(415) 555-0100")
        ...  # HubSpot(access_token=hs.token, host=hs.base_url); inspect hs.contacts afterwards
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.fakes.hubspot_http import (
    AUTH_MESSAGE,
    BadRequest,
    Fault,
    RecordedRequest,
    Reply,
    RequestHandler,
    json_or_text,
    operation,
)
from tests.fakes.hubspot_store import Association, CrmObjects, Record

__all__ = ["Association", "FakeHubSpot", "Record", "RecordedRequest"]


class FakeHubSpot:
    """The HubSpot CRM API on ``base_url``, accepting ``Authorization: Bearer <token>``."""

    def __init__(
        self,
        *,
        token: str = "pat-na1-fake-token",
        search_lag_s: float = 0.0,
        default_region: str = "US",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self._objects = CrmObjects(
            search_lag_s=search_lag_s, default_region=default_region, clock=clock
        )
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._correlation = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def define_property(self, object_type: str, name: str) -> None:
        with self._lock:
            self._objects.define_property(object_type, name)

    # lifecycle

    def start(self) -> FakeHubSpot:
        server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]  # read back by RequestHandler
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hung requests
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeHubSpot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "FakeHubSpot is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def search_lag_s(self) -> float:
        """How long a write stays invisible to search; may be changed while serving."""
        return self._objects.search_lag_s

    @search_lag_s.setter
    def search_lag_s(self, value: float) -> None:
        self._objects.search_lag_s = value

    @property
    def default_region(self) -> str:
        """Where a stored number without country code is read, for the searchable digits."""
        return self._objects.default_region

    @default_region.setter
    def default_region(self, value: str) -> None:
        self._objects.default_region = value

    # state inspection

    @property
    def contacts(self) -> dict[str, Record]:
        return self.records("contacts")

    @property
    def calls(self) -> dict[str, Record]:
        return self.records("calls")

    @property
    def notes(self) -> dict[str, Record]:
        return self.records("notes")

    @property
    def deals(self) -> dict[str, Record]:
        return self.records("deals")

    def records(self, object_type: str) -> dict[str, Record]:
        with self._lock:
            return self._objects.records(object_type)

    @property
    def associations(self) -> list[Association]:
        with self._lock:
            return list(self._objects.associations)

    def associated_ids(self, from_type: str, from_id: str, to_type: str) -> list[str]:
        return [
            a.to_id
            for a in self.associations
            if (a.from_type, a.from_id, a.to_type) == (from_type, from_id, to_type)
        ]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first, including rejected ones."""
        with self._lock:
            return list(self._requests)

    def ops(self) -> list[str]:
        """The operation of every request received: ``["contacts.search", ...]``."""
        return [r.op for r in self.requests]

    # seeding

    def add_contact(self, **properties: str) -> str:
        """Store a contact, visible to search at once; returns its id."""
        return self.add_object("contacts", **properties)

    def add_object(self, object_type: str, **properties: str) -> str:
        with self._lock:
            return self._objects.add(object_type, properties, visible_at=0.0).id

    # fault injection

    def fail_next(
        self,
        target: str,
        *,
        status: int = 500,
        retry_after: float | None = None,
        times: int | None = 1,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status``, changing nothing.

        ``target`` is an operation ("contacts.create", "calls.search", "deals.update",
        "contacts.get"), an HTTP method ("POST") or a path prefix ("/crm/v3/objects/notes").
        ``times=None`` fails every matching request. ``retry_after`` sets the header.
        """
        self._add_fault(Fault(target, times, status=status, retry_after=retry_after))

    def hang_next(
        self,
        target: str,
        *,
        seconds: float | None = None,
        apply: bool = False,
        times: int | None = 1,
    ) -> None:
        """Accept the next matching requests but answer only after ``seconds``.

        ``seconds=None`` never answers (until the fake stops). With ``apply`` the request
        takes effect before the wait: the client cannot tell whether its write happened.
        """
        self._add_fault(Fault(target, times, hang=True, hang_s=seconds, apply=apply))

    def drop_next(self, target: str, *, apply: bool = False, times: int | None = 1) -> None:
        """Close the connection of the next matching requests without answering."""
        self._add_fault(Fault(target, times, drop=True, apply=apply))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    # request handling, called from server threads

    def _handle(self, handler: RequestHandler) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        method, path = handler.command, url.path
        op, match = operation(method, path)
        with self._lock:
            self._requests.append(RecordedRequest(op, method, path, json_or_text(raw)))
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            handler.send(self._error(401, AUTH_MESSAGE, "INVALID_AUTHENTICATION"))
            return
        with self._lock:
            fault = self._take_fault(op, method, path)
        if fault is not None and fault.status is not None:
            handler.send(self._fault_reply(fault))
            return
        if fault is not None and not fault.apply and not self._misbehave(handler, fault):
            return
        reply = self._serve(method, match, parse_qs(url.query), raw, op=op)
        if fault is not None and fault.apply and not self._misbehave(handler, fault):
            return
        handler.send(reply)

    def _misbehave(self, handler: RequestHandler, fault: Fault) -> bool:
        """Hang or drop as ``fault`` says; False once the connection is gone."""
        if fault.hang:
            self._stopping.wait(fault.hang_s)
        if fault.drop or self._stopping.is_set():
            handler.drop()
            return False
        return True

    def _take_fault(self, op: str, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(op, method, path):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def _fault_reply(self, fault: Fault) -> Reply:
        assert fault.status is not None
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        if fault.status == 429:
            reply = self._error(429, "You have reached your secondly limit.", "RATE_LIMITS")
            assert reply.body is not None
            reply.body.update(errorType="RATE_LIMIT", policyName="SECONDLY")
        else:
            reply = self._error(fault.status, "internal error", "INTERNAL_ERROR")
        return Reply(reply.status, reply.body, headers)

    def _serve(
        self,
        method: str,
        match: re.Match[str] | None,
        query: dict[str, list[str]],
        raw: bytes,
        *,
        op: str,
    ) -> Reply:
        if op == "associations.list" and match is not None:
            with self._lock:
                return self._objects.associated(match[1], match[2], match[3])
        if match is None or not self._objects.has_type(match[1]):
            return self._error(404, "resource not found", "OBJECT_NOT_FOUND")
        object_type, rest = match[1], match[2]
        try:
            body = json.loads(raw) if raw else {}
            with self._lock:
                if method == "POST" and rest is None:
                    return self._objects.create(object_type, body)
                if method == "POST" and rest == "search":
                    return self._objects.search(object_type, body)
                if method == "POST" and rest == "gdpr-delete" and object_type == "contacts":
                    return self._objects.gdpr_delete(body)
                if method == "DELETE" and rest not in (None, "search", "gdpr-delete"):
                    return self._objects.archive(object_type, rest)
                if method == "GET" and rest not in (None, "search"):
                    return self._objects.get(object_type, rest, query)
                if method == "PATCH" and rest not in (None, "search"):
                    return self._objects.update(object_type, rest, body)
        except BadRequest as exc:
            return self._error(exc.status, exc.message, exc.category)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return self._error(400, f"Invalid input JSON: {exc}", "VALIDATION_ERROR")
        return self._error(405, "method not allowed", "METHOD_NOT_ALLOWED")

    def _error(self, status: int, message: str, category: str) -> Reply:
        body = {
            "status": "error",
            "message": message,
            "correlationId": f"00000000-0000-4000-8000-{next(self._correlation):012d}",
            "category": category,
        }
        return Reply(status, body)
