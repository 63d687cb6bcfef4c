"""Requests to HubSpot through the official (blocking) hubspot-api-client, and their failures.

Every request runs in a worker thread with a socket timeout and an ``asyncio.wait_for``
guard, and every vendor failure is translated here into ``integrations.errors`` terms:

- 429 is retried after ``Retry-After`` (or a backoff): HubSpot processed nothing.
- 5xx, timeouts and broken connections are retried for searches, reads and updates (a PATCH
  may be repeated safely). For a create they raise ``OutcomeUnknown`` at once: the record
  may exist, and a blind retry is how duplicates are made. A connection that was never
  opened is retried for any request, since nothing was sent.
- Retries exhausted: ``TemporarilyUnavailable``. 401/403: ``HubSpotAuthError``. 409:
  ``CrmConflict``. Other 4xx: ``InvalidRequest``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import hubspot.crm.associations.v4 as associations_api
import hubspot.crm.contacts as contacts_api
import hubspot.crm.deals as deals_api
import hubspot.crm.objects.calls as calls_api
import hubspot.crm.objects.notes as notes_api
import urllib3

from integrations.crm import CrmConflict, CrmError
from integrations.errors import (
    IntegrationError,
    InvalidRequest,
    OutcomeUnknown,
    TemporarilyUnavailable,
)
from integrations.masking import mask

logger = logging.getLogger(__name__)

_PACKAGES = (contacts_api, calls_api, notes_api, deals_api, associations_api)
_API_ERRORS = tuple(p.ApiException for p in _PACKAGES)
# Raised by the client's own checks of our input, before anything is sent.
_INPUT_ERRORS = tuple(p.exceptions.OpenApiException for p in _PACKAGES)
_TIMEOUT_GRACE_S = 1.0
_MAX_BACKOFF_S = 8.0
_AUTH_HINT = (
    "check the HubSpot access token and that the private app has the "
    "crm.objects.contacts.read/write and crm.objects.deals.read/write scopes"
)


class HubSpotAuthError(CrmError, InvalidRequest):
    """HubSpot refused the token (401) or its scopes (403); retrying will not help."""


class _Retryable(Exception):
    def __init__(self, reason: str, *, maybe_applied: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.maybe_applied, self.retry_after = reason, maybe_applied, retry_after


class HubSpotTransport:
    """Sends client calls to HubSpot with the timeouts and retries the module docstring says."""

    def __init__(
        self,
        *,
        timeout_s: float,
        max_attempts: int,
        sleep: Callable[[float], Awaitable[object]],
        backoff_s: float,
        max_retry_after_s: float,
    ) -> None:
        self._timeout_s = timeout_s
        self._max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._backoff_s = backoff_s
        self._max_retry_after_s = max_retry_after_s

    async def request(
        self, what: str, fn: Callable[..., Any], *args: Any, creates: bool = False, **kwargs: Any
    ) -> Any:
        """``fn(*args, **kwargs)`` in a thread, retried as the module docstring says."""
        backoff = self._backoff_s
        for attempt in range(1, self._max_attempts + 1):
            try:
                return await self._send(fn, *args, **kwargs)
            except _Retryable as exc:
                if creates and exc.maybe_applied:
                    raise OutcomeUnknown(f"HubSpot {what}: {exc.reason}") from exc
                wait = backoff if exc.retry_after is None else exc.retry_after
                if attempt == self._max_attempts or wait > self._max_retry_after_s:
                    message = f"HubSpot {what}: {exc.reason} ({attempt} attempts)"
                    raise TemporarilyUnavailable(message) from exc
                logger.warning(
                    "hubspot %s: %s; attempt %d of %d in %.1fs",
                    what, exc.reason, attempt + 1, self._max_attempts, wait,
                )  # fmt: skip
            await self._sleep(wait)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)
        raise AssertionError("unreachable")

    async def _send(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        call = asyncio.to_thread(fn, *args, _request_timeout=self._timeout_s, **kwargs)
        try:
            return await asyncio.wait_for(call, self._timeout_s + _TIMEOUT_GRACE_S)
        except _API_ERRORS as exc:
            raise _translate_status(exc) from exc
        except urllib3.exceptions.ConnectTimeoutError as exc:  # also refused: nothing was sent
            raise _Retryable("cannot connect", maybe_applied=False) from exc
        except (TimeoutError, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Retryable(f"no answer ({type(exc).__name__})", maybe_applied=True) from exc
        except _INPUT_ERRORS as exc:
            raise InvalidRequest(f"HubSpot request not sent: {exc}") from exc
        except ValueError as exc:  # an answer the client could not read; a write may have landed
            raise _Retryable("unreadable answer", maybe_applied=True) from exc


def _translate_status(exc: Any) -> IntegrationError | _Retryable:
    status, message = int(exc.status or 0), _error_message(exc)
    if status == 429:
        if '"DAILY"' in str(exc.body):
            return TemporarilyUnavailable("HubSpot daily API limit reached")
        return _Retryable("rate limited", maybe_applied=False, retry_after=_retry_after(exc))
    if status >= 500:
        return _Retryable(f"HubSpot answered {status}", maybe_applied=True)
    if status in (401, 403):
        return HubSpotAuthError(f"HubSpot answered {status}: {_AUTH_HINT}")
    if status == 409:
        return CrmConflict(f"HubSpot answered 409: {message}")
    if status == 0:
        return CrmError(f"HubSpot request failed: {exc.reason}")
    return InvalidRequest(f"HubSpot answered {status}: {message}")


def _error_message(exc: Any) -> str:
    try:
        message = str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        message = str(exc.reason)
    return mask(message)[:300]


def _retry_after(exc: Any) -> float | None:
    value = (exc.headers or {}).get("Retry-After")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:  # an HTTP date: rare enough to use our own backoff
        return None
