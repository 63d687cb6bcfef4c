"""LocalStack: redis, livekit-server and our SIP bridge on loopback, started and stopped
together."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
from pathlib import Path
from types import TracebackType

from localstack.configs import (
    LIVEKIT_CONFIG,
    REPO_ROOT,
    SIP_CONFIG,
    load_yaml,
    render_livekit_config,
    render_sip_config,
    write_yaml,
)
from localstack.ports import LOOPBACK, StackPorts, is_bindable
from localstack.probes import http_answers, redis_answers, sip_options_status
from localstack.processes import ManagedProcess, StackStartError

# A documented, local-only key pair (livekit-server wants secrets of 32+ characters).
DEV_API_KEY = "devkey"
DEV_API_SECRET = "devsecret-for-loopback-use-only-0000"

# Variables the binaries read as configuration; a developer's shell may carry them.
# livekit-server maps every LIVEKIT_<KEY> to a config key, LIVEKIT_CONFIG replaces the file.
_INHERITED_CONFIG_PREFIXES = ("LIVEKIT_", "SIP_CONFIG_")
_INHERITED_CONFIG_NAMES = frozenset({"NODE_IP", "UDP_PORT", "REDIS_HOST", "REDIS_PASSWORD"})


class StackNotInstalled(RuntimeError):
    """A binary of the stack is missing; the message says how to install it."""


def stack_cache() -> Path:
    return Path(os.environ.get("STACK_CACHE") or REPO_ROOT / ".stack")


def find_binary(name: str) -> Path | None:
    cached = stack_cache() / "bin" / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    on_path = shutil.which(name)
    return Path(on_path) if on_path else None


def require_binary(name: str) -> Path:
    found = find_binary(name)
    if found is None:
        raise StackNotInstalled(
            f"{name} not found in {stack_cache() / 'bin'} nor on PATH: run scripts/install-stack.sh"
        )
    return found


class LocalStack:
    """The local LiveKit stack. Use as a context manager, or call start() and stop()."""

    def __init__(
        self,
        *,
        ports: StackPorts | None = None,
        api_key: str = DEV_API_KEY,
        api_secret: str = DEV_API_SECRET,
        log_dir: Path | None = None,
        with_sip: bool = True,
        startup_timeout: float = 30.0,
    ) -> None:
        self.ports = ports or StackPorts()
        self.api_key = api_key
        self.api_secret = api_secret
        self.log_dir = log_dir or stack_cache() / "logs"
        self.with_sip = with_sip
        self.startup_timeout = startup_timeout
        self._processes: list[ManagedProcess] = []
        self._stun_sink: socket.socket | None = None

    @property
    def url(self) -> str:
        """WebSocket URL for agents and clients (LIVEKIT_URL)."""
        return f"ws://{LOOPBACK}:{self.ports.http}"

    @property
    def http_url(self) -> str:
        """HTTP URL for the server APIs (livekit.api.LiveKitAPI accepts either)."""
        return f"http://{LOOPBACK}:{self.ports.http}"

    @property
    def sip_address(self) -> str:
        """Where a SIP phone or carrier sends INVITEs (UDP or TCP)."""
        return f"{LOOPBACK}:{self.ports.sip}"

    def env(self) -> dict[str, str]:
        """LIVEKIT_URL/API_KEY/API_SECRET for an agent worker or livekit-api client."""
        return {
            "LIVEKIT_URL": self.url,
            "LIVEKIT_API_KEY": self.api_key,
            "LIVEKIT_API_SECRET": self.api_secret,
        }

    def pids(self) -> dict[str, int]:
        return {process.name: process.pid for process in self._processes}

    def start(self) -> LocalStack:
        if self._processes:
            raise RuntimeError("stack already started")
        planned = self._plan()  # resolves every binary before anything starts
        self._ensure_ports_free()
        atexit.register(self.stop)
        # Hold the STUN port clients are given, silently, so their STUN requests stay on
        # loopback and nothing else can answer them.
        self._stun_sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._stun_sink.bind((LOOPBACK, self.ports.stun))
        try:
            for process in planned:
                self._processes.append(process)
                process.start()
                process.wait_ready(self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops every process, newest first. Safe to call twice."""
        while self._processes:
            self._processes.pop().stop()
        if self._stun_sink is not None:
            self._stun_sink.close()
            self._stun_sink = None
        atexit.unregister(self.stop)

    def raise_if_exited(self) -> None:
        for process in self._processes:
            process.raise_if_exited()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _plan(self) -> list[ManagedProcess]:
        binaries = {"redis": require_binary("redis-server")}
        binaries["livekit"] = require_binary("livekit-server")
        if self.with_sip:
            binaries["sip"] = require_binary("sipbridge")
        planned = [self._redis(binaries["redis"]), self._livekit(binaries["livekit"])]
        if self.with_sip:
            planned.append(self._sip(binaries["sip"]))
        return planned

    def _redis(self, binary: Path) -> ManagedProcess:
        data_dir = self.log_dir / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binary),
            *("--bind", LOOPBACK, "--port", str(self.ports.redis)),
            *("--save", "", "--appendonly", "no"),  # no persistence
            *("--dir", str(data_dir), "--daemonize", "no", "--protected-mode", "yes"),
        ]
        return ManagedProcess(
            name="redis",
            argv=argv,
            env=_clean_env(),
            log_path=self.log_dir / "redis.log",
            is_ready=lambda: redis_answers(self.ports.redis),
        )

    def _livekit(self, binary: Path) -> ManagedProcess:
        config = render_livekit_config(load_yaml(LIVEKIT_CONFIG), self.ports)
        path = write_yaml(self.log_dir / "livekit.yaml", config)
        return ManagedProcess(
            name="livekit-server",
            argv=[str(binary), "--config", str(path)],
            env={**_clean_env(), "LIVEKIT_KEYS": f"{self.api_key}: {self.api_secret}"},
            log_path=self.log_dir / "livekit-server.log",
            is_ready=lambda: http_answers(self.http_url),
        )

    def _sip(self, binary: Path) -> ManagedProcess:
        config = render_sip_config(load_yaml(SIP_CONFIG), self.ports)
        path = write_yaml(self.log_dir / "sip.yaml", config)
        env = {
            **_clean_env(),
            "LIVEKIT_API_KEY": self.api_key,
            "LIVEKIT_API_SECRET": self.api_secret,
        }
        return ManagedProcess(
            name="sipbridge",
            argv=[str(binary), "--config", str(path)],
            env=env,
            log_path=self.log_dir / "sipbridge.log",
            is_ready=self._sip_answers,
        )

    def _sip_answers(self) -> bool:
        return all(
            sip_options_status(self.ports.sip, transport=transport) == 200
            for transport in ("udp", "tcp")
        )

    def _ensure_ports_free(self) -> None:
        wanted = [
            (self.ports.redis, socket.SOCK_STREAM),
            (self.ports.http, socket.SOCK_STREAM),
            (self.ports.rtc_udp, socket.SOCK_DGRAM),
        ]
        if self.with_sip:
            wanted += [(self.ports.sip, socket.SOCK_STREAM), (self.ports.sip, socket.SOCK_DGRAM)]
        busy = [f"{port}/{_kind(kind)}" for port, kind in wanted if not is_bindable(port, kind)]
        if busy:
            raise StackStartError(
                f"port(s) {', '.join(busy)} on {LOOPBACK} already in use: is another stack "
                "running? Stop it, or pick free ports (--free-ports / StackPorts.free())."
            )


def _clean_env() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_INHERITED_CONFIG_PREFIXES) and name not in _INHERITED_CONFIG_NAMES
    }


def _kind(kind: socket.SocketKind) -> str:
    return "tcp" if kind == socket.SOCK_STREAM else "udp"
