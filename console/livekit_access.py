"""LiveKit for the console: tokens for one rep in one room, short-lived, and the server API
for ending a call the rep hangs up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from livekit import api

from transfer.consult import rep_identity
from transfer.roster import Rep

TOKEN_TTL = timedelta(minutes=5)  # enough to join; LiveKit refreshes it while connected


@dataclass(frozen=True)
class LiveKitAccess:
    url: str  # the websocket URL browsers connect to
    api_key: str
    api_secret: str

    def token(self, rep: Rep, room: str) -> str:
        """Join ``room`` as this rep: publish a microphone, listen; nothing else, nowhere else."""
        grants = api.VideoGrants(
            room_join=True, room=room, can_publish=True, can_subscribe=True,
            can_publish_data=False, can_publish_sources=["microphone"],
        )  # fmt: skip
        return (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(rep_identity(rep))
            .with_name(rep.name)
            .with_ttl(TOKEN_TTL)
            .with_grants(grants)
            .to_jwt()
        )

    async def end_room(self, room: str) -> None:
        """Hang up the call: the room goes, and with it the caller's line and the agent."""
        async with api.LiveKitAPI(self._http_url(), self.api_key, self.api_secret) as lkapi:
            try:
                await lkapi.room.delete_room(api.DeleteRoomRequest(room=room))
            except api.TwirpError as exc:
                if exc.code != "not_found":
                    raise

    def _http_url(self) -> str:
        return self.url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
