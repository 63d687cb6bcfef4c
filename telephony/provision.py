"""Idempotent SIP provisioning: inbound trunk, dispatch rule (explicit agent dispatch) and
outbound trunk, found by name and updated in place, never duplicated.

    uv run python -m telephony.provision            # the local stack (dev keys)
    LIVEKIT_URL=wss://<project>.livekit.cloud LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... \\
      SIP_INBOUND_NUMBER=+1... SIP_OUTBOUND_ADDRESS=<carrier host> \\
      SIP_OUTBOUND_USERNAME=... SIP_OUTBOUND_PASSWORD=... uv run python -m telephony.provision

The settings come from the environment or `.env` (the SIP_* and LIVEKIT_* variables in
`.env.example`).

Works the same against the local stack and LiveKit Cloud.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlparse

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from livekit import api
from livekit.api.sip_service import SipService

from config import LiveKitSettings, SettingsError, TelephonySettings, load_settings
from localstack.stack import DEV_API_KEY, DEV_API_SECRET

log = logging.getLogger("telephony.provision")

LOCAL_URL = "ws://127.0.0.1:7880"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_TRANSPORTS = {
    "": api.SIPTransport.SIP_TRANSPORT_AUTO,
    "udp": api.SIPTransport.SIP_TRANSPORT_UDP,
    "tcp": api.SIPTransport.SIP_TRANSPORT_TCP,
    "tls": api.SIPTransport.SIP_TRANSPORT_TLS,
}

# Fields this tool owns; anything else set on a trunk or rule (e.g. in the Cloud console)
# is left as it is.
_INBOUND_FIELDS = ("name", "numbers", "allowed_addresses", "ringing_timeout")
_OUTBOUND_FIELDS = ("name", "address", "transport", "numbers", "auth_username", "auth_password")
_DISPATCH_FIELDS = ("name", "rule", "trunk_ids", "room_config")

M = TypeVar("M", bound=Message)


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Provisioned:
    kind: str
    name: str
    id: str
    action: Action


@dataclass(frozen=True)
class SipPlan:
    """What to provision. Defaults suit the local stack and its test SIP phone."""

    agent_name: str = "sales-agent"
    inbound_numbers: tuple[str, ...] = ("+14155550199",)
    # CIDRs allowed to send calls; empty accepts any address (calls still match by number).
    inbound_allowed_addresses: tuple[str, ...] = ("127.0.0.1/32",)
    room_prefix: str = "call-"
    # A caller rings this long for the agent to pick up, then hears 480 (LiveKit: 3 minutes).
    inbound_ringing_timeout_s: int = 30
    outbound_address: str = "127.0.0.1:5070"
    outbound_numbers: tuple[str, ...] = ("+15550100001",)
    outbound_transport: str = ""  # "", "udp", "tcp" or "tls"
    outbound_username: str = ""
    outbound_password: str = field(default="", repr=False)

    @property
    def inbound_trunk_name(self) -> str:
        return f"{self.agent_name}-inbound"

    @property
    def outbound_trunk_name(self) -> str:
        return f"{self.agent_name}-outbound"

    @property
    def dispatch_rule_name(self) -> str:
        return f"{self.agent_name}-dispatch"

    @classmethod
    def from_settings(cls, telephony: TelephonySettings, *, agent_name: str, url: str) -> SipPlan:
        loopback = urlparse(url).hostname in _LOOPBACK_HOSTS
        allowed = telephony.sip_inbound_allowed_addresses
        if allowed is None:  # the local stack only takes calls from loopback by default
            allowed = ",".join(cls.inbound_allowed_addresses) if loopback else ""
        return cls(
            agent_name=agent_name,
            inbound_numbers=_csv(telephony.sip_inbound_number),
            inbound_allowed_addresses=_csv(allowed),
            room_prefix=telephony.sip_room_prefix,
            outbound_address=telephony.sip_outbound_address,
            outbound_numbers=_csv(telephony.sip_outbound_number),
            outbound_transport=telephony.sip_outbound_transport,
            outbound_username=telephony.sip_outbound_username,
            outbound_password=telephony.sip_outbound_password.get_secret_value(),
        )


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def desired_inbound_trunk(plan: SipPlan) -> api.SIPInboundTrunkInfo:
    return api.SIPInboundTrunkInfo(
        name=plan.inbound_trunk_name,
        numbers=list(plan.inbound_numbers),
        allowed_addresses=list(plan.inbound_allowed_addresses),
        ringing_timeout=Duration(seconds=plan.inbound_ringing_timeout_s),
    )


def desired_outbound_trunk(plan: SipPlan) -> api.SIPOutboundTrunkInfo:
    return api.SIPOutboundTrunkInfo(
        name=plan.outbound_trunk_name,
        address=plan.outbound_address,
        transport=_TRANSPORTS[plan.outbound_transport],
        numbers=list(plan.outbound_numbers),
        auth_username=plan.outbound_username,
        auth_password=plan.outbound_password,
    )


def desired_dispatch_rule(plan: SipPlan, inbound_trunk_id: str) -> api.SIPDispatchRuleInfo:
    # A new room per caller; the agent joins by explicit dispatch (it registers with
    # agent_name, so automatic dispatch would never send it anywhere).
    return api.SIPDispatchRuleInfo(
        name=plan.dispatch_rule_name,
        rule=api.SIPDispatchRule(
            dispatch_rule_individual=api.SIPDispatchRuleIndividual(room_prefix=plan.room_prefix)
        ),
        trunk_ids=[inbound_trunk_id],
        room_config=api.RoomConfiguration(
            agents=[api.RoomAgentDispatch(agent_name=plan.agent_name)]
        ),
    )


def copy_fields(target: M, source: Message, names: Iterable[str]) -> M:
    for name in names:
        descriptor = target.DESCRIPTOR.fields_by_name[name]
        if descriptor.is_repeated:
            target.ClearField(name)
            getattr(target, name).extend(getattr(source, name))
        elif descriptor.message_type is not None:
            if source.HasField(name):
                getattr(target, name).CopyFrom(getattr(source, name))
            else:
                target.ClearField(name)
        else:
            setattr(target, name, getattr(source, name))
    return target


def same_fields(existing: M, desired: M, names: Sequence[str]) -> bool:
    view = copy_fields(type(existing)(), existing, names)
    return view == copy_fields(type(desired)(), desired, names)


def _pick_by_name(items: Sequence[M], name: str, kind: str) -> M | None:
    matches = [item for item in items if getattr(item, "name", None) == name]
    if len(matches) > 1:
        log.warning(
            "%d %ss are named %r; managing the first, leaving the rest", len(matches), kind, name
        )
    return matches[0] if matches else None


async def ensure_inbound_trunk(sip: SipService, plan: SipPlan) -> Provisioned:
    kind, desired = "inbound trunk", desired_inbound_trunk(plan)
    listed = await sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
    existing = _pick_by_name(listed.items, desired.name, kind)
    if existing is None:
        created = await sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=desired))
        return Provisioned(kind, desired.name, created.sip_trunk_id, Action.CREATED)
    if same_fields(existing, desired, _INBOUND_FIELDS):
        return Provisioned(kind, desired.name, existing.sip_trunk_id, Action.UNCHANGED)
    replacement = copy_fields(_clone(existing), desired, _INBOUND_FIELDS)
    await sip.update_inbound_trunk(existing.sip_trunk_id, replacement)
    return Provisioned(kind, desired.name, existing.sip_trunk_id, Action.UPDATED)


async def ensure_outbound_trunk(sip: SipService, plan: SipPlan) -> Provisioned:
    kind, desired = "outbound trunk", desired_outbound_trunk(plan)
    listed = await sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
    existing = _pick_by_name(listed.items, desired.name, kind)
    if existing is None:
        created = await sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=desired))
        return Provisioned(kind, desired.name, created.sip_trunk_id, Action.CREATED)
    if same_fields(existing, desired, _OUTBOUND_FIELDS):
        return Provisioned(kind, desired.name, existing.sip_trunk_id, Action.UNCHANGED)
    replacement = copy_fields(_clone(existing), desired, _OUTBOUND_FIELDS)
    await sip.update_outbound_trunk(existing.sip_trunk_id, replacement)
    return Provisioned(kind, desired.name, existing.sip_trunk_id, Action.UPDATED)


async def ensure_dispatch_rule(
    sip: SipService, plan: SipPlan, inbound_trunk_id: str
) -> Provisioned:
    kind, desired = "dispatch rule", desired_dispatch_rule(plan, inbound_trunk_id)
    listed = await sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
    existing = _pick_by_name(listed.items, desired.name, kind)
    if existing is None:
        created = await sip.create_dispatch_rule(
            api.CreateSIPDispatchRuleRequest(dispatch_rule=desired)
        )
        return Provisioned(kind, desired.name, created.sip_dispatch_rule_id, Action.CREATED)
    if same_fields(existing, desired, _DISPATCH_FIELDS):
        return Provisioned(kind, desired.name, existing.sip_dispatch_rule_id, Action.UNCHANGED)
    replacement = copy_fields(_clone(existing), desired, _DISPATCH_FIELDS)
    await sip.update_dispatch_rule(existing.sip_dispatch_rule_id, replacement)
    return Provisioned(kind, desired.name, existing.sip_dispatch_rule_id, Action.UPDATED)


def _clone(message: M) -> M:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


async def provision(lkapi: api.LiveKitAPI, plan: SipPlan) -> list[Provisioned]:
    """Brings the SIP setup to `plan`; running it again changes nothing."""
    inbound = await ensure_inbound_trunk(lkapi.sip, plan)
    dispatch = await ensure_dispatch_rule(lkapi.sip, plan, inbound.id)
    outbound = await ensure_outbound_trunk(lkapi.sip, plan)
    return [inbound, dispatch, outbound]


@dataclass(frozen=True)
class Target:
    url: str
    api_key: str
    api_secret: str = field(repr=False)


def target_from_settings(livekit: LiveKitSettings) -> Target:
    """The configured LiveKit; without LIVEKIT_URL, the local stack and its dev keys."""
    if not livekit.livekit_url:
        return Target(LOCAL_URL, DEV_API_KEY, DEV_API_SECRET)
    secret = livekit.api_secret()
    if not livekit.livekit_api_key or not secret:
        raise ValueError(
            "LIVEKIT_URL is set, so LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be too"
        )
    return Target(livekit.livekit_url, livekit.livekit_api_key, secret)


@dataclass(frozen=True)
class ProvisionSettings:
    livekit: LiveKitSettings
    telephony: TelephonySettings


async def _run(target: Target, plan: SipPlan) -> list[Provisioned]:
    async with api.LiveKitAPI(target.url, target.api_key, target.api_secret) as lkapi:
        return await provision(lkapi, plan)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[provision] %(message)s")
    parser = argparse.ArgumentParser(prog="python -m telephony.provision", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.parse_args(argv)
    try:
        settings = load_settings(ProvisionSettings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    return provision_from(settings)


def provision_from(settings: ProvisionSettings) -> int:
    """Provision what ``settings`` describe, logging each trunk and rule; 0 when done."""
    try:
        target = target_from_settings(settings.livekit)
        plan = SipPlan.from_settings(
            settings.telephony, agent_name=settings.livekit.agent_name, url=target.url
        )
        results = asyncio.run(_run(target, plan))
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    except api.TwirpError as exc:
        log.error("LiveKit at %s refused: %s (%s)", target.url, exc.message, exc.code)
        return 1
    except OSError as exc:
        log.error("cannot reach LiveKit at %s: %s", target.url, exc)
        return 1
    log.info("LiveKit at %s", target.url)
    for item in results:
        log.info("%-14s %-26s %-9s %s", item.kind, item.name, item.action.value, item.id)
    outbound = results[-1]
    print(f"SIP_OUTBOUND_TRUNK_ID={outbound.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
