"""Failures of the systems behind the tools, in terms a tool can act on."""

from __future__ import annotations


class IntegrationError(Exception):
    """A CRM or calendar request failed. ``str(err)`` is for logs, never for the caller."""


class TemporarilyUnavailable(IntegrationError):
    """The service is down, slow or rate-limiting us past our retry budget; nothing was written."""


class OutcomeUnknown(IntegrationError):
    """A write was sent but no answer came back: it may or may not have happened.

    Never retried blindly, since that is how duplicates are made.
    """


class InvalidRequest(IntegrationError):
    """The service rejected what we sent (bad field, unknown id); retrying will not help."""
