"""The worker's metrics, gathered from all its processes by LiveKit Agents' own endpoint.

Each call runs in a job process of its own, so every process writes its metrics to files in
one directory (prometheus_client's multiprocess mode) and the worker's main process serves
their sum: the SDK's ``prometheus_port`` and ``prometheus_multiproc_dir`` do both, and empty
the directory when the worker starts.

The catch: prometheus_client decides at import whether values live in memory or in those
files, and the SDK only sets the directory when the worker runs, long after it imported
prometheus_client itself. Job processes, started later, see the directory; the main
process's own metrics (the SDK's ``lk_agents_*``) would stay in memory, and the endpoint,
which reads only the files, would never show them. So the directory is set here, before
anything imports prometheus_client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger("metrics")

DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own


class ImportedTooEarly(RuntimeError):
    """prometheus_client was imported before the directory was set."""


@contextlib.contextmanager
def shared_directory(configured: Path | None) -> Iterator[Path]:
    """Where this process and every process it starts keep their metrics, for as long as the
    block runs: ``configured``, or a private temporary directory removed afterwards."""
    if configured is not None:
        share_between_processes(configured)
        yield configured
        return
    directory = Path(tempfile.mkdtemp(prefix="sales-agent-metrics-"))
    try:
        share_between_processes(directory)
        yield directory
    finally:
        os.environ.pop(DIRECTORY_VARIABLE, None)
        shutil.rmtree(directory, ignore_errors=True)


def share_between_processes(directory: Path) -> None:
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        raise ImportedTooEarly(
            "prometheus_client was imported before the metrics directory was set; the main "
            "process's metrics would be missing from /metrics (import the worker later)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[DIRECTORY_VARIABLE] = str(directory)


def forget_finished_processes(server: Any) -> None:
    """Drop an exited job process's gauges from the sums: a call process that crashed before
    it could count itself out must not stay an active call forever. Counters and histograms
    of finished processes are kept, as they should be. Uses the SDK's process pool, which is
    not public API: without it, a warning, and only crashed calls are miscounted."""

    def forget(proc: Any) -> None:
        pid = getattr(proc, "pid", None)
        # With the thread executor a call runs in this process, whose gauges stay live.
        if pid is not None and pid != os.getpid():
            forget_process(pid)

    def on_started() -> None:
        pool = getattr(server, "_proc_pool", None)
        if pool is None:
            logger.warning("cannot drop finished job processes from the metrics: the SDK changed")
            return
        pool.on("process_closed", forget)

    server.on("worker_started", on_started)


def forget_process(pid: int) -> None:
    """Remove the live gauges of process ``pid``, which has exited, from the sums."""
    directory = os.environ.get(DIRECTORY_VARIABLE)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)
