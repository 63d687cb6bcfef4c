"""The concurrency caps under concurrent claimers: threads with their own connections, and two
dialer processes, against one queue.

Each claimer notes when it got a call (after the claim committed) and when it let it go
(before the end was committed), on the machine's monotonic clock, which all processes share.
Those intervals lie inside the store's own, so if at any instant more of them overlap than
the cap allows, the store let too many calls be in flight.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dialer.model import Attempt, Call, Campaign
from dialer.pace import Pace
from dialer.sql_store import SqlStore
from dialer.store import ClaimLimits, Ending
from tests.dialer_support import make_call, open_test_store
from tests.pg_cluster import postgres_url  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
CAP = 3
CALLS = 60
HOLD_S = 0.004


def _end(call: Call, attempts: Sequence[Attempt], campaign: Campaign | None) -> Ending:
    return Ending("completed", "completed", None, NOW)


class Tally:
    """What the claimers saw, shared by the threads of one process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.intervals: list[tuple[float, float, str]] = []
        self.claimed = 0
        self.errors: list[BaseException] = []


def claimer(
    store: SqlStore, tally: Tally, *, batch: int, total: int = CALLS, wait_full_s: float = 0.5
) -> None:
    try:
        _claim_until_done(store, tally, batch=batch, total=total, wait_full_s=wait_full_s)
    except BaseException as exc:  # a thread's error must fail the test, not vanish
        tally.errors.append(exc)


def _claim_until_done(
    store: SqlStore, tally: Tally, *, batch: int, total: int, wait_full_s: float
) -> None:
    """Claim; hold until the store shows the cap full (or nothing is left to claim), so the
    claimers overlap however the machine schedules them; end; until nothing is left."""
    limits = ClaimLimits(max_concurrent=CAP, pace=Pace(1000.0), batch=batch)
    idle = 0
    while idle < 50:
        claims = store.claim(now=NOW, limits=limits, plan=lambda c, k: NOW,
                             room_for=lambda c, n: f"r-{c}-{n}")  # fmt: skip
        got = time.monotonic()
        if not claims:
            idle += 1
            time.sleep(0.002)
            continue
        idle = 0
        with tally.lock:
            tally.claimed += len(claims)
        deadline = got + wait_full_s
        while time.monotonic() < deadline and len(store.in_flight()) < CAP:
            with tally.lock:
                if tally.claimed >= total:
                    break
            time.sleep(0.001)
        time.sleep(HOLD_S)
        for claim in claims:
            with tally.lock:
                tally.intervals.append((got, time.monotonic(), claim.call.campaign or ""))
            store.finish_attempt(claim.call.id, claim.attempt.number, decide=_end,
                                 notify=lambda c, a: [])  # fmt: skip


def most_at_once(intervals: Sequence[tuple[float, float, str]], campaign: str | None = None) -> int:
    edges = sorted(
        (t, step)
        for start, end, name in intervals
        if campaign is None or name == campaign
        for t, step in ((start, 1), (end, -1))
    )
    current = peak = 0
    for _, step in edges:  # at equal times the -1 sorts first: touching is not overlapping
        current += step
        peak = max(peak, current)
    return peak


def fill(store: SqlStore, *, campaigns: Sequence[str | None] = (None,)) -> None:
    for n in range(CALLS):
        campaign = campaigns[n % len(campaigns)]
        call = make_call(phone=f"+1212555{n:04d}", call_id=f"c{n:03d}", campaign=campaign)
        store.admit(call, idempotency=None, dedupe_since=None)


def all_completed(store: SqlStore) -> bool:
    return all(
        (call := store.call(f"c{n:03d}")) is not None and call.status == "completed"
        for n in range(CALLS)
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_global_cap_holds_with_concurrent_claimers(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    stores = [open_test_store(kind, tmp_path, url) for _ in range(6)]  # one connection each
    fill(stores[0])
    tally = Tally()
    threads = [
        threading.Thread(target=claimer, args=(s, tally), kwargs={"batch": 2}) for s in stores
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert tally.errors == []
    assert len(tally.intervals) == CALLS and all_completed(stores[0])
    assert most_at_once(tally.intervals) == CAP  # reached, never exceeded
    for store in stores:
        store.close()


def test_a_campaign_cap_holds_with_concurrent_claimers(
    tmp_path: Path,
    postgres_url: str,  # noqa: F811
) -> None:
    stores = [open_test_store("postgres", tmp_path, postgres_url) for _ in range(4)]
    stores[0].put_campaign(Campaign(name="small", max_concurrent=1))
    fill(stores[0], campaigns=("small", "big"))
    tally = Tally()
    threads = [
        threading.Thread(target=claimer, args=(s, tally), kwargs={"batch": 3, "wait_full_s": 0.05})
        for s in stores
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert tally.errors == []
    assert len(tally.intervals) == CALLS and all_completed(stores[0])
    assert most_at_once(tally.intervals, "small") == 1
    assert most_at_once(tally.intervals) <= CAP
    for store in stores:
        store.close()


_PROCESS = """
import json, sys
from dialer.postgres_store import PostgresStore
from tests.test_dialer_caps import Tally, claimer
tally = Tally()
store = PostgresStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # start together
claimer(store, tally, batch=2, total=10**9)  # this process cannot see the other's tally
store.close()
if tally.errors:
    raise tally.errors[0]
print(json.dumps(tally.intervals))
"""


def test_two_dialer_processes_share_one_postgres_queue(postgres_url: str) -> None:  # noqa: F811
    seed = open_test_store("postgres", Path("."), postgres_url)
    fill(seed)
    root = Path(__file__).resolve().parents[1]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _PROCESS, postgres_url],
            cwd=root,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    intervals: list[tuple[float, float, str]] = []
    shares = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        mine = [tuple(i) for i in json.loads(out.strip().splitlines()[-1])]
        shares.append(len(mine))
        intervals.extend(mine)  # type: ignore[arg-type]
    assert sum(shares) == CALLS and all(shares)  # both dialed, nothing twice, nothing lost
    assert all_completed(seed)
    assert most_at_once(intervals) == CAP
    seed.close()
