"""A small stateful fake of Google Calendar v3 and Google's OAuth2 token endpoint.

The real google-api-python-client talks to it over a real socket, so tests exercise the
same request building, auth and error parsing as production. Field names and error
bodies follow Google's JSON. One calendar (``calendar_id``) lives here; others are unknown.
The token endpoint is ``google_oauth``, event writes and busy time ``google_events``, and the
HTTP handler ``google_http``.

    with FakeGoogleCalendar() as gc:
        key = gc.new_service_account_key("agent@project.iam.gserviceaccount.com")
        ...  # point the client at gc.base_url; inspect gc.events afterwards
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.google_events import (
    bound,
    busy_periods,
    has_properties,
    instant,
    seed_time,
    write_event,
)
from tests.fakes.google_http import BadRequest, Reply, Server, google_error
from tests.fakes.google_oauth import (
    CALENDAR_SCOPE,
    ServiceAccounts,
    TokenGrant,
    make_service_account_key,
)

_EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")
_ERROR_REASONS = {429: "rateLimitExceeded", 500: "backendError", 503: "backendError"}


@dataclass(frozen=True, slots=True)
class Write:
    """One change to an event, with the ``sendUpdates`` the caller asked for."""

    op: str
    event_id: str
    send_updates: str


@dataclass(slots=True)
class _Fault:
    op: str  # operation name ("events.insert") or HTTP method ("POST")
    remaining: int
    status: int | None = None  # answer with this error; None: hang instead of answering
    apply: bool = True  # for a hang: serve the request first

    def matches(self, op: str, method: str) -> bool:
        return self.remaining > 0 and self.op in (op, method)


class FakeGoogleCalendar:
    """Google Calendar on 127.0.0.1, with fault injection and state inspection."""

    def __init__(self, *, calendar_id: str = "sales@example.com", time_zone: str = "UTC") -> None:
        self.calendar_id = calendar_id
        self.time_zone = ZoneInfo(time_zone)  # where all-day events begin and end
        self.writes: list[Write] = []
        self._events: dict[str, dict[str, Any]] = {}
        self._accounts = ServiceAccounts()
        self._faults: list[_Fault] = []
        self._freebusy_errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: Server | None = None

    # lifecycle

    def __enter__(self) -> FakeGoogleCalendar:
        server = Server(self)
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()  # lets hung requests finish
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "use FakeGoogleCalendar as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    # setup and inspection

    def register_service_account(
        self,
        client_email: str,
        public_key: rsa.RSAPublicKey,
        *,
        delegation_allowed_for: Iterable[str] | None = None,
    ) -> None:
        """Trust JWTs signed by ``public_key``; ``delegation_allowed_for`` limits ``sub``."""
        self._accounts.register(
            client_email, public_key, delegation_allowed_for=delegation_allowed_for
        )

    def new_service_account_key(
        self,
        client_email: str,
        *,
        delegation_allowed_for: Iterable[str] | None = None,
        private_key: rsa.RSAPrivateKey | None = None,
    ) -> dict[str, str]:
        """Register a service account and return its key file's content."""
        info, public_key = make_service_account_key(
            client_email=client_email, token_uri=self.token_uri, private_key=private_key
        )
        self.register_service_account(
            client_email, public_key, delegation_allowed_for=delegation_allowed_for
        )
        return info

    @property
    def token_grants(self) -> list[TokenGrant]:
        """Every access token the token endpoint issued, oldest first."""
        return self._accounts.grants

    @property
    def events(self) -> dict[str, dict[str, Any]]:
        """A snapshot of every stored event (cancelled ones included), by id."""
        with self._lock:
            return copy.deepcopy(self._events)

    def add_event(
        self,
        *,
        start: datetime | date,
        end: datetime | date,
        event_id: str | None = None,
        summary: str = "Seeded event",
        status: str = "confirmed",
        transparency: str = "opaque",
    ) -> dict[str, Any]:
        """Seed an event; ``date`` bounds make an all-day event (``end`` exclusive)."""
        with self._lock:
            event_id = event_id or self._next_id()
            resource = {
                "kind": "calendar#event",
                "id": event_id,
                "status": status,
                "summary": summary,
                "transparency": transparency,
                "start": seed_time(start),
                "end": seed_time(end),
                **_stamps(),
            }
            self._events[event_id] = resource
            return copy.deepcopy(resource)

    # fault injection

    def fail_next(self, op: str, *, status: int = 503, times: int = 1) -> None:
        """Answer the next ``times`` requests for ``op`` with ``status``, changing nothing.

        ``op`` is an operation ("events.insert", "freebusy.query", "token", ...) or an HTTP
        method ("POST").
        """
        with self._lock:
            self._faults.append(_Fault(op, times, status=status))

    def hang_next(self, op: str, *, times: int = 1, apply: bool = True) -> None:
        """Never answer the next ``times`` requests for ``op``.

        With ``apply`` the request takes effect first: the worst case for a client, which
        cannot tell whether its write happened.
        """
        with self._lock:
            self._faults.append(_Fault(op, times, apply=apply))

    def freebusy_error(self, calendar_id: str, reason: str = "backendError") -> None:
        """Report ``errors`` instead of busy times for ``calendar_id`` from now on."""
        with self._lock:
            self._freebusy_errors[calendar_id] = reason

    # request handling, called from server threads

    def _handle(self, op: str, method: str, params: dict[str, Any]) -> tuple[Reply, bool]:
        """Serve one request; the flag says whether to hang instead of answering."""
        with self._lock:
            fault = next((f for f in self._faults if f.matches(op, method)), None)
            if fault is not None:
                fault.remaining -= 1
            if fault is not None and fault.status is not None:
                reason = _ERROR_REASONS.get(fault.status, "injected")
                return google_error(fault.status, reason, "Injected failure."), False
            if fault is not None and not fault.apply:
                return Reply(500), True
            try:
                reply = self._serve(op, params)
            except BadRequest as err:
                reply = err.reply
            return reply, fault is not None

    def _serve(self, op: str, params: dict[str, Any]) -> Reply:
        if op == "token":
            return self._accounts.issue_token(params["form"], token_uri=self.token_uri)
        denied = self._accounts.check_bearer(params["authorization"])
        if denied is not None:
            return denied
        if op == "freebusy.query":
            return self._freebusy(params["body"])
        if params["calendar_id"] != self.calendar_id:
            return google_error(404, "notFound", "Not Found")
        handlers = {
            "events.insert": self._insert,
            "events.list": self._list,
            "events.get": self._get,
            "events.patch": self._patch,
            "events.update": self._update,
            "events.delete": self._delete,
        }
        return handlers[op](params)

    def _freebusy(self, body: dict[str, Any]) -> Reply:
        try:
            window = (instant(body["timeMin"]), instant(body["timeMax"]))
        except (KeyError, ValueError):
            raise BadRequest("Bad Request", "badRequest") from None
        calendars: dict[str, Any] = {}
        for item in body.get("items", []):
            calendar_id = item["id"]
            if calendar_id in self._freebusy_errors:
                reason = self._freebusy_errors[calendar_id]
                calendars[calendar_id] = {"errors": [{"domain": "global", "reason": reason}]}
            elif calendar_id != self.calendar_id:
                errors = [{"domain": "global", "reason": "notFound"}]
                calendars[calendar_id] = {"errors": errors, "busy": []}
            else:
                busy = busy_periods(self._events.values(), *window, time_zone=self.time_zone)
                calendars[calendar_id] = {"busy": list(busy)}
        return Reply(
            200,
            {
                "kind": "calendar#freeBusy",
                "timeMin": body["timeMin"],
                "timeMax": body["timeMax"],
                "calendars": calendars,
            },
        )

    def _insert(self, params: dict[str, Any]) -> Reply:
        body = params["body"]
        event_id = body.get("id") or self._next_id()
        if not _EVENT_ID.fullmatch(event_id):
            raise BadRequest("Invalid resource id value.")
        if event_id in self._events:
            return google_error(409, "duplicate", "The requested identifier already exists.")
        resource = {
            "kind": "calendar#event",
            "id": event_id,
            "iCalUID": f"{event_id}@fake-calendar.test",
            "sequence": 0,
            "organizer": {"email": self.calendar_id, "self": True},
            **_stamps(),
        }
        write_event(resource, body, params["query"], replace=True, time_zone=self.time_zone)
        self._events[event_id] = resource
        self._record("events.insert", event_id, params["query"])
        return Reply(200, copy.deepcopy(resource))

    def _list(self, params: dict[str, Any]) -> Reply:
        """Events overlapping [timeMin, timeMax) (end after timeMin, start before timeMax)
        and having every ``privateExtendedProperty`` and ``sharedExtendedProperty`` given;
        cancelled ones only with ``showDeleted``. One page: the fake's calendars are small."""
        query, lists = params["query"], params["query_lists"]
        try:
            low = instant(query["timeMin"]) if "timeMin" in query else None
            high = instant(query["timeMax"]) if "timeMax" in query else None
        except ValueError:
            raise BadRequest("Bad Request", "badRequest") from None
        items = []
        for event in self._events.values():
            if event["status"] == "cancelled" and query.get("showDeleted") != "true":
                continue
            if low is not None and bound(event["end"], self.time_zone) <= low:
                continue
            if high is not None and bound(event["start"], self.time_zone) >= high:
                continue
            if not all(
                has_properties(event, lists.get(f"{scope}ExtendedProperty", []), scope)
                for scope in ("private", "shared")
            ):
                continue
            items.append(copy.deepcopy(event))
        return Reply(200, {"kind": "calendar#events", "items": items})

    def _get(self, params: dict[str, Any]) -> Reply:
        event = self._events.get(params["event_id"])
        if event is None:
            return google_error(404, "notFound", "Not Found")
        return Reply(200, copy.deepcopy(event))

    def _patch(self, params: dict[str, Any], *, replace: bool = False) -> Reply:
        event = self._events.get(params["event_id"])
        if event is None:
            return google_error(404, "notFound", "Not Found")
        updated = copy.deepcopy(event)
        write_event(
            updated, params["body"], params["query"], replace=replace, time_zone=self.time_zone
        )
        if (updated["start"], updated["end"]) != (event["start"], event["end"]):
            updated["sequence"] = event.get("sequence", 0) + 1
        updated["updated"] = _stamps()["updated"]
        self._events[event["id"]] = updated
        self._record("events.update" if replace else "events.patch", event["id"], params["query"])
        return Reply(200, copy.deepcopy(updated))

    def _update(self, params: dict[str, Any]) -> Reply:
        return self._patch(params, replace=True)

    def _delete(self, params: dict[str, Any]) -> Reply:
        event = self._events.get(params["event_id"])
        if event is None:
            return google_error(404, "notFound", "Not Found")
        if event["status"] == "cancelled":
            return google_error(410, "deleted", "Resource has been deleted")
        event["status"] = "cancelled"
        event["updated"] = _stamps()["updated"]
        self._record("events.delete", event["id"], params["query"])
        return Reply(204)

    def _record(self, op: str, event_id: str, query: dict[str, str]) -> None:
        self.writes.append(Write(op, event_id, query.get("sendUpdates", "none")))

    def _next_id(self) -> str:
        return f"fakeevent{len(self._events) + 1:05d}"


def _stamps() -> dict[str, str]:
    """``created`` and ``updated`` as Google writes them: UTC, to the millisecond. The fake's
    calls hold its lock, so its clock orders its writes as Google's does."""
    now = datetime.now(UTC)
    text = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    return {"created": text, "updated": text}


__all__ = [
    "CALENDAR_SCOPE",
    "FakeGoogleCalendar",
    "TokenGrant",
    "Write",
    "google_error",
    "make_service_account_key",
]
