"""Handing an attempt to LiveKit: an explicit agent dispatch into a new room per attempt."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from livekit import api

from dialer.model import Claim

ROOM_PREFIX = "dial-"


class DispatchError(Exception):
    """LiveKit did not take the dispatch; the attempt failed before any dialing."""


@dataclass(frozen=True)
class DispatchRequest:
    agent_name: str
    room: str
    metadata: str


class Dispatcher(Protocol):
    async def dispatch(self, request: DispatchRequest) -> str:
        """Create the dispatch; returns its id. Raises DispatchError."""
        ...

    async def is_live(self, room: str) -> bool:
        """Whether LiveKit still has the attempt's room (a call may be in progress there).
        Raises DispatchError when LiveKit cannot be asked."""
        ...


def room_for(call_id: str, attempt: int) -> str:
    return f"{ROOM_PREFIX}{call_id}-{attempt}"


def dispatch_metadata(claim: Claim, *, sip_trunk_id: str) -> str:
    """What the worker reads from the job: the number and trunk to dial (the existing
    outbound contract), which attempt it is, and who the lead is."""
    lead = claim.call.lead
    data: dict[str, Any] = {
        "phone_number": lead.phone,
        "sip_trunk_id": sip_trunk_id,
        "call_id": claim.call.id,
        "attempt": claim.attempt.number,
        "campaign": claim.call.campaign,
        "time_zone": claim.call.zone,
        "lead": {
            "name": lead.name,
            "email": lead.email,
            "company": lead.company,
            "source": lead.source,
            "fields": lead.fields,
        },
    }
    return json.dumps(data, sort_keys=True)


class LiveKitDispatcher:
    """Creates the attempt's room with our agent dispatch in it (``CreateRoom`` with
    ``agents``); the id recorded is the room's sid.

    Not ``CreateDispatch``: that creates the room with livekit-server's default dispatch to
    an unnamed agent, whose job request waits a second for a worker no one runs, and it held
    8 of 100 dispatches up by that second in bench/speed_to_lead.py (v1.13.5 with redis)."""

    def __init__(self, lkapi: api.LiveKitAPI) -> None:
        self._lkapi = lkapi

    async def dispatch(self, request: DispatchRequest) -> str:
        agent = api.RoomAgentDispatch(agent_name=request.agent_name, metadata=request.metadata)
        try:
            room = await self._lkapi.room.create_room(
                api.CreateRoomRequest(name=request.room, agents=[agent])
            )
        except (api.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
            raise DispatchError(f"LiveKit refused the dispatch: {exc}") from None
        return str(room.sid)

    async def is_live(self, room: str) -> bool:
        try:
            found = await self._lkapi.room.list_rooms(api.ListRoomsRequest(names=[room]))
        except (api.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
            raise DispatchError(f"LiveKit could not be asked about {room}: {exc}") from None
        return any(r.name == room for r in found.rooms)
