"""One racer for tests/test_booking_race.py: a process of its own that books and reschedules
through the real ``book_meeting`` and ``reschedule_meeting`` tools against a shared calendar
(the embedded SQLite file, or the fake Google server over HTTP), as a second worker process
would.

    python -m tests.booking_racer --phone +14155550101 embedded --store data/embedded.sqlite3
    python -m tests.booking_racer --phone +14155550102 google --base-url URL --key-file KEY

Reads one JSON order per line, ``{"call": "race-3", "action": "book", "start": "<ISO>",
"at": <unix time>, "hold_s": 0.1}``; sleeps until ``at`` so both racers start together, books
``start`` (or, with ``"action": "reschedule"``, moves the meeting booked earlier on the same
``call`` to it), and answers one JSON line: the tool's result and whether it reached the
calendar write (the insert or the move).
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

from calls.call import Call
from integrations.embedded import EmbeddedCalendar, EmbeddedCrm, EmbeddedStore
from integrations.google_calendar import GoogleCalendar
from integrations.scheduling import Calendar, Event, EventRequest, Interval
from tests.agent_harness import new_call
from tests.worlds import make_services
from tools.calendar_tools import book_meeting, reschedule_meeting


def racer_email(phone: str) -> str:
    return f"racer{phone.removeprefix('+')}@example.com"


class RacingCalendar:
    """The real calendar, with a slow free/busy answer and a count of inserts and moves."""

    def __init__(self, inner: Calendar) -> None:
        self._inner = inner
        self.name = inner.name
        self.hold_s = 0.0
        self.writes = 0

    async def busy(self, start: datetime, end: datetime) -> list[Interval]:
        answer = await self._inner.busy(start, end)
        await asyncio.sleep(self.hold_s)
        return answer

    async def create_event(self, request: EventRequest) -> Event:
        self.writes += 1
        return await self._inner.create_event(request)

    async def move_event(self, event_id: str, *, start: datetime, end: datetime) -> Event:
        self.writes += 1
        return await self._inner.move_event(event_id, start=start, end=end)

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
    calls: dict[str, Call] = {}
    for line in sys.stdin:
        order = json.loads(line)
        if order["call"] not in calls:
            call = new_call(services, caller_phone=args.phone, call_id=order["call"])
            call.state.contact = contact
            calls[order["call"]] = call
        tool = reschedule_meeting if order["action"] == "reschedule" else book_meeting
        calendar.hold_s, calendar.writes = order["hold_s"], 0
        await asyncio.sleep(max(0.0, order["at"] - time.time()))
        context = SimpleNamespace(userdata=calls[order["call"]])
        result = json.loads(await tool(context, start=order["start"]))
        answer = {"call": order["call"], "wrote": calendar.writes > 0, **result}
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
