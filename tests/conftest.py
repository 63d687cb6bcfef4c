from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

import config
from tests.e2e_support import phones, start_lab  # noqa: F401  (fixtures for the e2e modules)

# Tests never read a developer's .env, real keys or shell settings: every setting a test needs,
# it sets.
for _name in list(os.environ):
    vendor = _name.startswith(("HUBSPOT_", "GOOGLE_", "DEEPGRAM_", "OPENAI_", "CARTESIA_"))
    if vendor or _name in config.variable_names():
        del os.environ[_name]

# What production adds to the CRM allowlist: the criteria's properties and the opt-out flag.
WORLD_CRM_PROPERTIES = frozenset({"numemployees", "do_not_call"})

# Monday 23 November 2026, 10:00 in New York.
FIXED_NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


class Clock:
    """An injected clock tests can move."""

    def __init__(self, start: datetime = FIXED_NOW) -> None:
        self.value = start

    def __call__(self) -> datetime:
        return self.value


class Seconds:
    """An injected clock of seconds (time.monotonic or time.time) tests can move."""

    def __init__(self, start: float = 1000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def clock() -> Iterator[Clock]:
    yield Clock()


@pytest.fixture(params=["embedded", "vendor"])
def world(request, tmp_path, clock):
    """Where a test call's CRM and calendar live: the embedded SQLite backends, or the real
    HubSpot and Google clients talking to the local fake servers."""
    from integrations.outbox import Outbox

    outbox = Outbox(tmp_path / "outbox.sqlite3")
    if request.param == "embedded":
        yield from _embedded_world(tmp_path, clock, outbox)
    else:
        yield from _vendor_world(tmp_path, clock, outbox)


def _embedded_world(tmp_path, clock, outbox):
    from integrations.embedded import EmbeddedCalendar, EmbeddedCrm, EmbeddedStore
    from tests.worlds import EmbeddedWorld, make_services

    store = EmbeddedStore(tmp_path / "embedded.sqlite3", now=clock)
    crm = EmbeddedCrm(store, extra_contact_properties=WORLD_CRM_PROPERTIES)
    services = make_services(crm, EmbeddedCalendar(store), clock)
    built = EmbeddedWorld(store.path, services)
    built.outbox = outbox
    yield built
    store.close()


async def _no_sleep(_seconds: float) -> None:
    return None


def _vendor_world(tmp_path, clock, outbox):
    import json

    from integrations.google_calendar import GoogleCalendar, RetryPolicy
    from integrations.hubspot_crm import HubSpotCrm
    from tests.fakes.google_calendar import FakeGoogleCalendar
    from tests.fakes.hubspot import FakeHubSpot
    from tests.worlds import VendorWorld, make_services

    with FakeHubSpot() as hubspot, FakeGoogleCalendar(calendar_id="sales@example.com") as google:
        key_file = tmp_path / "service-account.json"
        key_file.write_text(json.dumps(google.new_service_account_key("agent@example.iam")))
        calendar = GoogleCalendar.from_service_account(
            key_file,
            delegated_user="rep@example.com",
            calendar_id="sales@example.com",
            base_url=google.base_url,
            timeout_s=2.0,
            retry=RetryPolicy(attempts=3, first_delay_s=0.01, sleep=_no_sleep),
        )
        crm = HubSpotCrm(
            hubspot.token, base_url=hubspot.base_url, timeout_s=2.0, sleep=_no_sleep,
            search_lag_s=0.0, extra_contact_properties=WORLD_CRM_PROPERTIES,
        )  # fmt: skip
        built = VendorWorld(hubspot, google, make_services(crm, calendar, clock))
        built.outbox = outbox
        yield built
