"""Lead API under a bounded load: no 5xx, no lost lead, latency by request kind.

    uv run python bench/lead_api_load.py                      # 50 clients x 40 requests, SQLite
    uv run python bench/lead_api_load.py --store postgres     # starts its own cluster

`python -m leadapi` runs as its own process on loopback with a fresh data directory and no
dialer (leads are queued, never dialed). Each client has a fixed, seeded mix of requests: new
leads (a number never sent before, with an Idempotency-Key), retries of its own accepted leads
(same key, same body), duplicates by number (no key), malformed or refused requests (bad JSON,
no phone, an unknown field, no consent, a reused key with another body, a wrong API key) and
status reads. The first `--hot-clients` share one API key and fire as fast as they can, past
its rate limit on purpose; every other client has a key of its own and sends no more than
the burst, so it must never be limited. Afterwards the store is read back: every accepted
lead is there exactly once and nothing else is. Exit 1 if any guarantee fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.csv_upload import free_port, lead_api, phone
from bench.dialer_load import postgres  # the cluster the dialer bench starts

KINDS = ("new", "retry", "duplicate", "malformed", "status")
WEIGHTS = (40, 15, 15, 15, 15)


@dataclass
class Outcome:
    kind: str
    client: int
    status: int | None  # None: no answer at all (a timeout or a dropped connection)
    ms: float
    body: Any = None
    expected_id: str | None = None  # a retry or a duplicate must answer with this call
    retry_after: str | None = None


@dataclass
class Client:
    number: int
    token: str
    hot: bool
    accepted: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)  # key, body, id


def lead_body(n: int, **extra: Any) -> dict[str, Any]:
    return {"name": f"Load {n}", "phone": phone(n), "consent": {"given": True},
            "time_zone": "America/New_York", **extra}  # fmt: skip


def malformed(n: int, client: Client) -> tuple[dict[str, Any], dict[str, str]]:
    """One refused request (httpx arguments, extra headers), chosen by ``n``."""
    refused = phone(50_000 + n)  # never sent as a valid lead
    cases: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"content": b'{"phone": ', "headers": {"Content-Type": "application/json"}}, {}),
        ({"json": {"name": "no phone"}}, {}),
        ({"json": {**lead_body(50_000 + n), "surprise": True}}, {}),
        ({"json": {"phone": refused, "name": "no consent"}}, {}),
        ({"json": {"phone": "not a number", "consent": {"given": True}}}, {}),
        ({"json": [lead_body(50_000 + n)]}, {}),
        ({"json": lead_body(50_000 + n)}, {"Authorization": "Bearer sva_nokey_wrong"}),
    ]
    if client.accepted:  # an Idempotency-Key reused for another body
        key, _body, _id = client.accepted[n % len(client.accepted)]
        cases.append(({"json": lead_body(50_000 + n)}, {"Idempotency-Key": key}))
    return cases[n % len(cases)]


async def one_request(http: httpx.AsyncClient, client: Client, kind: str, n: int) -> Outcome:
    expected: str | None = None
    headers: dict[str, str] = {}
    if kind in ("retry", "duplicate", "status") and not client.accepted:
        kind = "new"  # nothing of its own to retry or read yet
    if kind == "new":
        key = f"c{client.number}-{n}"
        body = lead_body(client.number * 1000 + n)
        request: dict[str, Any] = {"json": body}
        headers["Idempotency-Key"] = key
    elif kind == "retry":
        key, body, expected = client.accepted[n % len(client.accepted)]
        request, headers["Idempotency-Key"] = {"json": body}, key
    elif kind == "duplicate":
        _key, body, expected = client.accepted[n % len(client.accepted)]
        request = {"json": {**body, "name": f"Again {n}"}}
    elif kind == "malformed":
        request, headers = malformed(n, client)
    started = time.perf_counter()
    try:
        if kind == "status":
            _key, _body, expected = client.accepted[n % len(client.accepted)]
            response = await http.get(f"/v1/calls/{expected}", headers=headers)
        else:
            extra = request.pop("headers", {})
            response = await http.post("/v1/leads", headers={**headers, **extra}, **request)
    except httpx.HTTPError:
        return Outcome(kind, client.number, None, 1000 * (time.perf_counter() - started))
    ms = 1000 * (time.perf_counter() - started)
    try:
        answer = response.json()
    except ValueError:
        answer = response.text
    outcome = Outcome(kind, client.number, response.status_code, ms, answer, expected,
                      response.headers.get("Retry-After"))  # fmt: skip
    if kind == "new" and response.status_code == 202:
        client.accepted.append((headers["Idempotency-Key"], body, answer["id"]))
    return outcome


async def run_client(base: str, client: Client, requests: int, seed: int) -> list[Outcome]:
    chooser = random.Random(seed * 1_000 + client.number)
    auth = {"Authorization": f"Bearer {client.token}"}
    outcomes = []
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as http:
        for n in range(requests):
            kind = chooser.choices(KINDS, weights=WEIGHTS)[0]
            outcomes.append(await one_request(http, client, kind, n))
    return outcomes


def create_keys(args: argparse.Namespace, data_dir: Path, count: int) -> list[str]:
    """Keys made straight in the store the API will serve from (as `keys create` does)."""
    from leadapi.keys import KeyRing

    if args.database_url:
        from dialer.postgres_store import PostgresStore

        store: Any = PostgresStore(args.database_url)
    else:
        from dialer.sqlite_store import SqliteStore
        from dialer.stores import SQLITE_FILE

        data_dir.mkdir(parents=True, exist_ok=True)
        store = SqliteStore(data_dir / SQLITE_FILE)
    try:
        ring = KeyRing(store, now=lambda: datetime.now(UTC))
        return [ring.create(f"load-{n}").token for n in range(count)]
    finally:
        store.close()


def stored_calls(args: argparse.Namespace, data_dir: Path) -> list[tuple[str, str]]:
    """(id, phone) of every call in the store, read straight from its table."""
    query = "SELECT id, phone FROM dialer_calls"
    if args.database_url:
        import psycopg

        with psycopg.connect(args.database_url) as conn:
            return [(r[0], r[1]) for r in conn.execute(query).fetchall()]
    import sqlite3

    from dialer.stores import SQLITE_FILE

    db = sqlite3.connect(data_dir / SQLITE_FILE)
    try:
        return [(r[0], r[1]) for r in db.execute(query).fetchall()]
    finally:
        db.close()


def check(
    outcomes: list[Outcome], clients: list[Client], stored: list[tuple[str, str]]
) -> list[str]:
    """Every broken guarantee, in words; empty when all hold."""
    problems: list[str] = []
    hot = {c.number for c in clients if c.hot}
    for o in outcomes:
        where = f"{o.kind} from client {o.client}"
        if o.status is None:
            problems.append(f"{where}: no answer")
        elif o.status >= 500:
            problems.append(f"{where}: {o.status}")
        elif o.status == 429 and o.client not in hot:
            problems.append(f"{where}: rate-limited on a key kept under its limit")
        elif o.status == 429 and not o.retry_after:
            problems.append(f"{where}: 429 without Retry-After")
        elif o.status >= 400 and not (isinstance(o.body, dict) and o.body.get("detail")):
            problems.append(f"{where}: {o.status} without a detail")
        elif o.kind == "malformed" and o.status < 400:
            problems.append(f"{where}: accepted ({o.status})")
        elif o.status < 400 and not isinstance(o.body, dict):
            problems.append(f"{where}: {o.status} without a JSON body")
        elif o.status < 400 and o.expected_id and o.body.get("id") != o.expected_id:
            problems.append(f"{where}: answered {o.body.get('id')}, not {o.expected_id}")
        elif o.kind == "duplicate" and o.status < 400 and not o.body.get("duplicate"):
            problems.append(f"{where}: not marked a duplicate")
    accepted = {lead_id: body["phone"] for c in clients for _k, body, lead_id in c.accepted}
    ids = [call_id for call_id, _phone in stored]
    if len(ids) != len(set(ids)):
        problems.append("a call id is stored twice")
    phones = [p for _id, p in stored]
    if len(phones) != len(set(phones)):
        problems.append("a number is stored as two calls")
    lost = set(accepted) - set(ids)
    if lost:
        problems.append(f"{len(lost)} accepted leads are not in the store")
    extra = set(ids) - set(accepted)
    if extra:
        problems.append(f"{len(extra)} stored calls were never accepted")
    for call_id, stored_phone in stored:
        if call_id in accepted and accepted[call_id] != stored_phone:
            problems.append(f"call {call_id} holds another number")
    return problems


def latency(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)

    return {"n": len(ordered), "p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99),
            "max": round(ordered[-1], 1)}  # fmt: skip


def summary(outcomes: list[Outcome], clients: list[Client], wall_s: float) -> dict[str, Any]:
    by_kind: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, int] = defaultdict(int)
    hot = {c.number for c in clients if c.hot}
    limited = [o.ms for o in outcomes if o.status == 429]
    for o in outcomes:
        if o.status is not None and o.status != 429:
            by_kind[o.kind].append(o.ms)
        label = f"{o.status}" + (" (hot key)" if o.client in hot and o.status == 429 else "")
        statuses[label] += 1
    return {
        "requests": len(outcomes),
        "wall_s": round(wall_s, 2),
        "requests_per_s": round(len(outcomes) / wall_s),
        "accepted_leads": sum(len(c.accepted) for c in clients),
        "statuses": dict(sorted(statuses.items())),
        "latency_ms": {kind: latency(by_kind[kind]) for kind in KINDS if by_kind[kind]},
        "rate_limited_ms": latency(limited) if limited else None,
    }


async def load(base: str, clients: list[Client], args: argparse.Namespace) -> list[Outcome]:
    runs = [run_client(base, c, args.requests, args.seed) for c in clients]
    return [o for outcomes in await asyncio.gather(*runs) for o in outcomes]


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="lead-api-load-"))
    data_dir = workdir / "data"
    env = {**os.environ, "DATA_DIR": str(data_dir), "LEADAPI_PORT": str(free_port()),
           "LEAD_CONSENT_REQUIRED": "true",
           "LEADAPI_RATE_LIMIT_PER_MINUTE": str(args.per_minute),
           "LEADAPI_RATE_LIMIT_BURST": str(args.burst)}  # fmt: skip
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    env.pop("LIVEKIT_URL", None)
    if args.requests > args.burst:
        raise SystemExit("--requests must not pass --burst: only the hot key may be limited")
    hot_token, *own = create_keys(args, data_dir, 1 + args.clients - args.hot_clients)
    clients = [Client(n, hot_token, hot=True) for n in range(args.hot_clients)]
    clients += [Client(args.hot_clients + n, t, hot=False) for n, t in enumerate(own)]
    with lead_api(env, workdir) as base:
        started = time.perf_counter()
        outcomes = asyncio.run(load(base, clients, args))
        wall_s = time.perf_counter() - started
    problems = check(outcomes, clients, stored_calls(args, data_dir))
    return {
        "store": args.store,
        "clients": args.clients,
        "hot_clients": args.hot_clients,
        "requests_per_client": args.requests,
        "rate_limit": f"{args.per_minute}/min, burst {args.burst}",
        "cpus": os.cpu_count(),
        "load_before": round(os.getloadavg()[0], 2),
        **summary(outcomes, clients, wall_s),
        "violations": problems,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40, help="per client")
    parser.add_argument("--hot-clients", type=int, default=5, help="sharing the one hot key")
    parser.add_argument("--per-minute", type=float, default=600)
    parser.add_argument("--burst", type=int, default=60)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 0 < args.hot_clients < args.clients:
        parser.error("--hot-clients must be between 1 and --clients - 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with postgres(args):
        result = run(args)
    print(json.dumps(result, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
