"""Delivering the calls whose worker died: every journal no living process holds becomes a
call record marked interrupted, written once (the CRM writes are keyed by the call id, so a
record the dead worker had already written is not doubled), then the journal goes.

A booking the dead call was making is settled by asking the calendar for the booking's event
id (deterministic per caller and slot): the record says booked only if the meeting is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from calls.call_files import CallFiles
from calls.transcript import plain_summary
from calls.wrapup import DEAL_DISPOSITIONS, RecordDraft, deal_stage, write_or_queue
from integrations.crm import CallRecord, Crm, DealRequest
from integrations.errors import IntegrationError
from integrations.outbox import Outbox, from_json
from integrations.scheduling import Calendar

logger = logging.getLogger("journal")

RECOVERY_INTERVAL_S = 10.0
# A journal with no facts yet may be one whose process is opening it this instant.
YOUNG_EMPTY_S = 60.0
INTERRUPTED = "interrupted"  # the disposition of a call whose worker died before it was decided


HangUp = Callable[[str], Awaitable[None]]


async def recover(
    data_dir: Path,
    *,
    crm: Crm,
    calendar: Calendar,
    outbox: Outbox,
    hang_up: HangUp | None = None,
) -> list[CallRecord]:
    """Record every call whose journal is left behind; the records delivered (or queued).
    ``hang_up``: ends a dead call's room, so a caller still on the line is not left in
    silence (nobody is there to speak to them)."""
    recorded = []
    for path in list(CallFiles(data_dir).journals()):
        with _abandoned(path) as entries:
            if entries is None:
                continue
            room = next((e.get("room") for e in entries if e.get("kind") == "begin"), None)
            if hang_up is not None and room:
                await _hang_up(hang_up, str(room))
            recovered = await settle(entries, calendar=calendar)
            if recovered is not None:
                await write_or_queue(crm, outbox, recovered)
                recorded.append(recovered.record)
                logger.warning(
                    "recovered an interrupted call",
                    extra={"call_id": recovered.record.call_id,
                           "disposition": recovered.record.disposition},
                )  # fmt: skip
            path.unlink(missing_ok=True)
    return recorded


async def _hang_up(hang_up: HangUp, room: str) -> None:
    try:
        await hang_up(room)
    except Exception as exc:  # the record matters more than the line
        logger.warning("could not hang up an interrupted call's room: %r", exc)


async def recover_forever(
    data_dir: Path,
    *,
    build: Callable[[], tuple[Crm, Calendar]],
    outbox: Outbox,
    hang_up: HangUp | None = None,
) -> None:
    """At start, then every few seconds: a job process that died mid-call (the OOM killer, a
    crash) is recorded while the worker lives on; a worker that died is recorded by the next."""
    crm, calendar = build()
    try:
        while True:
            try:
                await recover(data_dir, crm=crm, calendar=calendar, outbox=outbox, hang_up=hang_up)
            except Exception:  # the next round tries again; the journals stay until delivered
                logger.exception("journal recovery failed")
            await asyncio.sleep(RECOVERY_INTERVAL_S)
    finally:
        await crm.aclose()
        await calendar.aclose()


@contextlib.contextmanager
def _abandoned(path: Path) -> Any:
    """The journal's entries if no process holds it (kept locked while we deliver it)."""
    try:
        handle = path.open("r", encoding="utf-8")
    except FileNotFoundError:  # finished in the meantime
        yield None
        return
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its call is still going
            yield None
            return
        entries = [e for line in handle if (e := _parse(line)) is not None]
        if not any(e.get("kind") == "facts" for e in entries) and _young(path):
            yield None
            return
        yield entries


def _parse(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:  # a line cut short by the crash
        return None
    return entry if isinstance(entry, dict) else None


def _young(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < YOUNG_EMPTY_S
    except FileNotFoundError:
        return False


async def settle(entries: list[dict[str, Any]], *, calendar: Calendar) -> RecordDraft | None:
    """The record of an interrupted call from its journal: the last facts, the lines spoken,
    a booking checked against the calendar."""
    facts = next((e for e in reversed(entries) if e.get("kind") == "facts"), None)
    if facts is None:
        return None  # it died before its first facts: nothing is known of the caller
    record: CallRecord = from_json(CallRecord, json.dumps(facts["record"]))
    deal: DealRequest | None = (
        from_json(DealRequest, json.dumps(facts["deal"])) if facts.get("deal") else None
    )
    last_at = max((datetime.fromisoformat(e["at"]) for e in entries if "at" in e),
                  default=record.started_at)  # fmt: skip
    answers = dict(record.qualification)
    disposition = record.disposition
    booking = await _booking(entries, calendar=calendar)
    if booking is not None:
        booked, start = booking
        if booked:
            disposition = "booked"
            answers["meeting"] = start
        elif disposition == "booked":  # moved away or cancelled since: the calendar knows
            disposition = INTERRUPTED
    if disposition == "hung_up":  # nobody hung up: the call was cut off undecided
        disposition = INTERRUPTED
    stopped = last_at.astimezone(UTC).strftime("%H:%M:%S UTC")
    answers[INTERRUPTED] = (
        f"the agent's worker stopped mid-call (last journal entry {stopped}); "
        "recovered from the call journal"
    )
    lines = [e["text"] for e in entries if e.get("kind") == "line" and e.get("text")]
    record = replace(
        record,
        ended_at=last_at,
        disposition=disposition,
        qualification=answers,
        transcript="\n".join(lines),
        summary=f"Interrupted call. {plain_summary(answers, disposition)}",
    )
    if disposition not in DEAL_DISPOSITIONS or deal is None:
        deal = None
    else:
        deal = replace(deal, stage=deal_stage(disposition))
    return RecordDraft(record, deal, dict(facts.get("contact_updates") or {}))


async def _booking(entries: list[dict[str, Any]], *, calendar: Calendar) -> tuple[bool, str] | None:
    """Whether the meeting the call was booking is in the calendar (and when), if it was
    booking one; None when it was not, or the calendar cannot say (the facts then stand)."""
    attempts = [e for e in entries if e.get("kind") == "effect" and e.get("effect") == "booking"]
    if not attempts:
        return None
    event_id = str(attempts[-1]["event_id"])
    try:
        event = await calendar.get_event(event_id)
    except IntegrationError as exc:
        logger.warning("calendar unavailable to settle an interrupted booking: %r", exc)
        return None
    if event is None or event.status != "confirmed":
        return False, ""
    return True, event.start.isoformat()
