"""Call control with LiveKit: hanging up deletes the room, which ends the SIP leg too; a warm
transfer goes through the call's transfer desk, when this deployment can reach reps live."""

from __future__ import annotations

from livekit.agents import JobContext

from calls.control import HangsUpAfterSpeech, TransferStart
from transfer import TransferDesk


class LiveKitCallControl(HangsUpAfterSpeech):
    def __init__(self, ctx: JobContext) -> None:
        super().__init__()
        self._ctx = ctx
        self.desk: TransferDesk | None = None  # set once the session exists

    async def hang_up(self) -> None:
        try:
            await self._ctx.delete_room()
        finally:
            self._ctx.shutdown(reason="agent ended the call")

    def start_transfer(self, reason: str) -> TransferStart:
        if self.desk is None:
            return "unavailable"
        return "started" if self.desk.start(reason=reason) else "in_progress"
