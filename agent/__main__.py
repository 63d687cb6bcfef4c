"""`python -m agent`: start the worker, and the local LiveKit stack when no URL is configured."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

from livekit import api
from pydantic import SecretStr

import metrics
from agent.backends import build_services
from agent.settings import WorkerSettings, load_worker_settings
from config import SettingsError
from config.logs import setup_logging
from integrations.crm import Crm
from integrations.errors import IntegrationError
from integrations.outbox import Outbox
from integrations.scheduling import Calendar
from journal import recover_forever
from metrics.multiprocess import DIRECTORY_VARIABLE
from privacy import sweep_forever

logger = logging.getLogger("agent")


@contextlib.contextmanager
def livekit_for(settings: WorkerSettings) -> Iterator[WorkerSettings]:
    """The configured LiveKit, or the local stack (started here, stopped on exit)."""
    if settings.livekit.livekit_url:
        yield settings
        return
    from localstack import LocalStack, StackNotInstalled, find_binary

    with_sip = find_binary("sipbridge") is not None
    if not with_sip:
        logger.warning(
            "the SIP bridge is not built (scripts/install-stack.sh): starting LiveKit without SIP"
        )
    try:
        stack = LocalStack(with_sip=with_sip).start()
    except StackNotInstalled as exc:
        raise SettingsError(str(exc)) from None
    try:
        env = stack.env()
        local = settings.with_livekit(
            settings.livekit.model_copy(
                update={
                    "livekit_url": env["LIVEKIT_URL"],
                    "livekit_api_key": env["LIVEKIT_API_KEY"],
                    "livekit_api_secret": SecretStr(env["LIVEKIT_API_SECRET"]),
                }
            )
        )
        if with_sip:
            _provision(local)
        logger.info("local LiveKit stack is up at %s", env["LIVEKIT_URL"])
        yield local
    finally:
        stack.stop()


def _provision(settings: WorkerSettings) -> None:
    from telephony.provision import ProvisionSettings, provision_from

    if provision_from(ProvisionSettings(settings.livekit, settings.telephony)) != 0:
        raise SettingsError("SIP provisioning failed; see the log above")


OUTBOX_REPLAY_INTERVAL_S = 300.0


async def replay_outbox_forever(settings: WorkerSettings) -> None:
    """Deliver call records a CRM outage left behind: at start, then every few minutes."""
    services = build_services(settings.integrations, settings.business)
    outbox = Outbox(settings.integrations.data_dir / "outbox.sqlite3")
    try:
        while True:
            pending = len(outbox.pending())
            if pending:
                try:
                    delivered = await outbox.replay(services.crm)
                    logger.info("outbox: delivered %d of %d call records", delivered, pending)
                except IntegrationError as exc:
                    logger.warning("outbox: the CRM is still unavailable: %r", exc)
            await asyncio.sleep(OUTBOX_REPLAY_INTERVAL_S)
    finally:
        outbox.close()
        await services.crm.aclose()


async def recover_interrupted_calls(settings: WorkerSettings) -> None:
    """Calls whose job process died mid-call, recorded from their journals (journal/)."""

    def build() -> tuple[Crm, Calendar]:
        services = build_services(settings.integrations, settings.business)
        return services.crm, services.calendar

    livekit = settings.livekit
    lkapi = api.LiveKitAPI(livekit.livekit_url, livekit.livekit_api_key, livekit.api_secret())

    async def hang_up(room: str) -> None:
        try:
            await lkapi.room.delete_room(api.DeleteRoomRequest(room=room))
        except api.TwirpError as exc:
            if exc.code != api.TwirpErrorCode.NOT_FOUND:  # not found: the caller already left
                raise

    outbox = Outbox(settings.integrations.data_dir / "outbox.sqlite3")
    try:
        await recover_forever(
            settings.integrations.data_dir, build=build, outbox=outbox, hang_up=hang_up
        )
    finally:
        outbox.close()
        await lkapi.aclose()


@contextlib.contextmanager
def metrics_for(settings: WorkerSettings) -> Iterator[WorkerSettings]:
    """With WORKER_METRICS_PORT, the directory every job process writes its metrics to."""
    livekit = settings.livekit
    if livekit.worker_metrics_port is None:
        yield settings
        return
    with metrics.shared_directory(livekit.worker_metrics_dir) as directory:
        yield settings.with_livekit(livekit.model_copy(update={"worker_metrics_dir": directory}))


async def serve(settings: WorkerSettings) -> None:
    # Imported here, after metrics_for: see metrics.multiprocess.
    from agent.worker import build_server

    replaying = asyncio.create_task(replay_outbox_forever(settings))
    sweeping = asyncio.create_task(
        sweep_forever(data_dir=settings.integrations.data_dir, retention=settings.retention)
    )
    recovering = asyncio.create_task(recover_interrupted_calls(settings))
    server = build_server(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = asyncio.create_task(server.run())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not running.done():
        logger.info("stopping: letting calls in progress finish")
        await server.drain()
        await server.aclose()
    stopping.cancel()
    replaying.cancel()
    sweeping.cancel()
    recovering.cancel()
    if running.done() and running.exception():
        raise running.exception()  # type: ignore[misc]


@contextlib.contextmanager
def outbound_side(settings: WorkerSettings) -> Iterator[None]:
    """The dialer and the lead API (`python -m dialer`, `python -m leadapi`) beside the worker,
    on the same LiveKit and data directory; stopped (by pid) when the worker stops."""
    livekit = settings.livekit
    env = {**os.environ, "LIVEKIT_URL": livekit.livekit_url or ""}
    env["LIVEKIT_API_KEY"] = livekit.livekit_api_key or ""
    env["LIVEKIT_API_SECRET"] = livekit.api_secret() or ""
    env.pop(DIRECTORY_VARIABLE, None)  # they serve their own metrics, not into the worker's
    children = [
        subprocess.Popen([sys.executable, "-m", module], env=env)
        for module in ("dialer", "leadapi")
    ]
    logger.info("dialer and lead API started (pids %s)", [c.pid for c in children])
    try:
        yield
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__)
    parser.add_argument(
        "--outbound", action="store_true", help="also run the dialer and the lead API (make run)"
    )
    args = parser.parse_args(argv)
    try:
        settings = load_worker_settings()
        setup_logging(settings.livekit.log_level)
        with contextlib.ExitStack() as running:
            measured = running.enter_context(metrics_for(settings))
            live = running.enter_context(livekit_for(measured))
            if args.outbound:
                running.enter_context(outbound_side(live))
            asyncio.run(serve(live))
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
