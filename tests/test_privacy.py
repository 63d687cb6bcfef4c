"""Forgetting a contact by phone number (the lead API's DELETE /v1/contacts/{phone} and
`python -m privacy forget`), and the retention sweep, against real stores: the dialer's
queue, the embedded CRM and calendar, the CRM outbox, call files, HubSpot through the real
client against the fake portal, and Google Calendar through the real client against its fake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from calls.call_files import CallFiles
from calls.slots import BusinessHours, booking_event_id, candidate_slots
from config import RetentionSettings
from dialer.sql_store import SqlStore
from integrations.crm import CallRecord, DealRequest
from integrations.embedded import EmbeddedCalendar, EmbeddedCrm, EmbeddedStore
from integrations.google_calendar import GoogleCalendar, RetryPolicy
from integrations.hubspot_crm import HubSpotCrm
from integrations.outbox import Outbox
from integrations.scheduling import EventRequest
from privacy.forget import ContactEraser
from privacy.retention import sweep, sweep_forever
from tests.agent_harness import new_call
from tests.conftest import FIXED_NOW, Clock
from tests.dialer_support import ENGINES, engine_store, make_call, make_policy
from tests.fakes.google_calendar import FakeGoogleCalendar
from tests.fakes.hubspot import FakeHubSpot
from tests.leadapi_support import make_app, serving
from tests.pg_cluster import postgres_url  # noqa: F401  (the fixture)
from tests.worlds import make_services
from tools.calendar_tools import book_meeting

pytestmark = pytest.mark.integration

TARGET, NEIGHBOUR = "+14155550123", "+14155550124"
ROOT = Path(__file__).resolve().parent.parent


def lead(phone: str) -> dict[str, Any]:
    consent = {"given": True, "wording": "ok", "time": "2026-11-23T14:58:00Z"}
    return {"name": "Dana", "phone": phone, "email": email(phone), "consent": consent}


def email(phone: str) -> str:
    return f"dana{phone[-1]}@example.com"


def record(
    call_id: str, phone: str, *, ended: datetime = FIXED_NOW, contact: str = ""
) -> CallRecord:
    return CallRecord(
        call_id=call_id, contact_id=contact, direction="inbound", started_at=ended,
        ended_at=ended, from_number=phone, to_number="+14155550199", disposition="booked",
        summary="Booked a demo.", transcript=f"caller: my number is {phone}",
        qualification={"team_size": "12"},
    )  # fmt: skip


async def no_sleep(_seconds: float) -> None:
    return None


@dataclass
class Seeded:
    hubspot_target: str
    hubspot_neighbour: str
    embedded_target: str


async def seed_embedded(data_dir: Path) -> str:
    store = EmbeddedStore(data_dir / "embedded.sqlite3", now=lambda: FIXED_NOW)
    crm, calendar = EmbeddedCrm(store), EmbeddedCalendar(store)
    ids = []
    for phone, call_id in ((TARGET, "room-target"), (NEIGHBOUR, "room-neighbour")):
        contact = await crm.upsert_contact(
            contact_id=None, phone_e164=phone, properties={"email": email(phone)}
        )
        await crm.log_call(record(call_id, phone, contact=contact.id))
        await crm.create_deal(DealRequest(call_id=call_id, contact_id=contact.id, name="Deal"))
        start = FIXED_NOW + timedelta(days=1, hours=int(phone[-1]))
        await calendar.create_event(EventRequest(
            event_id=booking_event_id(booking_key=contact.id, start=start), start=start,
            end=start + timedelta(minutes=30), time_zone="UTC", summary="Intro", description="",
        ))  # fmt: skip
        ids.append(contact.id)
    store.close()
    return ids[0]


def seed_files_and_outbox(data_dir: Path, dialer_room: str) -> CallFiles:
    files = CallFiles(data_dir)
    for call_id, phone in (("room-target", TARGET), ("lost-call", TARGET),
                           ("room-neighbour", NEIGHBOUR), (dialer_room, None)):  # fmt: skip
        files.journal(call_id).parent.mkdir(parents=True, exist_ok=True)
        files.recording(call_id).parent.mkdir(parents=True, exist_ok=True)
        if phone is not None:  # the dialer's room has a recording only
            files.journal(call_id).write_text(json.dumps({"caller": phone}) + "\n")
        files.recording(call_id).write_bytes(b"OggS")
    outbox = Outbox(data_dir / "outbox.sqlite3")
    outbox.put(record("room-target", TARGET), None, error="crm down")
    outbox.put(record("room-neighbour", NEIGHBOUR), None, error="crm down")
    outbox.close()
    return files


async def seed_hubspot(crm: HubSpotCrm, hubspot: FakeHubSpot) -> tuple[str, str]:
    target = hubspot.add_contact(phone=TARGET, firstname="Dana")
    neighbour = hubspot.add_contact(phone=NEIGHBOUR, firstname="Sam")
    await crm.log_call(record("room-target", TARGET, contact=str(target)))
    await crm.log_call(record("room-neighbour", NEIGHBOUR, contact=str(neighbour)))
    return str(target), str(neighbour)


class World:
    def __init__(self, tmp_path: Path, store: SqlStore, hubspot: FakeHubSpot) -> None:
        self.data_dir = tmp_path
        self.store = store
        self.hubspot = hubspot
        self.crm = HubSpotCrm(hubspot.token, base_url=hubspot.base_url, timeout_s=2.0,
                              sleep=no_sleep, search_lag_s=0.0, max_attempts=2)  # fmt: skip
        self.eraser = ContactEraser(queue=store, data_dir=tmp_path, crm=self.crm)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    from dialer.sqlite_store import SqliteStore

    store = SqliteStore(tmp_path / "dialer.sqlite3")
    with FakeHubSpot() as hubspot:
        yield World(tmp_path, store, hubspot)
    store.close()


async def queue_calls(api: httpx.AsyncClient, store: SqlStore, clock: Clock) -> str:
    """A finished outbound call to TARGET (attempt, result webhook) and one waiting for the
    neighbour; returns the room the TARGET call's attempt used."""
    clock.value = FIXED_NOW + timedelta(hours=3)  # 10:00 in San Francisco: calling hours
    target_id = (await api.post("/v1/leads", json=lead(TARGET))).json()["id"]
    [claim] = store.claim(
        now=clock.value, limits=make_policy().limits(), plan=lambda c, k: clock.value,
        room_for=lambda c, n: f"r-{c}-{n}",
    )  # fmt: skip
    attempt = f"/v1/calls/{target_id}/attempts/1"
    await api.post(f"{attempt}/progress", json={"state": "answered"})
    outcome = {"status": "completed", "disposition": "booked", "summary": "Demo."}
    assert (await api.post(f"{attempt}/outcome", json=outcome)).json()["recorded"]
    assert (await api.post("/v1/leads", json=lead(NEIGHBOUR))).status_code == 202
    assert (await api.post("/v1/dnc", json={"phone": TARGET})).status_code == 201
    return claim.attempt.room


def client(base: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"})


async def test_deleting_a_contact_removes_it_everywhere_and_a_repeat_removes_nothing(
    world: World, clock: Clock
) -> None:
    app, keys = make_app(world.store, clock, webhook_urls=("http://127.0.0.1:9/hook",),
                         eraser=world.eraser)  # fmt: skip
    embedded_target = await seed_embedded(world.data_dir)
    hub_target, hub_neighbour = await seed_hubspot(world.crm, world.hubspot)
    with serving(app) as base:
        api = client(base, keys.create("ops").token)
        room = await queue_calls(api, world.store, clock)
        files = seed_files_and_outbox(world.data_dir, room)
        assert world.store.webhooks()  # the TARGET call's result webhook is queued

        anonymous = await httpx.AsyncClient(base_url=base).delete(f"/v1/contacts/{TARGET}")
        assert anonymous.status_code == 401
        bad = await api.delete("/v1/contacts/not-a-number")
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "phone"]
        forgotten = await_json(await api.delete("/v1/contacts/(415) 555-0123"))
        again = await_json(await api.delete(f"/v1/contacts/{TARGET}"))

    assert forgotten["phone"] == TARGET and forgotten["complete"] is True
    assert forgotten["removed"] == {
        "queued_calls": 1, "call_attempts": 1, "result_webhooks": 1, "idempotency_records": 0,
        "embedded_contacts": 1, "embedded_calls": 1, "embedded_deals": 1, "embedded_meetings": 1,
        "crm_outbox_records": 1, "call_files": 5, "crm_contacts": 1, "crm_calls": 1,
        "crm_notes": 1,
    }  # fmt: skip
    assert forgotten["kept"] and "do_not_call" in forgotten["kept"][0]
    assert set(again["removed"].values()) == {0} and again["complete"] is True
    # What is left is the neighbour's, untouched.
    assert queued_phones(world.data_dir) == [NEIGHBOUR]
    assert world.store.webhooks() == [] and world.store.is_dnc(TARGET)
    assert sorted(p.name for p in files.journals()) == ["room-neighbour.jsonl"]
    assert sorted(p.name for p in files.recordings()) == ["room-neighbour.ogg"]
    assert embedded_rows(world.data_dir, embedded_target) == {"contacts": 1, "calls": 1,
                                                               "deals": 1, "events": 1}  # fmt: skip
    outbox = Outbox(world.data_dir / "outbox.sqlite3")
    assert [r.from_number for r, _d, _u in outbox.pending()] == [NEIGHBOUR]
    outbox.close()
    assert (
        set(world.hubspot.contacts) == {hub_neighbour} and hub_target not in world.hubspot.contacts
    )
    assert [world.hubspot.associated_ids("notes", n, "contacts") for n in world.hubspot.notes] == [
        [hub_neighbour]
    ]
    assert len(world.hubspot.calls) == 1
    await world.crm.aclose()


def queued_phones(data_dir: Path) -> list[str]:
    import sqlite3

    db = sqlite3.connect(data_dir / "dialer.sqlite3")
    try:
        return [r[0] for r in db.execute("SELECT phone FROM dialer_calls")]
    finally:
        db.close()


def await_json(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def embedded_rows(data_dir: Path, forgotten_contact: str) -> dict[str, int]:
    """Rows left in the embedded store; none may belong to the forgotten contact."""
    import sqlite3

    db = sqlite3.connect(data_dir / "embedded.sqlite3")
    try:
        assert not db.execute("SELECT 1 FROM contacts WHERE id = ? OR phone = ?",
                              (forgotten_contact, TARGET)).fetchall()  # fmt: skip
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("contacts", "calls", "deals", "events")}  # fmt: skip
    finally:
        db.close()


async def test_a_crm_outage_cleans_our_stores_and_a_second_request_finishes(
    world: World, clock: Clock
) -> None:
    await seed_hubspot(world.crm, world.hubspot)
    world.hubspot.fail_next("contacts.gdpr_delete", status=503, times=10)
    app, keys = make_app(world.store, clock, eraser=world.eraser)
    with serving(app) as base:
        api = client(base, keys.create("ops").token)
        assert (await api.post("/v1/leads", json=lead(TARGET))).status_code == 202
        cut_short = await api.delete(f"/v1/contacts/{TARGET}")
        world.hubspot.clear_faults()
        finished = await_json(await api.delete(f"/v1/contacts/{TARGET}"))

    assert cut_short.status_code == 503
    body = cut_short.json()
    assert body["complete"] is False and "run this again" in body["crm_error"]
    assert body["removed"]["queued_calls"] == 1  # our own store was cleaned regardless
    assert finished["removed"]["crm_contacts"] == 1 and finished["removed"]["queued_calls"] == 0
    assert [r.properties.get("phone") for r in world.hubspot.contacts.values()] == [NEIGHBOUR]
    await world.crm.aclose()


# Google Calendar


@dataclass
class Google:
    fake: FakeGoogleCalendar
    calendar: GoogleCalendar
    eraser: ContactEraser
    crm_store: EmbeddedStore  # the calls' CRM, apart from the stores the eraser looks in


@pytest.fixture
def google(world: World) -> Iterator[Google]:
    with FakeGoogleCalendar(calendar_id="sales@example.com") as fake:
        key_file = world.data_dir / "service-account.json"
        key_file.write_text(json.dumps(fake.new_service_account_key("agent@example.iam")))
        calendar = GoogleCalendar.from_service_account(
            key_file, delegated_user="rep@example.com", calendar_id="sales@example.com",
            base_url=fake.base_url, timeout_s=2.0, retry=RetryPolicy(attempts=2, sleep=no_sleep),
        )  # fmt: skip
        eraser = ContactEraser(queue=world.store, data_dir=world.data_dir, calendar=calendar,
                               now=lambda: FIXED_NOW)  # fmt: skip
        crm_store = EmbeddedStore(world.data_dir / "calls-crm.sqlite3", now=lambda: FIXED_NOW)
        yield Google(fake, calendar, eraser, crm_store)
        crm_store.close()


async def book_on_google(google: Google, clock: Clock) -> dict[str, str]:
    """The target's upcoming meeting, booked by the real tool on a call from their number;
    a past one of theirs; the neighbour's; and one the agent never booked."""
    services = make_services(EmbeddedCrm(google.crm_store), google.calendar, clock)
    call = new_call(services, caller_phone=TARGET, call_id="room-target")
    slot = candidate_slots(BusinessHours(), now=FIXED_NOW,
                           days=[(FIXED_NOW + timedelta(days=2)).date()])[0]  # fmt: skip
    context = SimpleNamespace(userdata=call)
    booked = json.loads(
        await book_meeting(context, start=slot.start.isoformat(), email=email(TARGET))
    )
    assert booked["booked"] is True and call.state.booking is not None
    ids = {"upcoming": call.state.booking.id}
    others = (("past", TARGET, FIXED_NOW - timedelta(days=3)),
              ("neighbour", NEIGHBOUR, slot.start + timedelta(hours=2)))  # fmt: skip
    for name, phone, start in others:
        request = EventRequest(
            event_id=booking_event_id(booking_key=phone, start=start), start=start,
            end=start + timedelta(minutes=30), time_zone="UTC", summary="Intro", description="",
            attendee_email=email(phone), caller_phone=phone,
        )  # fmt: skip
        ids[name] = (await google.calendar.create_event(request)).id
    ids["lunch"] = google.fake.add_event(start=slot.start + timedelta(hours=4),
                                         end=slot.start + timedelta(hours=5))["id"]  # fmt: skip
    return ids


def live_events(fake: FakeGoogleCalendar) -> set[str]:
    return {e["id"] for e in fake.events.values() if e["status"] == "confirmed"}


async def test_the_meetings_booked_for_the_number_are_deleted_from_google_calendar(
    google: Google, clock: Clock
) -> None:
    ids = await book_on_google(google, clock)
    assert TARGET.removeprefix("+") not in json.dumps(google.fake.events)  # only a hash
    before = len(google.fake.writes)

    report = await google.eraser.forget(TARGET)
    again = await google.eraser.forget(TARGET)

    assert report.complete and report.removed["calendar_events"] == 2
    assert again.complete and again.removed["calendar_events"] == 0
    assert live_events(google.fake) == {ids["neighbour"], ids["lunch"]}
    # The upcoming meeting's guest is told it is off; nobody hears about the past one.
    deletes = {(w.event_id, w.send_updates) for w in google.fake.writes[before:]}
    assert deletes == {(ids["upcoming"], "all"), (ids["past"], "none")}
    await google.calendar.aclose()


async def test_a_google_outage_cleans_our_stores_and_a_second_request_finishes(
    world: World, google: Google, clock: Clock
) -> None:
    ids = await book_on_google(google, clock)
    google.fake.fail_next("events.delete", status=503, times=2)  # every attempt of the first
    app, keys = make_app(world.store, clock, eraser=google.eraser)
    with serving(app) as base:
        api = client(base, keys.create("ops").token)
        assert (await api.post("/v1/leads", json=lead(TARGET))).status_code == 202
        cut_short = await api.delete(f"/v1/contacts/{TARGET}")
        finished = await_json(await api.delete(f"/v1/contacts/{TARGET}"))

    assert cut_short.status_code == 503
    body = cut_short.json()
    assert body["complete"] is False and "run this again" in body["calendar_error"]
    assert body["removed"]["queued_calls"] == 1  # our own store was cleaned regardless
    assert finished["removed"]["calendar_events"] == 2 and finished["removed"]["queued_calls"] == 0
    assert live_events(google.fake) == {ids["neighbour"], ids["lunch"]}
    await google.calendar.aclose()


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    yield from engine_store(request, tmp_path)


def test_the_queue_forgets_one_number_on_both_engines(store: SqlStore, clock: Clock) -> None:
    for index, phone in enumerate((TARGET, TARGET, NEIGHBOUR)):
        call = make_call(call_id=f"call_{index}", phone=phone, now=clock.value)
        store.admit(call, idempotency=None, dedupe_since=None)

    gone = store.forget_phone(TARGET)

    assert (gone.calls, sorted(gone.call_ids)) == (2, ["call_0", "call_1"])
    assert store.call("call_0") is None and store.call("call_2") is not None
    assert store.forget_phone(TARGET).calls == 0


def test_the_cli_forgets_a_number_and_refuses_one_that_is_not(tmp_path: Path) -> None:
    files = CallFiles(tmp_path)
    files.recording("room-1").parent.mkdir(parents=True)
    files.journal("room-1").parent.mkdir(parents=True)
    files.journal("room-1").write_text(json.dumps({"caller": TARGET}))
    files.recording("room-1").write_bytes(b"OggS")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    env["DATA_DIR"] = str(tmp_path)

    def privacy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "privacy", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    done = privacy("forget", "+1 415 555 0123")
    refused = privacy("forget", "call me maybe")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["phone"], report["removed"]["call_files"]) == (TARGET, 2)
    assert list(files.journals()) == [] and list(files.recordings()) == []
    assert refused.returncode == 2 and "nothing was changed" in refused.stderr


# retention


def aged(path: Path, now: datetime, days: float) -> Path:
    stamp = (now - timedelta(days=days)).timestamp()
    os.utime(path, (stamp, stamp))
    return path


async def seed_ages(data_dir: Path, now: datetime) -> CallFiles:
    store = EmbeddedStore(data_dir / "embedded.sqlite3", now=lambda: now)
    crm = EmbeddedCrm(store)
    for call_id, days in (("old", 40), ("recent", 5)):
        await crm.log_call(record(call_id, TARGET, ended=now - timedelta(days=days), contact="c1"))
    store.close()
    outbox = Outbox(data_dir / "outbox.sqlite3")
    outbox.put(record("old", TARGET, ended=now - timedelta(days=40)), None, error="down")
    outbox.close()
    files = CallFiles(data_dir)
    files.journal("x").parent.mkdir(parents=True)
    files.recording("x").parent.mkdir(parents=True)
    for call_id, days in (("old", 40), ("mid", 10), ("recent", 5)):
        files.journal(call_id).write_text("{}")
        files.recording(call_id).write_bytes(b"OggS")
        aged(files.journal(call_id), now, days)
        aged(files.recording(call_id), now, days)
    return files


def transcripts(data_dir: Path) -> dict[str, str]:
    import sqlite3

    db = sqlite3.connect(data_dir / "embedded.sqlite3")
    try:
        return {
            c: json.loads(r)["transcript"]
            for c, r in db.execute("SELECT call_id, record FROM calls")
        }
    finally:
        db.close()


async def test_retention_blanks_old_transcripts_and_deletes_old_journals_and_recordings(
    tmp_path: Path,
) -> None:
    files = await seed_ages(tmp_path, FIXED_NOW)
    keep_all = RetentionSettings()
    limits = RetentionSettings(transcript_retention_days=30, recording_retention_days=7)

    untouched = await sweep(data_dir=tmp_path, retention=keep_all, now=FIXED_NOW)
    swept = await sweep(data_dir=tmp_path, retention=limits, now=FIXED_NOW)
    repeat = await sweep(data_dir=tmp_path, retention=limits, now=FIXED_NOW)

    assert (untouched.transcripts, untouched.journals, untouched.recordings) == (0, 0, 0)
    assert (swept.transcripts, swept.journals, swept.recordings) == (2, 1, 2)
    assert (repeat.transcripts, repeat.journals, repeat.recordings) == (0, 0, 0)
    assert transcripts(tmp_path) == {"old": "", "recent": f"caller: my number is {TARGET}"}
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    [(kept, _deal, _updates)] = outbox.pending()
    assert kept.transcript == "" and kept.summary == "Booked a demo."  # still delivered
    outbox.close()
    assert [p.stem for p in files.journals()] == ["mid", "recent"]
    assert [p.stem for p in files.recordings()] == ["recent"]


async def test_the_periodic_sweep_catches_what_ages_between_runs(tmp_path: Path) -> None:
    files = await seed_ages(tmp_path, FIXED_NOW)
    clock = Clock(FIXED_NOW)
    waits: list[float] = []

    async def next_sweep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise RuntimeError("stop")  # ends the loop after two sweeps
        clock.value += timedelta(days=3)  # "recent" (5 days) is now 8 days old

    limits = RetentionSettings(recording_retention_days=7, retention_sweep_minutes=30)
    with pytest.raises(RuntimeError, match="stop"):
        await sweep_forever(data_dir=tmp_path, retention=limits, now=clock, sleep=next_sweep)

    assert waits == [1800, 1800]
    assert list(files.recordings()) == []
    assert [p.stem for p in files.journals()] == ["mid", "old", "recent"]  # transcripts: kept
