"""The lead API fuzzed from its own OpenAPI schema (schemathesis, property-based): no request
gets a server error, and every refusal is a 4xx that says why.

Each operation gets generated requests, valid and invalid (wrong types, missing fields,
odd strings and numbers), with a live API key, through the app in-process.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from console.accounts import Accounts
from console.livekit_access import LiveKitAccess
from console.routes import COOKIE, ConsoleDeps, mount_console
from dialer.sqlite_store import SqliteStore
from integrations.embedded import EmbeddedCrm, EmbeddedStore
from privacy.forget import ContactEraser
from tests.conftest import Clock
from tests.leadapi_support import make_app
from transfer import ConsoleOffers, Roster

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 150
# Derandomized: the same requests on every run, so CI is reproducible.
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip


class UnclearRefusal(AssertionError):
    pass


@schemathesis.check
def refusals_say_why(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 4xx answers JSON whose ``detail`` is a sentence, a reason with a message, or a list
    of field errors naming the field and what is wrong."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        detail = json.loads(response.content)["detail"]
    except (ValueError, KeyError, TypeError):
        raise UnclearRefusal(f"{response.status_code} without a JSON detail") from None
    if isinstance(detail, str) and detail.strip():
        return True
    if isinstance(detail, dict) and str(detail.get("message", "")).strip():
        return True
    if isinstance(detail, list) and detail and all(_field_error(e) for e in detail):
        return True
    raise UnclearRefusal(f"{response.status_code} with an unclear detail: {detail!r}")


def _field_error(entry: Any) -> bool:
    return isinstance(entry, dict) and bool(entry.get("loc")) and bool(str(entry.get("msg", "")))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    store = SqliteStore(data_dir / "dialer.sqlite3")
    eraser = ContactEraser(queue=store, data_dir=data_dir)
    app, keys = make_app(store, Clock(), eraser=eraser)
    console = console_deps(store, data_dir)
    mount_console(app, console)
    invite = console.accounts.invite("sam@example.com")
    with TestClient(app) as client:
        password = {"token": invite.token, "password": "correct horse battery"}
        used = client.post("/console/api/invites/use", json=password)
        assert used.status_code == 200, used.text
        session = used.cookies[COOKIE]
    # Every request carries a live API key and a signed-in rep's session.
    return {"app": app, "token": keys.create("fuzz").token, "cookie": f"{COOKIE}={session}"}


def console_deps(store: SqliteStore, data_dir: Path) -> ConsoleDeps:
    """The rep console on the same app, as `python -m leadapi` mounts it."""
    clock = Clock()
    roster = Roster(store, now=clock)
    roster.add(name="Sam Lee", email="sam@example.com")
    crm = EmbeddedCrm(EmbeddedStore(data_dir / "embedded.sqlite3", now=clock))
    return ConsoleDeps(
        roster=roster, offers=ConsoleOffers(store, now=clock),
        accounts=Accounts(store, roster, now=clock),
        livekit=LiveKitAccess("ws://127.0.0.1:7880", "devkey", "s" * 32), crm=lambda: crm,
        now=clock,
    )  # fmt: skip


def operations(served: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", served["app"])
    return [result.ok() for result in schema.get_all_operations()]


def fuzz_operation(
    operation: Any, mode: GenerationMode, headers: dict[str, str], statuses: Counter[int]
) -> bool:
    """Fuzz one operation; False when it takes no input to break (negative mode)."""

    @given(case=operation.as_strategy(mode))
    @settings(FUZZ_SETTINGS)
    def fuzz(case: Any) -> None:
        checks = [not_a_server_error, refusals_say_why]
        statuses[case.call_and_validate(headers=headers, checks=checks).status_code] += 1

    try:
        fuzz()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE
        return False
    return True


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_gets_a_server_error_and_every_refusal_says_why(
    served: dict[str, Any], mode: GenerationMode
) -> None:
    """Positive: requests the schema allows; negative: requests it forbids (each must be
    refused with a 4xx, never a 5xx)."""
    signed_in = {"Authorization": f"Bearer {served['token']}", "Cookie": served["cookie"]}
    found = operations(served)
    assert len(found) >= 15  # every route the API documents
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    fuzzed = 0
    for operation in found:
        # Signing out would end the rep's session for every later operation: it goes without.
        ending = operation.label == "POST /console/api/sign-out"
        headers = {"Authorization": signed_in["Authorization"]} if ending else signed_in
        try:
            fuzzed += fuzz_operation(operation, mode, headers, statuses)
        except Exception as exc:  # every operation is fuzzed; the failures are listed together
            found_here = exc.exceptions if isinstance(exc, ExceptionGroup) else [exc]
            failures += [f"{operation.label}: {e}" for e in found_here]
    assert not failures, "\n\n".join(failures)
    print(f"{mode.value}: {fuzzed} operations, {sum(statuses.values())} requests, {statuses}")
    assert fuzzed >= 10 and sum(statuses.values()) >= 20 * fuzzed  # it really ran
    assert not [s for s in statuses if s >= 500]


def test_calling_hours_with_an_offset_are_refused_not_a_server_error(
    served: dict[str, Any],
) -> None:
    """What the fuzzer found first: a time with an offset broke the clamp to 08:00-21:00."""
    headers = {"Authorization": f"Bearer {served['token']}"}
    body = {"name": "offset", "calling_hours": {"start": "10:00:00+01:00", "end": "18:00"}}
    with TestClient(served["app"]) as client:
        answer = client.post("/v1/campaigns", json=body, headers=headers)
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"][-2:] == ["calling_hours", "start"] and "offset" in error["msg"]
