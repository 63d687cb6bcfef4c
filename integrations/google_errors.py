"""Google's failures in our terms: what may be retried, what is a credentials problem."""

from __future__ import annotations

import json

from google.auth import exceptions as auth_exceptions
from googleapiclient.errors import HttpError

from integrations.errors import InvalidRequest, TemporarilyUnavailable
from integrations.scheduling import CalendarError

_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Google reports some rate limits as 403 rather than 429.
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_CREDENTIALS_HINT = (
    "check the service-account key, that domain-wide delegation grants it the calendar "
    "scope, and that the delegated user can edit the calendar"
)


def translate_http_error(what: str, err: HttpError) -> Exception:
    status, reason = err.resp.status, _error_reason(err)
    detail = f"{what}: Google answered {status} ({reason})"
    if status in _RETRYABLE_STATUSES or (status == 403 and reason in _RATE_LIMIT_REASONS):
        return TemporarilyUnavailable(detail)
    if status in (401, 403):
        return CalendarError(f"{detail}; {_CREDENTIALS_HINT}")
    if 400 <= status < 500:
        return InvalidRequest(detail)
    return CalendarError(detail)


def translate_refresh_error(what: str, err: auth_exceptions.RefreshError) -> Exception:
    if err.retryable:
        return TemporarilyUnavailable(f"{what}: token endpoint busy: {err}")
    return CalendarError(
        f"{what}: Google refused the service-account credentials ({err}); {_CREDENTIALS_HINT}"
    )


def _error_reason(err: HttpError) -> str:
    try:
        errors = json.loads(err.content)["error"].get("errors") or [{}]
        return str(errors[0].get("reason", "unknown"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "unknown"
