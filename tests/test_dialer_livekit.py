"""The dialer against the real livekit-server: each attempt is an agent dispatch in its own
room, with the lead and the attempt in the metadata, and the reconciler sees the room."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from livekit import api

from dialer.dispatch import LiveKitDispatcher
from dialer.outcomes import OutcomeReporter
from dialer.scheduler import Scheduler
from dialer.sqlite_store import SqliteStore
from localstack import LocalStack, StackNotInstalled, StackPorts
from tests.conftest import Clock
from tests.dialer_support import make_call, make_policy

pytestmark = pytest.mark.integration

AGENT = "sales-agent"
TRUNK = "ST_test_outbound"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(
        ports=StackPorts.free(), log_dir=tmp_path_factory.mktemp("stack"), with_sip=False
    )
    try:
        local.start()
    except StackNotInstalled as exc:
        pytest.fail(f"{exc}", pytrace=False)
    yield local
    local.stop()


@pytest.fixture
async def lkapi(stack: LocalStack) -> AsyncIterator[api.LiveKitAPI]:
    async with api.LiveKitAPI(stack.http_url, stack.api_key, stack.api_secret) as client:
        yield client


async def test_an_attempt_becomes_a_dispatch_in_its_own_room(
    lkapi: api.LiveKitAPI, tmp_path: Path, clock: Clock
) -> None:
    store = SqliteStore(tmp_path / "dialer.sqlite3")
    call = make_call(now=clock.value)
    store.admit(call, idempotency=None, dedupe_since=None)
    policy = make_policy()
    dispatcher = LiveKitDispatcher(lkapi)
    scheduler = Scheduler(
        queue=store, dnc=store, dispatcher=dispatcher,
        reporter=OutcomeReporter(queue=store, policy=policy, webhook_urls=[], now=clock),
        policy=policy, agent_name=AGENT, sip_trunk_id=TRUNK, now=clock,
    )  # fmt: skip

    assert len(await scheduler.tick()) == 1

    room = f"dial-{call.id}-1"
    dispatches = await lkapi.agent_dispatch.list_dispatch(room)
    (attempt,) = store.attempts(call.id)
    (listed,) = (await lkapi.room.list_rooms(api.ListRoomsRequest(names=[room]))).rooms
    assert attempt.dispatch_id == listed.sid  # recorded: LiveKit holds the room and its dispatch
    # Only ours: not livekit-server's default dispatch to an unnamed agent.
    (ours,) = dispatches
    assert ours.agent_name == AGENT and ours.room == room
    metadata = json.loads(ours.metadata)
    assert (metadata["phone_number"], metadata["sip_trunk_id"]) == ("+12125550100", TRUNK)
    assert (metadata["call_id"], metadata["attempt"]) == (call.id, 1)
    assert await dispatcher.is_live(room)

    await lkapi.room.delete_room(api.DeleteRoomRequest(room=room))
    assert not await dispatcher.is_live(room)
    assert not await dispatcher.is_live("dial-never-created-1")
    store.close()
