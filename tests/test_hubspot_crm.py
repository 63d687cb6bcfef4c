"""HubSpotCrm with the real hubspot-api-client against the fake HubSpot, over sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from integrations.crm import CallRecord, CrmConflict, DealRequest
from integrations.errors import InvalidRequest, OutcomeUnknown, TemporarilyUnavailable
from integrations.hubspot_crm import HubSpotAuthError, HubSpotCrm
from tests.fakes.hubspot import Association, FakeHubSpot

pytestmark = pytest.mark.integration

CALLER = "+14155550100"
STARTED = datetime(2025, 3, 4, 15, 30, tzinfo=UTC)
SEARCH_LAG_S = 10.0


class FakeTime:
    """One clock for the fake's search lag and the client's waits: a wait is recorded and
    moves time on at once, so tests never sleep and lag is modelled end to end."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def hubspot(clock: FakeTime) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(search_lag_s=SEARCH_LAG_S, clock=clock.monotonic) as fake:
        yield fake


def make_crm(
    hubspot: FakeHubSpot,
    clock: FakeTime,
    *,
    token: str | None = None,
    base_url: str | None = None,
    call_dispositions: dict[str, str] | None = None,
) -> HubSpotCrm:
    return HubSpotCrm(
        hubspot.token if token is None else token,
        base_url=hubspot.base_url if base_url is None else base_url,
        timeout_s=0.5,
        sleep=clock.sleep,
        search_lag_s=SEARCH_LAG_S,
        monotonic=clock.monotonic,
        call_dispositions=call_dispositions,
    )


@pytest.fixture
async def crm(hubspot: FakeHubSpot, clock: FakeTime) -> AsyncIterator[HubSpotCrm]:
    crm = make_crm(hubspot, clock)
    yield crm
    await crm.aclose()


def call_record(contact_id: str, call_id: str = "call-7f3a") -> CallRecord:
    return CallRecord(
        call_id=call_id,
        contact_id=contact_id,
        direction="inbound",
        started_at=STARTED,
        ended_at=STARTED + timedelta(minutes=3, seconds=5),
        from_number=CALLER,
        to_number="+18005550199",
        disposition="connected",
        summary="Wants a demo for 20 seats next week.",
        transcript="Agent: Hello, this is Sam.\nCaller: Hi, I'd like a demo.",
        qualification={"budget": "10k/year", "timeline": "this quarter"},
    )


# lookup


@pytest.mark.parametrize(
    "stored",
    [
        {"phone": "+14155550100"},
        {"phone": "(415) 555-0100"},
        {"phone": "415.555.0100"},
        {"mobilephone": "+1 415-555-0100"},
        {"phone": "+1 212 555 0199", "mobilephone": "4155550100"},
    ],
    ids=["e164", "national", "dotted", "mobile-international", "mobile-digits"],
)
async def test_finds_contact_whatever_format_the_number_is_stored_in(
    hubspot: FakeHubSpot, crm: HubSpotCrm, stored: dict[str, str]
) -> None:
    hubspot.add_contact(firstname="Other", phone="+14155550111")
    contact_id = hubspot.add_contact(firstname="Ada", email="ada@example.com", **stored)

    contact = await crm.find_contact_by_phone(CALLER)

    assert contact is not None
    assert (contact.id, contact.firstname, contact.email) == (contact_id, "Ada", "ada@example.com")


async def test_same_digits_in_another_country_are_not_a_match(
    hubspot: FakeHubSpot, crm: HubSpotCrm
) -> None:
    # HubSpot's searchable number drops the country code, so the search returns both.
    hubspot.add_contact(firstname="Brit", phone="+44 4155550100")
    hubspot.add_contact(firstname="Near", phone="(415) 555-0101")

    assert await crm.find_contact_by_phone(CALLER) is None
    assert hubspot.ops() == ["contacts.search"]


async def test_lookup_of_unknown_number_is_none(crm: HubSpotCrm) -> None:
    assert await crm.find_contact_by_phone(CALLER) is None


# contacts


async def test_create_then_update_returns_stored_record_without_searching(
    hubspot: FakeHubSpot, crm: HubSpotCrm
) -> None:
    hubspot.search_lag_s = 60.0  # a search now would not see the new contact

    created = await crm.upsert_contact(
        contact_id=None, phone_e164=CALLER, properties={"firstname": "Ada"}
    )
    updated = await crm.upsert_contact(
        contact_id=created.id, phone_e164=CALLER, properties={"company": "Acme", "lastname": "L"}
    )

    assert hubspot.ops() == ["contacts.create", "contacts.update"]
    assert (created.firstname, created.phone) == ("Ada", CALLER)
    assert (updated.id, updated.firstname, updated.company) == (created.id, "Ada", "Acme")
    stored = hubspot.contacts[created.id].properties
    assert (stored["firstname"], stored["lastname"], stored["company"]) == ("Ada", "L", "Acme")
    assert stored["phone"] == CALLER
    assert len(hubspot.contacts) == 1


async def test_a_new_contact_with_another_contacts_email_is_a_conflict_not_a_takeover(
    hubspot: FakeHubSpot, crm: HubSpotCrm
) -> None:
    existing = hubspot.add_contact(firstname="Ada", email="ada@example.com")

    with pytest.raises(CrmConflict):
        await crm.upsert_contact(
            contact_id=None,
            phone_e164=CALLER,
            properties={"email": "ADA@example.com", "company": "Acme"},
        )

    assert list(hubspot.contacts) == [existing]
    assert "company" not in hubspot.contacts[existing].properties
    assert hubspot.ops() == ["contacts.create"]


async def test_update_to_an_email_another_contact_owns_is_a_conflict(
    hubspot: FakeHubSpot, crm: HubSpotCrm
) -> None:
    hubspot.add_contact(email="ada@example.com")
    other = hubspot.add_contact(email="bob@example.com")

    with pytest.raises(CrmConflict):
        await crm.upsert_contact(
            contact_id=other, phone_e164=None, properties={"email": "ada@example.com"}
        )
    assert hubspot.contacts[other].properties["email"] == "bob@example.com"


async def test_only_allowlisted_properties_are_written(
    hubspot: FakeHubSpot, crm: HubSpotCrm
) -> None:
    contact = await crm.upsert_contact(
        contact_id=None,
        phone_e164=CALLER,
        properties={"firstname": "Ada", "hubspot_owner_id": "42", "lifecyclestage": "customer"},
    )

    stored = hubspot.contacts[contact.id].properties
    assert stored["firstname"] == "Ada"
    assert "hubspot_owner_id" not in stored
    assert "lifecyclestage" not in stored


async def test_update_of_unknown_contact_is_invalid(crm: HubSpotCrm) -> None:
    with pytest.raises(InvalidRequest):
        await crm.upsert_contact(contact_id="999999", phone_e164=None, properties={"city": "X"})


async def test_update_is_retried_after_server_error(
    hubspot: FakeHubSpot, crm: HubSpotCrm, clock: FakeTime
) -> None:
    contact_id = hubspot.add_contact(firstname="Ada")
    hubspot.fail_next("contacts.update", status=503)

    await crm.upsert_contact(contact_id=contact_id, phone_e164=None, properties={"city": "Oslo"})

    assert hubspot.contacts[contact_id].properties["city"] == "Oslo"
    assert clock.waits == [0.5]


async def test_contact_create_with_lost_answer_is_settled_by_phone_lookup(
    hubspot: FakeHubSpot, crm: HubSpotCrm, clock: FakeTime
) -> None:
    hubspot.hang_next("contacts.create", apply=True)
    with pytest.raises(OutcomeUnknown):
        await crm.upsert_contact(contact_id=None, phone_e164=CALLER, properties={"firstname": "A"})

    contact = await crm.upsert_contact(
        contact_id=None, phone_e164=CALLER, properties={"firstname": "Ada"}
    )

    assert list(hubspot.contacts) == [contact.id]
    assert hubspot.contacts[contact.id].properties["firstname"] == "Ada"
    assert clock.waits == [SEARCH_LAG_S]


# calls and notes


async def test_log_call_writes_one_call_and_one_note_on_the_contact(
    hubspot: FakeHubSpot, crm: HubSpotCrm
) -> None:
    contact_id = hubspot.add_contact(firstname="Ada", phone=CALLER)

    logged = await crm.log_call(call_record(contact_id))

    assert list(hubspot.calls) == [logged.call_engagement_id]
    assert list(hubspot.notes) == [logged.note_id]
    call = hubspot.calls[logged.call_engagement_id].properties
    assert call["hs_call_direction"] == "INBOUND"
    assert call["hs_call_status"] == "COMPLETED"
    assert call["hs_call_duration"] == "185000"
    assert call["hs_timestamp"] == "2025-03-04T15:30:00.000Z"
    assert (call["hs_call_from_number"], call["hs_call_to_number"]) == (CALLER, "+18005550199")
    assert "hs_call_disposition" not in call  # no mapping configured
    note = hubspot.notes[logged.note_id].properties
    assert "I&#x27;d like a demo." in note["hs_note_body"]  # the transcript, HTML-escaped
    assert set(hubspot.associations) == {
        Association("calls", logged.call_engagement_id, "contacts", contact_id, 194),
        Association("notes", logged.note_id, "contacts", contact_id, 202),
    }


async def test_the_note_names_the_calls_recording_when_there_is_one(
    hubspot: FakeHubSpot, crm: HubSpotCrm
) -> None:
    contact_id = hubspot.add_contact(firstname="Ada", phone=CALLER)
    recorded = replace(call_record(contact_id), recording="recordings/call-7f3a.ogg")

    logged = await crm.log_call(recorded)
    unrecorded = await crm.log_call(call_record(contact_id, call_id="call-9b2c"))

    assert "recordings/call-7f3a.ogg" in hubspot.notes[logged.note_id].properties["hs_note_body"]
    assert "Recording" not in hubspot.notes[unrecorded.note_id].properties["hs_note_body"]


async def test_mapped_disposition_is_written(hubspot: FakeHubSpot, clock: FakeTime) -> None:
    crm = make_crm(hubspot, clock, call_dispositions={"connected": "f240bbac"})
    contact_id = hubspot.add_contact(firstname="Ada")

    logged = await crm.log_call(call_record(contact_id))
    await crm.aclose()

    assert hubspot.calls[logged.call_engagement_id].properties["hs_call_disposition"] == "f240bbac"


async def test_logging_the_same_call_twice_writes_it_once(
    hubspot: FakeHubSpot, crm: HubSpotCrm
) -> None:
    contact_id = hubspot.add_contact(firstname="Ada")
    record = call_record(contact_id)

    first = await crm.log_call(record)
    second = await crm.log_call(record)

    assert first == second
    assert (len(hubspot.calls), len(hubspot.notes)) == (1, 1)


async def test_replay_from_another_process_adopts_what_was_written(
    hubspot: FakeHubSpot, crm: HubSpotCrm, clock: FakeTime
) -> None:
    contact_id = hubspot.add_contact(firstname="Ada")
    record = call_record(contact_id)
    first = await crm.log_call(record)
    clock.now += SEARCH_LAG_S  # an outbox replay comes later, from a fresh worker

    fresh = make_crm(hubspot, clock)
    second = await fresh.log_call(record)
    await fresh.aclose()

    assert second == first
    assert (len(hubspot.calls), len(hubspot.notes)) == (1, 1)


async def test_rate_limit_waits_retry_after_then_succeeds(
    hubspot: FakeHubSpot, crm: HubSpotCrm, clock: FakeTime
) -> None:
    contact_id = hubspot.add_contact(firstname="Ada")
    hubspot.fail_next("calls.create", status=429, retry_after=3)

    await crm.log_call(call_record(contact_id))

    assert clock.waits == [3.0]
    assert (len(hubspot.calls), len(hubspot.notes)) == (1, 1)


async def test_endless_rate_limit_gives_up_having_written_nothing(
    hubspot: FakeHubSpot, crm: HubSpotCrm, clock: FakeTime
) -> None:
    contact_id = hubspot.add_contact(firstname="Ada")
    hubspot.fail_next("calls.create", status=429, retry_after=1, times=None)

    with pytest.raises(TemporarilyUnavailable):
        await crm.log_call(call_record(contact_id))

    assert (hubspot.calls, hubspot.notes) == ({}, {})
    assert hubspot.ops() == ["calls.search"] + ["calls.create"] * 4
    assert clock.waits == [1.0, 1.0, 1.0]


async def test_retry_after_beyond_budget_fails_fast(
    hubspot: FakeHubSpot, crm: HubSpotCrm, clock: FakeTime
) -> None:
    hubspot.fail_next("contacts.search", status=429, retry_after=60)

    with pytest.raises(TemporarilyUnavailable):
        await crm.find_contact_by_phone(CALLER)
    assert clock.waits == []


async def test_search_is_retried_after_server_errors(
    hubspot: FakeHubSpot, crm: HubSpotCrm, clock: FakeTime
) -> None:
    contact_id = hubspot.add_contact(phone=CALLER)
    hubspot.fail_next("contacts.search", status=500, times=2)

    contact = await crm.find_contact_by_phone(CALLER)

    assert contact is not None and contact.id == contact_id
    assert hubspot.ops() == ["contacts.search"] * 3
    assert clock.waits == [0.5, 1.0]


async def test_server_error_on_create_is_unknown_outcome_not_retried(
    hubspot: FakeHubSpot, crm: HubSpotCrm
) -> None:
    contact_id = hubspot.add_contact(firstname="Ada")
    hubspot.fail_next("calls.create", status=502)

    with pytest.raises(OutcomeUnknown):
        await crm.log_call(call_record(contact_id))
    assert hubspot.ops() == ["calls.search", "calls.create"]


async def test_lost_answer_to_create_is_found_before_writing_again(
    hubspot: FakeHubSpot, crm: HubSpotCrm, clock: FakeTime
) -> None:
    contact_id = hubspot.add_contact(firstname="Ada")
    record = call_record(contact_id)
    hubspot.hang_next("calls.create", apply=True)  # stored, but the answer never comes

    with pytest.raises(OutcomeUnknown):
        await crm.log_call(record)
    assert (len(hubspot.calls), len(hubspot.notes)) == (1, 0)

    logged = await crm.log_call(record)

    assert list(hubspot.calls) == [logged.call_engagement_id]
    assert list(hubspot.notes) == [logged.note_id]
    assert clock.waits == [SEARCH_LAG_S]  # waited for the search index before trusting it
    assert hubspot.ops().count("calls.create") == 1


async def test_create_cancelled_by_the_caller_is_treated_as_lost(
    hubspot: FakeHubSpot, crm: HubSpotCrm, clock: FakeTime
) -> None:
    contact_id = hubspot.add_contact(firstname="Ada")
    record = call_record(contact_id)
    hubspot.hang_next("calls.create", apply=True)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.25):  # the wrap-up's own deadline
            await crm.log_call(record)
    await crm.log_call(record)

    assert (len(hubspot.calls), len(hubspot.notes)) == (1, 1)
    assert clock.waits == [SEARCH_LAG_S]


async def test_dropped_create_that_never_landed_is_written_on_retry(
    hubspot: FakeHubSpot, crm: HubSpotCrm
) -> None:
    contact_id = hubspot.add_contact(firstname="Ada")
    record = call_record(contact_id)
    hubspot.drop_next("notes.create")  # connection reset before HubSpot stored anything

    with pytest.raises(OutcomeUnknown):
        await crm.log_call(record)
    await crm.log_call(record)

    assert (len(hubspot.calls), len(hubspot.notes)) == (1, 1)
    assert hubspot.ops().count("calls.create") == 1
    assert "notes.search" in hubspot.ops()


# deals


async def test_deal_is_created_once_and_associated(hubspot: FakeHubSpot, crm: HubSpotCrm) -> None:
    contact_id = hubspot.add_contact(firstname="Ada")
    request = DealRequest(
        call_id="call-7f3a", contact_id=contact_id, name="Acme, 20 seats", amount=12000
    )

    deal_id = await crm.create_deal(request)
    again = await crm.create_deal(request)

    assert again == deal_id
    assert list(hubspot.deals) == [deal_id]
    deal = hubspot.deals[deal_id].properties
    assert (deal["dealname"], deal["amount"]) == ("Acme, 20 seats", "12000.00")
    assert (deal["dealstage"], deal["pipeline"]) == ("appointmentscheduled", "default")
    assert hubspot.associated_ids("deals", deal_id, "contacts") == [contact_id]


async def test_deal_for_unknown_contact_is_invalid(hubspot: FakeHubSpot, crm: HubSpotCrm) -> None:
    with pytest.raises(InvalidRequest):
        await crm.create_deal(DealRequest(call_id="c", contact_id="424242", name="X"))
    assert hubspot.deals == {}


# access


async def test_rejected_token_is_an_auth_error_naming_the_token(
    hubspot: FakeHubSpot, clock: FakeTime
) -> None:
    crm = make_crm(hubspot, clock, token="pat-na1-revoked")

    with pytest.raises(HubSpotAuthError, match="token") as caught:
        await crm.find_contact_by_phone(CALLER)
    await crm.aclose()

    assert isinstance(caught.value, InvalidRequest)
    assert clock.waits == []


async def test_unreachable_hubspot_is_temporarily_unavailable(
    hubspot: FakeHubSpot, clock: FakeTime
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    crm = make_crm(hubspot, clock, base_url=f"http://127.0.0.1:{port}")

    # Never connected, so nothing was sent: even a create is retried, then reported as down.
    with pytest.raises(TemporarilyUnavailable):
        await crm.upsert_contact(contact_id=None, phone_e164=CALLER, properties={})
    await crm.aclose()

    assert clock.waits == [0.5, 1.0, 2.0]
