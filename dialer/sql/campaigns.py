"""Campaigns: their hours, cap and retry policy, stored as JSON by name."""

from __future__ import annotations

from dialer.codec import campaign_from_json, campaign_json
from dialer.model import Campaign
from dialer.sql.engine import SqlEngine, Tx


class CampaignRows(SqlEngine):
    def put_campaign(self, campaign: Campaign) -> None:
        with self.transaction() as tx:
            tx.run(
                "INSERT INTO dialer_campaigns (name, config) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET config = excluded.config",
                (campaign.name, campaign_json(campaign)),
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
