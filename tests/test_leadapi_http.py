"""The lead API over real HTTP: httpx against uvicorn on a loopback port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from dialer.model import CallResult, Campaign, Claim
from dialer.outcomes import AttemptReport, OutcomeReporter
from dialer.sql_store import SqlStore
from tests.conftest import Clock
from tests.dialer_support import make_policy, open_test_store
from tests.leadapi_support import at, make_app, serving
from tests.pg_cluster import postgres_url  # noqa: F401  (the fixture)
from tests.readme_snippets import readme_block, run_node

pytestmark = pytest.mark.integration

LEAD: dict[str, Any] = {
    "name": "Ada Lovelace",
    "phone": "(212) 555-0100",
    "email": "ada@example.com",
    "company": "Analytical Engines",
    "source": "pricing-page",
    "fields": {"team_size": 12, "interest": "demo"},
    "consent": {
        "given": True,
        "wording": "I agree to be called about my request.",
        "time": "2026-11-23T14:58:00Z",
        "source": "https://example.com/pricing",
    },
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = open_test_store("sqlite", tmp_path, None)
    yield opened
    opened.close()


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
        self.anonymous = httpx.Client(base_url=base)


@pytest.fixture
def api(store: SqlStore, clock: Clock) -> Iterator[Api]:
    app, keys = make_app(store, clock)
    token = keys.create("website").token
    with serving(app) as base:
        yield Api(base, token)


def _errors(response: httpx.Response) -> dict[str, str]:
    return {".".join(map(str, e["loc"][1:])): e["type"] for e in response.json()["detail"]}


def test_a_lead_is_queued_and_its_status_can_be_read(api: Api, store: SqlStore) -> None:
    posted = api.client.post("/v1/leads", json=LEAD)
    assert posted.status_code == 202, posted.text
    body = posted.json()
    assert body["status"] == "queued" and body["duplicate"] is False
    assert body["status_url"] == f"{api.base}/v1/calls/{body['id']}"
    status = api.client.get(body["status_url"]).json()
    assert (status["status"], status["attempts"], status["final"]) == ("queued", [], False)
    assert status["lead"]["phone"] == "+12125550100"  # normalised to E.164
    assert status["time_zone"] == "America/New_York"  # from the area code
    call = store.call(body["id"])
    assert call is not None and call.lead.consent is not None
    assert call.lead.consent.time == datetime(2026, 11, 23, 14, 58, tzinfo=UTC)
    assert call.lead.fields == {"team_size": 12, "interest": "demo"}


def test_a_lead_outside_its_calling_hours_is_scheduled_for_the_first_allowed_moment(
    api: Api,
) -> None:
    # 07:00 in Los Angeles when the clock says 10:00 in New York.
    posted = api.client.post("/v1/leads", json={**LEAD, "phone": "+14155550100"})
    assert posted.status_code == 202
    body = posted.json()
    assert body["status"] == "scheduled"
    assert datetime.fromisoformat(body["scheduled_for"]) == datetime(
        2026, 11, 23, 17, 0, tzinfo=UTC
    )  # 09:00 Pacific


def test_the_leads_own_time_zone_wins_over_the_area_code(api: Api) -> None:
    posted = api.client.post("/v1/leads", json={**LEAD, "time_zone": "Pacific"})
    assert posted.json()["status"] == "scheduled"


@pytest.mark.parametrize(
    ("change", "field", "kind"),
    [
        ({"phone": "555"}, "phone", "value_error"),
        ({"phone": "not a number"}, "phone", "value_error"),
        ({"email": "ada-at-example"}, "email", "value_error"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "value_error"),
        ({"campaign": "nope"}, "campaign", "value_error"),
        ({"consent": None}, "consent", "consent_required"),
        ({"consent": {"given": False}}, "consent", "consent_required"),
        ({"consent": {"given": True, "time": "2026-11-23T14:58:00"}}, "consent.time",
         "timezone_aware"),
        ({"colour": "blue"}, "colour", "extra_forbidden"),
    ],
)  # fmt: skip
def test_bad_input_is_422_naming_the_field_and_stores_nothing(
    api: Api, store: SqlStore, change: dict[str, Any], field: str, kind: str
) -> None:
    response = api.client.post("/v1/leads", json={**LEAD, **change})
    assert response.status_code == 422, response.text
    assert _errors(response) == {field: kind}
    assert "2125550100" not in response.text or field != "phone"
    assert api.client.post("/v1/leads", json=LEAD).json()["duplicate"] is False


def test_a_body_that_is_not_json_is_422(api: Api) -> None:
    response = api.client.post(
        "/v1/leads", content=b"{name: nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422 and _errors(response) == {"1": "json_invalid"}


def test_consent_is_not_required_when_the_setting_says_so(store: SqlStore, clock: Clock) -> None:
    app, keys = make_app(store, clock, consent_required=False)
    token = keys.create("crm-sync").token
    with serving(app) as base:
        response = httpx.post(f"{base}/v1/leads", json={**LEAD, "consent": None},
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert response.status_code == 202


def test_do_not_call_refuses_the_lead_with_the_reason(api: Api) -> None:
    added = api.client.post("/v1/dnc", json={"phone": "212-555-0100", "reason": "asked"})
    assert (added.status_code, added.json()) == (201, {"phone": "+12125550100", "added": True})
    assert api.client.post("/v1/dnc", json={"phone": "+12125550100"}).status_code == 200
    refused = api.client.post("/v1/leads", json=LEAD)
    assert refused.status_code == 409
    assert refused.json()["detail"]["reason"] == "do_not_call"
    listed = api.client.get("/v1/dnc").json()["entries"]
    assert [(e["phone"], e["reason"]) for e in listed] == [("+12125550100", "asked")]
    assert api.client.delete("/v1/dnc/+12125550100").status_code == 204
    assert api.client.delete("/v1/dnc/+12125550100").status_code == 404
    assert api.client.post("/v1/leads", json=LEAD).status_code == 202


def test_the_same_idempotency_key_gets_the_same_answer_and_one_call(api: Api) -> None:
    headers = {"Idempotency-Key": "form-submission-42"}
    first = api.client.post("/v1/leads", json=LEAD, headers=headers)
    again = api.client.post("/v1/leads", json=LEAD, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    other = api.client.post("/v1/leads", json={**LEAD, "name": "Someone Else"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["detail"]["reason"] == "idempotency_key_reused"


def test_a_second_lead_for_the_number_within_the_window_answers_with_the_first_call(
    api: Api, clock: Clock
) -> None:
    first = api.client.post("/v1/leads", json=LEAD).json()
    clock.value += timedelta(hours=3)
    again = api.client.post("/v1/leads", json={**LEAD, "phone": "+1 212 555 0100"})
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["duplicate"]) == (first["id"], True)
    clock.value += timedelta(hours=22)
    later = api.client.post("/v1/leads", json=LEAD)
    assert later.status_code == 202 and later.json()["id"] != first["id"]


def test_a_campaign_sets_its_own_hours_and_the_clamp_shows(api: Api, store: SqlStore) -> None:
    put = api.client.put(
        "/v1/campaigns/evening",
        json={"calling_hours": {"start": "06:00", "end": "23:00", "days": ["mon", "sat"]},
              "max_concurrent": 2, "retry": {"max_attempts": 2, "busy_minutes": [5]}},
    )  # fmt: skip
    assert put.status_code == 200, put.text
    hours = put.json()["calling_hours"]
    assert (hours["effective_start"], hours["effective_end"]) == ("08:00", "21:00")
    campaign = store.campaign("evening")
    assert isinstance(campaign, Campaign) and campaign.max_concurrent == 2
    empty = api.client.put(
        "/v1/campaigns/late", json={"calling_hours": {"start": "21:30", "end": "23:00"}}
    )
    assert empty.status_code == 422 and _errors(empty) == {"calling_hours": "value_error"}
    posted = api.client.post("/v1/leads", json={**LEAD, "campaign": "evening"})
    assert posted.status_code == 202


def test_the_workers_report_shows_in_the_status(api: Api, store: SqlStore, clock: Clock) -> None:
    call_id = api.client.post("/v1/leads", json=LEAD).json()["id"]
    claim_all(store, clock)
    progress = api.client.post(
        f"/v1/calls/{call_id}/attempts/1/progress", json={"state": "answered"}
    )
    assert progress.json() == {"recorded": True}
    assert api.client.get(f"/v1/calls/{call_id}").json()["status"] == "answered"
    outcome = {
        "status": "completed", "disposition": "booked", "summary": "Demo on Tuesday.",
        "qualification": {"budget": "approved", "timeline": "this quarter"},
        "booking": {"start": "2026-11-24T15:00:00+00:00", "calendar_event_id": "evt-1"},
    }  # fmt: skip
    reported = api.client.post(f"/v1/calls/{call_id}/attempts/1/outcome", json=outcome)
    assert reported.json() == {"recorded": True}
    again = api.client.post(f"/v1/calls/{call_id}/attempts/1/outcome", json=outcome)
    assert again.json() == {"recorded": False}
    status = api.client.get(f"/v1/calls/{call_id}").json()
    assert (status["status"], status["final"]) == ("completed", True)
    assert status["result"]["disposition"] == "booked"
    assert status["result"]["booking"]["calendar_event_id"] == "evt-1"
    assert [a["outcome"] for a in status["attempts"]] == ["completed"]
    assert api.client.get("/v1/calls/call_unknown").status_code == 404


def test_a_callback_reported_over_http_is_scheduled_as_the_in_process_report_is(
    api: Api, store: SqlStore, clock: Clock
) -> None:
    over_http = api.client.post("/v1/leads", json=LEAD).json()["id"]
    in_process = api.client.post("/v1/leads", json={**LEAD, "phone": "+12125550177"}).json()["id"]
    assert len(claim_all(store, clock)) == 2
    four_pm_ny = clock.value.replace(hour=21)  # 16:00 in New York, same day
    outcome = {
        "status": "callback", "callback_at": at(four_pm_ny), "disposition": "nurture",
        "summary": "Asked to be called back at four.",
    }  # fmt: skip
    reported = api.client.post(f"/v1/calls/{over_http}/attempts/1/outcome", json=outcome)
    assert reported.json() == {"recorded": True}
    reporter = OutcomeReporter(queue=store, policy=make_policy(), webhook_urls=(), now=clock)
    result = CallResult(disposition="nurture", summary="Asked to be called back at four.")
    assert reporter.report(
        AttemptReport(in_process, 1, "callback", result=result, callback_at=four_pm_ny)
    )
    by_http = api.client.get(f"/v1/calls/{over_http}").json()
    by_reporter = api.client.get(f"/v1/calls/{in_process}").json()
    assert (by_http["status"], by_http["final"]) == ("scheduled", False)
    assert datetime.fromisoformat(by_http["next_attempt_at"]) == four_pm_ny
    assert [a["outcome"] for a in by_http["attempts"]] == ["callback"]
    same = ("status", "final", "reason", "next_attempt_at", "result")
    assert {k: by_http[k] for k in same} == {k: by_reporter[k] for k in same}


@pytest.mark.parametrize(
    "outcome",
    [
        {"status": "callback"},  # when?
        {"status": "busy", "callback_at": "2026-11-23T21:00:00+00:00"},  # a time for no callback
        {"status": "callback", "callback_at": "2026-11-23T16:00:00"},  # no UTC offset
    ],
)
def test_a_callback_report_without_its_time_or_with_a_stray_one_is_refused(
    api: Api, store: SqlStore, clock: Clock, outcome: dict[str, Any]
) -> None:
    call_id = api.client.post("/v1/leads", json=LEAD).json()["id"]
    claim_all(store, clock)
    refused = api.client.post(f"/v1/calls/{call_id}/attempts/1/outcome", json=outcome)
    assert refused.status_code == 422
    assert list(_errors(refused)) == ["callback_at"]
    assert api.client.get(f"/v1/calls/{call_id}").json()["status"] == "dialing"


SEND_FROM_NODE = """
import { sendLead } from "./send.mjs";
const [apiUrl, apiKey] = process.argv.slice(2);
const form = {
  submissionId: "form-42", name: "Ada Lovelace", phone: "(212) 555-0100", email: "",
  company: "Analytical Engines", interest: "sales forecasting", agreed: true,
  consentText: "Call me about my request.", agreedAt: "2026-11-23T14:58:00Z",
  pageUrl: "https://example.com/pricing",
};
const first = await sendLead(form, { apiUrl, apiKey });
const again = await sendLead(form, { apiUrl, apiKey });  // a retried submission
let refused = null;
try {
  await sendLead({ ...form, submissionId: "form-43", agreed: false }, { apiUrl, apiKey });
} catch (error) {
  refused = error.message;
}
process.stdout.write(JSON.stringify({ first, again, refused }));
"""


def test_the_javascript_snippet_in_the_readme_sends_a_lead_once(
    store: SqlStore, clock: Clock, tmp_path: Path
) -> None:
    app, keys = make_app(store, clock)
    token = keys.create("website").token
    snippet = readme_block("The same from JavaScript on your backend", language="js")
    (tmp_path / "send.mjs").write_text(snippet)
    with serving(app) as base:
        sent = json.loads(run_node(tmp_path, SEND_FROM_NODE, base, token))
    first, again = sent["first"], sent["again"]
    assert (first["status"], first["duplicate"]) == ("queued", False)
    assert again == first  # the same Idempotency-Key: the same answer, no second call
    call = store.call(first["id"])
    assert call is not None and call.lead.phone == "+12125550100"
    assert call.lead.fields == {"interest": "sales forecasting"}
    assert call.lead.consent is not None and call.lead.consent.given
    assert call.lead.email is None  # an empty form field is left out, not refused
    refused = sent["refused"]
    assert refused.startswith("lead refused (422)") and "consent_required" in refused


ROUTES = [
    ("POST", "/v1/leads"),
    ("GET", "/v1/calls/x"),
    ("POST", "/v1/calls/x/attempts/1/outcome"),
    ("POST", "/v1/calls/x/attempts/1/progress"),
    ("GET", "/v1/dnc"),
    ("POST", "/v1/dnc"),
    ("DELETE", "/v1/dnc/+12125550100"),
    ("GET", "/v1/campaigns"),
    ("PUT", "/v1/campaigns/x"),
    ("POST", "/v1/campaigns"),
    ("GET", "/v1/campaigns/x"),
    ("POST", "/v1/campaigns/x/pause"),
    ("POST", "/v1/campaigns/x/resume"),
    ("POST", "/v1/campaigns/x/cancel"),
]


def test_every_route_but_health_and_the_docs_needs_a_live_key(
    store: SqlStore, clock: Clock
) -> None:
    app, keys = make_app(store, clock)
    live = keys.create("website").token
    revoked = keys.create("old").token
    keys.revoke("old")
    documented = app.openapi()["paths"]
    operations = [(m, p) for p, ops in documented.items() for m in ops if p.startswith("/v1")]
    assert len(operations) == len(ROUTES)  # a new route must be added to ROUTES
    bad_headers = [
        {},
        {"Authorization": f"Bearer {revoked}"},
        {"Authorization": "Bearer sva_k1_wrong"},
        {"Authorization": live},  # no scheme
        {"Authorization": f"Basic {live}"},
    ]
    with serving(app) as base:
        for header in bad_headers:
            for method, path in ROUTES:
                response = httpx.request(method, base + path, headers=header, content=b"{bad")
                assert response.status_code == 401, (method, path, header)
                assert response.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{base}/health").json() == {"ok": True}
        assert httpx.get(f"{base}/docs").status_code == 200
        assert "/v1/leads" in httpx.get(f"{base}/openapi.json").json()["paths"]
        authorised = httpx.get(f"{base}/v1/dnc", headers={"Authorization": f"Bearer {live}"})
        assert authorised.status_code == 200


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_concurrent_retries_of_one_submission_make_one_call(
    kind: str, tmp_path: Path, clock: Clock, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    store = open_test_store(kind, tmp_path, url)
    app, keys = make_app(store, clock)
    token = keys.create("website").token
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "retry-storm"}
    with serving(app) as base, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda _: httpx.post(f"{base}/v1/leads", json=LEAD, headers=headers), range(16)
        ))  # fmt: skip
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(claim_all(store, clock)) == 1
    store.close()


def claim_all(store: SqlStore, clock: Clock) -> list[Claim]:
    return store.claim(
        now=clock.value,
        limits=make_policy().limits(),
        plan=lambda c, k: clock.value,
        room_for=lambda c, n: f"r-{c}-{n}",
    )
