"""Pausing, resuming and cancelling a campaign, and its progress by status.

Each change of state takes the campaign's row and then the claim lock, so it is ordered
against every claim: once ``pause`` returns, no claim takes the campaign's calls; once
``cancel`` returns, none of its waiting calls can be dialed and no lead can join it (admissions
and attempt endings hold the campaign's row shared while they decide).
"""

from __future__ import annotations

from datetime import datetime

from dialer.codec import ts
from dialer.model import CALL_STATUSES, CAMPAIGN_CANCELLED, CampaignState
from dialer.sql.calls import select_attempts, select_call
from dialer.sql.campaigns import campaign_state, select_campaigns
from dialer.sql.engine import SqlEngine, Tx
from dialer.sql.webhook_outbox import enqueue_webhook
from dialer.store import CampaignSummary, Notifier, StateChange


class CampaignControl(SqlEngine):
    def campaign_state(self, name: str) -> CampaignState | None:
        with self.transaction() as tx:
            return campaign_state(tx, name)

    def campaign_progress(self, name: str) -> dict[str, int]:
        """How many of the campaign's calls are in each status (every status, zeros too)."""
        with self.transaction() as tx:
            rows = tx.rows(
                "SELECT status, count(*) FROM dialer_calls WHERE campaign = ? GROUP BY status",
                (name,),
            )
        counts = {status: 0 for status in CALL_STATUSES}
        counts.update({status: int(n) for status, n in rows})
        return counts

    def campaign_summaries(self) -> list[CampaignSummary]:
        """Every campaign with its state and progress, read in one transaction."""
        with self.transaction() as tx:
            campaigns = select_campaigns(tx)
            states = dict(tx.rows("SELECT name, state FROM dialer_campaign_states"))
            rows = tx.rows(
                "SELECT campaign, status, count(*) FROM dialer_calls "
                "WHERE campaign IS NOT NULL GROUP BY campaign, status"
            )
        counts: dict[str, dict[str, int]] = {}
        for name, status, n in rows:
            counts.setdefault(name, dict.fromkeys(CALL_STATUSES, 0))[status] = int(n)
        return [
            CampaignSummary(campaign=c, state=states.get(c.name, "active"),
                            calls=counts.get(c.name, dict.fromkeys(CALL_STATUSES, 0)))
            for c in campaigns
        ]  # fmt: skip

    def pause_campaign(self, name: str, *, now: datetime) -> StateChange:
        return self._change_state(name, "paused", now=now)

    def resume_campaign(self, name: str, *, now: datetime) -> StateChange:
        change = self._change_state(name, "active", now=now)
        if change.outcome == "changed":
            self.wake_dialer()  # its due calls may be dialed now
        return change

    def cancel_campaign(self, name: str, *, now: datetime, notify: Notifier) -> StateChange:
        """Cancel: every call of the campaign still waiting for a dial ends failed with reason
        ``campaign_cancelled`` and its result webhook is queued; calls in flight go on, and
        their attempts end without a retry."""
        with self.transaction() as tx:
            change = self._set_state(tx, name, "cancelled", now=now)
            if change.outcome != "changed":
                return change
            ended = _end_waiting_calls(tx, name, now=now, lock=self.for_update)
            for call_id in ended:
                call = select_call(tx, call_id)
                assert call is not None
                for message in notify(call, select_attempts(tx, call_id)):
                    enqueue_webhook(tx, message, due=now)
            return StateChange("changed", "cancelled", ended=len(ended))

    def _change_state(self, name: str, state: CampaignState, *, now: datetime) -> StateChange:
        with self.transaction() as tx:
            return self._set_state(tx, name, state, now=now)

    def _set_state(self, tx: Tx, name: str, state: CampaignState, *, now: datetime) -> StateChange:
        current = campaign_state(tx, name, lock=self.for_update)
        if current is None:
            return StateChange("unknown", None)
        if current == "cancelled":
            return StateChange("cancelled", current)
        self.lock_claims(tx)
        tx.run(
            "INSERT INTO dialer_campaign_states (name, state, changed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET state = excluded.state, "
            "changed_at = excluded.changed_at",
            (name, state, ts(now)),
        )
        return StateChange("changed", state)


def _end_waiting_calls(tx: Tx, name: str, *, now: datetime, lock: str) -> list[str]:
    waiting = tx.rows(
        f"SELECT id FROM dialer_calls WHERE campaign = ? AND next_at IS NOT NULL{lock}", (name,)
    )
    ids = [call_id for (call_id,) in waiting]
    for call_id in ids:
        tx.run(
            "UPDATE dialer_calls SET status = 'failed', next_at = NULL, reason = ?, "
            "updated_at = ? WHERE id = ? AND next_at IS NOT NULL",
            (CAMPAIGN_CANCELLED, ts(now), call_id),
        )
    return ids
