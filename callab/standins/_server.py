"""Lifecycle shared by every stand-in: an aiohttp app on 127.0.0.1, in-process or as a process."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Literal, Self

from aiohttp import web

Outage = Literal["error", "hang"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StandinServer:
    """An aiohttp server bound to an ephemeral port (unless told otherwise).

    Subclasses add routes in `_add_routes` and say, in `base_url`, what the matching
    LiveKit plugin wants as its `base_url` argument.
    """

    service_name = "standin"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._websockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self.outage: Outage | None = None
        self.refused_at: list[float] = []  # time.monotonic() of each request the outage met
        self._back = asyncio.Event()

    def _add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def port(self) -> int:
        if self._runner is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def origin(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin

    async def go_down(self, how: Outage = "error") -> None:
        """The provider goes down: its open websockets close, and every request from now on
        gets a 503 (``error``) or never an answer (``hang``), until ``come_back``."""
        self.outage = how
        self._back.clear()
        for ws in list(self._websockets):
            await ws.close(code=1011, message=b"service unavailable")

    @property
    def refused(self) -> int:
        return len(self.refused_at)

    def come_back(self) -> None:
        self.outage = None
        self._back.set()

    @web.middleware
    async def _outage_gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.outage is None:
            return await handler(request)
        self.refused_at.append(time.monotonic())
        if self.outage == "hang":
            await self._back.wait()
        error = {"message": "service unavailable (stand-in outage)", "type": "server_error"}
        return web.json_response({"error": error}, status=503)

    async def start(self) -> Self:
        app = web.Application(middlewares=[self._outage_gate])
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, shutdown_timeout=1.0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def aclose(self) -> None:
        if self._runner is None:
            return
        self._back.set()  # a hung request must not hold the shutdown
        # open websockets would otherwise hold cleanup() for its whole shutdown timeout
        for ws in list(self._websockets):
            await ws.close()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _track(self, ws: web.WebSocketResponse) -> None:
        self._websockets.add(ws)


class WebSocketSender:
    """Serializes sends from several tasks onto one websocket; a gone peer is not an error."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws
        self._lock = asyncio.Lock()

    async def send_json(self, payload: object) -> bool:
        async with self._lock:
            if self._ws.closed:
                return False
            try:
                await self._ws.send_str(json.dumps(payload))
            except ConnectionError:
                return False
            return True


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--log-level", default="INFO")


def serve_forever(server: StandinServer, *, log_level: str) -> None:
    """Run `server` until SIGINT/SIGTERM; print one JSON line announcing its URLs."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(server))


async def _serve(server: StandinServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    ready = {"service": server.service_name, "base_url": server.base_url, "port": server.port}
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await server.aclose()
