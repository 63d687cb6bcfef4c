"""A small stateful fake of Google Calendar v3 and Google's OAuth2 token endpoint.

The real google-api-python-client talks to it over a real socket, so tests exercise the
same request building, auth and error parsing as production. Field names and error
bodies follow Google's JSON. One calendar (``calendar_id``) lives here; others are unknown.

    with FakeGoogleCalendar() as gc:
        key = gc.new_service_account_key("agent@project.iam.gserviceaccount.com")
        ...  # point the client at gc.base_url; inspect gc.events afterwards
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth signs for Google's audience whatever token_uri the key names; Google accepts it.
_TOKEN_AUDIENCES = (
    "https://oauth2.googleapis.com/token",
    "https://accounts.google.com/o/oauth2/token",
)
_EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")
_EVENTS_PATH = re.compile(r"/calendar/v3/calendars/([^/]+)/events(?:/([^/]+))?")
_EVENT_OPS = {
    "GET": "events.get",
    "PATCH": "events.patch",
    "PUT": "events.update",
    "DELETE": "events.delete",
}
_ERROR_REASONS = {429: "rateLimitExceeded", 500: "backendError", 503: "backendError"}


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """An access token the token endpoint issued, and to whom."""

    token: str
    client_email: str
    subject: str | None  # the delegated user (JWT ``sub``), None without delegation
    scopes: tuple[str, ...]


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


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: dict[str, Any] | None = None


def google_error(status: int, reason: str, message: str) -> _Reply:
    error = {"domain": "global", "reason": reason, "message": message}
    return _Reply(status, {"error": {"errors": [error], "code": status, "message": message}})


class _BadRequest(Exception):
    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reply = google_error(400, reason, message)


def make_service_account_key(
    *, client_email: str, token_uri: str, private_key: rsa.RSAPrivateKey | None = None
) -> tuple[dict[str, str], rsa.RSAPublicKey]:
    """A real service-account key file's content and its public half.

    A fresh RSA key is generated unless ``private_key`` is given (generating costs ~0.1 s).
    """
    key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "fake-project",
        "private_key_id": hashlib.sha256(pem.encode()).hexdigest()[:40],
        "private_key": pem,
        "client_email": client_email,
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }
    return info, key.public_key()


class FakeGoogleCalendar:
    """Google Calendar on 127.0.0.1, with fault injection and state inspection."""

    def __init__(self, *, calendar_id: str = "sales@example.com", time_zone: str = "UTC") -> None:
        self.calendar_id = calendar_id
        self.time_zone = ZoneInfo(time_zone)  # where all-day events begin and end
        self.token_grants: list[TokenGrant] = []
        self.writes: list[Write] = []
        self._events: dict[str, dict[str, Any]] = {}
        self._accounts: dict[str, tuple[rsa.RSAPublicKey, frozenset[str] | None]] = {}
        self._tokens: dict[str, TokenGrant] = {}
        self._faults: list[_Fault] = []
        self._freebusy_errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: _Server | None = None

    # lifecycle

    def __enter__(self) -> FakeGoogleCalendar:
        server = _Server(self)
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
        allowed = None if delegation_allowed_for is None else frozenset(delegation_allowed_for)
        self._accounts[client_email] = (public_key, allowed)

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
                "start": _seed_time(start),
                "end": _seed_time(end),
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

    def _handle(self, op: str, method: str, params: dict[str, Any]) -> tuple[_Reply, bool]:
        """Serve one request; the flag says whether to hang instead of answering."""
        with self._lock:
            fault = next((f for f in self._faults if f.matches(op, method)), None)
            if fault is not None:
                fault.remaining -= 1
            if fault is not None and fault.status is not None:
                reason = _ERROR_REASONS.get(fault.status, "injected")
                return google_error(fault.status, reason, "Injected failure."), False
            if fault is not None and not fault.apply:
                return _Reply(500), True
            try:
                reply = self._serve(op, params)
            except _BadRequest as err:
                reply = err.reply
            return reply, fault is not None

    def _serve(self, op: str, params: dict[str, Any]) -> _Reply:
        if op == "token":
            return self._issue_token(params["form"])
        denied = self._check_bearer(params["authorization"])
        if denied is not None:
            return denied
        if op == "freebusy.query":
            return self._freebusy(params["body"])
        if params["calendar_id"] != self.calendar_id:
            return google_error(404, "notFound", "Not Found")
        handlers = {
            "events.insert": self._insert,
            "events.get": self._get,
            "events.patch": self._patch,
            "events.update": self._update,
            "events.delete": self._delete,
        }
        return handlers[op](params)

    def _check_bearer(self, authorization: str) -> _Reply | None:
        grant = self._tokens.get(authorization.removeprefix("Bearer "))
        if grant is None:
            return google_error(401, "authError", "Invalid Credentials")
        if CALENDAR_SCOPE not in grant.scopes:
            return google_error(403, "insufficientPermissions", "Insufficient Permission")
        return None

    def _issue_token(self, form: dict[str, str]) -> _Reply:
        if form.get("grant_type") != JWT_BEARER_GRANT:
            return _Reply(400, {"error": "unsupported_grant_type"})
        try:
            claims = self._verified_claims(form.get("assertion", ""))
        except ValueError as err:
            return _Reply(400, {"error": "invalid_grant", "error_description": str(err)})
        _, allowed = self._accounts[claims["iss"]]
        subject = claims.get("sub")
        if subject is not None and allowed is not None and subject not in allowed:
            description = "Client is unauthorized to retrieve access tokens using this method."
            return _Reply(401, {"error": "unauthorized_client", "error_description": description})
        grant = TokenGrant(
            token=f"ya29.fake-{len(self._tokens) + 1}",
            client_email=claims["iss"],
            subject=subject,
            scopes=tuple(str(claims.get("scope", "")).split()),
        )
        self._tokens[grant.token] = grant
        self.token_grants.append(grant)
        return _Reply(
            200, {"access_token": grant.token, "expires_in": 3600, "token_type": "Bearer"}
        )

    def _verified_claims(self, assertion: str) -> dict[str, Any]:
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header, claims = _b64json(header_b64), _b64json(claims_b64)
            signature = _b64decode(signature_b64)
        except (ValueError, json.JSONDecodeError):
            raise ValueError("Invalid JWT.") from None
        account = self._accounts.get(claims.get("iss", ""))
        if header.get("alg") != "RS256" or account is None:
            raise ValueError("Invalid JWT Signature.")
        try:
            account[0].verify(
                signature,
                f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise ValueError("Invalid JWT Signature.") from None
        if (
            claims.get("aud") not in (*_TOKEN_AUDIENCES, self.token_uri)
            or float(claims.get("exp", 0)) < time.time()
        ):
            raise ValueError("Invalid JWT: Token must be a short-lived token.")
        return claims

    def _freebusy(self, body: dict[str, Any]) -> _Reply:
        try:
            window = (_instant(body["timeMin"]), _instant(body["timeMax"]))
        except (KeyError, ValueError):
            raise _BadRequest("Bad Request", "badRequest") from None
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
                calendars[calendar_id] = {"busy": list(self._busy(*window))}
        return _Reply(
            200,
            {
                "kind": "calendar#freeBusy",
                "timeMin": body["timeMin"],
                "timeMax": body["timeMax"],
                "calendars": calendars,
            },
        )

    def _busy(self, start: datetime, end: datetime) -> Iterator[dict[str, str]]:
        spans = sorted(
            self._span(event)
            for event in self._events.values()
            if event["status"] != "cancelled" and event.get("transparency") != "transparent"
        )
        merged: list[list[datetime]] = []
        for span_start, span_end in spans:
            span_start, span_end = max(span_start, start), min(span_end, end)
            if span_start >= span_end:
                continue
            if merged and span_start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], span_end)
            else:
                merged.append([span_start, span_end])
        for span_start, span_end in merged:
            yield {"start": _rfc3339_utc(span_start), "end": _rfc3339_utc(span_end)}

    def _span(self, event: dict[str, Any]) -> tuple[datetime, datetime]:
        return self._bound(event["start"]), self._bound(event["end"])

    def _bound(self, value: dict[str, str]) -> datetime:
        if "date" in value:
            midnight = datetime.combine(date.fromisoformat(value["date"]), datetime.min.time())
            return midnight.replace(tzinfo=self.time_zone)
        return _instant(value["dateTime"])

    def _insert(self, params: dict[str, Any]) -> _Reply:
        body = params["body"]
        event_id = body.get("id") or self._next_id()
        if not _EVENT_ID.fullmatch(event_id):
            raise _BadRequest("Invalid resource id value.")
        if event_id in self._events:
            return google_error(409, "duplicate", "The requested identifier already exists.")
        resource = {
            "kind": "calendar#event",
            "id": event_id,
            "iCalUID": f"{event_id}@google.com",
            "sequence": 0,
            "organizer": {"email": self.calendar_id, "self": True},
        }
        self._write(resource, body, params["query"], replace=True)
        self._events[event_id] = resource
        self._record("events.insert", event_id, params["query"])
        return _Reply(200, copy.deepcopy(resource))

    def _get(self, params: dict[str, Any]) -> _Reply:
        event = self._events.get(params["event_id"])
        if event is None:
            return google_error(404, "notFound", "Not Found")
        return _Reply(200, copy.deepcopy(event))

    def _patch(self, params: dict[str, Any], *, replace: bool = False) -> _Reply:
        event = self._events.get(params["event_id"])
        if event is None:
            return google_error(404, "notFound", "Not Found")
        updated = copy.deepcopy(event)
        self._write(updated, params["body"], params["query"], replace=replace)
        if (updated["start"], updated["end"]) != (event["start"], event["end"]):
            updated["sequence"] = event.get("sequence", 0) + 1
        self._events[event["id"]] = updated
        self._record("events.update" if replace else "events.patch", event["id"], params["query"])
        return _Reply(200, copy.deepcopy(updated))

    def _update(self, params: dict[str, Any]) -> _Reply:
        return self._patch(params, replace=True)

    def _delete(self, params: dict[str, Any]) -> _Reply:
        event = self._events.get(params["event_id"])
        if event is None:
            return google_error(404, "notFound", "Not Found")
        if event["status"] == "cancelled":
            return google_error(410, "deleted", "Resource has been deleted")
        event["status"] = "cancelled"
        self._record("events.delete", event["id"], params["query"])
        return _Reply(204)

    def _write(
        self,
        resource: dict[str, Any],
        body: dict[str, Any],
        query: dict[str, str],
        *,
        replace: bool,
    ) -> None:
        """Apply an insert/update (``replace``) or patch body to ``resource``."""
        if replace:
            for key in ("summary", "description", "attendees", "transparency"):
                resource.pop(key, None)
            resource["status"] = "confirmed"
            if "start" not in body or "end" not in body:
                raise _BadRequest("Missing time.", "required")
        for key in ("summary", "description", "transparency", "status"):
            if key in body:
                resource[key] = body[key]
        if resource["status"] not in ("confirmed", "tentative", "cancelled"):
            raise _BadRequest("Invalid value for: status", "invalid")
        for key in ("start", "end"):
            if key in body:
                resource[key] = _normalised_time(body[key])
        if self._bound(resource["end"]) <= self._bound(resource["start"]):
            raise _BadRequest("The specified time range is empty.", "timeRangeEmpty")
        if "attendees" in body:
            resource["attendees"] = [_attendee(a) for a in body["attendees"]]
        if query.get("conferenceDataVersion") == "1":
            self._write_conference(resource, body.get("conferenceData"), replace=replace)

    def _write_conference(
        self, resource: dict[str, Any], data: dict[str, Any] | None, *, replace: bool
    ) -> None:
        create = (data or {}).get("createRequest")
        if create is None:
            if replace:
                resource.pop("conferenceData", None)
                resource.pop("hangoutLink", None)
            return
        if create.get("conferenceSolutionKey", {}).get("type") != "hangoutsMeet":
            raise _BadRequest("Invalid conference type value.", "invalid")
        code = _meet_code(create["requestId"])
        resource["hangoutLink"] = f"https://meet.google.com/{code}"
        resource["conferenceData"] = {
            "createRequest": {**create, "status": {"statusCode": "success"}},
            "entryPoints": [
                {
                    "entryPointType": "video",
                    "uri": resource["hangoutLink"],
                    "label": f"meet.google.com/{code}",
                }
            ],
            "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
            "conferenceId": code,
        }

    def _record(self, op: str, event_id: str, query: dict[str, str]) -> None:
        self.writes.append(Write(op, event_id, query.get("sendUpdates", "none")))

    def _next_id(self) -> str:
        return f"fakeevent{len(self._events) + 1:05d}"


class _Server(ThreadingHTTPServer):
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
        assert isinstance(self.server, _Server)
        fake = self.server.fake
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        route = _route(method, url.path)
        if route is None:
            self._send(google_error(404, "notFound", "Not Found"))
            return
        op, params = route
        params["query"] = {k: v[-1] for k, v in parse_qs(url.query).items()}
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

    def _send(self, reply: _Reply) -> None:
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
        op = "events.insert" if method == "POST" else None
    else:
        op = _EVENT_OPS.get(method)
    if op is None:
        return None
    return op, {"calendar_id": calendar_id, "event_id": event_id}


def _normalised_time(value: dict[str, str]) -> dict[str, str]:
    """Store a start/end the way Google returns it: the instant written in its time zone."""
    if "date" in value:
        return {"date": date.fromisoformat(value["date"]).isoformat()}
    try:
        moment = datetime.fromisoformat(value["dateTime"])
        zone = ZoneInfo(value["timeZone"]) if "timeZone" in value else None
    except (KeyError, ValueError, ZoneInfoNotFoundError):
        raise _BadRequest("Invalid start or end time.", "invalid") from None
    if moment.tzinfo is None and zone is None:
        raise _BadRequest("Missing time zone definition for start time.", "required")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if zone is None:
        return {"dateTime": moment.isoformat()}
    return {"dateTime": moment.astimezone(zone).isoformat(), "timeZone": value["timeZone"]}


def _seed_time(value: datetime | date) -> dict[str, str]:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("seeded datetimes must be timezone-aware")
        return {"dateTime": value.isoformat()}
    return {"date": value.isoformat()}


def _attendee(value: dict[str, Any]) -> dict[str, Any]:
    if not value.get("email"):
        raise _BadRequest("Missing attendee email.", "required")
    return {**value, "responseStatus": value.get("responseStatus", "needsAction")}


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("time without offset")
    return moment


def _rfc3339_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meet_code(request_id: str) -> str:
    """A stable Meet code per conference request, shaped like ``abc-defg-hij``."""
    digest = hashlib.sha256(request_id.encode()).digest()
    letters = "".join(chr(ord("a") + b % 26) for b in digest[:10])
    return f"{letters[:3]}-{letters[3:7]}-{letters[7:]}"


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64json(text: str) -> dict[str, Any]:
    value = json.loads(_b64decode(text))
    if not isinstance(value, dict):
        raise ValueError("JWT part is not an object")
    return value


__all__ = [
    "CALENDAR_SCOPE",
    "FakeGoogleCalendar",
    "TokenGrant",
    "Write",
    "google_error",
    "make_service_account_key",
]
