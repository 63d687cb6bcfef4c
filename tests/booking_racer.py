"""One racer for tests/test_booking_race.py: a process of its own that books through the real
``book_meeting`` tool against a shared calendar (the embedded SQLite file, or the fake Google
server over HTTP), as a second worker process would.

    python -m tests.booking_racer --phone +14155550101 embedded --store data/embedded.sqlite3
    python -m tests.booking_racer --phone +14155550102 google --base-url URL --key-file KEY

Reads one JSON order per line, ``{"round": 3, "start": "<ISO>", "at": <unix time>,
"hold_s": 0.1}``; sleeps until ``at`` so both racers start together, books ``start``, and
answers one JSON line: the tool's result and whether the booking reached the insert.
``hold_s`` delays the free/busy answer (a slow calendar), so both racers pass the check
before either inserts: the insert-time guard alone must then keep one meeting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from integrations.embedded import EmbeddedCalendar, EmbeddedCrm, EmbeddedStore
from integrations.google_calendar import GoogleCalendar
from integrations.scheduling import Calendar, Event, EventRequest, Interval
from tests.agent_harness import new_call
from tests.worlds import make_services
from tools.calendar_tools import book_meeting


def racer_email(phone: str) -> str:
    return f"racer{phone.removeprefix('+')}@example.com"


class RacingCalendar:
    """The real calendar, with a slow free/busy answer and a count of inserts."""

    def __init__(self, inner: Calendar) -> None:
        self._inner = inner
        self.name = inner.name
        self.hold_s = 0.0
        self.inserts = 0

    async def busy(self, start: datetime, end: datetime) -> list[Interval]:
        answer = await self._inner.busy(start, end)
        await asyncio.sleep(self.hold_s)
        return answer

    async def create_event(self, request: EventRequest) -> Event:
        self.inserts += 1
        return await self._inner.create_event(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _calendar(args: argparse.Namespace) -> tuple[Calendar, EmbeddedStore]:
    if args.backend == "embedded":
        store = EmbeddedStore(Path(args.store), now=args.now)
        return EmbeddedCalendar(store), store
    scratch = EmbeddedStore(Path(args.key_file).with_suffix(f".{args.phone}.sqlite3"),
                            now=args.now)  # fmt: skip
    google = GoogleCalendar.from_service_account(
        args.key_file,
        delegated_user="rep@example.com",
        calendar_id="sales@example.com",
        base_url=args.base_url,
        timeout_s=5.0,
    )
    return google, scratch


async def race(args: argparse.Namespace) -> None:
    inner, store = _calendar(args)
    calendar = RacingCalendar(inner)
    crm = EmbeddedCrm(store)
    services = make_services(crm, calendar, args.now)  # type: ignore[arg-type]
    # A known caller with an email on file, so the winner's invite is visible.
    contact = await crm.upsert_contact(
        contact_id=None, phone_e164=args.phone, properties={"email": racer_email(args.phone)}
    )
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        order = json.loads(line)
        call = new_call(services, caller_phone=args.phone, call_id=f"race-{order['round']}")
        call.state.contact = contact
        calendar.hold_s, calendar.inserts = order["hold_s"], 0
        await asyncio.sleep(max(0.0, order["at"] - time.time()))
        result = json.loads(
            await book_meeting(SimpleNamespace(userdata=call), start=order["start"])
        )
        answer = {"round": order["round"], "inserted": calendar.inserts > 0, **result}
        print(json.dumps(answer), flush=True)
    await inner.aclose()
    store.close()


def _fixed_clock(text: str) -> Any:
    moment = datetime.fromisoformat(text)
    return lambda: moment


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phone", required=True)
    parser.add_argument("--now", required=True, type=_fixed_clock, help="ISO time: the clock")
    backends = parser.add_subparsers(dest="backend", required=True)
    backends.add_parser("embedded").add_argument("--store", required=True)
    google = backends.add_parser("google")
    google.add_argument("--base-url", required=True)
    google.add_argument("--key-file", required=True)
    asyncio.run(race(parser.parse_args()))


if __name__ == "__main__":
    main()
