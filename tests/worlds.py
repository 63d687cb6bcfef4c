"""The systems a test call runs against, and a uniform view of what ended up in them.

``EmbeddedWorld`` runs on the SQLite CRM and calendar; ``VendorWorld`` runs the real HubSpot and
Google clients against the local fake servers. Behaviour tests run on both.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from calls.business import load_business_profile
from calls.call import Services
from calls.qualification import load_criteria
from calls.slots import BusinessHours
from integrations.crm import Crm
from integrations.scheduling import Calendar


@dataclass(frozen=True)
class SeenEvent:
    id: str
    start: datetime
    attendees: tuple[str, ...]
    status: str
    meet_link: str | None


class World(Protocol):
    services: Services

    def seed_contact(self, *, phone: str, **properties: str) -> str: ...
    def seed_busy(self, start: datetime, end: datetime) -> None: ...
    def contacts(self) -> list[dict[str, Any]]: ...
    def logged_calls(self) -> list[dict[str, Any]]: ...
    def notes(self) -> list[str]: ...
    def deals(self) -> list[dict[str, Any]]: ...
    def events(self) -> list[SeenEvent]: ...


def make_services(
    crm: Crm, calendar: Calendar, now: Callable[[], datetime], **overrides: Any
) -> Services:
    return Services(
        crm=crm,
        calendar=calendar,
        hours=BusinessHours(),
        criteria=load_criteria(),
        business=load_business_profile(),
        now=now,
        tool_timeout_s=overrides.pop("tool_timeout_s", 10.0),
        **overrides,
    )


class EmbeddedWorld:
    def __init__(self, path: Path, services: Services) -> None:
        self.path = path
        self.services = services

    def _rows(self, sql: str) -> list[sqlite3.Row]:
        db = sqlite3.connect(self.path)
        db.row_factory = sqlite3.Row
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def seed_contact(self, *, phone: str, **properties: str) -> str:
        db = sqlite3.connect(self.path, isolation_level=None)
        email = properties.pop("email", None)
        cid = f"seed-{phone}"
        db.execute(
            "INSERT INTO contacts VALUES (?, ?, ?, ?, '', '')",
            (cid, phone, email, json.dumps(properties)),
        )
        db.close()
        return cid

    def seed_busy(self, start: datetime, end: datetime) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute(
            "INSERT INTO events VALUES (?, ?, ?, 'UTC', 'busy', '', '[]', 'confirmed', NULL)",
            (f"busy{start.timestamp():.0f}", start.isoformat(), end.isoformat()),
        )
        db.close()

    def contacts(self) -> list[dict[str, Any]]:
        return [
            {"id": r["id"], "phone": r["phone"], "email": r["email"], **json.loads(r["properties"])}
            for r in self._rows("SELECT * FROM contacts")
        ]

    def logged_calls(self) -> list[dict[str, Any]]:
        return [
            {**json.loads(r["record"]), "contact_id": r["contact_id"]}
            for r in self._rows("SELECT * FROM calls")
        ]

    def notes(self) -> list[str]:
        return [json.loads(r["record"])["summary"] for r in self._rows("SELECT * FROM calls")]

    def deals(self) -> list[dict[str, Any]]:
        return [json.loads(r["record"]) for r in self._rows("SELECT * FROM deals")]

    def events(self) -> list[SeenEvent]:
        return [
            SeenEvent(
                id=r["id"],
                start=datetime.fromisoformat(r["start"]),
                attendees=tuple(json.loads(r["attendees"])),
                status=r["status"],
                meet_link=r["meet_link"],
            )
            for r in self._rows(
                "SELECT * FROM events WHERE summary != 'busy' AND status = 'confirmed'"
            )
        ]


class VendorWorld:
    """The real HubSpot and Google clients against the local fake servers."""

    def __init__(self, hubspot: Any, google: Any, services: Services) -> None:
        self.hubspot = hubspot
        self.google = google
        self.services = services

    def seed_contact(self, *, phone: str, **properties: str) -> str:
        return str(self.hubspot.add_contact(phone=phone, **properties))

    def seed_busy(self, start: datetime, end: datetime) -> None:
        self.google.add_event(start=start, end=end, summary="busy")

    def _contact_of(self, object_type: str, object_id: str) -> str | None:
        ids = self.hubspot.associated_ids(object_type, object_id, "contacts")
        return ids[0] if ids else None

    def contacts(self) -> list[dict[str, Any]]:
        return [{"id": cid, **r.properties} for cid, r in self.hubspot.contacts.items()]

    def logged_calls(self) -> list[dict[str, Any]]:
        notes = {self._contact_of("notes", nid): r for nid, r in self.hubspot.notes.items()}
        calls = []
        for cid, record in self.hubspot.calls.items():
            body = record.properties.get("hs_call_body", "")
            contact = self._contact_of("calls", cid)
            note = notes.get(contact)
            calls.append(
                {
                    "contact_id": contact,
                    "disposition": _between(body, "Outcome: ", "<"),
                    "transcript": note.properties["hs_note_body"] if note else "",
                    "direction": record.properties.get("hs_call_direction"),
                }
            )
        return calls

    def notes(self) -> list[str]:
        return [r.properties["hs_note_body"] for r in self.hubspot.notes.values()]

    def deals(self) -> list[dict[str, Any]]:
        return [
            {"contact_id": self._contact_of("deals", did), **r.properties}
            for did, r in self.hubspot.deals.items()
        ]

    def events(self) -> list[SeenEvent]:
        return [
            SeenEvent(
                id=e["id"],
                start=datetime.fromisoformat(e["start"]["dateTime"]),
                attendees=tuple(a["email"] for a in e.get("attendees", [])),
                status=e["status"],
                meet_link=e.get("hangoutLink"),
            )
            for e in self.google.events.values()
            if e.get("summary") != "busy" and e["status"] == "confirmed"
        ]


def _between(text: str, start: str, end: str) -> str | None:
    if start not in text:
        return None
    return text.rsplit(start, 1)[1].split(end, 1)[0]
