"""The dialer under load: 10,000 queued leads, a cap of 20 calls in flight.

    uv run python bench/dialer_load.py --leads 10000 --cap 20 --store sqlite
    uv run python bench/dialer_load.py --leads 10000 --cap 20 --store postgres

What runs where:

- The dialer, in its own process: the scheduler, the store and ``LiveKitDispatcher`` (the
  real ``livekit-api`` client) assembled from ``dialer.service`` as ``python -m dialer``
  assembles them, from the same settings, with timers around the store and dispatch calls
  (so the time per dispatch is measured where it is spent). Its peak RSS and CPU time are
  its own (``getrusage``), and its RSS is also sampled from outside.
- The dispatch target, in this process: a stand-in of LiveKit's dispatch API speaking its
  Twirp protocol (protobuf over HTTP, ``CreateRoom`` with the dispatch in it and
  ``ListRooms``, JWTs checked with ``livekit-api``'s verifier). It is also the fake, fast
  worker: each dispatch is a call that is "answered" at once and "completed"
  ``--call-seconds`` later, reported through the dialer's own ``OutcomeReporter`` on the
  same queue, as the real worker reports. It is not livekit-server: no room is created and
  no job assigned, so the dispatch round trip here is a floor for the real one
  (``--livekit-sample N`` also times N dispatches against a real local livekit-server).
- The cap is checked two ways: the stand-in counts calls from the dispatch's arrival to the
  moment before their report (so it can only under-count what the store holds in flight),
  and a sampler reads the store's in-flight count on its own connection every 20 ms.

Every lead must be dispatched exactly once and end ``completed``; the bench says so if not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from livekit import api

AGENT = "sales-agent"
KEY, SECRET = "benchkey", "bench-secret-for-loopback-only-000000"
TRUNK = "ST_bench"


def zone_at_midday(now: datetime) -> str:
    offset = min(range(-12, 15), key=lambda o: (abs((now.hour + o) % 24 - 13), abs(o)))
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


# --- the dialer process, with timers -------------------------------------------------------


@dataclass
class Timers:
    samples: dict[str, list[float]] = field(default_factory=dict)
    claimed: int = 0

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.samples.setdefault(name, []).append(time.perf_counter() - started)


class TimedQueue:
    """The store as the scheduler sees it (``CallQueue``), timing what it is asked."""

    def __init__(self, store: Any, timers: Timers) -> None:
        self._store, self._timers = store, timers

    def claim(self, **kwargs: Any) -> Any:
        with self._timers.timed("claim"):
            claims = self._store.claim(**kwargs)
        self._timers.claimed += len(claims)
        return claims

    def mark_dispatched(self, *args: Any) -> None:
        with self._timers.timed("mark_dispatched"):
            self._store.mark_dispatched(*args)

    def in_flight(self) -> Any:
        with self._timers.timed("in_flight"):
            return self._store.in_flight()

    def is_dnc(self, phone: str) -> bool:
        with self._timers.timed("is_dnc"):
            return bool(self._store.is_dnc(phone))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class TimedDispatcher:
    def __init__(self, dispatcher: Any, timers: Timers) -> None:
        self._dispatcher, self._timers = dispatcher, timers

    async def dispatch(self, request: Any) -> str:
        with self._timers.timed("dispatch"):
            return str(await self._dispatcher.dispatch(request))

    async def is_live(self, room: str) -> bool:
        with self._timers.timed("is_live"):
            return bool(await self._dispatcher.is_live(room))


async def dialer_process() -> dict[str, Any]:
    from dialer.dispatch import LiveKitDispatcher
    from dialer.policy import DialPolicy
    from dialer.scheduler import Scheduler
    from dialer.service import build_reporter, livekit_api, load_dialer_settings, utc_now
    from dialer.stores import open_store

    settings = load_dialer_settings(env_file=None)
    store = open_store(settings.queue, data_dir=settings.integrations.data_dir)
    timers = Timers()
    queue = TimedQueue(store, timers)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with livekit_api(settings.livekit) as lkapi:
        policy = DialPolicy.from_settings(settings.dialer, settings.business)
        assert settings.telephony.sip_outbound_trunk_id is not None
        scheduler = Scheduler(
            queue=queue, dnc=queue, dispatcher=TimedDispatcher(LiveKitDispatcher(lkapi), timers),
            reporter=build_reporter(settings.dialer, settings.business, queue=store),
            policy=policy, agent_name=settings.livekit.agent_name,
            sip_trunk_id=settings.telephony.sip_outbound_trunk_id, now=utc_now,
        )  # fmt: skip
        while not stop.is_set():  # the loop of dialer.service, without the webhook sender
            with timers.timed("tick"):
                await scheduler.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.dialer.dialer_poll_seconds)
    store.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "samples": timers.samples, "claimed": timers.claimed,
        "max_rss_kb": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime,
    }  # fmt: skip


# --- the dispatch API stand-in and fake worker ----------------------------------------------


@dataclass
class Tally:
    cap: int
    in_flight: int = 0
    peak: int = 0
    violations: int = 0
    dispatched: Counter[str] = field(default_factory=Counter)
    reported: int = 0
    arrivals: list[float] = field(default_factory=list)
    refused_auth: int = 0


class DispatchStandin:
    """LiveKit's RoomService.CreateRoom (with the agent dispatch) and ListRooms over Twirp;
    every dispatch becomes a call that completes ``call_s`` later."""

    def __init__(self, *, tally: Tally, call_s: float, reporter: Any) -> None:
        self.tally = tally
        self._call_s = call_s
        self._reporter = reporter
        self._verifier = api.TokenVerifier(KEY, SECRET)
        self._live: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/twirp/livekit.RoomService/CreateRoom", self._create)
        app.router.add_post("/twirp/livekit.RoomService/ListRooms", self._list_rooms)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    def _authorised(self, request: web.Request, *, grant: str = "room_admin") -> bool:
        """The token is valid and grants what livekit-server asks of this call."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            claims = self._verifier.verify(token)
        except Exception:  # any bad token is refused, as livekit-server refuses it
            return False
        return scheme == "Bearer" and bool(claims.video and getattr(claims.video, grant))

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorised(request, grant="room_create"):
            self.tally.refused_auth += 1
            return web.json_response({"code": "unauthenticated", "msg": "bad token"}, status=401)
        asked = api.CreateRoomRequest.FromString(await request.read())
        (agent,) = asked.agents
        tally = self.tally
        tally.arrivals.append(time.monotonic())
        tally.in_flight += 1
        tally.peak = max(tally.peak, tally.in_flight)
        tally.violations += tally.in_flight > tally.cap
        tally.dispatched[asked.name] += 1
        self._live.add(asked.name)
        task = asyncio.create_task(self._call(asked.name, agent.metadata))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        room = api.Room(sid=f"RM_{len(tally.arrivals)}", name=asked.name)
        return web.Response(body=room.SerializeToString(), content_type="application/protobuf")

    async def _list_rooms(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"code": "unauthenticated", "msg": "bad token"}, status=401)
        asked = api.ListRoomsRequest.FromString(await request.read())
        rooms = [api.Room(name=name) for name in asked.names if name in self._live]
        answer = api.ListRoomsResponse(rooms=rooms)
        return web.Response(body=answer.SerializeToString(), content_type="application/protobuf")

    async def _call(self, room: str, metadata: str) -> None:
        from dialer.outcomes import AttemptRef, AttemptReport

        ref = AttemptRef.from_metadata(metadata)
        assert ref is not None, metadata
        await asyncio.to_thread(self._reporter.progress, ref, "answered")
        await asyncio.sleep(self._call_s)
        self.tally.in_flight -= 1  # before the report: the count never exceeds the store's
        report = AttemptReport(ref.call_id, ref.attempt, "completed")
        await asyncio.to_thread(self._reporter.report, report)
        self._live.discard(room)
        self.tally.reported += 1


# --- samplers --------------------------------------------------------------------------------

IN_FLIGHT_SQL = "SELECT count(*) FROM dialer_attempts WHERE state != 'ended'"


class StoreSampler(threading.Thread):
    """The store's own in-flight count, read on a separate connection every ``every_s``."""

    def __init__(self, connect: Callable[[], Any], *, every_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self._connect, self._every = connect, every_s
        self.peak = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        conn = self._connect()
        try:
            while not self.done.is_set():
                count = int(conn.execute(IN_FLIGHT_SQL).fetchone()[0])
                self.peak, self.samples = max(self.peak, count), self.samples + 1
                self.done.wait(self._every)
        finally:
            conn.close()


def rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --- the run ---------------------------------------------------------------------------------


def seed(store: Any, leads: int, *, zone: str) -> None:
    """``leads`` calls due now, in one transaction with the statement admission uses."""
    from dialer.model import Call, Consent, Lead
    from dialer.sql.calls import insert_call

    now = datetime.now(UTC)
    with store.transaction() as tx:
        for index in range(leads):
            lead = Lead(phone=f"+1212{index:07d}", name=f"Lead {index}",
                        consent=Consent(given=True))  # fmt: skip
            insert_call(tx, Call(id=f"call_bench{index:06d}", lead=lead, zone=zone,
                                 campaign=None, status="queued", created_at=now,
                                 updated_at=now, next_at=now))  # fmt: skip


def dialer_env(args: argparse.Namespace, *, data_dir: Path, livekit_url: str) -> dict[str, str]:
    import config

    base = {k: v for k, v in os.environ.items() if k not in config.variable_names()}
    env = {
        **base,
        "LIVEKIT_URL": livekit_url, "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET,
        "AGENT_NAME": AGENT, "SIP_OUTBOUND_TRUNK_ID": TRUNK, "DATA_DIR": str(data_dir),
        "DIALER_MAX_CONCURRENT_CALLS": str(args.cap),
        "DIALER_CALLS_PER_SECOND": str(args.pace), "DIALER_POLL_SECONDS": str(args.poll),
        "DIALER_CALLING_DAYS": "mon,tue,wed,thu,fri,sat,sun", "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    return env


@contextlib.contextmanager
def postgres(args: argparse.Namespace) -> Iterator[None]:
    if args.store != "postgres" or args.database_url:
        yield
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.pg_cluster import PgCluster, _binary

    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise SystemExit("PostgreSQL binaries are not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="dialer-load-pg-"))
    root.chmod(0o755)
    cluster = PgCluster(root, initdb=initdb, pg_ctl=pg_ctl)
    cluster.start()
    try:
        args.database_url = cluster.new_database()
        yield
    finally:
        cluster.stop()


def open_bench_store(args: argparse.Namespace, data_dir: Path) -> tuple[Any, Callable[[], Any]]:
    if args.store == "postgres":
        import psycopg

        from dialer.postgres_store import PostgresStore

        url = args.database_url
        return PostgresStore(url), lambda: psycopg.connect(url, autocommit=True)
    from dialer.sqlite_store import SqliteStore

    path = data_dir / "dialer.sqlite3"
    return SqliteStore(path), lambda: sqlite3.connect(path, isolation_level=None)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from config import BusinessSettings, DialerSettings
    from dialer.service import build_reporter

    workdir = Path(tempfile.mkdtemp(prefix="dialer-load-"))
    data_dir = workdir / "data"
    data_dir.mkdir()
    store, connect = open_bench_store(args, data_dir)
    started = time.monotonic()
    seed(store, args.leads, zone=zone_at_midday(datetime.now(UTC)))
    seeded_s = time.monotonic() - started
    tally = Tally(cap=args.cap)
    reporter = build_reporter(DialerSettings(), BusinessSettings(), queue=store)
    standin = DispatchStandin(tally=tally, call_s=args.call_seconds, reporter=reporter)
    await standin.start()
    sampler = StoreSampler(connect)
    sampler.start()
    stats_path = workdir / "dialer-stats.json"
    env = dialer_env(args, data_dir=data_dir, livekit_url=standin.url)
    log_path = workdir / "dialer.log"
    dialer = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "dialer", "--stats", str(stats_path),
        env=env, cwd=workdir, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert dialer.stderr is not None
    drained = asyncio.create_task(dialer.stderr.read())  # never let its log block it
    rss_peak, rss_at_first = 0, 0
    deadline = time.monotonic() + args.limit_s
    try:
        while tally.reported < args.leads:
            if dialer.returncode is not None:
                raise RuntimeError("the dialer exited early; see its log")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{tally.reported} of {args.leads} calls in {args.limit_s} s")
            rss = rss_kb(dialer.pid)
            rss_peak = max(rss_peak, rss)
            if tally.arrivals and not rss_at_first:
                rss_at_first = rss
            await asyncio.sleep(0.25)
    finally:
        if dialer.returncode is None:
            dialer.send_signal(signal.SIGTERM)
        await asyncio.wait_for(dialer.wait(), 60)
        log_path.write_bytes(await drained)
        sampler.done.set()
        sampler.join()
        await standin.stop()
    stats = json.loads(stats_path.read_text())
    return summarise(args, tally=tally, sampler=sampler, stats=stats, store=store, rss=(
        rss_at_first, rss_peak), seeded_s=seeded_s)  # fmt: skip


def summarise(
    args: argparse.Namespace,
    *,
    tally: Tally,
    sampler: StoreSampler,
    stats: dict[str, Any],
    store: Any,
    rss: tuple[int, int],
    seeded_s: float,
) -> dict[str, Any]:
    with store.transaction() as tx:
        outcomes = dict(tx.rows("SELECT outcome, count(*) FROM dialer_attempts GROUP BY outcome"))
        statuses = dict(tx.rows("SELECT status, count(*) FROM dialer_calls GROUP BY status"))
        attempts = int(tx.rows("SELECT count(*) FROM dialer_attempts")[0][0])
    store.close()
    samples: dict[str, list[float]] = stats["samples"]
    dispatched = len(tally.arrivals)

    def per_dispatch_ms(name: str) -> float:
        return 1000 * sum(samples.get(name, [])) / max(dispatched, 1)

    window = tally.arrivals[-1] - tally.arrivals[0] if dispatched > 1 else 0.0
    dispatch_ms = [1000 * s for s in samples.get("dispatch", [])]
    return {
        "store": args.store, "leads": args.leads, "cap": args.cap,
        "call_seconds": args.call_seconds, "poll_seconds": args.poll,
        "calls_per_second_setting": args.pace,
        "dispatched": dispatched, "reported": tally.reported, "attempts_in_store": attempts,
        "rooms_dispatched_twice": sum(1 for n in tally.dispatched.values() if n > 1),
        "outcomes": outcomes, "statuses": statuses,
        "peak_in_flight_at_dispatch": tally.peak, "cap_violations": tally.violations,
        "peak_in_flight_in_store": sampler.peak, "store_samples": sampler.samples,
        "throughput_per_s": dispatched / window if window else 0.0,
        "bound_per_s": min(args.cap / args.call_seconds, 10 / args.poll, args.pace),
        "dialer_ms_per_dispatch": per_dispatch_ms("tick"),
        "claim_ms_per_dispatch": per_dispatch_ms("claim"),
        "is_dnc_ms_per_dispatch": per_dispatch_ms("is_dnc"),
        "dispatch_request_ms_p50": percentile(dispatch_ms, 0.5),
        "dispatch_request_ms_p95": percentile(dispatch_ms, 0.95),
        "dispatch_request_ms_mean": statistics.fmean(dispatch_ms) if dispatch_ms else 0.0,
        "mark_dispatched_ms_per_dispatch": per_dispatch_ms("mark_dispatched"),
        "reconcile_in_flight_ms_per_dispatch": per_dispatch_ms("in_flight"),
        "ticks": len(samples.get("tick", [])),
        "dialer_cpu_ms_per_dispatch": 1000 * stats["cpu_s"] / max(dispatched, 1),
        "dialer_peak_rss_mb": stats["max_rss_kb"] / 1024,
        "dialer_rss_mb_at_first_dispatch": rss[0] / 1024,
        "dialer_rss_mb_sampled_peak": rss[1] / 1024,
        "seed_seconds": seeded_s, "refused_auth": tally.refused_auth,
    }  # fmt: skip


async def livekit_sample(count: int) -> dict[str, float]:
    """``count`` dispatches through ``LiveKitDispatcher`` to a real local livekit-server."""
    from dialer.dispatch import DispatchRequest, LiveKitDispatcher
    from localstack import LocalStack, StackPorts

    stack = LocalStack(ports=StackPorts.free(), log_dir=Path(tempfile.mkdtemp(prefix="lk-")))
    await asyncio.to_thread(stack.start)
    try:
        async with api.LiveKitAPI(stack.url, stack.api_key, stack.api_secret) as lkapi:
            dispatcher = LiveKitDispatcher(lkapi)
            took = []
            for index in range(count):
                request = DispatchRequest(agent_name=AGENT, room=f"dial-bench-{index}",
                                          metadata="{}")  # fmt: skip
                started = time.perf_counter()
                await dispatcher.dispatch(request)
                took.append(1000 * (time.perf_counter() - started))
    finally:
        await asyncio.to_thread(stack.stop)
    return {"livekit_dispatch_ms_p50": percentile(took, 0.5),
            "livekit_dispatch_ms_p95": percentile(took, 0.95)}  # fmt: skip


def report(result: dict[str, Any]) -> None:
    for name, value in result.items():
        shown = f"{value:.2f}" if isinstance(value, float) else value
        print(f"{name:38} {shown}")
    if "leads" not in result:
        return
    ok = (
        result["cap_violations"] == 0
        and result["peak_in_flight_in_store"] <= result["cap"]
        and result["dispatched"] == result["leads"] == result["attempts_in_store"]
        and result["rooms_dispatched_twice"] == 0
        and result["statuses"] == {"completed": result["leads"]}
    )
    print("every lead dialed once, completed, cap held" if ok else "FAILED: see the figures")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["bench", "dialer"], default="bench")
    parser.add_argument("--stats", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--database-url", help="an existing, empty PostgreSQL database")
    parser.add_argument("--leads", type=int, default=10_000, help="0: only --livekit-sample")
    parser.add_argument("--cap", type=int, default=20)
    parser.add_argument("--call-seconds", type=float, default=0.2)
    parser.add_argument("--poll", type=float, default=0.05, help="DIALER_POLL_SECONDS")
    parser.add_argument("--pace", type=float, default=100.0, help="DIALER_CALLS_PER_SECOND")
    parser.add_argument("--limit-s", type=float, default=1800.0)
    parser.add_argument(
        "--livekit-sample",
        type=int,
        default=0,
        help="also time this many dispatches against a real livekit-server",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.role == "dialer":
        args.stats.write_text(json.dumps(asyncio.run(dialer_process())))
        return 0
    result: dict[str, Any] = {}
    if args.leads:
        with postgres(args):
            result = asyncio.run(run(args))
    if args.livekit_sample:
        result.update(asyncio.run(livekit_sample(args.livekit_sample)))
    report(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
