"""The dialer process: settings, the store, LiveKit, and the loop that runs the scheduler and
the webhook sender until stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx
from livekit import api

from config import (
    BusinessSettings,
    DialerSettings,
    IntegrationSettings,
    LiveKitSettings,
    QueueSettings,
    SettingsError,
    TelephonySettings,
    load_settings,
)
from dialer.dispatch import LiveKitDispatcher
from dialer.outcomes import OutcomeReporter
from dialer.policy import DialPolicy
from dialer.scheduler import Scheduler
from dialer.sql_store import SqlStore
from dialer.stores import open_store
from dialer.wake import Wakes
from dialer.webhooks import WebhookSender
from localstack.stack import DEV_API_KEY, DEV_API_SECRET
from telephony.provision import LOCAL_URL, SipPlan

logger = logging.getLogger("dialer")


@dataclass(frozen=True)
class DialerProcessSettings:
    livekit: LiveKitSettings
    telephony: TelephonySettings
    business: BusinessSettings
    integrations: IntegrationSettings
    queue: QueueSettings
    dialer: DialerSettings


def load_dialer_settings(env_file: Path | None = Path(".env")) -> DialerProcessSettings:
    return load_settings(DialerProcessSettings, env_file)


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_reporter(
    settings: DialerSettings,
    business: BusinessSettings,
    *,
    queue: SqlStore,
    now: Callable[[], datetime] = utc_now,
) -> OutcomeReporter:
    """The reporter the worker calls as attempts progress and end."""
    return OutcomeReporter(
        queue=queue,
        policy=DialPolicy.from_settings(settings, business),
        webhook_urls=settings.webhook_targets(),
        now=now,
    )


def livekit_api(livekit: LiveKitSettings) -> api.LiveKitAPI:
    """The configured LiveKit, or the local stack `make run` starts (dev keys)."""
    if livekit.livekit_url:
        return api.LiveKitAPI(livekit.livekit_url, livekit.livekit_api_key, livekit.api_secret())
    return api.LiveKitAPI(LOCAL_URL, DEV_API_KEY, DEV_API_SECRET)


async def outbound_trunk_id(lkapi: api.LiveKitAPI, settings: DialerProcessSettings) -> str:
    """SIP_OUTBOUND_TRUNK_ID, else the trunk provisioning created for our agent name."""
    if settings.telephony.sip_outbound_trunk_id:
        return settings.telephony.sip_outbound_trunk_id
    name = SipPlan(agent_name=settings.livekit.agent_name).outbound_trunk_name
    try:
        listed = await lkapi.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
    except (api.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
        raise SettingsError(
            f"LiveKit could not be asked for the outbound trunk ({exc}); is it running? "
            "Set LIVEKIT_URL, or start the worker first (it starts the local stack)"
        ) from None
    for trunk in listed.items:
        if trunk.name == name:
            return str(trunk.sip_trunk_id)
    raise SettingsError(
        f"SIP_OUTBOUND_TRUNK_ID is not set and LiveKit has no outbound trunk named {name!r}: "
        "run `python -m telephony.provision` and set SIP_OUTBOUND_TRUNK_ID to its output"
    )


async def serve(settings: DialerProcessSettings, stop: asyncio.Event) -> None:
    store = open_store(settings.queue, data_dir=settings.integrations.data_dir)
    try:
        async with livekit_api(settings.livekit) as lkapi, httpx.AsyncClient() as http:
            await _loop(settings, store, lkapi, http, stop)
    finally:
        store.close()


async def _loop(
    settings: DialerProcessSettings,
    store: SqlStore,
    lkapi: api.LiveKitAPI,
    http: httpx.AsyncClient,
    stop: asyncio.Event,
) -> None:
    dialer = settings.dialer
    policy = DialPolicy.from_settings(dialer, settings.business)
    scheduler = Scheduler(
        queue=store, dnc=store, dispatcher=LiveKitDispatcher(lkapi),
        reporter=build_reporter(dialer, settings.business, queue=store), policy=policy,
        agent_name=settings.livekit.agent_name,
        sip_trunk_id=await outbound_trunk_id(lkapi, settings), now=utc_now,
    )  # fmt: skip
    sender = None
    if dialer.webhook_secret is not None:
        sender = WebhookSender(
            queue=store, client=http, secret=dialer.webhook_secret.get_secret_value(),
            now=utc_now, max_attempts=dialer.webhook_max_attempts,
        )  # fmt: skip
    logger.info("dialer running: at most %d calls, %.2f calls/s", policy.max_concurrent,
                policy.pace.calls_per_second)  # fmt: skip
    # Imported here: the worker's main process imports this module before it may import
    # prometheus_client (see metrics.multiprocess).
    from metrics import DialerMetrics

    metrics = DialerMetrics()
    if dialer.dialer_metrics_port is not None:
        metrics.serve(dialer.dialer_metrics_port)
    async with store.dialer_wakes() as wakes:
        while not stop.is_set():
            try:
                with metrics.timed_pass():
                    claims = await scheduler.tick()
                    metrics.claimed(len(claims))
                    if sender is not None:
                        await sender.deliver_due()
            except Exception:  # a database or LiveKit hiccup must not end the dialer
                logger.exception("dialer pass failed; retrying")
            await until_woken(wakes, stop, dialer.dialer_poll_seconds)


async def until_woken(wakes: Wakes, stop: asyncio.Event, poll_s: float) -> None:
    """The pause between passes: the poll, cut short by a wake (a lead due now) or a stop."""
    waits = {asyncio.create_task(wakes.next_wake()), asyncio.create_task(stop.wait())}
    done, pending = await asyncio.wait(waits, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.exception() is not None:  # the poll still runs: log it, go on
            logger.warning("waiting for a wake failed: %r", task.exception())
