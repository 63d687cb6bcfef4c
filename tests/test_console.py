"""The rep console over HTTP on the lead API's app (a real socket, the real store): invites and
passwords, sessions that expire, presence, the offer a rep answers, LiveKit tokens only for
the rooms a rep was offered, and after-call notes in the embedded CRM. The whole transfer in
a real browser is in tests/test_e2e_console.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from config import IntegrationSettings
from console.accounts import Accounts, hash_password, password_matches
from console.crm_notes import build_crm, rep_call_id
from console.livekit_access import LiveKitAccess
from console.routes import ConsoleDeps, mount_console
from dialer.sqlite_store import SqliteStore
from integrations.embedded import EmbeddedCrm, EmbeddedStore
from tests.conftest import Clock
from tests.leadapi_support import make_app, serving
from transfer import ConsoleOffers, Rep, Roster

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
LIVEKIT = LiveKitAccess("ws://127.0.0.1:7880", "devkey", "a-secret-of-at-least-32-characters!")
BRIEF = {
    "caller": "Dana Smith",
    "company": "Acme",
    "phone": "+14155550123",
    "reason": "Asked for sales",
    "facts": {"company_size": "50"},
    "promised": [],
    "transcript": "user: hi",
    "direction": "inbound",
}


class World:
    def __init__(self, tmp_path: Path, clock: Clock) -> None:
        self.clock = clock
        self.store = SqliteStore(tmp_path / "dialer.sqlite3")
        self.roster = Roster(self.store, now=clock)
        self.offers = ConsoleOffers(self.store, now=clock)
        self.accounts = Accounts(self.store, self.roster, now=clock)
        self.settings = IntegrationSettings(data_dir=tmp_path / "data")
        self.crm_store = EmbeddedStore(tmp_path / "data" / "embedded.sqlite3", now=clock)
        self.sam = self.roster.add(name="Sam Lee", email="sam@example.com")
        self.kim = self.roster.add(name="Kim Park", email="kim@example.com")

    def deps(self) -> ConsoleDeps:
        crm = EmbeddedCrm(self.crm_store, extra_contact_properties=frozenset())
        return ConsoleDeps(
            roster=self.roster,
            offers=self.offers,
            accounts=self.accounts,
            livekit=LIVEKIT,
            crm=lambda: crm,
            now=self.clock,
        )

    def offer(self, rep: Rep, *, room: str = "call-1", decide_s: float = 30) -> Any:
        return self.offers.open(
            rep_id=rep.id,
            call_id=f"job-{room}",
            caller_room=room,
            consult_room=f"{room}-consult-1",
            brief=BRIEF,
            decide_s=decide_s,
        )


@pytest.fixture
def world(tmp_path: Path, clock: Clock) -> Iterator[World]:
    w = World(tmp_path, clock)
    yield w
    w.crm_store.close()
    w.store.close()


@pytest.fixture
def base_url(world: World) -> Iterator[str]:
    app, _keys = make_app(world.store, world.clock)
    mount_console(app, world.deps())
    with serving(app) as url:
        yield url


@contextmanager
def signed_in(base_url: str, world: World, rep: Rep) -> Iterator[httpx.Client]:
    """A client holding ``rep``'s session, from an invite they used."""
    invite = world.accounts.invite(rep.email)
    with httpx.Client(base_url=base_url) as client:
        response = client.post(
            "/console/api/invites/use", json={"token": invite.token, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        yield client


def test_passwords_are_stored_as_salted_scrypt_hashes() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in stored
    assert stored != hash_password(PASSWORD)  # a salt of its own each time
    assert password_matches(PASSWORD, stored)
    assert not password_matches(PASSWORD + "!", stored)
    assert not password_matches(PASSWORD, "sha256$nonsense")


def test_an_invite_link_sets_the_password_once_and_signs_the_rep_in(
    base_url: str, world: World
) -> None:
    invite = world.accounts.invite("SAM@example.com")
    with httpx.Client(base_url=base_url) as client:
        check = client.post("/console/api/invites/check", json={"token": invite.token})
        assert check.json() == {"name": "Sam Lee", "email": "sam@example.com"}
        short = client.post(
            "/console/api/invites/use", json={"token": invite.token, "password": "short"}
        )
        assert short.status_code == 422 and "at least 10 characters" in short.json()["detail"]
        used = client.post(
            "/console/api/invites/use", json={"token": invite.token, "password": PASSWORD}
        )
        assert used.status_code == 200 and used.json()["email"] == "sam@example.com"
        cookie = next(c for c in client.cookies.jar if c.name == "console_session")
        assert cookie.path == "/console" and cookie.has_nonstandard_attr("HttpOnly")
        assert client.get("/console/api/me").json()["name"] == "Sam Lee"
        again = client.post(
            "/console/api/invites/use", json={"token": invite.token, "password": PASSWORD}
        )
        assert again.status_code == 410 and "already used" in again.json()["detail"]
    with world.store.transaction() as tx:
        (stored,) = tx.rows("SELECT password_hash FROM console_accounts")[0]
        tokens = [r[0] for r in tx.rows("SELECT token_hash FROM console_sessions")]
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    assert invite.token not in str(tokens)


def test_an_expired_or_replaced_invite_is_refused_with_its_reason(
    base_url: str, world: World
) -> None:
    old = world.accounts.invite("sam@example.com")
    new = world.accounts.invite("sam@example.com")  # a new link replaces the old one
    world.clock.value += timedelta(hours=73)
    with httpx.Client(base_url=base_url) as client:
        replaced = client.post("/console/api/invites/check", json={"token": old.token})
        expired = client.post("/console/api/invites/check", json={"token": new.token})
        made_up = client.post("/console/api/invites/check", json={"token": "x" * 40})
    assert replaced.status_code == 410 and "not valid" in replaced.json()["detail"]
    assert expired.status_code == 410 and "expired" in expired.json()["detail"]
    assert made_up.status_code == 410


def test_sign_in_refuses_a_wrong_password_and_an_unknown_email_alike(
    base_url: str, world: World
) -> None:
    with signed_in(base_url, world, world.sam):
        pass
    with httpx.Client(base_url=base_url) as client:
        wrong = client.post(
            "/console/api/sign-in",
            json={"email": "sam@example.com", "password": "not the password"},
        )
        nobody = client.post(
            "/console/api/sign-in", json={"email": "who@example.com", "password": PASSWORD}
        )
        not_set = client.post(
            "/console/api/sign-in", json={"email": "kim@example.com", "password": PASSWORD}
        )
        assert {wrong.status_code, nobody.status_code, not_set.status_code} == {401}
        assert wrong.json() == nobody.json() == {"detail": "wrong email or password"}
        assert client.get("/console/api/me").status_code == 401
        ok = client.post(
            "/console/api/sign-in", json={"email": "Sam@Example.com", "password": PASSWORD}
        )
        assert ok.status_code == 200 and client.get("/console/api/me").status_code == 200


def test_a_session_expires_and_signing_out_ends_it_and_takes_the_rep_offline(
    base_url: str, world: World
) -> None:
    with signed_in(base_url, world, world.sam) as client:
        assert client.put("/console/api/presence", json={"presence": "available"}).is_success
        world.clock.value += timedelta(hours=7, minutes=59)
        assert client.get("/console/api/me").status_code == 200
        world.clock.value += timedelta(minutes=2)
        expired = client.get("/console/api/me")
        assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    with signed_in(base_url, world, world.sam) as client:
        saved = dict(client.cookies)
        assert client.post("/console/api/sign-out").is_success
        assert world.roster.get(world.sam.id).presence == "offline"
    with httpx.Client(base_url=base_url, cookies=saved) as replay:
        gone = replay.get("/console/api/me")
    assert gone.status_code == 401 and "signed out" in gone.json()["detail"]


def test_the_switch_sets_presence_and_a_page_that_stops_checking_in_goes_away(
    base_url: str, world: World
) -> None:
    with signed_in(base_url, world, world.sam) as sam, signed_in(base_url, world, world.kim) as kim:
        bad = sam.put("/console/api/presence", json={"presence": "on_call"})
        assert bad.status_code == 422
        assert sam.put("/console/api/presence", json={"presence": "available"}).is_success
        assert kim.put("/console/api/presence", json={"presence": "available"}).is_success
        assert sam.get("/console/api/state").json()["me"]["presence"] == "available"
        assert world.offers.live(world.sam.id)
        world.clock.value += timedelta(seconds=20)  # Sam's page dropped; Kim's still asks
        assert not world.offers.live(world.sam.id)
        kim.get("/console/api/state")
        assert world.roster.get(world.sam.id).presence == "away"
        assert world.roster.get(world.kim.id).presence == "available"
        assert kim.post("/console/api/away").is_success  # the tab closed (a beacon)
        assert world.roster.get(world.kim.id).presence == "away"
        assert not world.offers.live(world.kim.id)
        world.roster.set_presence(world.sam.id, "available")
        assert world.roster.reserve(world.sam.id)  # offered a call: on it
        on_call = sam.put("/console/api/presence", json={"presence": "away"})
        assert on_call.status_code == 409 and "on a call" in on_call.json()["detail"]


def test_a_livekit_token_is_only_for_the_room_offered_to_that_rep(
    base_url: str, world: World
) -> None:
    with signed_in(base_url, world, world.sam) as sam, signed_in(base_url, world, world.kim) as kim:
        refused = sam.post("/console/api/livekit-token", json={"room": "call-1"})
        assert refused.status_code == 403  # nothing offered yet
        offer = world.offer(world.sam)
        consult = sam.post("/console/api/livekit-token", json={"room": offer.consult_room})
        assert consult.status_code == 200
        claims = _claims(consult.json()["token"])
        assert (
            claims["sub"] == f"rep-{world.sam.id}" and claims["video"]["room"] == offer.consult_room
        )
        assert claims["exp"] - claims["nbf"] <= 300  # short-lived
        assert claims["video"]["canPublishSources"] == ["microphone"]
        # While it rings: not the caller's room yet, never another rep's offer or room.
        assert sam.post("/console/api/livekit-token", json={"room": "call-1"}).status_code == 403
        assert (
            kim.post("/console/api/livekit-token", json={"room": offer.consult_room}).status_code
            == 403
        )
        assert kim.post(f"/console/api/offers/{offer.id}/accept").status_code == 403
        accepted = sam.post(f"/console/api/offers/{offer.id}/accept")
        assert accepted.status_code == 200
        join = accepted.json()["join"]
        claims = _claims(join["token"])
        assert join["room"] == "call-1" and claims["video"]["room"] == "call-1"
        assert claims["video"]["canPublish"] and claims["video"]["canSubscribe"]
        assert claims["sub"] == f"rep-{world.sam.id}"
        assert sam.post("/console/api/livekit-token", json={"room": "call-1"}).is_success
        assert sam.post("/console/api/livekit-token", json={"room": "call-2"}).status_code == 403
        assert kim.post("/console/api/livekit-token", json={"room": "call-1"}).status_code == 403
        world.offers.end_call(offer.id)  # the call is over: no way back in
        assert sam.post("/console/api/livekit-token", json={"room": "call-1"}).status_code == 403


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, LIVEKIT.api_secret, algorithms=["HS256"])
    return claims


def test_an_offer_is_answered_once_and_not_after_its_time(base_url: str, world: World) -> None:
    with signed_in(base_url, world, world.sam) as sam:
        first = world.offer(world.sam, decide_s=30)
        shown = sam.get("/console/api/state").json()["offer"]
        assert shown["id"] == first.id and shown["brief"]["caller"] == "Dana Smith"
        assert shown["seconds_left"] == 30.0 and shown["brief"]["transcript"] == "user: hi"
        assert sam.post(f"/console/api/offers/{first.id}/decline").is_success
        late = sam.post(f"/console/api/offers/{first.id}/accept")
        assert late.status_code == 409 and "already passed" in late.json()["detail"]
        assert world.offers.get(first.id).state == "declined"  # type: ignore[union-attr]

        second = world.offer(world.sam, room="call-2", decide_s=10)
        world.clock.value += timedelta(seconds=11)
        timed_out = sam.post(f"/console/api/offers/{second.id}/accept")
        assert timed_out.status_code == 409 and "ran out" in timed_out.json()["detail"]

        third = world.offer(world.sam, room="call-3")
        assert world.offers.close(third.id, "caller_hung_up", "hung up on hold")
        assert sam.get("/console/api/state").json()["offer"] is None  # the card goes
        why = sam.get(f"/console/api/offers/{third.id}").json()
        assert why["state"] == "caller_hung_up" and why["detail"] == "hung up on hold"
        hung_up = sam.post(f"/console/api/offers/{third.id}/accept")
        assert hung_up.status_code == 409 and "hung up" in hung_up.json()["detail"]


def test_after_call_notes_are_saved_once_and_written_to_the_crm_on_the_callers_contact(
    base_url: str, world: World
) -> None:
    with signed_in(base_url, world, world.sam) as sam:
        offer = world.offer(world.sam)
        too_early = sam.post(
            f"/console/api/offers/{offer.id}/notes", json={"notes": "x", "disposition": "follow_up"}
        )
        assert too_early.status_code == 409
        assert sam.post(f"/console/api/offers/{offer.id}/accept").is_success
        world.offers.end_call(offer.id)
        bad = sam.post(
            f"/console/api/offers/{offer.id}/notes", json={"notes": "x", "disposition": "sold-it"}
        )
        assert bad.status_code == 422
        saved = sam.post(
            f"/console/api/offers/{offer.id}/notes",
            json={"notes": " Wants a demo Tuesday. ", "disposition": "follow_up"},
        )
        assert saved.status_code == 200 and saved.json()["crm_written"] is True
        again = sam.post(
            f"/console/api/offers/{offer.id}/notes",
            json={"notes": "again", "disposition": "follow_up"},
        )
        assert again.status_code == 409 and "already saved" in again.json()["detail"]
        today = sam.get("/console/api/calls").json()["calls"]
        assert [(c["id"], c["state"], c["notes"], c["disposition"]) for c in today] == [
            (offer.id, "accepted", "Wants a demo Tuesday.", "follow_up")
        ]
        naive = sam.get("/console/api/calls", params={"since": "2026-01-01T00:00:00"})
        assert naive.status_code == 422
    crm = EmbeddedCrm(world.crm_store, extra_contact_properties=frozenset())
    (record,) = asyncio.run(crm.calls())
    assert record["call_id"] == rep_call_id(world.offers.get(offer.id))  # type: ignore[arg-type]
    assert "Sam Lee" in record["summary"] and "Wants a demo Tuesday." in record["summary"]
    assert record["disposition"] == "follow_up"
    contact = asyncio.run(crm.find_contact_by_phone("+14155550123"))
    assert contact is not None and record["contact_id"] == contact.id


def test_the_page_and_its_bundle_are_served(base_url: str) -> None:
    with httpx.Client(base_url=base_url) as client:
        page = client.get("/console/")
        assert (
            page.status_code == 200 and '<script type="module" src="/console/app.js">' in page.text
        )
        assert client.get("/console/other.js").status_code == 404
        bundle = client.get("/console/app.js")
    built = Path(__file__).resolve().parents[1] / "console" / "web" / "dist" / "app.js"
    if built.exists():
        assert bundle.status_code == 200 and "livekit" in bundle.text.lower()
    else:
        assert bundle.status_code == 503 and "make setup" in bundle.json()["detail"]


def test_the_invite_command_prints_a_link_for_a_rep_on_the_roster(tmp_path: Path) -> None:
    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "CONSOLE_PUBLIC_URL": "https://reps.example.com",
        "PATH": "/usr/bin:/bin",
    }
    add = [
        sys.executable,
        "-m",
        "transfer",
        "reps",
        "add",
        "--name",
        "Sam Lee",
        "--email",
        "sam@example.com",
    ]
    subprocess.run(add, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60)
    done = subprocess.run(
        [sys.executable, "-m", "console", "invite", "sam@example.com"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip()
    assert link.startswith("https://reps.example.com/console/#invite=")
    store = SqliteStore(tmp_path / "data" / "dialer.sqlite3")
    try:
        accounts = Accounts(store, Roster(store))
        assert accounts.invited(link.split("#invite=")[1]).email == "sam@example.com"
    finally:
        store.close()
    unknown = subprocess.run(
        [sys.executable, "-m", "console", "invite", "who@example.com"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2 and "no rep who@example.com" in unknown.stderr


def test_the_crm_is_the_embedded_one_without_a_hubspot_token(tmp_path: Path, clock: Clock) -> None:
    crm = build_crm(IntegrationSettings(data_dir=tmp_path), now=clock)
    assert isinstance(crm, EmbeddedCrm)
