"""The queue's tables. Every statement is idempotent, so each process runs them at start."""

from __future__ import annotations

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS dialer_calls (
        id TEXT PRIMARY KEY, phone TEXT NOT NULL, campaign TEXT, zone TEXT NOT NULL,
        lead TEXT NOT NULL, status TEXT NOT NULL, next_at TEXT, attempts INTEGER NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, reason TEXT, result TEXT)""",
    # In claim order: leads sharing a due time (a campaign waiting for its hours) are taken
    # oldest first without sorting them all on every claim.
    "CREATE INDEX IF NOT EXISTS dialer_calls_due_in_order ON dialer_calls (next_at, created_at)",
    "DROP INDEX IF EXISTS dialer_calls_due",
    "CREATE INDEX IF NOT EXISTS dialer_calls_phone ON dialer_calls (phone, created_at)",
    """CREATE TABLE IF NOT EXISTS dialer_attempts (
        call_id TEXT NOT NULL, number INTEGER NOT NULL, room TEXT NOT NULL, state TEXT NOT NULL,
        started_at TEXT NOT NULL, dispatch_id TEXT, outcome TEXT, sip_status INTEGER,
        detail TEXT, ended_at TEXT, PRIMARY KEY (call_id, number))""",
    "CREATE INDEX IF NOT EXISTS dialer_attempts_state ON dialer_attempts (state)",
    """CREATE TABLE IF NOT EXISTS dialer_campaigns (name TEXT PRIMARY KEY, config TEXT NOT NULL)""",
    # A table of its own rather than a column, so stores made before pause/cancel migrate by
    # this idempotent statement alone; a campaign without a row here is active.
    """CREATE TABLE IF NOT EXISTS dialer_campaign_states (
        name TEXT PRIMARY KEY, state TEXT NOT NULL, changed_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS dialer_calls_campaign ON dialer_calls (campaign, status)",
    """CREATE TABLE IF NOT EXISTS dialer_dnc (
        phone TEXT PRIMARY KEY, reason TEXT, added_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS dialer_idempotency (
        scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
        outcome TEXT NOT NULL, call_id TEXT, status TEXT, next_at TEXT, created_at TEXT NOT NULL,
        PRIMARY KEY (scope, key))""",
    """CREATE TABLE IF NOT EXISTS dialer_api_keys (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL,
        created_at TEXT NOT NULL, revoked_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS dialer_webhooks (
        id TEXT PRIMARY KEY, event_id TEXT NOT NULL, url TEXT NOT NULL, body TEXT NOT NULL,
        attempts INTEGER NOT NULL, next_at TEXT, delivered_at TEXT, last_error TEXT)""",
    "CREATE INDEX IF NOT EXISTS dialer_webhooks_due ON dialer_webhooks (next_at)",
    """CREATE TABLE IF NOT EXISTS dialer_claim_lock (id INTEGER PRIMARY KEY, pace_next_at TEXT)""",
    "INSERT INTO dialer_claim_lock (id, pace_next_at) VALUES (1, NULL) ON CONFLICT DO NOTHING",
)
