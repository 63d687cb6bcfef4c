"""A campaign from a CSV file: every row admitted as the lead API admits a lead, with a
report of what became of each row.

Columns (a header row is required): ``phone`` (required), ``name``, ``email``, ``company``,
``source``, ``time_zone``, ``consent`` (yes/true/1 when the lead agreed to be called),
``consent_wording``, ``consent_source``; any other column goes into the lead's ``fields``
(``interest`` is what the agent's opener mentions). Re-running a file within the
de-duplication window (``LEAD_DEDUPE_HOURS``) queues nothing new: every number already queued
is counted as a duplicate, as the API does.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dialer.model import Call
from dialer.store import Admission, Store
from leadapi.admission import AdmissionRules, LeadRejected, call_for, new_call_id
from leadapi.schemas import LeadIn

_LEAD_COLUMNS = ("name", "phone", "email", "company", "source", "time_zone")
_CONSENT_COLUMNS = ("consent", "consent_wording", "consent_source")
_YES = frozenset({"yes", "y", "true", "1"})
# Rows admitted per transaction. Measured (bench/csv_upload.py, 10,000 rows): one per row took
# 4.9 s on SQLite and 8.3 s on PostgreSQL; 50 take 1.3 s and 3.5 s, and a lead posted meanwhile
# waits 33 ms at p95 on SQLite (200 per batch: 1.1 s, but 57 ms).
ADMIT_BATCH = 50


class ImportRefused(Exception):
    """The whole file cannot be imported (no such campaign, no header, no phone column)."""


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str


@dataclass
class ImportReport:
    rows: int = 0
    queued: int = 0
    duplicates: int = 0
    do_not_call: int = 0
    errors: list[RowError] = field(default_factory=list)
    queued_ids: list[str] = field(default_factory=list)


def import_csv(
    path: Path,
    *,
    campaign: str,
    store: Store,
    rules: AdmissionRules,
    now: Callable[[], datetime],
    random_hex: Callable[[], str],
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> ImportReport:
    return import_text(
        path.read_text(encoding="utf-8-sig"), campaign=campaign, store=store, rules=rules,
        now=now, random_hex=random_hex, progress=progress,
    )  # fmt: skip


def import_text(
    text: str,
    *,
    campaign: str,
    store: Store,
    rules: AdmissionRules,
    now: Callable[[], datetime],
    random_hex: Callable[[], str],
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> ImportReport:
    """The rows of a CSV text, as ``import_csv`` imports a file."""
    _check_campaign(store, campaign)  # before the file: the first thing to fix
    return import_rows(
        csv_rows(text), campaign=campaign, store=store, rules=rules, now=now,
        random_hex=random_hex, progress=progress,
    )  # fmt: skip


def csv_rows(text: str) -> list[tuple[int, dict[str, str]]]:
    """Each non-empty row with its line number; ImportRefused for a file with no header or no
    phone column (the API's upload checks this before it creates the campaign)."""
    return list(_rows(text.removeprefix("\ufeff")))


def import_rows(
    rows: list[tuple[int, dict[str, str]]],
    *,
    campaign: str,
    store: Store,
    rules: AdmissionRules,
    now: Callable[[], datetime],
    random_hex: Callable[[], str],
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> ImportReport:
    """Rows are admitted ``ADMIT_BATCH`` at a time, one transaction each; a lead posted
    meanwhile waits for one batch at most."""
    _check_campaign(store, campaign)
    report = ImportReport(rows=len(rows))
    done = 0
    for start in range(0, len(rows), ADMIT_BATCH):
        batch = rows[start : start + ADMIT_BATCH]
        _import_batch(batch, campaign=campaign, store=store, rules=rules, now=now,
                      random_hex=random_hex, report=report)  # fmt: skip
        for _ in batch:
            done += 1
            progress(done, len(rows))
    return report


def _check_campaign(store: Store, campaign: str) -> None:
    state = store.campaign_state(campaign)
    if state is None:
        raise ImportRefused(f"no campaign named {campaign!r}: create it first (POST /v1/campaigns)")
    if state == "cancelled":
        raise ImportRefused(f"campaign {campaign!r} was cancelled; it takes no new leads")


def _rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None:
        raise ImportRefused("the file is empty; it needs a header row with a phone column")
    if "phone" not in [name.strip().lower() for name in reader.fieldnames]:
        raise ImportRefused(f"no 'phone' column; the columns are {reader.fieldnames}")
    for raw in reader:
        cleaned = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if any(cleaned.values()):
            yield reader.line_num, cleaned


def _import_batch(
    batch: list[tuple[int, dict[str, str]]],
    *,
    campaign: str,
    store: Store,
    rules: AdmissionRules,
    now: Callable[[], datetime],
    random_hex: Callable[[], str],
    report: ImportReport,
) -> None:
    config = store.campaign(campaign)
    at = now()
    lines: list[int] = []
    calls: list[Call] = []
    for line, raw in batch:
        try:
            lead = LeadIn.model_validate(lead_data(raw, campaign=campaign))
            calls.append(call_for(lead, rules=rules, campaign=config,
                                  call_id=new_call_id(random_hex), now=at))  # fmt: skip
            lines.append(line)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"]) or "row"
                report.errors.append(RowError(line, where, error["msg"]))
        except LeadRejected as exc:
            report.errors.append(RowError(line, exc.field, str(exc)))
    dedupe = at - rules.dedupe_window if rules.dedupe_window else None
    admissions = store.admit_many(calls, dedupe_since=dedupe) if calls else []
    for line, admission in zip(lines, admissions, strict=True):
        _count(admission, line=line, report=report)
    report.errors.sort(key=lambda e: e.line)


def _count(admission: Admission, *, line: int, report: ImportReport) -> None:
    if admission.outcome == "campaign_cancelled":  # cancelled while the file was importing
        report.errors.append(RowError(line, "campaign", "the campaign was cancelled"))
    elif admission.outcome == "do_not_call":
        report.do_not_call += 1
    elif admission.outcome == "duplicate":
        report.duplicates += 1
    else:
        report.queued += 1
        report.queued_ids.append(str(admission.call_id))


def lead_data(raw: dict[str, str], *, campaign: str) -> dict[str, Any]:
    data: dict[str, Any] = {k: raw[k] for k in _LEAD_COLUMNS if raw.get(k)}
    data["campaign"] = campaign
    if raw.get("consent"):
        data["consent"] = {
            "given": raw["consent"].lower() in _YES,
            "wording": raw.get("consent_wording") or None,
            "source": raw.get("consent_source") or None,
        }
    extra = {k: v for k, v in raw.items() if k not in (*_LEAD_COLUMNS, *_CONSENT_COLUMNS) and v}
    if extra:
        data["fields"] = extra
    return data
