"""The real local stack: redis, livekit-server and our SIP bridge on free loopback ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
import websockets
from livekit import api
from livekit.protocol import rtc

from localstack import LocalStack, StackNotInstalled, StackPorts
from localstack.probes import sip_options_status
from localstack.sockets import is_loopback, listening_sockets
from telephony.provision import Action, SipPlan, provision

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # The whole stack, our SIP bridge included (scripts/install-stack.sh builds it).
    local = LocalStack(ports=StackPorts.free(), log_dir=tmp_path_factory.mktemp("localstack"))
    try:
        local.start()
    except StackNotInstalled as exc:
        pytest.fail(f"{exc}", pytrace=False)
    yield local
    local.stop()


@pytest.fixture
async def lkapi(stack: LocalStack) -> AsyncIterator[api.LiveKitAPI]:
    async with api.LiveKitAPI(stack.url, stack.api_key, stack.api_secret) as client:
        yield client


async def _counts(lkapi: api.LiveKitAPI) -> tuple[int, int, int]:
    inbound = await lkapi.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
    outbound = await lkapi.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
    rules = await lkapi.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
    return len(inbound.items), len(outbound.items), len(rules.items)


async def test_second_provisioning_creates_nothing(lkapi: api.LiveKitAPI) -> None:
    plan = SipPlan(agent_name="idempotent-agent", inbound_numbers=("+15550100010",))

    first = await provision(lkapi, plan)
    counts_after_first = await _counts(lkapi)
    second = await provision(lkapi, plan)

    assert [item.action for item in first] == [Action.CREATED] * 3
    assert [item.action for item in second] == [Action.UNCHANGED] * 3
    assert [item.id for item in second] == [item.id for item in first]
    assert await _counts(lkapi) == counts_after_first


async def test_dispatch_rule_gives_each_caller_a_room_with_the_agent(
    lkapi: api.LiveKitAPI,
) -> None:
    plan = SipPlan(agent_name="dispatch-agent", inbound_numbers=("+15550100020",))
    inbound, rule, _ = await provision(lkapi, plan)

    listed = await lkapi.sip.list_dispatch_rule(
        api.ListSIPDispatchRuleRequest(dispatch_rule_ids=[rule.id])
    )

    (info,) = listed.items
    assert info.rule.dispatch_rule_individual.room_prefix == "call-"
    assert list(info.trunk_ids) == [inbound.id]
    assert [agent.agent_name for agent in info.room_config.agents] == ["dispatch-agent"]


async def test_changed_plan_updates_trunk_in_place(lkapi: api.LiveKitAPI) -> None:
    plan = SipPlan(agent_name="moving-agent", inbound_numbers=("+15550100030",))
    *_, before = await provision(lkapi, plan)
    counts_before = await _counts(lkapi)

    *_, after = await provision(lkapi, replace(plan, outbound_address="127.0.0.1:5099"))

    listed = await lkapi.sip.list_outbound_trunk(
        api.ListSIPOutboundTrunkRequest(trunk_ids=[after.id])
    )
    assert after.action is Action.UPDATED
    assert after.id == before.id
    assert [trunk.address for trunk in listed.items] == ["127.0.0.1:5099"]
    assert await _counts(lkapi) == counts_before


async def test_room_service_creates_and_lists_rooms(lkapi: api.LiveKitAPI) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="localstack-room"))

    rooms = await lkapi.room.list_rooms(api.ListRoomsRequest())

    assert "localstack-room" in [room.name for room in rooms.rooms]


async def test_clients_are_given_loopback_stun_servers_only(stack: LocalStack) -> None:
    token = (
        api.AccessToken(stack.api_key, stack.api_secret)
        .with_identity("ice-probe")
        .with_grants(api.VideoGrants(room_join=True, room="ice-check"))
        .to_jwt()
    )

    async with websockets.connect(f"{stack.url}/rtc?access_token={token}&protocol=16") as ws:
        message = await asyncio.wait_for(ws.recv(), timeout=10)

    assert isinstance(message, bytes)
    first = rtc.SignalResponse.FromString(message)
    urls = [url for server in first.join.ice_servers for url in server.urls]
    assert urls == [f"stun:127.0.0.1:{stack.ports.stun}"]
    assert stack.ports.stun != stack.ports.rtc_udp  # a STUN address on the SFU drops its media


def test_sip_bridge_answers_options_on_udp_and_tcp(stack: LocalStack) -> None:
    statuses = {
        transport: sip_options_status(stack.ports.sip, transport=transport)
        for transport in ("udp", "tcp")
    }

    assert statuses == {"udp": 200, "tcp": 200}


def test_every_process_listens_on_loopback_only(stack: LocalStack) -> None:
    listening = {name: listening_sockets(pid) for name, pid in stack.pids().items()}

    ports = {name: {(s.protocol, s.port) for s in sockets} for name, sockets in listening.items()}
    assert ("tcp", stack.ports.redis) in ports["redis"]
    assert ("tcp", stack.ports.http) in ports["livekit-server"]
    assert ("udp", stack.ports.rtc_udp) in ports["livekit-server"]
    assert {("tcp", stack.ports.sip), ("udp", stack.ports.sip)} <= ports["sipbridge"]
    exposed = [
        (name, s)
        for name, sockets in listening.items()
        for s in sockets
        if not is_loopback(s.address)
    ]
    assert exposed == []
