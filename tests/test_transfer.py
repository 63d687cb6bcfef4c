"""The warm transfer's parts that need no LiveKit: the roster in the dialer's store (SQLite and
PostgreSQL), the routing rules, the brief a rep hears, the hold music, and the test for
MoveParticipant support. The whole transfer runs over SIP in tests/test_e2e_transfer.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from livekit import api

from calls.qualification import Qualification, load_criteria
from calls.state import CallState, Lead
from dialer.sql_store import SqlStore
from integrations.crm import Contact
from tests.dialer_support import ENGINES, engine_store
from tests.pg_cluster import postgres_url  # noqa: F401  (the fixture)
from transfer import Roster, RosterError, WorkingHours, load_routing
from transfer.bridge import _unsupported
from transfer.brief import brief_for
from transfer.hold import RATE, synthesise
from transfer.routing import RoutingError, parse_routing

pytestmark = pytest.mark.integration

MONDAY_NOON_NY = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    yield from engine_store(request, tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY_NOON_NY)


@pytest.fixture
def roster(store: SqlStore, clock: Clock) -> Roster:
    return Roster(store, now=clock)


def test_a_rep_is_stored_normalised_and_offline_until_they_say_otherwise(roster: Roster) -> None:
    rep = roster.add(
        name=" Sam Lee ", email="Sam@Example.com", phone="(415) 555-0142",
        territories=["North-America", ""], segments=["Enterprise"],
        hours="mon-fri 09:00-17:30 America/New_York",
    )  # fmt: skip
    (stored,) = roster.all()
    assert stored == rep
    assert (rep.name, rep.email, rep.phone) == ("Sam Lee", "sam@example.com", "+14155550142")
    assert (rep.territories, rep.segments) == (("north-america",), ("enterprise",))
    assert rep.presence == "offline" and not rep.can_take_calls(MONDAY_NOON_NY)
    assert roster.find("SAM@example.com").id == rep.id


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "", "email": "a@b.co"}, "needs a name"),
        ({"name": "A", "email": "not-an-email"}, "not an email"),
        ({"name": "A", "email": "a@b.co", "phone": "12"}, "phone '12'"),
        ({"name": "A", "email": "a@b.co", "hours": "weekdays"}, "want 'mon-fri"),
        ({"name": "A", "email": "a@b.co", "hours": "mon-fri 17:00-09:00 UTC"}, "ends before"),
        ({"name": "A", "email": "a@b.co", "hours": "mon-fri 09:00-17:00 Mars/Base"}, "time zone"),
        ({"name": "A", "email": "a@b.co", "hours": "mon-fry 09:00-17:00 UTC"}, "mon..sun"),
    ],
)
def test_bad_rep_details_are_refused_with_the_reason(
    roster: Roster, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(RosterError, match=message):
        roster.add(**fields)
    assert roster.all() == []


def test_the_same_email_twice_is_refused(roster: Roster) -> None:
    roster.add(name="Sam", email="sam@example.com")
    with pytest.raises(RosterError, match="already exists"):
        roster.add(name="Sam again", email="SAM@example.com")


def test_working_hours_are_the_reps_own_local_time() -> None:
    hours = WorkingHours.parse("mon-fri 09:00-17:30 America/New_York")
    assert hours.covers(MONDAY_NOON_NY)  # noon in New York
    assert not hours.covers(MONDAY_NOON_NY + timedelta(hours=6))  # 18:00 there
    assert not hours.covers(MONDAY_NOON_NY - timedelta(days=2))  # Saturday
    assert WorkingHours.parse("fri-mon 22:00-23:00 UTC").days == ("fri", "sat", "sun", "mon")


def test_a_rep_is_offered_one_call_at_a_time_and_idle_longest_goes_first(
    roster: Roster, clock: Clock
) -> None:
    first = roster.add(name="Ann", email="ann@example.com")
    clock.advance(60)
    second = roster.add(name="Bob", email="bob@example.com")
    for rep in (first, second):
        roster.set_presence(rep.id, "available")
    routing = load_routing()
    assert [r.name for r in routing.candidates({}, roster.all(), clock())] == ["Ann", "Bob"]

    assert roster.reserve(first.id)
    assert not roster.reserve(first.id)  # a second call cannot take her meanwhile
    assert [r.name for r in routing.candidates({}, roster.all(), clock())] == ["Bob"]
    clock.advance(60)
    roster.release(first.id, took_call=True)  # her call ended: she is idle since now
    assert [r.name for r in routing.candidates({}, roster.all(), clock())] == ["Bob", "Ann"]

    assert roster.reserve(second.id)
    roster.set_presence(second.id, "away")  # he stepped away while on the call
    roster.release(second.id, took_call=True)
    assert roster.get(second.id).presence == "away"  # the end of a call does not undo that


def test_presence_must_be_one_of_the_four(roster: Roster) -> None:
    rep = roster.add(name="Ann", email="ann@example.com")
    with pytest.raises(RosterError, match="presence 'busy'"):
        roster.set_presence(rep.id, "busy")


RULES = {
    "ring_seconds": 15,
    "max_reps": 3,
    "groups": [
        {"name": "enterprise", "when": {"company_size": {"gte": 200}},
         "reps": {"segment": "enterprise"}, "fallback": ["na", "everyone"]},
        {"name": "na", "when": {"region": {"in": ["US", "CA"]}},
         "reps": {"territory": "na"}, "fallback": ["everyone"]},
        {"name": "everyone", "reps": "all"},
    ],
}  # fmt: skip


def test_the_first_matching_group_decides_then_its_fallbacks_in_order(
    roster: Roster, clock: Clock
) -> None:
    reps = {
        "ent": roster.add(name="Eve", email="eve@example.com", segments=["enterprise"]),
        "na": roster.add(name="Nat", email="nat@example.com", territories=["na"]),
        "emea": roster.add(name="Emil", email="emil@example.com", territories=["emea"]),
        "na2": roster.add(name="Noor", email="noor@example.com", territories=["na"]),
    }
    for rep in reps.values():
        roster.set_presence(rep.id, "available")
    routing = parse_routing(RULES, field_keys=["company_size"])
    names = lambda facts: [r.name for r in routing.candidates(facts, roster.all(), clock())]  # noqa: E731

    assert names({"company_size": 500, "region": "US"}) == ["Eve", "Nat", "Noor"]  # max 3
    # equally idle: the roster's order (by name) breaks the tie
    assert names({"company_size": 20, "region": "CA"}) == ["Nat", "Noor", "Emil"]
    assert names({"company_size": 20, "region": "DE"}) == ["Emil", "Eve", "Nat"]
    roster.set_presence(reps["ent"].id, "offline")
    assert names({"company_size": 500})[:1] == ["Nat"]  # nobody in enterprise: fall back


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"groups": []}, "no groups"),
        ({"groups": [{"name": "a", "fallback": ["b"]}]}, "unknown group 'b'"),
        ({"groups": [{"name": "a"}, {"name": "a"}]}, "unique"),
        ({"groups": [{"name": "a", "when": {"team": {"gte": 1}}}]}, "unknown field 'team'"),
        ({"groups": [{"name": "a", "when": {"region": {"like": "U%"}}}]}, "must use"),
        ({"groups": [{"name": "a", "reps": {"team": "x"}}]}, "reps is 'all'"),
        ({"groups": [{"name": "a"}], "max_reps": 0}, "max_reps"),
        ({"groups": [{"name": "a", "cold_transfer": "555-0100"}]}, "cold_transfer must be"),
    ],
)
def test_a_broken_routing_file_is_refused_with_the_reason(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(RoutingError, match=message):
        parse_routing({**RULES, **change}, field_keys=["company_size"])


def test_a_group_may_send_the_caller_on_cold_to_a_number_or_sip_uri(tmp_path: Path) -> None:
    rules = {"groups": [
        {"name": "support", "when": {"company_size": {"lt": 10}},
         "cold_transfer": "+1 415 555 0100"},
        {"name": "partners", "when": {"region": {"in": ["GB"]}},
         "cold_transfer": "sip:desk@pbx.example.com"},
        {"name": "everyone", "reps": "all"},
    ]}  # fmt: skip
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(rules))
    routing = load_routing(path, field_keys=["company_size"])
    assert routing.cold_target({"company_size": 4}) == "tel:+14155550100"  # as REFER takes it
    assert routing.cold_target({"company_size": 50, "region": "GB"}) == "sip:desk@pbx.example.com"
    assert routing.cold_target({"company_size": 50, "region": "US"}) is None  # warm, to reps
    path.write_text("groups: [unclosed")
    with pytest.raises(RoutingError, match="routing file"):
        load_routing(path)


def test_the_shipped_routing_rules_name_only_criteria_fields() -> None:
    criteria = load_criteria()
    routing = load_routing(field_keys=[c.key for c in criteria.fields])
    assert [g.name for g in routing.groups][-1] == "everyone"  # a catch-all comes last


def test_the_brief_tells_the_rep_who_why_the_answers_and_what_was_promised() -> None:
    criteria = load_criteria()
    state = CallState(
        call_id="c1", direction="inbound", started_at=MONDAY_NOON_NY,
        qualification=Qualification(criteria),
        caller_phone="+14155550123",
    )  # fmt: skip
    state.set_contact(Contact(id="1", firstname="Dana", lastname="Smith", company="Acme"))
    state.qualification.record({"company_size": 60, "timeline": "this_month"})
    state.follow_up = "email the pricing sheet"
    brief = brief_for(state, reason="60 sellers, buying this month", transcript="Caller: hi")
    spoken = brief.spoken()
    assert spoken.startswith("Dana Smith from Acme. 60 sellers, buying this month.")
    assert "company size: 60; timeline: this_month." in spoken
    assert "Already promised: email the pricing sheet." in spoken
    assert brief.written()["facts"] == {"company_size": "60", "timeline": "this_month"}
    assert brief.first_name == "Dana"

    outbound = CallState(
        call_id="c2", direction="outbound", started_at=MONDAY_NOON_NY,
        qualification=state.qualification, lead=Lead(name="Lee Park", company="Initech"),
    )  # fmt: skip
    assert (
        brief_for(outbound, reason="", transcript="")
        .spoken()
        .startswith("Lee Park from Initech. They asked to speak with someone from sales.")
    )


def test_hold_music_is_never_silent_and_loops_without_a_gap() -> None:
    music = synthesise()
    assert music.size == 8 * RATE
    frames = music[: music.size // 480 * 480].reshape(-1, 480).astype(float)  # 20 ms frames
    rms_dbfs = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) / 32768 + 1e-12)
    assert rms_dbfs.min() > -40  # no silent stretch anywhere in the loop
    assert abs(int(music[0])) < 2000 and abs(int(music[-1])) < 6000  # no click at the seam


@pytest.mark.parametrize(
    ("status", "code", "message", "unsupported"),
    [
        (500, "unknown", "not implemented", True),  # livekit-server v1.13.5
        (501, "unimplemented", "", True),
        (404, "not_found", "participant not found", False),
        (403, "permission_denied", "no permission", False),
    ],
)
def test_only_a_not_implemented_answer_sends_the_transfer_to_the_bridge(
    status: int, code: str, message: str, unsupported: bool
) -> None:
    error = api.TwirpError(code, message, status=status)
    assert _unsupported(error) is unsupported


def test_the_reps_cli_adds_lists_and_refuses_bad_input(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "transfer", "reps", *args], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    added = run("add", "--name", "Sam Lee", "--email", "sam@example.com", "--phone",
                "+14155550142", "--territory", "north-america", "--available")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "available" in added.stdout and "+14155550142" in added.stdout
    refused = run("add", "--name", "X", "--email", "x@example.com", "--phone", "12")
    assert refused.returncode == 2 and "phone '12'" in refused.stderr
    assert run("presence", "sam@example.com", "away").returncode == 0
    listed = run("list").stdout.splitlines()
    assert len(listed) == 1 and "away" in listed[0]
    assert run("remove", "nobody@example.com").returncode == 2
