"""Result webhooks to a real local receiver that checks the signature and fails at first."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from dialer.model import CallResult
from dialer.outcomes import AttemptReport, OutcomeReporter
from dialer.sqlite_store import SqliteStore
from dialer.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, WebhookSender, signature, verify
from tests.conftest import Clock
from tests.dialer_support import make_call, make_policy
from tests.readme_snippets import readme_block, run_node

pytestmark = pytest.mark.integration

SECRET = "whsec-test-0123456789abcdef"


@dataclass
class Receiver:
    """A receiver as a customer would write one: verify, then drop repeats by event id."""

    clock: Clock
    failures_left: int = 1
    seen: list[tuple[str, bool]] = field(default_factory=list)  # (event id, signature ok)
    events: dict[str, dict[str, object]] = field(default_factory=dict)
    url: str = ""

    def handle(self, headers: dict[str, str], body: str) -> int:
        ok = verify(SECRET, header=headers.get(SIGNATURE_HEADER, ""), body=body,
                    now=int(self.clock.value.timestamp()))  # fmt: skip
        self.seen.append((headers.get(EVENT_ID_HEADER, ""), ok))
        if not ok:
            return 401
        if self.failures_left > 0:
            self.failures_left -= 1
            return 500
        event = json.loads(body)
        self.events.setdefault(event["id"], event)
        return 200


@pytest.fixture
def receiver(clock: Clock) -> Iterator[Receiver]:
    state = Receiver(clock)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            status = state.handle(dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/calls"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def end_a_call(store: SqliteStore, clock: Clock, urls: list[str]) -> str:
    call = make_call(now=clock.value)
    store.admit(call, idempotency=None, dedupe_since=None)
    store.claim(now=clock.value, limits=make_policy().limits(), plan=lambda c, k: clock.value,
                room_for=lambda c, n: f"dial-{c}-{n}")  # fmt: skip
    reporter = OutcomeReporter(queue=store, policy=make_policy(), webhook_urls=urls, now=clock)
    result = CallResult(disposition="qualified", summary="Wants a demo next week.")
    assert reporter.report(AttemptReport(call.id, 1, "completed", result=result))
    return call.id


async def test_a_failed_delivery_is_retried_with_backoff_and_signed_each_time(
    tmp_path: Path, clock: Clock, receiver: Receiver
) -> None:
    store = SqliteStore(tmp_path / "dialer.sqlite3")
    call_id = end_a_call(store, clock, [receiver.url])
    async with httpx.AsyncClient() as client:
        sender = WebhookSender(queue=store, client=client, secret=SECRET, now=clock,
                               max_attempts=5)  # fmt: skip
        assert await sender.deliver_due() == 0  # the receiver answered 500
        (pending,) = store.webhooks()
        assert (pending.attempts, pending.next_at, pending.last_error) == (
            1, clock.value + timedelta(seconds=10), "HTTP 500",
        )  # fmt: skip
        clock.value += timedelta(seconds=9)
        assert await sender.deliver_due() == 0 and len(receiver.seen) == 1  # not due yet
        clock.value += timedelta(seconds=1)
        assert await sender.deliver_due() == 1
        assert await sender.deliver_due() == 0  # delivered once, not again
    assert receiver.seen == [(f"evt_{call_id}", True)] * 2  # same event id on the retry
    event = receiver.events[f"evt_{call_id}"]
    assert event["type"] == "call.ended"
    assert event["call"]["status"] == "completed"  # type: ignore[index]
    assert event["call"]["result"]["disposition"] == "qualified"  # type: ignore[index]
    assert store.webhooks()[0].delivered_at == clock.value
    store.close()


async def test_a_receiver_that_is_down_is_given_up_after_the_maximum(
    tmp_path: Path, clock: Clock
) -> None:
    store = SqliteStore(tmp_path / "dialer.sqlite3")
    end_a_call(store, clock, ["http://127.0.0.1:9/nobody-listens"])
    async with httpx.AsyncClient() as client:
        sender = WebhookSender(queue=store, client=client, secret=SECRET, now=clock,
                               max_attempts=3)  # fmt: skip
        delays = []
        for _ in range(3):
            await sender.deliver_due()
            (delivery,) = store.webhooks()
            if delivery.next_at is not None:
                delays.append(delivery.next_at - clock.value)
                clock.value = delivery.next_at
    assert delays == [timedelta(seconds=10), timedelta(seconds=20)]
    assert (delivery.attempts, delivery.next_at, delivery.delivered_at) == (3, None, None)
    assert delivery.last_error is not None and "ConnectError" in delivery.last_error
    store.close()


def test_a_signature_proves_the_body_and_the_time() -> None:
    body = '{"id":"evt_1"}'
    header = signature(SECRET, timestamp=1_800_000_000, body=body)
    assert header.startswith("t=1800000000,v1=")
    assert verify(SECRET, header=header, body=body, now=1_800_000_100)
    assert not verify(SECRET, header=header, body=body + " ", now=1_800_000_100)
    assert not verify("another-secret-0123456789", header=header, body=body, now=1_800_000_100)
    assert not verify(SECRET, header=header, body=body, now=1_800_000_000 + 301)  # a replay
    assert not verify(SECRET, header="v1=abc", body=body, now=1_800_000_000)


def test_the_receiver_snippet_in_the_readme_accepts_our_signature_and_nothing_else() -> None:
    namespace: dict[str, object] = {}
    exec(readme_block("Verify it before trusting the body:", language="python"), namespace)
    readme_verify = namespace["verify"]
    body = '{"id":"evt_1","type":"call.ended"}'
    header = signature(SECRET, timestamp=1_800_000_000, body=body)
    now = 1_800_000_100
    assert readme_verify(SECRET, header, body.encode(), now)  # type: ignore[operator]
    assert not readme_verify(SECRET, header, body.encode() + b" ", now)  # type: ignore[operator]
    assert not readme_verify("x" * 20, header, body.encode(), now)  # type: ignore[operator]
    assert not readme_verify(SECRET, header, body.encode(), now + 300)  # type: ignore[operator]
    assert not readme_verify(SECRET, "v1=abc", body.encode(), now)  # type: ignore[operator]


def test_the_node_receiver_snippet_in_the_readme_accepts_our_signature_and_nothing_else(
    tmp_path: Path,
) -> None:
    (tmp_path / "verify.mjs").write_text(readme_block("or in Node:", language="js"))
    body = '{"id":"evt_1","type":"call.ended"}'
    header = signature(SECRET, timestamp=1_800_000_000, body=body)
    cases = [
        (SECRET, header, body, 1_800_000_100),
        (SECRET, header, body + " ", 1_800_000_100),  # the body was changed
        ("x" * 20, header, body, 1_800_000_100),  # another secret
        (SECRET, header, body, 1_800_000_400),  # a replay, too late
        (SECRET, "v1=abc", body, 1_800_000_000),  # no timestamp
    ]
    script = (
        'import { verifyWebhook } from "./verify.mjs";\n'
        "const cases = JSON.parse(process.argv[2]);\n"
        "const answers = cases.map(([secret, header, body, now]) =>\n"
        "  verifyWebhook(secret, header, Buffer.from(body), now));\n"
        "process.stdout.write(JSON.stringify(answers));\n"
    )
    answers = json.loads(run_node(tmp_path, script, json.dumps(cases)))
    assert answers == [True, False, False, False, False]
