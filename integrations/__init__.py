"""Protocols and backends for the systems we talk to: CRM, calendar, phone numbers."""
