"""One child process of the stack: started in its own session, logged to a file, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_STOP_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.1


class StackStartError(RuntimeError):
    """A stack process did not come up; the message carries the end of its log."""


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    env: Mapping[str, str]
    log_path: Path
    is_ready: Callable[[], bool]
    _popen: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._popen.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        # Own session: a Ctrl-C in the developer's terminal reaches us, not the children,
        # so they are stopped in order by stop().
        self._popen = subprocess.Popen(
            self.argv,
            env=dict(self.env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.raise_if_exited()
            if self.is_ready():
                return
            time.sleep(_POLL_SECONDS)
        raise StackStartError(
            f"{self.name} not ready after {timeout:.0f}s; "
            f"end of {self.log_path}:\n{self.log_tail()}"
        )

    def raise_if_exited(self) -> None:
        if self._popen is not None and self._popen.poll() is not None:
            raise StackStartError(
                f"{self.name} exited with code {self._popen.returncode}; "
                f"end of {self.log_path}:\n{self.log_tail()}"
            )

    def stop(self) -> None:
        popen, self._popen = self._popen, None
        if popen is not None and popen.poll() is None:
            # SIGINT: livekit-sip drops calls at once (SIGTERM would drain them first).
            _signal_group(popen.pid, signal.SIGINT)
            try:
                popen.wait(timeout=_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(popen.pid, signal.SIGKILL)
                popen.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
