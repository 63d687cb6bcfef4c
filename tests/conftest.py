from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

# Tests never read a developer's .env or real keys: every setting a test needs, it sets.
for _name in list(os.environ):
    if _name.startswith(("HUBSPOT_", "GOOGLE_", "DEEPGRAM_", "OPENAI_", "CARTESIA_", "LIVEKIT_")):
        del os.environ[_name]

# Monday 23 November 2026, 10:00 in New York.
FIXED_NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


class Clock:
    """An injected clock tests can move."""

    def __init__(self, start: datetime = FIXED_NOW) -> None:
        self.value = start

    def __call__(self) -> datetime:
        return self.value


@pytest.fixture
def clock() -> Iterator[Clock]:
    yield Clock()


@pytest.fixture(params=["embedded"])
def world(request, tmp_path, clock):
    from agent.wrapup import Outbox
    from tests.worlds import EmbeddedWorld, make_services
    from tools.embedded import EmbeddedCalendar, EmbeddedCrm, EmbeddedStore

    store = EmbeddedStore(tmp_path / "embedded.sqlite3", now=clock)
    services = make_services(EmbeddedCrm(store), EmbeddedCalendar(store), clock)
    built = EmbeddedWorld(store.path, services)
    built.outbox = Outbox(tmp_path / "outbox.sqlite3")
    yield built
    store.close()
