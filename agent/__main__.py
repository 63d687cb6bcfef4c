"""`python -m agent`: the worker (with the local LiveKit stack when no URL is configured), and
every other command of the agent (`python -m agent --help`)."""

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
from agent.cli import PROGRAMS, command_parser, run_program, run_reloading, source_directories
from agent.preload import start_forkserver
from agent.settings import WorkerSettings, load_worker_settings, require_livekit
from config import SettingsError
from config.logs import setup_logging
from integrations.crm import Crm
from integrations.errors import IntegrationError
from integrations.outbox import Outbox
from integrations.scheduling import Calendar
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
    from journal import recover_forever  # imports livekit.agents: after metrics_for

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


def run_worker(settings: WorkerSettings, *, outbound: bool) -> None:
    """The worker on the configured LiveKit, or on a local stack started for it."""
    with contextlib.ExitStack() as running:
        measured = running.enter_context(metrics_for(settings))
        live = running.enter_context(livekit_for(measured))
        if outbound:
            running.enter_context(outbound_side(live))
        # Once the job processes' environment is known (the metrics directory, the server),
        # and before this process imports the worker: the forkserver imports meanwhile.
        start_forkserver(live.livekit)
        asyncio.run(serve(live))


def develop(settings: WorkerSettings, args: argparse.Namespace) -> int:
    """`dev`: debug logs, the local stack when no LIVEKIT_URL, and the worker restarted (by
    `start` in a child process, the stack kept up) when a source file changes."""
    setup_logging("DEBUG")
    if not args.reload:
        run_worker(settings, outbound=args.outbound)
        return 0
    with livekit_for(settings) as live:
        livekit = live.livekit
        os.environ.update(LIVEKIT_URL=livekit.livekit_url or "",
                          LIVEKIT_API_KEY=livekit.livekit_api_key or "",
                          LIVEKIT_API_SECRET=livekit.api_secret() or "")  # fmt: skip
        start = [sys.executable, "-m", "agent", "start", "--log-level", "DEBUG"]
        if args.outbound:
            start.append("--outbound")
        return run_reloading(start, watch=args.watch or source_directories())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in PROGRAMS and PROGRAMS[argv[0]].own_arguments:
        run_program(argv[0], argv[1:])  # its own parser answers, --help included
    args, extra = command_parser().parse_known_args(argv)
    if extra and args.command != "console":
        command_parser().error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command in PROGRAMS:
            run_program(args.command, [])
        if args.command == "console":
            from agent.cli.terminal import run_console

            return run_console(text=args.text, livekit_arguments=extra)
        settings = load_worker_settings()
        if args.command == "dev":
            return develop(settings, args)
        if args.command == "start":
            require_livekit(settings.livekit, command="start")
        setup_logging(getattr(args, "log_level", None) or settings.livekit.log_level)
        run_worker(settings, outbound=args.outbound)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
