"""An attempt's progress and its end: the end, the call's next step and the result webhook
are written in one transaction, on the call's row held locked."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Literal

from dialer.codec import opt_ts, result_json, ts
from dialer.model import CAMPAIGN_CANCELLED, Call
from dialer.sql.calls import select_attempts, select_call
from dialer.sql.campaigns import campaign_state, select_campaign
from dialer.sql.engine import SqlEngine, Tx
from dialer.sql.webhook_outbox import enqueue_webhook
from dialer.store import Decider, Ending, Notifier


class AttemptEndings(SqlEngine):
    def record_progress(
        self, call_id: str, number: int, state: Literal["ringing", "answered"], *, now: datetime
    ) -> bool:
        with self.transaction() as tx:
            changed = tx.run(
                "UPDATE dialer_attempts SET state = ? WHERE call_id = ? AND number = ? "
                "AND state != 'ended'",
                (state, call_id, number),
            )
            if changed:
                tx.run(
                    "UPDATE dialer_calls SET status = ?, updated_at = ? WHERE id = ?",
                    (state, ts(now), call_id),
                )
            return bool(changed)

    def finish_attempt(
        self, call_id: str, number: int, *, decide: Decider, notify: Notifier
    ) -> bool:
        """End attempt ``number`` once: a second report, or a report after the reconciler
        closed the attempt, changes nothing and answers False."""
        with self.transaction() as tx:
            call = select_call(tx, call_id, lock=self.for_update)
            if call is None:
                return False
            attempts = select_attempts(tx, call_id)
            if not any(a.number == number and a.state != "ended" for a in attempts):
                return False
            ending = decide(call, attempts, select_campaign(tx, call.campaign))
            cancelled = campaign_state(tx, call.campaign, lock=self.for_share) == "cancelled"
            if cancelled and ending.next_at is not None:  # no retry in a cancelled campaign
                ending = replace(ending, status="failed", next_at=None, reason=CAMPAIGN_CANCELLED)
            _end_attempt(tx, call, number, ending)
            after = select_call(tx, call_id)
            assert after is not None
            for message in notify(after, select_attempts(tx, call_id)):
                enqueue_webhook(tx, message, due=ending.ended_at)
            return True


def _end_attempt(tx: Tx, call: Call, number: int, ending: Ending) -> None:
    tx.run(
        "UPDATE dialer_attempts SET state = 'ended', outcome = ?, sip_status = ?, detail = ?, "
        "ended_at = ? WHERE call_id = ? AND number = ?",
        (ending.outcome, ending.sip_status, ending.detail, ts(ending.ended_at), call.id, number),
    )
    tx.run(
        "UPDATE dialer_calls SET status = ?, next_at = ?, reason = ?, "
        "result = COALESCE(?, result), updated_at = ?, attempts = ? WHERE id = ?",
        (ending.status, opt_ts(ending.next_at), ending.reason, result_json(ending.result),
         ts(ending.ended_at), call.attempts - (0 if ending.counts else 1), call.id),
    )  # fmt: skip
