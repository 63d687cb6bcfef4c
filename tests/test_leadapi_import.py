"""A CSV campaign: every row admitted as the API admits a lead, each rejection named by line
and field, and a second run of the same file queuing nothing new."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from dialer.model import Campaign
from dialer.sql_store import SqlStore
from dialer.sqlite_store import SqliteStore
from leadapi import csv_import
from leadapi.admission import AdmissionRules
from leadapi.csv_import import ImportRefused, import_csv
from tests.conftest import Clock
from tests.dialer_support import make_policy

pytestmark = pytest.mark.integration

CSV = """phone,name,company,consent,interest
+12125550101,Ada Lovelace,Engines,yes,forecasting
(212) 555-0102,Grace Hopper,Navy,true,
12,Bad Number,Nowhere,yes,
+12125550104,No Consent,Acme,no,
+12125550105,Dee Enn Cee,Acme,yes,
+12125550101,Ada Again,Engines,yes,
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqliteStore(tmp_path / "dialer.sqlite3")
    opened.put_campaign(Campaign(name="spring"))
    yield opened
    opened.close()


def run_import(store: SqlStore, clock: Clock, path: Path):
    ids = itertools.count(1)
    rules = AdmissionRules(policy=make_policy(), default_region="US", consent_required=True,
                           dedupe_window=timedelta(hours=24))  # fmt: skip
    seen: list[tuple[int, int]] = []
    report = import_csv(path, campaign="spring", store=store, rules=rules, now=clock,
                        random_hex=lambda: f"{next(ids):06d}{clock().timestamp():.0f}",
                        progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    return report, seen


@pytest.mark.parametrize("batch", [1, 2, 50])  # the last row repeats the first across batches
def test_rows_are_queued_and_every_rejection_is_named(store, clock, tmp_path, batch, monkeypatch):
    monkeypatch.setattr(csv_import, "ADMIT_BATCH", batch)
    store.add_dnc("+12125550105", reason="asked", now=clock())
    path = tmp_path / "leads.csv"
    path.write_text(CSV)
    report, progress = run_import(store, clock, path)
    assert (report.rows, report.queued, report.duplicates, report.do_not_call) == (6, 2, 1, 1)
    assert [(e.line, e.field) for e in report.errors] == [(4, "phone"), (5, "consent")]
    assert progress[-1] == (6, 6) and len(progress) == 6
    queued = [store.call(call_id) for call_id in report.queued_ids]
    assert {c.lead.phone for c in queued if c} == {"+12125550101", "+12125550102"}
    assert all(c is not None and c.campaign == "spring" for c in queued)
    assert queued[0] is not None and queued[0].lead.fields == {"interest": "forecasting"}


def test_running_the_same_file_again_queues_nothing_new(store, clock, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text(CSV)
    first, _ = run_import(store, clock, path)
    clock.value += timedelta(minutes=5)
    again, _ = run_import(store, clock, path)
    assert first.queued == 3 and again.queued == 0
    assert again.duplicates == first.queued + first.duplicates


def test_a_missing_campaign_or_phone_column_refuses_the_file(store, clock, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("name,email\nAda,ada@example.com\n")
    with pytest.raises(ImportRefused, match="phone"):
        run_import(store, clock, path)
    rules = AdmissionRules(policy=make_policy(), default_region="US", consent_required=True,
                           dedupe_window=timedelta(hours=24))  # fmt: skip
    with pytest.raises(ImportRefused, match="no campaign named 'autumn'"):
        import_csv(path, campaign="autumn", store=store, rules=rules, now=clock,
                   random_hex=lambda: "x")  # fmt: skip


def test_the_cli_shows_progress_and_writes_the_error_report(tmp_path):
    data = tmp_path / "data"
    SqliteStore(data / "dialer.sqlite3").put_campaign(Campaign(name="spring"))
    path = tmp_path / "leads.csv"
    path.write_text(CSV)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATA_DIR", "DATABASE_URL"))}
    env["DATA_DIR"] = str(data)
    done = subprocess.run(
        [sys.executable, "-m", "leadapi", "leads", "import", str(path), "--campaign", "spring",
         "--errors", str(tmp_path / "errors.csv")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1  # some rows were rejected
    assert "6/6" in done.stderr
    assert "line 4: phone:" in done.stdout and "3 queued" in done.stdout
    assert (tmp_path / "errors.csv").read_text().splitlines()[0] == "line,field,message"


def test_a_cancelled_campaign_refuses_the_file(store, clock, tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text(CSV)
    store.cancel_campaign("spring", now=clock(), notify=lambda call, attempts: [])
    with pytest.raises(ImportRefused, match="cancelled"):
        run_import(store, clock, path)
    assert store.campaign_progress("spring")["queued"] == 0
