"""The dialer's loop: close what a crash left open, claim what is due, dispatch it.

Restart safety (the rule, also in dialer/README.md). An attempt is "in flight" from its
claim until a report (or this reconciler) ends it. One still in flight after its deadline
(ring timeout + margin while dialing or ringing; the longest call + margin once answered) is
looked up in LiveKit by its room name, which is fixed per attempt:

- the room still exists: a call may be in progress; leave it and look again next tick;
- no room, and the dispatch was never recorded: the attempt never left us (a crash between
  claim and dispatch): it is closed ``not_dispatched``, does not count, and the call is dialed
  again at once, in a new room;
- no room, dispatch recorded: the call happened or failed and its report was lost: closed
  ``unknown`` and retried once on the failure schedule (a second unknown ends the call).

So a call is never lost (every in-flight attempt ends, by report or by this rule), and never
dialed twice while a room for it exists. The one double dial left possible is a report lost
after a real conversation, which the single retry bounds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from dialer.dispatch import Dispatcher, DispatchError, DispatchRequest, dispatch_metadata, room_for
from dialer.model import Attempt, AttemptOutcome, Call, Campaign, Claim
from dialer.outcomes import OutcomeReporter
from dialer.policy import DialPolicy
from dialer.store import CallQueue, DoNotCall
from integrations.masking import mask

logger = logging.getLogger("dialer.scheduler")


class Scheduler:
    def __init__(
        self,
        *,
        queue: CallQueue,
        dnc: DoNotCall,
        dispatcher: Dispatcher,
        reporter: OutcomeReporter,
        policy: DialPolicy,
        agent_name: str,
        sip_trunk_id: str,
        now: Callable[[], datetime],
    ) -> None:
        self._queue = queue
        self._dnc = dnc
        self._dispatcher = dispatcher
        self._reporter = reporter
        self._policy = policy
        self._agent_name = agent_name
        self._trunk = sip_trunk_id
        self._now = now

    async def tick(self) -> list[Claim]:
        """One pass: reconcile, then claim and dispatch. Returns the claims made."""
        await self.reconcile()
        now = self._now()

        def plan(call: Call, campaign: Campaign | None) -> datetime:
            return self._policy.first_allowed(call, campaign, now)

        claims = await asyncio.to_thread(
            self._queue.claim, now=now, limits=self._policy.limits(), plan=plan, room_for=room_for
        )
        for claim in claims:
            logger.info("attempt claimed", extra={"room": claim.attempt.room, "stage": "claimed"})
            await self._dial(claim)
        return claims

    async def _dial(self, claim: Claim) -> None:
        call, attempt = claim.call, claim.attempt
        if await asyncio.to_thread(self._dnc.is_dnc, call.lead.phone):
            logger.info("call %s: %s is on the do-not-call list now; not dialing", call.id,
                        mask(call.lead.phone))  # fmt: skip
            await self._close(attempt, "do_not_call", detail="on the do-not-call list")
            return
        request = DispatchRequest(
            agent_name=self._agent_name,
            room=attempt.room,
            metadata=dispatch_metadata(claim, sip_trunk_id=self._trunk),
        )
        try:
            dispatch_id = await self._dispatcher.dispatch(request)
        except DispatchError as exc:
            logger.warning("call %s attempt %d: %s", call.id, attempt.number, exc)
            await self._close(attempt, "failed", detail=str(exc))
            return
        await asyncio.to_thread(self._queue.mark_dispatched, call.id, attempt.number, dispatch_id)
        logger.info("call %s attempt %d dispatched to %s", call.id, attempt.number, attempt.room,
                    extra={"room": attempt.room, "stage": "dispatched"})  # fmt: skip

    async def reconcile(self) -> int:
        """Close attempts a crash left in flight (the rule is in this module's docstring).
        Returns how many were closed."""
        now = self._now()
        closed = 0
        for attempt in await asyncio.to_thread(self._queue.in_flight):
            if attempt.started_at > self._policy.overdue_since(attempt.state, now):
                continue
            try:
                if await self._dispatcher.is_live(attempt.room):
                    continue
            except DispatchError as exc:
                logger.warning("reconcile: %s; will look again", exc)
                return closed
            outcome: AttemptOutcome = "unknown" if attempt.dispatch_id else "not_dispatched"
            if await self._close(attempt, outcome, detail="no report; LiveKit has no room"):
                closed += 1
                logger.warning("call %s attempt %d closed as %s", attempt.call_id,
                               attempt.number, outcome)  # fmt: skip
        return closed

    async def _close(self, attempt: Attempt, outcome: AttemptOutcome, *, detail: str) -> bool:
        return await asyncio.to_thread(
            self._reporter.close, attempt.call_id, attempt.number, outcome, detail=detail
        )
