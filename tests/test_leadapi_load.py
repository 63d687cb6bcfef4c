"""The lead API's bounded load test, reduced to a few seconds: the real `python -m leadapi`
process, concurrent clients over several keys (one pushed past its rate limit), and the store
read back afterwards. The full run and its figures are bench/lead_api_load.py."""

from __future__ import annotations

import pytest

from tests.pg_cluster import postgres_url  # noqa: F401  (the fixture)
from tests.test_bench_scripts import load

pytestmark = pytest.mark.integration

REDUCED = ["--clients", "8", "--requests", "10", "--hot-clients", "3",
           "--burst", "12", "--per-minute", "60"]  # fmt: skip


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_under_load_no_5xx_no_lost_lead_and_only_the_hot_key_is_limited(request, store):
    bench = load("lead_api_load")
    args = bench.parse_args([*REDUCED, "--store", store])
    if store == "postgres":
        args.database_url = request.getfixturevalue("postgres_url")
    result = bench.run(args)
    assert result["violations"] == []
    assert result["requests"] == 80 and result["accepted_leads"] > 0
    statuses = result["statuses"]
    assert statuses.get("429 (hot key)", 0) > 0  # the hot key was limited ...
    assert "429" not in statuses  # ... and no other
    assert statuses.get("422", 0) > 0 and not any(s.startswith("5") for s in statuses)
    assert set(result["latency_ms"]) >= {"new", "retry", "malformed"}


def test_the_checker_reports_a_5xx_a_lost_lead_and_a_bare_refusal():
    bench = load("lead_api_load")
    client = bench.Client(0, "token", hot=False)
    client.accepted = [("k1", bench.lead_body(1), "call_1"), ("k2", bench.lead_body(2), "call_2")]
    outcomes = [
        bench.Outcome("new", 0, 202, 5.0, {"id": "call_1"}),
        bench.Outcome("new", 0, 202, 5.0, {"id": "call_2"}),
        bench.Outcome("status", 0, 503, 5.0, {"detail": "down"}),
        bench.Outcome("malformed", 0, 422, 5.0, {}),
        bench.Outcome("retry", 0, 429, 5.0, {"detail": "slow down"}, retry_after="1"),
        bench.Outcome("duplicate", 0, 200, 5.0, {"id": "call_9", "duplicate": True}, "call_2"),
    ]
    problems = bench.check(outcomes, [client], [("call_1", bench.phone(1))])
    assert problems == [
        "status from client 0: 503",
        "malformed from client 0: 422 without a detail",
        "retry from client 0: rate-limited on a key kept under its limit",
        "duplicate from client 0: answered call_9, not call_2",
        "1 accepted leads are not in the store",
    ]
    assert bench.check(outcomes[:2], [client], [("call_1", bench.phone(1)),
                                               ("call_2", bench.phone(2))]) == []  # fmt: skip
