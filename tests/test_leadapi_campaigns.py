"""Campaigns over real HTTP: created from JSON or from a CSV upload with its per-row report,
progress by status, pause and resume seen by the dialer's claim, cancel."""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from dialer.model import Campaign, Claim
from dialer.pace import Pace
from dialer.sql_store import SqlStore
from dialer.store import ClaimLimits
from leadapi import campaign_routes
from tests.conftest import Clock
from tests.dialer_support import MONDAY_10_NY, open_test_store
from tests.leadapi_support import make_app, serving
from tests.readme_snippets import readme_block

pytestmark = pytest.mark.integration

WEBHOOK = "http://127.0.0.1:9/hook"
CONFIG: dict[str, Any] = {
    "calling_hours": {"start": "10:00", "end": "18:00", "days": ["mon", "tue"]},
    "max_concurrent": 2,
    "retry": {"max_attempts": 4, "busy_minutes": [15]},
}
CSV = """phone,name,company,consent,interest
+12125550101,Ada Lovelace,Engines,yes,forecasting
12,Bad Number,Nowhere,yes,
(212) 555-0103,Grace Hopper,Navy,yes,
+12125550104,No Consent,Acme,no,
+12125550105,On The List,Acme,yes,
+12125550101,Ada Again,Engines,yes,
"""
LEAD = {
    "name": "Ada Lovelace",
    "phone": "+12125550199",
    "consent": {"given": True, "wording": "Call me"},
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = open_test_store("sqlite", tmp_path, None)
    yield opened
    opened.close()


@pytest.fixture
def client(store: SqlStore, clock: Clock) -> Iterator[httpx.Client]:
    app, keys = make_app(store, clock, webhook_urls=(WEBHOOK,))
    token = keys.create("sales-ops").token
    with serving(app) as base:
        yield httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})


_seconds = itertools.count()


def claim(store: SqlStore) -> list[Claim]:
    now = MONDAY_10_NY + timedelta(seconds=next(_seconds))
    limits = ClaimLimits(max_concurrent=20, pace=Pace(100.0), batch=20)
    return store.claim(now=now, limits=limits, plan=lambda call, campaign: now,
                       room_for=lambda call_id, n: f"dial-{call_id}-{n}")  # fmt: skip


def _errors(response: httpx.Response) -> set[str]:
    return {".".join(map(str, e["loc"][1:])) for e in response.json()["detail"]}


def test_a_campaign_is_created_from_json_once(client: httpx.Client, store: SqlStore) -> None:
    created = client.post("/v1/campaigns", json={"name": "spring", **CONFIG})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["state"], body["max_concurrent"]) == ("spring", "active", 2)
    assert body["calling_hours"]["days"] == ["mon", "tue"]
    assert body["retry"]["max_attempts"] == 4 and body["retry"]["busy"] == [15.0]
    assert set(body["calls"].values()) == {0} and "queued" in body["calls"]
    again = client.post("/v1/campaigns", json={"name": "spring", "max_concurrent": 9})
    assert again.status_code == 409 and again.json()["detail"]["reason"] == "campaign_exists"
    stored = store.campaign("spring")
    assert isinstance(stored, Campaign) and stored.max_concurrent == 2
    assert client.get("/v1/campaigns/spring").json() == body


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"max_concurrent": 2}, {"name"}),
        ({"name": "spring", "max_concurrent": 0}, {"max_concurrent"}),
        ({"name": "spring", "calling_hours": {"days": ["someday"]}}, {"calling_hours.days.0"}),
        ({"name": "spring", "calling_hours": {"start": "19:00", "end": "09:00"}},
         {"calling_hours"}),
        ({"name": "bad name!"}, {"name"}),
        ({"name": "spring", "colour": "blue"}, {"colour"}),
    ],
)  # fmt: skip
def test_a_bad_campaign_is_422_naming_the_field_and_creates_nothing(
    client: httpx.Client, store: SqlStore, body: dict[str, Any], fields: set[str]
) -> None:
    response = client.post("/v1/campaigns", json=body)
    assert response.status_code == 422, response.text
    assert _errors(response) == fields
    assert store.campaigns() == []


def test_a_csv_upload_creates_the_campaign_and_reports_every_row(
    client: httpx.Client, store: SqlStore, clock: Clock
) -> None:
    store.add_dnc("+12125550105", reason="asked", now=clock())
    form = {"name": "spring", "max_concurrent": "3", "retry": json.dumps(CONFIG["retry"])}
    response = client.post(
        "/v1/campaigns", data=form, files={"file": ("leads.csv", CSV, "text/csv")}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    report = body["import"]
    assert (report["rows"], report["queued"], report["duplicates"], report["do_not_call"]) == (
        6, 2, 1, 1,
    )  # fmt: skip
    rejected = {(r["line"], r["field"]) for r in report["rejected"]}
    assert rejected == {(3, "phone"), (5, "consent")}
    assert all(r["message"] for r in report["rejected"])
    assert body["calls"]["queued"] == 2 and body["max_concurrent"] == 3
    assert body["retry"]["max_attempts"] == 4
    campaigns = {c.call.campaign for c in claim(store)}
    assert campaigns == {"spring"}


def test_an_upload_may_carry_its_config_as_one_json_part(client: httpx.Client) -> None:
    config = json.dumps({"name": "autumn", **CONFIG})
    response = client.post(
        "/v1/campaigns", data={"config": config}, files={"file": ("l.csv", CSV, "text/csv")}
    )
    assert response.status_code == 201, response.text
    assert response.json()["calling_hours"]["start"] == "10:00"
    assert response.json()["import"]["rows"] == 6


@pytest.mark.parametrize(
    ("data", "files", "field"),
    [
        ({"name": "spring"}, {"file": ("l.csv", "name,email\nAda,a@b.co\n", "text/csv")}, "file"),
        ({"name": "spring"}, {"other": ("l.csv", CSV, "text/csv")}, "file"),
        ({"name": "spring", "retry": "{not json"}, {"file": ("l.csv", CSV, "text/csv")}, "retry"),
        ({"max_concurrent": "x", "name": "s"}, {"file": ("l.csv", CSV, "text/csv")},
         "max_concurrent"),
    ],
)  # fmt: skip
def test_a_bad_upload_is_422_naming_the_part(
    client: httpx.Client, store: SqlStore, data: dict[str, str], files: Any, field: str
) -> None:
    response = client.post("/v1/campaigns", data=data, files=files)
    assert response.status_code == 422, response.text
    assert _errors(response) == {field}
    assert store.campaigns() == []  # nothing half-made: no campaign, no calls


def test_an_upload_over_the_row_limit_is_422_and_creates_nothing(
    client: httpx.Client, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(campaign_routes, "MAX_UPLOAD_ROWS", 5)  # CSV has 6 rows
    refused = client.post("/v1/campaigns", data={"name": "spring"},
                          files={"file": ("l.csv", CSV, "text/csv")})  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert _errors(refused) == {"file"}
    assert store.campaigns() == []
    monkeypatch.setattr(campaign_routes, "MAX_UPLOAD_ROWS", 6)
    accepted = client.post("/v1/campaigns", data={"name": "spring"},
                           files={"file": ("l.csv", CSV, "text/csv")})  # fmt: skip
    assert accepted.status_code == 201 and accepted.json()["import"]["rows"] == 6


def test_an_upload_to_a_taken_name_is_409_and_queues_nothing(
    client: httpx.Client, store: SqlStore
) -> None:
    client.post("/v1/campaigns", json={"name": "spring"})
    again = client.post(
        "/v1/campaigns", data={"name": "spring"}, files={"file": ("l.csv", CSV, "text/csv")}
    )
    assert again.status_code == 409 and again.json()["detail"]["reason"] == "campaign_exists"
    assert store.campaign_progress("spring")["queued"] == 0


def test_pause_stops_the_dialer_claiming_and_resume_restarts_it(
    client: httpx.Client, store: SqlStore
) -> None:
    client.post("/v1/campaigns", json={"name": "spring"})
    paused = client.post("/v1/campaigns/spring/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    posted = client.post("/v1/leads", json={**LEAD, "campaign": "spring"})
    assert posted.status_code == 202  # a paused campaign still takes leads
    assert claim(store) == []
    assert client.get("/v1/campaigns/spring").json()["calls"]["queued"] == 1
    resumed = client.post("/v1/campaigns/spring/resume")
    assert resumed.json()["state"] == "active"
    assert [c.call.id for c in claim(store)] == [posted.json()["id"]]
    progress = client.get("/v1/campaigns/spring").json()
    assert (progress["calls"]["queued"], progress["calls"]["dialing"]) == (0, 1)


def test_cancel_ends_waiting_calls_and_refuses_new_leads(
    client: httpx.Client, store: SqlStore
) -> None:
    client.post("/v1/campaigns", files={"file": ("l.csv", CSV, "text/csv")},
                data={"name": "spring"})  # fmt: skip
    cancelled = client.post("/v1/campaigns/spring/cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert (body["state"], body["cancelled_calls"]) == ("cancelled", 3)
    assert body["calls"]["failed"] == 3 and body["calls"]["queued"] == 0
    for delivery in store.webhooks():
        assert json.loads(delivery.body)["call"]["reason"] == "campaign_cancelled"
    assert len(store.webhooks()) == 3
    refused = client.post("/v1/leads", json={**LEAD, "campaign": "spring"})
    assert refused.status_code == 409
    assert refused.json()["detail"]["reason"] == "campaign_cancelled"
    for action in ("resume", "pause", "cancel"):
        again = client.post(f"/v1/campaigns/spring/{action}")
        assert again.status_code == 409
        assert again.json()["detail"]["reason"] == "campaign_cancelled"
    assert claim(store) == []


def test_the_list_shows_each_campaigns_state_and_calls_as_its_own_page_does(
    client: httpx.Client, store: SqlStore
) -> None:
    client.post("/v1/campaigns", files={"file": ("l.csv", CSV, "text/csv")},
                data={"name": "spring", "max_concurrent": "2"})  # fmt: skip
    client.post("/v1/campaigns", json={"name": "autumn"})
    client.post("/v1/campaigns/autumn/pause")
    claim(store)
    listed = client.get("/v1/campaigns")
    assert listed.status_code == 200, listed.text
    campaigns = listed.json()["campaigns"]
    assert [c["name"] for c in campaigns] == ["autumn", "spring"]
    for campaign in campaigns:
        assert campaign == client.get(f"/v1/campaigns/{campaign['name']}").json()
    spring = campaigns[1]
    assert (spring["state"], spring["calls"]["dialing"], spring["calls"]["queued"]) == (
        "active", 2, 1,
    )  # fmt: skip
    assert campaigns[0]["state"] == "paused" and set(campaigns[0]["calls"].values()) == {0}


def test_a_cancelled_campaign_cannot_be_changed(client: httpx.Client, store: SqlStore) -> None:
    client.post("/v1/campaigns", json={"name": "spring", **CONFIG})
    changed = client.put("/v1/campaigns/spring", json={"max_concurrent": 3})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["max_concurrent"], changed.json()["state"]) == (3, "active")
    client.post("/v1/campaigns/spring/cancel")
    refused = client.put("/v1/campaigns/spring", json={"max_concurrent": 9})
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"]["reason"] == "campaign_cancelled"
    stored = store.campaign("spring")
    assert stored is not None and stored.max_concurrent == 3
    assert client.get("/v1/campaigns/spring").json()["max_concurrent"] == 3


def test_an_unknown_campaign_is_404(client: httpx.Client) -> None:
    assert client.get("/v1/campaigns/nope").status_code == 404
    for action in ("pause", "resume", "cancel"):
        assert client.post(f"/v1/campaigns/nope/{action}").status_code == 404


def test_campaign_routes_need_a_key(client: httpx.Client, store: SqlStore) -> None:
    anonymous = httpx.Client(base_url=client.base_url)
    client.post("/v1/campaigns", json={"name": "spring"})
    upload = anonymous.post("/v1/campaigns", data={"name": "autumn"},
                            files={"file": ("l.csv", CSV, "text/csv")})  # fmt: skip
    assert upload.status_code == 401
    assert anonymous.post("/v1/campaigns", json={"name": "winter"}).status_code == 401
    assert anonymous.get("/v1/campaigns/spring").status_code == 401
    assert anonymous.post("/v1/campaigns/spring/cancel").status_code == 401
    assert [c.name for c in store.campaigns()] == ["spring"]
    assert store.campaign_state("spring") == "active"


def test_the_readmes_curl_commands_create_upload_and_stop_a_campaign(
    store: SqlStore, clock: Clock, tmp_path: Path
) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed; the README's commands are not checked")
    app, keys = make_app(store, clock)
    token = keys.create("sales-ops").token
    (tmp_path / "leads.csv").write_text(CSV)
    create = readme_block("Create the campaign with its own hours", language="sh")
    upload = readme_block("Or create it and upload its leads in one request", language="sh")
    stop = readme_block("Progress, and stopping a campaign:", language="sh")
    with serving(app) as base:
        env = {**os.environ, "API": base, "KEY": token}
        run = functools.partial(
            subprocess.run, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
            check=True, timeout=60,
        )  # fmt: skip
        run(create)
        assert store.campaign("spring") is not None
        answer = json.loads(run(upload.replace("name=spring", "name=upload")).stdout)
        assert answer["import"]["queued"] == 3 and answer["retry"]["max_attempts"] == 4
        out = run(stop.replace("spring", "upload")).stdout
    assert store.campaign_state("upload") == "cancelled"
    assert '"state":"paused"' in out and '"state":"active"' in out
    assert store.campaign_progress("upload")["failed"] == 3


def test_the_docs_describe_both_bodies_of_a_campaign_post(store: SqlStore, clock: Clock) -> None:
    app, _keys = make_app(store, clock)
    spec = app.openapi()
    body = spec["paths"]["/v1/campaigns"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert "name" in body["application/json"]["schema"]["required"]
    refs = set(re.findall(r"#/components/schemas/(\w+)", json.dumps(body)))
    assert refs and refs <= set(spec["components"]["schemas"])  # every reference resolves
