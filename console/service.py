"""The console as the lead API process builds it: from settings and the dialer's store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from config import IntegrationSettings, LeadApiSettings, LiveKitSettings, QueueSettings
from config import load_settings as _load
from console.accounts import Accounts
from console.crm_notes import build_crm
from console.livekit_access import LiveKitAccess
from console.routes import ConsoleDeps
from integrations.crm import Crm
from localstack.stack import DEV_API_KEY, DEV_API_SECRET
from telephony.provision import LOCAL_URL
from transfer.offers import ConsoleOffers
from transfer.roster import Roster, Store


@dataclass(frozen=True)
class ConsoleSettings:
    livekit: LiveKitSettings
    leadapi: LeadApiSettings
    queue: QueueSettings
    integrations: IntegrationSettings


def load_console_settings(env_file: Path | None = Path(".env")) -> ConsoleSettings:
    return _load(ConsoleSettings, env_file)


def livekit_access(settings: LiveKitSettings) -> LiveKitAccess:
    """The configured LiveKit, or the local stack `make run` starts (dev keys)."""
    if settings.livekit_url:
        return LiveKitAccess(settings.livekit_url, settings.livekit_api_key or "",
                             settings.api_secret() or "")  # fmt: skip
    return LiveKitAccess(LOCAL_URL, DEV_API_KEY, DEV_API_SECRET)


def accounts_for(settings: ConsoleSettings, store: Store, roster: Roster) -> Accounts:
    return Accounts(
        store, roster,
        invite_ttl=timedelta(hours=settings.leadapi.console_invite_hours),
        session_ttl=timedelta(hours=settings.leadapi.console_session_hours),
    )  # fmt: skip


def console_deps(
    settings: ConsoleSettings, store: Store, *, now: Callable[[], datetime] | None = None
) -> ConsoleDeps:
    clock = now or (lambda: datetime.now(UTC))
    roster = Roster(store, now=clock)
    crm: list[Crm] = []

    def the_crm() -> Crm:
        if not crm:
            crm.append(build_crm(settings.integrations, now=clock))
        return crm[0]

    return ConsoleDeps(
        roster=roster, offers=ConsoleOffers(store, now=clock),
        accounts=accounts_for(settings, store, roster), livekit=livekit_access(settings.livekit),
        crm=the_crm, now=clock,
    )  # fmt: skip
