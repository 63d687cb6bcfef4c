"""GoogleCalendar with the real google-api-python-client against the fake Google server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2.credentials import Credentials as UserCredentials

from integrations.errors import InvalidRequest, OutcomeUnknown, TemporarilyUnavailable
from integrations.google_calendar import GoogleCalendar, RetryPolicy
from integrations.google_events import claim_order
from integrations.scheduling import (
    Calendar,
    CalendarError,
    EventConflict,
    EventRequest,
    Interval,
    SlotTaken,
)
from tests.fakes.google_calendar import CALENDAR_SCOPE, FakeGoogleCalendar, TokenGrant, Write
from tests.fakes.google_events import MEET_LINK_PREFIX

pytestmark = pytest.mark.integration

CALENDAR_ID = "sales@example.com"
SERVICE_ACCOUNT = "agent@fake-project.iam.gserviceaccount.com"
REP = "rep@example.com"
NY = ZoneInfo("America/New_York")
EVENT_ID = "b00k1ng0001"
# Inserted quietly, then the attendee invited once the slot is ours.
BOOKED = [Write("events.insert", EVENT_ID, "none"), Write("events.patch", EVENT_ID, "all")]


def booking(
    *, start: datetime = datetime(2026, 3, 2, 10, tzinfo=NY), minutes: int = 30, **changes: Any
) -> EventRequest:
    # Arithmetic on zoned datetimes is wall-clock arithmetic; durations are real time.
    end = (start.astimezone(UTC) + timedelta(minutes=minutes)).astimezone(start.tzinfo)
    request = EventRequest(
        event_id=EVENT_ID,
        start=start,
        end=end,
        time_zone="America/New_York",
        summary="Intro call with Acme",
        description="Booked by the phone agent.",
        attendee_email="dana@acme.example",
        attendee_name="Dana Reyes",
    )
    return replace(request, **changes)


@pytest.fixture(scope="session")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def fake() -> Iterator[FakeGoogleCalendar]:
    with FakeGoogleCalendar(calendar_id=CALENDAR_ID) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def key_file(fake: FakeGoogleCalendar, tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "service-account.json"
    key = fake.new_service_account_key(
        SERVICE_ACCOUNT, delegation_allowed_for=[REP], private_key=signing_key
    )
    path.write_text(json.dumps(key))
    return path


def connect(
    fake: FakeGoogleCalendar,
    key_file: Path,
    sleeps: list[float],
    *,
    attempts: int = 4,
    timeout_s: float = 0.5,
    calendar_id: str = CALENDAR_ID,
) -> GoogleCalendar:
    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return GoogleCalendar.from_service_account(
        key_file,
        delegated_user=REP,
        calendar_id=calendar_id,
        base_url=fake.base_url,
        timeout_s=timeout_s,
        retry=RetryPolicy(attempts=attempts, first_delay_s=0.5, sleep=record_sleep),
    )


@pytest.fixture
async def calendar(
    fake: FakeGoogleCalendar, key_file: Path, sleeps: list[float]
) -> AsyncIterator[GoogleCalendar]:
    client = connect(fake, key_file, sleeps)
    yield client
    await client.aclose()


def test_google_calendar_is_a_calendar(calendar: GoogleCalendar) -> None:
    conforming: Calendar = calendar  # mypy checks the protocol; the name is checked here
    assert conforming.name == "google"


# auth


async def test_service_account_acts_as_the_delegated_user(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    await calendar.create_event(booking())

    assert fake.token_grants == [
        TokenGrant(
            token="ya29.fake-1",
            client_email=SERVICE_ACCOUNT,
            subject=REP,
            scopes=(CALENDAR_SCOPE,),
        )
    ]
    assert EVENT_ID in fake.events


async def test_refused_delegation_is_a_credentials_error(
    fake: FakeGoogleCalendar, tmp_path: Path, sleeps: list[float]
) -> None:
    key = fake.new_service_account_key(SERVICE_ACCOUNT, delegation_allowed_for=["boss@x.io"])
    key_path = tmp_path / "key.json"
    key_path.write_text(json.dumps(key))
    client = connect(fake, key_path, sleeps)

    with pytest.raises(CalendarError, match="delegation"):
        await client.busy(datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))
    assert fake.token_grants == []
    await client.aclose()


async def test_forged_token_is_rejected(fake: FakeGoogleCalendar, sleeps: list[float]) -> None:
    client = GoogleCalendar.from_credentials(
        UserCredentials(token="forged"), calendar_id=CALENDAR_ID, base_url=fake.base_url
    )

    with pytest.raises(CalendarError):
        await client.create_event(booking())
    assert fake.events == {}
    await client.aclose()


async def test_forbidden_is_a_credentials_error(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    fake.fail_next("events.insert", status=403)

    with pytest.raises(CalendarError, match="delegation"):
        await calendar.create_event(booking())
    assert fake.events == {}


# free/busy


async def test_busy_counts_timed_and_all_day_events(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    fake.add_event(
        start=datetime(2026, 3, 2, 10, tzinfo=NY), end=datetime(2026, 3, 2, 11, tzinfo=NY)
    )
    fake.add_event(start=date(2026, 3, 3), end=date(2026, 3, 4))
    fake.add_event(
        start=datetime(2026, 3, 2, 13, tzinfo=NY),
        end=datetime(2026, 3, 2, 14, tzinfo=NY),
        status="cancelled",
    )
    fake.add_event(
        start=datetime(2026, 3, 2, 15, tzinfo=NY),
        end=datetime(2026, 3, 2, 16, tzinfo=NY),
        transparency="transparent",
    )

    busy = await calendar.busy(datetime(2026, 3, 2, tzinfo=NY), datetime(2026, 3, 5, tzinfo=NY))

    assert busy == [
        Interval(datetime(2026, 3, 2, 10, tzinfo=NY), datetime(2026, 3, 2, 11, tzinfo=NY)),
        Interval(datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC)),
    ]
    assert all(interval.start.tzinfo is not None for interval in busy)


async def test_freebusy_errors_are_never_read_as_free(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    fake.freebusy_error(CALENDAR_ID)

    with pytest.raises(CalendarError):
        await calendar.busy(datetime(2026, 3, 2, tzinfo=NY), datetime(2026, 3, 3, tzinfo=NY))


async def test_unknown_calendar_is_an_error(
    fake: FakeGoogleCalendar, key_file: Path, sleeps: list[float]
) -> None:
    client = connect(fake, key_file, sleeps, calendar_id="nobody@example.com")

    with pytest.raises(CalendarError):
        await client.busy(datetime(2026, 3, 2, tzinfo=NY), datetime(2026, 3, 3, tzinfo=NY))
    await client.aclose()


async def test_rate_limit_past_the_retry_budget_is_temporarily_unavailable(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar, sleeps: list[float]
) -> None:
    fake.fail_next("freebusy.query", status=429, times=10)

    with pytest.raises(TemporarilyUnavailable):
        await calendar.busy(datetime(2026, 3, 2, tzinfo=NY), datetime(2026, 3, 3, tzinfo=NY))
    assert sleeps == [0.5, 1.0, 2.0]


# create


async def test_create_invites_the_attendee_with_a_meet_link(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    event = await calendar.create_event(booking())

    stored = fake.events[EVENT_ID]
    assert stored["attendees"] == [
        {"email": "dana@acme.example", "displayName": "Dana Reyes", "responseStatus": "needsAction"}
    ]
    assert stored["conferenceData"]["createRequest"]["requestId"] == EVENT_ID
    assert stored["hangoutLink"].startswith(MEET_LINK_PREFIX)
    assert (stored["summary"], stored["status"]) == ("Intro call with Acme", "confirmed")
    assert fake.writes == BOOKED
    assert event.meet_link == stored["hangoutLink"]
    assert event.attendee_emails == ("dana@acme.example",)
    assert (event.start, event.end) == (booking().start, booking().end)


async def test_create_without_meet_link(calendar: GoogleCalendar, fake: FakeGoogleCalendar) -> None:
    event = await calendar.create_event(booking(with_meet_link=False, attendee_email=None))

    stored = fake.events[EVENT_ID]
    assert "conferenceData" not in stored and "hangoutLink" not in stored
    assert "attendees" not in stored
    assert event.meet_link is None


async def test_same_request_twice_books_once(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    first = await calendar.create_event(booking())
    second = await calendar.create_event(booking())

    assert first == second
    assert list(fake.events) == [EVENT_ID]
    assert fake.writes == BOOKED


async def test_same_id_at_another_time_is_a_conflict(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    await calendar.create_event(booking())
    before = fake.events

    with pytest.raises(EventConflict):
        await calendar.create_event(booking(start=datetime(2026, 3, 2, 14, tzinfo=NY)))
    assert fake.events == before


# two bookings, one slot: the one created first keeps it


async def test_a_booking_into_an_event_created_before_it_is_withdrawn_uninvited(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    rival = fake.add_event(
        start=booking().start + timedelta(minutes=15), end=booking().end + timedelta(minutes=15)
    )

    with pytest.raises(SlotTaken):
        await calendar.create_event(booking())

    assert fake.events[EVENT_ID]["status"] == "cancelled"
    assert fake.events[rival["id"]]["status"] == "confirmed"
    assert fake.writes == [
        Write("events.insert", EVENT_ID, "none"),
        Write("events.delete", EVENT_ID, "none"),
    ]


async def test_a_retried_booking_keeps_the_slot_from_an_event_created_after_it(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    await calendar.create_event(booking())
    later = fake.add_event(start=booking().start, end=booking().end)

    event = await calendar.create_event(booking())  # the same booking, retried

    assert event.status == "confirmed"
    assert fake.events[EVENT_ID]["status"] == "confirmed"
    assert fake.events[later["id"]]["status"] == "confirmed"  # not ours to withdraw
    assert fake.writes == BOOKED


async def test_free_and_cancelled_events_do_not_take_the_slot(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    fake.add_event(start=booking().start, end=booking().end, transparency="transparent")
    fake.add_event(start=booking().start, end=booking().end, status="cancelled")
    fake.add_event(start=booking().end, end=booking().end + timedelta(minutes=30))  # touching

    event = await calendar.create_event(booking())

    assert event.status == "confirmed" and fake.writes == BOOKED


async def test_an_unreadable_slot_withdraws_the_booking(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    fake.fail_next("events.list", status=503, times=10)

    with pytest.raises(TemporarilyUnavailable):
        await calendar.create_event(booking())

    assert fake.events[EVENT_ID]["status"] == "cancelled"
    assert all(w.send_updates == "none" for w in fake.writes)


def test_the_first_created_wins_and_a_shared_millisecond_goes_to_the_lower_id() -> None:
    def listed(event_id: str, created: str) -> dict[str, Any]:
        return {"id": event_id, "created": created}

    early, late = "2026-03-02T15:00:00.120Z", "2026-03-02T15:00:00.121Z"
    assert claim_order(listed("zzzzz", early)) < claim_order(listed("aaaaa", late))
    assert claim_order(listed("aaaaa", late)) < claim_order(listed("bbbbb", late))
    assert claim_order({"id": "ccccc"}) < claim_order(listed("aaaaa", early))  # unreadable


async def test_insert_answered_503_is_retried(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar, sleeps: list[float]
) -> None:
    fake.fail_next("events.insert", status=503)

    event = await calendar.create_event(booking())

    assert list(fake.events) == [EVENT_ID]
    assert event.id == EVENT_ID
    assert sleeps == [0.5]


async def test_insert_that_timed_out_is_retried_without_a_duplicate(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    fake.hang_next("events.insert")  # the event is written, the answer never comes

    event = await calendar.create_event(booking())

    assert list(fake.events) == [EVENT_ID]
    assert fake.writes == BOOKED
    assert event.meet_link == fake.events[EVENT_ID]["hangoutLink"]


async def test_insert_never_answered_is_outcome_unknown_and_recoverable(
    fake: FakeGoogleCalendar, key_file: Path, sleeps: list[float]
) -> None:
    client = connect(fake, key_file, sleeps, attempts=2, timeout_s=0.3)
    fake.hang_next("events.insert", times=2)

    with pytest.raises(OutcomeUnknown):
        await client.create_event(booking())
    event = await client.create_event(booking())  # the same id settles it

    assert list(fake.events) == [EVENT_ID]
    assert event.status == "confirmed"
    await client.aclose()


async def test_insert_rate_limited_throughout_wrote_nothing(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    fake.fail_next("events.insert", status=429, times=10)

    with pytest.raises(TemporarilyUnavailable) as raised:
        await calendar.create_event(booking())
    assert not isinstance(raised.value, OutcomeUnknown)
    assert fake.events == {}


@pytest.mark.parametrize("event_id", ["abc", "Booking0001", "wxyz12345", "b00k-1ng01", "a" * 1025])
async def test_bad_event_id_is_rejected_before_any_request(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar, event_id: str
) -> None:
    with pytest.raises(InvalidRequest):
        await calendar.create_event(booking(event_id=event_id))
    assert fake.token_grants == []
    assert fake.events == {}


async def test_dst_change_keeps_the_wall_clock_and_the_instant(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    # 2026-11-01 01:30 happens twice in New York; this is the second one, in EST.
    second_half_past_one = datetime(2026, 11, 1, 1, 30, tzinfo=NY, fold=1)

    event = await calendar.create_event(booking(start=second_half_past_one, minutes=60))

    stored = fake.events[EVENT_ID]
    assert stored["start"] == {
        "dateTime": "2026-11-01T01:30:00-05:00",
        "timeZone": "America/New_York",
    }
    assert stored["end"] == {
        "dateTime": "2026-11-01T02:30:00-05:00",
        "timeZone": "America/New_York",
    }
    assert event.start == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    assert event.end - event.start == timedelta(hours=1)


async def test_event_spanning_the_dst_change_lasts_its_real_length(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    start = datetime(2026, 11, 1, 0, 30, tzinfo=NY)  # EDT; ends after clocks go back

    await calendar.create_event(booking(start=start, minutes=120))

    stored = fake.events[EVENT_ID]
    assert stored["start"]["dateTime"] == "2026-11-01T00:30:00-04:00"
    assert stored["end"]["dateTime"] == "2026-11-01T01:30:00-05:00"


# read, cancel, move


async def test_get_event(calendar: GoogleCalendar, fake: FakeGoogleCalendar) -> None:
    created = await calendar.create_event(booking())

    assert await calendar.get_event(EVENT_ID) == created
    assert await calendar.get_event("n0such1d") is None


async def test_cancel_twice_is_fine(calendar: GoogleCalendar, fake: FakeGoogleCalendar) -> None:
    await calendar.create_event(booking())

    await calendar.cancel_event(EVENT_ID)
    await calendar.cancel_event(EVENT_ID)

    assert fake.events[EVENT_ID]["status"] == "cancelled"
    assert fake.writes[len(BOOKED) :] == [Write("events.delete", EVENT_ID, "all")]
    cancelled = await calendar.get_event(EVENT_ID)
    assert cancelled is not None and cancelled.status == "cancelled"


async def test_cancel_unknown_event_is_invalid(calendar: GoogleCalendar) -> None:
    with pytest.raises(InvalidRequest):
        await calendar.cancel_event("n0such1d")


async def test_rebooking_a_cancelled_booking_reopens_it(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    await calendar.create_event(booking())
    await calendar.cancel_event(EVENT_ID)
    later = datetime(2026, 3, 3, 9, tzinfo=NY)

    event = await calendar.create_event(booking(start=later))

    stored = fake.events[EVENT_ID]
    assert stored["status"] == "confirmed"
    assert stored["start"]["dateTime"] == "2026-03-03T09:00:00-05:00"
    assert (event.status, event.start) == ("confirmed", later)
    assert event.meet_link is not None
    assert len(fake.events) == 1


async def test_move_event(calendar: GoogleCalendar, fake: FakeGoogleCalendar) -> None:
    await calendar.create_event(booking())
    start = datetime(2026, 3, 4, 16, tzinfo=UTC)

    moved = await calendar.move_event(EVENT_ID, start=start, end=start + timedelta(minutes=45))

    stored = fake.events[EVENT_ID]
    assert stored["start"] == {
        "dateTime": "2026-03-04T11:00:00-05:00",
        "timeZone": "America/New_York",
    }
    assert stored["end"]["dateTime"] == "2026-03-04T11:45:00-05:00"
    # The new time is claimed by a silent hold, then the move alone is announced.
    hold = fake.writes[len(BOOKED)].event_id
    assert fake.writes[len(BOOKED) :] == [
        Write("events.insert", hold, "none"),
        Write("events.patch", EVENT_ID, "all"),
        Write("events.delete", hold, "none"),
    ]
    assert fake.events[hold]["status"] == "cancelled"
    assert (moved.start, moved.end) == (start, start + timedelta(minutes=45))
    assert moved.meet_link == stored["hangoutLink"]


async def test_a_move_into_a_slot_taken_after_the_check_leaves_the_meeting_alone(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    start = datetime(2026, 3, 4, 16, tzinfo=UTC)
    fake.add_event(start=start, end=start + timedelta(minutes=30), event_id="taken1")
    before = await calendar.create_event(booking())

    with pytest.raises(SlotTaken):
        await calendar.move_event(EVENT_ID, start=start, end=start + timedelta(minutes=30))

    assert await calendar.get_event(EVENT_ID) == before
    hold = fake.writes[len(BOOKED)].event_id
    assert fake.writes[len(BOOKED) :] == [
        Write("events.insert", hold, "none"),
        Write("events.delete", hold, "none"),
    ]


async def test_move_retries_a_server_error(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar, sleeps: list[float]
) -> None:
    await calendar.create_event(booking())
    fake.fail_next("events.patch", status=500, times=2)
    start = datetime(2026, 3, 4, 16, tzinfo=UTC)

    await calendar.move_event(EVENT_ID, start=start, end=start + timedelta(minutes=30))

    assert fake.events[EVENT_ID]["start"]["dateTime"] == "2026-03-04T11:00:00-05:00"
    assert sleeps == [0.5, 1.0]


async def test_move_of_a_cancelled_event_is_invalid(
    calendar: GoogleCalendar, fake: FakeGoogleCalendar
) -> None:
    await calendar.create_event(booking())
    await calendar.cancel_event(EVENT_ID)
    start = datetime(2026, 3, 4, 16, tzinfo=UTC)

    with pytest.raises(InvalidRequest):
        await calendar.move_event(EVENT_ID, start=start, end=start + timedelta(minutes=30))
    assert fake.events[EVENT_ID]["status"] == "cancelled"
