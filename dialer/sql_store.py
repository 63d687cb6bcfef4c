"""The queue in SQL: every protocol of ``dialer.store`` on one set of statements for SQLite
and PostgreSQL. The statements live in ``dialer.sql``, one module per responsibility; the
engine modules (``sqlite_store``, ``postgres_store``) say how a transaction starts, how claims
are serialised and how rows are locked.
"""

from __future__ import annotations

from dialer.sql.admissions import Admissions
from dialer.sql.api_keys import ApiKeyRows
from dialer.sql.calls import CallReads
from dialer.sql.campaign_control import CampaignControl
from dialer.sql.campaigns import CampaignRows
from dialer.sql.claims import Claims
from dialer.sql.dnc import DoNotCallList
from dialer.sql.endings import AttemptEndings
from dialer.sql.erasure import ContactErasure
from dialer.sql.webhook_outbox import WebhookOutbox


class SqlStore(
    CallReads,
    Admissions,
    Claims,
    AttemptEndings,
    CampaignRows,
    CampaignControl,
    DoNotCallList,
    ApiKeyRows,
    WebhookOutbox,
    ContactErasure,
):
    """The queue's statements; subclasses supply transactions and locking."""
