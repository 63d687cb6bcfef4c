"""Call control with LiveKit: hanging up deletes the room, which ends the SIP leg too."""

from __future__ import annotations

from livekit.agents import JobContext

from calls.control import HangsUpAfterSpeech


class LiveKitCallControl(HangsUpAfterSpeech):
    def __init__(self, ctx: JobContext) -> None:
        super().__init__()
        self._ctx = ctx

    async def hang_up(self) -> None:
        try:
            await self._ctx.delete_room()
        finally:
            self._ctx.shutdown(reason="agent ended the call")
