"""The fake HubSpot portal's state: its objects, their associations, and the rules on writes.

Unknown or read-only properties are rejected, inline associations on create have HubSpot's
type ids checked, contact emails are unique (409 ``Contact already exists. Existing ID: N``),
and every write becomes visible to search only ``search_lag_s`` later.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.hubspot_http import BadRequest, Reply
from tests.fakes.hubspot_search import check_search_limits, group_matches, national_digits

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


class CrmObjects:
    """Every object and association of the portal. Not locked: callers hold the fake's lock."""

    def __init__(
        self, *, search_lag_s: float, default_region: str, clock: Callable[[], float]
    ) -> None:
        self.search_lag_s = search_lag_s
        self.default_region = default_region
        self._clock = clock
        self._objects: dict[str, dict[str, _Stored]] = {t: {} for t in _WRITABLE}
        self._custom: dict[str, set[str]] = {t: set() for t in _WRITABLE}
        self.associations: list[Association] = []
        self.blocklisted_emails: set[str] = set()
        self._ids = itertools.count(1001)

    def define_property(self, object_type: str, name: str) -> None:
        """What a portal admin does in Settings -> Properties: a custom property."""
        self._custom[object_type].add(name)

    def has_type(self, object_type: str) -> bool:
        return object_type in self._objects

    def records(self, object_type: str) -> dict[str, Record]:
        return {i: s.snapshot() for i, s in self._objects[object_type].items()}

    # operations, each answering as HubSpot does or raising ``BadRequest``

    def create(self, object_type: str, body: dict[str, Any]) -> Reply:
        properties = self._validated(object_type, body.get("properties"), creating=True)
        links = [self._association(object_type, a) for a in body.get("associations") or []]
        if object_type == "contacts":
            self._check_unique_email(properties.get("email"), own_id=None)
        stored = self.add(object_type, properties, visible_at=None)
        for to_type, to_id, type_id in links:
            self.associations.append(Association(object_type, stored.id, to_type, to_id, type_id))
        return Reply(201, _present(stored, list(properties) + _default_read(object_type)))

    def update(self, object_type: str, object_id: str, body: dict[str, Any]) -> Reply:
        stored = self._find(object_type, object_id)
        properties = self._validated(object_type, body.get("properties"), creating=False)
        if object_type == "contacts" and "email" in properties:
            self._check_unique_email(properties["email"], own_id=object_id)
        stored.properties.update(properties)
        self._touch(stored)
        return Reply(200, _present(stored, list(properties) + _default_read(object_type)))

    def get(self, object_type: str, object_id: str, query: dict[str, list[str]]) -> Reply:
        stored = self._find(object_type, object_id)
        names = [n for v in query.get("properties", []) for n in v.split(",") if n]
        return Reply(200, _present(stored, names or _default_read(object_type)))

    def search(self, object_type: str, body: dict[str, Any]) -> Reply:
        groups = body.get("filterGroups") or []
        check_search_limits(groups, int(body.get("limit") or 10))
        now = self._clock()
        hits = []
        for stored in sorted(self._objects[object_type].values(), key=lambda s: int(s.id)):
            visible = [props for at, props in stored.versions if at <= now]
            if visible and (not groups or any(group_matches(g, visible[-1]) for g in groups)):
                hits.append((stored, visible[-1]))
        start, limit = int(body.get("after") or 0), int(body.get("limit") or 10)
        names = body.get("properties") or _default_read(object_type)
        page = [_present(s, names, props) for s, props in hits[start : start + limit]]
        result: dict[str, Any] = {"total": len(hits), "results": page}
        if start + limit < len(hits):
            result["paging"] = {"next": {"after": str(start + limit)}}
        return Reply(200, result)

    def archive(self, object_type: str, object_id: str) -> Reply:
        """DELETE: HubSpot archives the object (restorable for 90 days); here it goes."""
        self._remove(object_type, self._find(object_type, object_id).id)
        return Reply(204)

    def gdpr_delete(self, body: dict[str, Any]) -> Reply:
        """The contact and its associations go; the objects it was associated with stay.
        By email (``idProperty: email``) an unknown address is blocklisted: 204 too."""
        key, by = str(body["objectId"]), body.get("idProperty")
        contacts = self._objects["contacts"]
        if by == "email":
            found = [c.id for c in contacts.values() if c.properties.get("email") == key]
            self.blocklisted_emails.update(() if found else (key,))
        else:
            found = [self._find("contacts", key).id]
        for contact_id in found:
            self._remove("contacts", contact_id)
        return Reply(204)

    def associated(self, from_type: str, from_id: str, to_type: str) -> Reply:
        """v4 associations of one object to a type, read from either end."""
        results = []
        for a in self.associations:
            if (a.from_type, a.from_id, a.to_type) == (from_type, from_id, to_type):
                results.append((a.to_id, a.type_id))
            elif (a.to_type, a.to_id, a.from_type) == (from_type, from_id, to_type):
                results.append((a.from_id, a.type_id))
        return Reply(200, {"results": [
            {"toObjectId": int(other), "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}]}
            for other, type_id in results
        ]})  # fmt: skip

    def _remove(self, object_type: str, object_id: str) -> None:
        del self._objects[object_type][object_id]
        self.associations = [
            a for a in self.associations
            if (a.from_type, a.from_id) != (object_type, object_id)
            and (a.to_type, a.to_id) != (object_type, object_id)
        ]  # fmt: skip

    # storage

    def add(
        self, object_type: str, properties: dict[str, str], *, visible_at: float | None
    ) -> _Stored:
        """Store a new object; search sees it from ``visible_at`` (None: after the lag)."""
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
                digits = national_digits(props.get(source, ""), self.default_region)
                props[f"hs_searchable_calculated_{target}_number"] = digits
        when = self._clock() + self.search_lag_s if visible_at is None else visible_at
        stored.versions.append((when, dict(props)))

    def _find(self, object_type: str, object_id: str) -> _Stored:
        stored = self._objects[object_type].get(object_id)
        if stored is None:
            raise BadRequest(404, "resource not found", "OBJECT_NOT_FOUND")
        return stored

    # rules on writes

    def _validated(self, object_type: str, properties: Any, *, creating: bool) -> dict[str, str]:
        if not isinstance(properties, dict):
            raise BadRequest(400, "properties must be an object", "VALIDATION_ERROR")
        allowed = _WRITABLE[object_type] | self._custom[object_type]
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
            raise BadRequest(400, message, "VALIDATION_ERROR")
        if to_id not in self._objects["contacts"]:
            raise BadRequest(400, f"No contact with id {to_id} exists", "VALIDATION_ERROR")
        return "contacts", to_id, type_ids.pop()

    def _check_unique_email(self, email: str | None, *, own_id: str | None) -> None:
        if not email:
            return
        for other in self._objects["contacts"].values():
            if other.id != own_id and other.properties.get("email", "").lower() == email.lower():
                raise BadRequest(409, _EMAIL_CONFLICT.format(id=other.id), "CONFLICT")


def _present(
    stored: _Stored, names: list[str], properties: dict[str, str] | None = None
) -> dict[str, Any]:
    """``stored`` as a ``SimplePublicObject`` with ``names``, from ``properties`` if given."""
    props = stored.properties if properties is None else properties
    always = ["hs_object_id", _created_prop(stored.object_type), _modified_prop(stored.object_type)]
    return {
        "id": stored.id,
        "properties": {n: props.get(n) or None for n in dict.fromkeys(names + always)},
        "createdAt": _iso(stored.created_at),
        "updatedAt": _iso(stored.updated_at),
        "archived": False,
    }


def _invalid(name: str, error: str, message: str) -> None:
    detail = [{"isValid": False, "message": message, "error": error, "name": name}]
    raise BadRequest(
        400, f"Property values were not valid: {json.dumps(detail)}", "VALIDATION_ERROR"
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
