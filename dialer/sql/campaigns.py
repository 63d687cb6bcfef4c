"""Campaigns: their hours, cap and retry policy, stored as JSON by name, and their state
(active, paused, cancelled) in ``dialer_campaign_states``."""

from __future__ import annotations

from dialer.codec import campaign_from_json, campaign_json
from dialer.model import Campaign, CampaignState
from dialer.sql.engine import SqlEngine, Tx
from dialer.store import StateChange


class CampaignRows(SqlEngine):
    def put_campaign(self, campaign: Campaign) -> StateChange:
        """Create or replace a campaign's config; a cancelled campaign's is frozen
        (``cancelled``, nothing written). The row is locked, so a cancel is ordered too."""
        with self.transaction() as tx:
            state = campaign_state(tx, campaign.name, lock=self.for_update)
            if state == "cancelled":
                return StateChange("cancelled", state)
            tx.run(
                "INSERT INTO dialer_campaigns (name, config) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET config = excluded.config",
                (campaign.name, campaign_json(campaign)),
            )
            return StateChange("changed", state or "active")

    def create_campaign(self, campaign: Campaign) -> bool:
        """Add a campaign; False, changing nothing, when one has that name already."""
        with self.transaction() as tx:
            return bool(
                tx.run(
                    "INSERT INTO dialer_campaigns (name, config) VALUES (?, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (campaign.name, campaign_json(campaign)),
                )
            )

    def campaign(self, name: str) -> Campaign | None:
        with self.transaction() as tx:
            return select_campaign(tx, name)

    def campaigns(self) -> list[Campaign]:
        with self.transaction() as tx:
            return select_campaigns(tx)


def select_campaign(tx: Tx, name: str | None) -> Campaign | None:
    if name is None:
        return None
    rows = tx.rows("SELECT config FROM dialer_campaigns WHERE name = ?", (name,))
    return campaign_from_json(name, rows[0][0]) if rows else None


def select_campaigns(tx: Tx) -> list[Campaign]:
    rows = tx.rows("SELECT name, config FROM dialer_campaigns ORDER BY name")
    return [campaign_from_json(name, config) for name, config in rows]


def campaign_state(tx: Tx, name: str | None, *, lock: str = "") -> CampaignState | None:
    """The campaign's state, None if there is no such campaign. ``lock`` (the engine's
    ``for_share`` or ``for_update``) holds the campaign's row, so pause and cancel, which
    update it, wait for this transaction and it for them."""
    if name is None:
        return None
    if not tx.rows(f"SELECT name FROM dialer_campaigns WHERE name = ?{lock}", (name,)):
        return None
    rows = tx.rows("SELECT state FROM dialer_campaign_states WHERE name = ?", (name,))
    state: CampaignState = rows[0][0] if rows else "active"
    return state


def stopped_campaigns(tx: Tx) -> list[str]:
    """Campaigns whose calls must not be claimed."""
    rows = tx.rows("SELECT name FROM dialer_campaign_states WHERE state != 'active'")
    return [name for (name,) in rows]
