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
read in ``default_region`` when it has no country code.

    with FakeHubSpot() as hs:
        hs.add_contact(firstname="Ada", phone="(415) 555-0100")
        ...  # HubSpot(access_token=hs.token, host=hs.base_url); inspect hs.contacts afterwards
"""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import phonenumbers

_OBJECT_PATH = re.compile(r"/crm/v3/objects/(\w+)(?:/(search|\d+))?/?")
_EMAIL_CONFLICT = "Contact already exists. Existing ID: {id}"


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Per object type: writable properties, calculated (read-only) ones, what a read returns when
# the caller names no properties, and what a create must carry.
_WRITABLE = {
    "contacts": _names(
        "firstname lastname email phone mobilephone company jobtitle website city state "
        "country zip address numemployees industry lifecyclestage hs_lead_status hubspot_owner_id"
    ),
    "calls": _names(
        "hs_timestamp hs_call_title hs_call_body hs_call_direction hs_call_status "
        "hs_call_duration hs_call_from_number hs_call_to_number hs_call_disposition "
        "hs_call_recording_url hubspot_owner_id"
    ),
    "notes": _names("hs_timestamp hs_note_body hubspot_owner_id"),
    "deals": _names("dealname amount dealstage pipeline closedate description hubspot_owner_id"),
    "companies": _names("name domain phone city industry"),
}
_CALCULATED = _names(
    "hs_object_id createdate lastmodifieddate hs_createdate hs_lastmodifieddate "
    "hs_searchable_calculated_phone_number hs_searchable_calculated_mobile_number"
)
_DEFAULT_READ = {
    "contacts": "createdate email firstname hs_object_id lastmodifieddate lastname",
    "deals": "dealname amount closedate pipeline dealstage createdate hs_lastmodifieddate",
    "companies": "name domain createdate hs_lastmodifieddate",
}
_REQUIRED = {"calls": ["hs_timestamp"], "notes": ["hs_timestamp"], "deals": ["dealname"]}
_OPTIONS = {
    "hs_call_direction": _names("INBOUND OUTBOUND"),
    "hs_call_status": _names(
        "BUSY CALLING_CRM_USER CANCELED COMPLETED CONNECTING FAILED IN_PROGRESS NO_ANSWER "
        "QUEUED RINGING"
    ),
}
# HubSpot-defined association type ids from each object to a contact.
_TO_CONTACT_TYPE_IDS = {"calls": 194, "notes": 202, "deals": 3, "companies": 280}
_MAX_GROUPS, _MAX_FILTERS_PER_GROUP, _MAX_FILTERS = 5, 6, 18


def _created_prop(object_type: str) -> str:
    return "createdate" if object_type in ("contacts", "deals") else "hs_createdate"


def _modified_prop(object_type: str) -> str:
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


def _default_read(object_type: str) -> list[str]:
    return _DEFAULT_READ.get(object_type, "hs_createdate hs_lastmodifieddate").split()


@dataclass(frozen=True, slots=True)
class Record:
    """A stored CRM object as it is now (search may still see an older version)."""

    id: str
    object_type: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Association:
    from_type: str
    from_id: str
    to_type: str
    to_id: str
    type_id: int


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    op: str  # "contacts.create", "calls.search", ... or "unknown"
    method: str
    path: str
    body: Any


@dataclass(slots=True)
class _Stored:
    id: str
    object_type: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime
    # What search sees: (visible from, properties), oldest first.
    versions: list[tuple[float, dict[str, str]]] = field(default_factory=list)

    def snapshot(self) -> Record:
        return Record(
            self.id, self.object_type, dict(self.properties), self.created_at, self.updated_at
        )


@dataclass(slots=True)
class _Fault:
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
class _Reply:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, category: str) -> None:
        super().__init__(message)
        self.status, self.message, self.category = status, message, category


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
        self.search_lag_s = search_lag_s
        self.default_region = default_region
        self._clock = clock
        self._objects: dict[str, dict[str, _Stored]] = {t: {} for t in _WRITABLE}
        self._associations: list[Association] = []
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._ids = itertools.count(1001)
        self._correlation = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> FakeHubSpot:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]  # read back by _Handler
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
            return {i: s.snapshot() for i, s in self._objects[object_type].items()}

    @property
    def associations(self) -> list[Association]:
        with self._lock:
            return list(self._associations)

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
            return self._store(object_type, properties, visible_at=0.0).id

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
        self._add_fault(_Fault(target, times, status=status, retry_after=retry_after))

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
        self._add_fault(_Fault(target, times, hang=True, hang_s=seconds, apply=apply))

    def drop_next(self, target: str, *, apply: bool = False, times: int | None = 1) -> None:
        """Close the connection of the next matching requests without answering."""
        self._add_fault(_Fault(target, times, drop=True, apply=apply))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    # request handling, called from server threads

    def _handle(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        method, path = handler.command, url.path
        op, match = _operation(method, path)
        with self._lock:
            self._requests.append(RecordedRequest(op, method, path, _json_or_text(raw)))
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            handler.send(self._error(401, _AUTH_MESSAGE, "INVALID_AUTHENTICATION"))
            return
        with self._lock:
            fault = self._take_fault(op, method, path)
        if fault is not None and fault.status is not None:
            handler.send(self._fault_reply(fault))
            return
        if fault is not None and not fault.apply and not self._misbehave(handler, fault):
            return
        reply = self._serve(method, match, parse_qs(url.query), raw)
        if fault is not None and fault.apply and not self._misbehave(handler, fault):
            return
        handler.send(reply)

    def _misbehave(self, handler: _Handler, fault: _Fault) -> bool:
        """Hang or drop as ``fault`` says; False once the connection is gone."""
        if fault.hang:
            self._stopping.wait(fault.hang_s)
        if fault.drop or self._stopping.is_set():
            handler.drop()
            return False
        return True

    def _take_fault(self, op: str, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.matches(op, method, path):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def _fault_reply(self, fault: _Fault) -> _Reply:
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
        return _Reply(reply.status, reply.body, headers)

    def _serve(
        self, method: str, match: re.Match[str] | None, query: dict[str, list[str]], raw: bytes
    ) -> _Reply:
        if match is None or match[1] not in self._objects:
            return self._error(404, "resource not found", "OBJECT_NOT_FOUND")
        object_type, rest = match[1], match[2]
        try:
            body = json.loads(raw) if raw else {}
            with self._lock:
                if method == "POST" and rest is None:
                    return self._create(object_type, body)
                if method == "POST" and rest == "search":
                    return self._search(object_type, body)
                if method == "GET" and rest not in (None, "search"):
                    return self._get(object_type, rest, query)
                if method == "PATCH" and rest not in (None, "search"):
                    return self._update(object_type, rest, body)
        except _BadRequest as exc:
            return self._error(exc.status, exc.message, exc.category)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return self._error(400, f"Invalid input JSON: {exc}", "VALIDATION_ERROR")
        return self._error(405, "method not allowed", "METHOD_NOT_ALLOWED")

    def _create(self, object_type: str, body: dict[str, Any]) -> _Reply:
        properties = self._validated(object_type, body.get("properties"), creating=True)
        links = [self._association(object_type, a) for a in body.get("associations") or []]
        if object_type == "contacts":
            self._check_unique_email(properties.get("email"), own_id=None)
        stored = self._store(object_type, properties, visible_at=None)
        for to_type, to_id, type_id in links:
            self._associations.append(Association(object_type, stored.id, to_type, to_id, type_id))
        return _Reply(201, self._present(stored, list(properties) + _default_read(object_type)))

    def _update(self, object_type: str, object_id: str, body: dict[str, Any]) -> _Reply:
        stored = self._find(object_type, object_id)
        properties = self._validated(object_type, body.get("properties"), creating=False)
        if object_type == "contacts" and "email" in properties:
            self._check_unique_email(properties["email"], own_id=object_id)
        stored.properties.update(properties)
        self._touch(stored)
        return _Reply(200, self._present(stored, list(properties) + _default_read(object_type)))

    def _get(self, object_type: str, object_id: str, query: dict[str, list[str]]) -> _Reply:
        stored = self._find(object_type, object_id)
        names = [n for v in query.get("properties", []) for n in v.split(",") if n]
        return _Reply(200, self._present(stored, names or _default_read(object_type)))

    def _search(self, object_type: str, body: dict[str, Any]) -> _Reply:
        groups = body.get("filterGroups") or []
        _check_search_limits(groups, int(body.get("limit") or 10))
        now = self._clock()
        hits = []
        for stored in sorted(self._objects[object_type].values(), key=lambda s: int(s.id)):
            visible = [props for at, props in stored.versions if at <= now]
            if visible and (not groups or any(_group_matches(g, visible[-1]) for g in groups)):
                hits.append((stored, visible[-1]))
        start, limit = int(body.get("after") or 0), int(body.get("limit") or 10)
        names = body.get("properties") or _default_read(object_type)
        page = [self._present(s, names, props) for s, props in hits[start : start + limit]]
        result: dict[str, Any] = {"total": len(hits), "results": page}
        if start + limit < len(hits):
            result["paging"] = {"next": {"after": str(start + limit)}}
        return _Reply(200, result)

    # storage

    def _store(
        self, object_type: str, properties: dict[str, str], *, visible_at: float | None
    ) -> _Stored:
        now = datetime.now(UTC)
        stored = _Stored(str(next(self._ids)), object_type, dict(properties), now, now)
        self._objects[object_type][stored.id] = stored
        self._touch(stored, visible_at=visible_at)
        return stored

    def _touch(self, stored: _Stored, *, visible_at: float | None = None) -> None:
        stored.updated_at = datetime.now(UTC)
        props = stored.properties
        props["hs_object_id"] = stored.id
        props[_created_prop(stored.object_type)] = _iso(stored.created_at)
        props[_modified_prop(stored.object_type)] = _iso(stored.updated_at)
        if stored.object_type == "contacts":
            for source, target in (("phone", "phone"), ("mobilephone", "mobile")):
                digits = _national_digits(props.get(source, ""), self.default_region)
                props[f"hs_searchable_calculated_{target}_number"] = digits
        when = self._clock() + self.search_lag_s if visible_at is None else visible_at
        stored.versions.append((when, dict(props)))

    def _find(self, object_type: str, object_id: str) -> _Stored:
        stored = self._objects[object_type].get(object_id)
        if stored is None:
            raise _BadRequest(404, "resource not found", "OBJECT_NOT_FOUND")
        return stored

    def _validated(self, object_type: str, properties: Any, *, creating: bool) -> dict[str, str]:
        if not isinstance(properties, dict):
            raise _BadRequest(400, "properties must be an object", "VALIDATION_ERROR")
        allowed = _WRITABLE[object_type]
        for name, value in properties.items():
            if name in _CALCULATED:
                _invalid(name, "READ_ONLY_VALUE", f'Property "{name}" is read-only')
            if name not in allowed:
                _invalid(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
            if name in _OPTIONS and value not in _OPTIONS[name]:
                _invalid(name, "INVALID_OPTION", f"{value!r} was not one of the allowed options")
        if creating:
            for name in _REQUIRED.get(object_type, []):
                if not properties.get(name):
                    _invalid(name, "REQUIRED_PROPERTY", f'Property "{name}" is required')
        return {k: "" if v is None else str(v) for k, v in properties.items()}

    def _association(self, object_type: str, spec: dict[str, Any]) -> tuple[str, str, int]:
        to_id = str(spec["to"]["id"])
        type_ids = {int(t["associationTypeId"]) for t in spec["types"]}
        categories = {t["associationCategory"] for t in spec["types"]}
        expected = _TO_CONTACT_TYPE_IDS.get(object_type)
        if categories != {"HUBSPOT_DEFINED"} or type_ids != {expected}:
            message = f"invalid association type ids {sorted(type_ids)} from {object_type}"
            raise _BadRequest(400, message, "VALIDATION_ERROR")
        if to_id not in self._objects["contacts"]:
            raise _BadRequest(400, f"No contact with id {to_id} exists", "VALIDATION_ERROR")
        return "contacts", to_id, type_ids.pop()

    def _check_unique_email(self, email: str | None, *, own_id: str | None) -> None:
        if not email:
            return
        for other in self._objects["contacts"].values():
            if other.id != own_id and other.properties.get("email", "").lower() == email.lower():
                raise _BadRequest(409, _EMAIL_CONFLICT.format(id=other.id), "CONFLICT")

    def _present(
        self, stored: _Stored, names: list[str], properties: dict[str, str] | None = None
    ) -> dict[str, Any]:
        props = stored.properties if properties is None else properties
        always = [
            "hs_object_id",
            _created_prop(stored.object_type),
            _modified_prop(stored.object_type),
        ]
        return {
            "id": stored.id,
            "properties": {n: props.get(n) or None for n in dict.fromkeys(names + always)},
            "createdAt": _iso(stored.created_at),
            "updatedAt": _iso(stored.updated_at),
            "archived": False,
        }

    def _error(self, status: int, message: str, category: str) -> _Reply:
        body = {
            "status": "error",
            "message": message,
            "correlationId": f"00000000-0000-4000-8000-{next(self._correlation):012d}",
            "category": category,
        }
        return _Reply(status, body)


_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
    "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.fake._handle(self)  # type: ignore[attr-defined]  # set in start()

    do_POST = do_PATCH = do_DELETE = do_GET

    def send(self, reply: _Reply) -> None:
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


def _operation(method: str, path: str) -> tuple[str, re.Match[str] | None]:
    match = _OBJECT_PATH.fullmatch(path)
    if match is None:
        return "unknown", None
    object_type, rest = match[1], match[2]
    if rest == "search":
        return f"{object_type}.search", match
    if rest is None:
        return (f"{object_type}.create" if method == "POST" else f"{object_type}.list"), match
    verbs = {"GET": "get", "PATCH": "update", "DELETE": "archive"}
    return f"{object_type}.{verbs.get(method, method.lower())}", match


def _check_search_limits(groups: list[dict[str, Any]], limit: int) -> None:
    sizes = [len(g.get("filters") or []) for g in groups]
    if len(groups) > _MAX_GROUPS or any(n > _MAX_FILTERS_PER_GROUP for n in sizes):
        raise _BadRequest(400, "too many filter groups or filters", "VALIDATION_ERROR")
    if sum(sizes) > _MAX_FILTERS or not 0 < limit <= 200:
        raise _BadRequest(400, "too many filters or bad limit", "VALIDATION_ERROR")


def _group_matches(group: dict[str, Any], properties: dict[str, str]) -> bool:
    return all(_filter_matches(f, properties) for f in group.get("filters") or [])


def _filter_matches(spec: dict[str, Any], properties: dict[str, str]) -> bool:
    stored = properties.get(spec["propertyName"]) or ""
    operator, value = spec["operator"], spec.get("value")
    if operator == "HAS_PROPERTY":
        return bool(stored)
    if operator == "NOT_HAS_PROPERTY":
        return not stored
    if operator in ("EQ", "NEQ"):
        equal = bool(stored) and stored.lower() == str(value).lower()
        return equal if operator == "EQ" else not equal
    if operator in ("IN", "NOT_IN"):
        # HubSpot compares IN values with the lowercased stored value.
        inside = bool(stored) and stored.lower() in [str(v) for v in spec.get("values") or []]
        return inside if operator == "IN" else not inside
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        found = any(fnmatch.fnmatchcase(t, str(value).lower()) for t in _tokens(stored))
        return found if operator == "CONTAINS_TOKEN" else not found
    raise _BadRequest(400, f"unsupported operator {operator}", "VALIDATION_ERROR")


def _tokens(text: str) -> set[str]:
    lowered = text.lower()
    return set(re.findall(r"[a-z0-9]+", lowered)) | set(lowered.split())


def _national_digits(value: str, region: str) -> str:
    if not value:
        return ""
    try:
        return phonenumbers.national_significant_number(phonenumbers.parse(value, region))
    except phonenumbers.NumberParseException:
        return re.sub(r"\D", "", value).lstrip("0")


def _invalid(name: str, error: str, message: str) -> None:
    detail = [{"isValid": False, "message": message, "error": error, "name": name}]
    raise _BadRequest(
        400, f"Property values were not valid: {json.dumps(detail)}", "VALIDATION_ERROR"
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")
