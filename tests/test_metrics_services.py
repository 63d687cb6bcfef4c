"""The lead API's and the dialer's own metrics, scraped over real HTTP: the API's requests by
route template and status, their latency, and leads accepted or refused by reason; the
dialer's passes."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dialer.sql_store import SqlStore
from metrics import DialerMetrics
from tests.conftest import Clock
from tests.dialer_support import open_test_store
from tests.leadapi_support import make_app, serving
from tests.test_leadapi_http import LEAD

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = open_test_store("sqlite", tmp_path, None)
    yield opened
    opened.close()


def scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def lead(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(LEAD)
    body.update(changes)
    return body


def test_requests_and_lead_decisions_are_counted_by_route_status_and_reason(
    store: SqlStore, clock: Clock
) -> None:
    app, keys = make_app(store, clock)
    token = keys.create("website").token
    with serving(app) as base:
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
        accepted = client.post("/v1/leads", json=lead())
        assert accepted.status_code == 202
        assert client.post("/v1/leads", json=lead()).status_code == 200  # a duplicate
        assert client.post("/v1/leads", json=lead(consent=None)).status_code == 422
        assert client.post("/v1/leads", json=lead(phone="+1 000 000 0000")).status_code == 422
        assert client.post("/v1/dnc", json={"phone": "+13125550100"}).status_code == 201
        assert client.post("/v1/leads", json=lead(phone="+13125550100")).status_code == 409
        assert client.get(f"/v1/calls/{accepted.json()['id']}").status_code == 200
        assert httpx.post(f"{base}/v1/leads", json=lead()).status_code == 401
        assert client.get("/no/such/page").status_code == 404
        seen = scrape(base)

    def value(name: str, **labels: str) -> float:
        return seen.get((name, frozenset(labels.items())), 0.0)

    assert value("leadapi_leads_accepted_total", kind="new") == 1
    assert value("leadapi_leads_accepted_total", kind="duplicate") == 1
    refused = {
        reason: value("leadapi_leads_refused_total", reason=reason)
        for reason in ("consent_required", "invalid_phone", "do_not_call")
    }
    assert refused == {"consent_required": 1, "invalid_phone": 1, "do_not_call": 1}

    posts = {
        status: value("leadapi_requests_total", method="POST", route="/v1/leads", status=status)
        for status in ("202", "200", "422", "409", "401")
    }
    assert posts == {"202": 1, "200": 1, "422": 2, "409": 1, "401": 1}
    assert value("leadapi_requests_total", method="GET", route="/v1/calls/{call_id}",
                 status="200") == 1  # fmt: skip
    assert value("leadapi_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value("leadapi_request_seconds_count", method="POST", route="/v1/leads") == 6
    assert value("leadapi_request_seconds_sum", method="POST", route="/v1/leads") > 0
    assert value("process_resident_memory_bytes") > 0


def test_two_apps_in_one_process_keep_their_own_counts(store: SqlStore, clock: Clock) -> None:
    first, _ = make_app(store, clock)
    second, _ = make_app(store, clock)
    with serving(first) as base:
        httpx.get(f"{base}/health")
    with serving(second) as base:
        seen = scrape(base)
    labels = {"method": "GET", "route": "/health", "status": "200"}
    assert ("leadapi_requests_total", frozenset(labels.items())) not in seen


def test_the_dialer_counts_its_passes_and_serves_them() -> None:
    dialer = DialerMetrics(clock=lambda: 1_764_600_000.0)
    with dialer.timed_pass():
        dialer.claimed(3)
    with pytest.raises(RuntimeError), dialer.timed_pass():
        raise RuntimeError("the database went away")
    server = dialer.serve(0)
    try:
        seen = scrape(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()

    def value(name: str) -> float:
        return seen.get((name, frozenset()), 0.0)

    assert value("dialer_claims_total") == 3
    assert value("dialer_pass_failures_total") == 1
    assert value("dialer_pass_seconds_count") == 2
    assert value("dialer_last_pass_timestamp_seconds") == 1_764_600_000.0  # the good one
