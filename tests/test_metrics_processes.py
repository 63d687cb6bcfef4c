"""The worker's metrics across processes, as its job processes write them: two calls summed
through one directory, a crashed call dropped from the active gauge, and the import order
that keeps the main process's metrics on the endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from metrics.multiprocess import ImportedTooEarly, forget_process, shared_directory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def _run_call_process(directory: Path, *, greeting_at: float, hang_up: bool) -> int:
    """One call in a process of its own, as a job process runs it; returns its pid."""
    code = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from metrics.multiprocess import shared_directory
        with shared_directory(Path(sys.argv[1])):
            from metrics.calls import CallMetrics
            call = CallMetrics(direction="inbound", clock=lambda: 0.0)
            call.answered()
            call.agent_state("speaking", at=float(sys.argv[2]))
            if sys.argv[3] == "hang-up":
                call.ended("booked")
                call.close()
            print(os.getpid())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(directory), str(greeting_at),
         "hang-up" if hang_up else "crash"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return int(done.stdout.split()[-1])


def _summed(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
    }


def test_calls_in_separate_processes_are_summed_and_a_crashed_one_is_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_call_process(tmp_path, greeting_at=0.75, hang_up=True)
    crashed = _run_call_process(tmp_path, greeting_at=1.25, hang_up=False)

    summed = _summed(tmp_path)
    inbound = (("direction", "inbound"),)
    assert summed[("sales_agent_greeting_seconds_count", inbound)] == 2
    assert summed[("sales_agent_greeting_seconds_sum", inbound)] == 2.0
    booked = (("direction", "inbound"), ("disposition", "booked"))
    assert summed[("sales_agent_calls_total", booked)] == 1
    assert summed[("sales_agent_active_calls", inbound)] == 1  # the one that never closed

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    forget_process(crashed)
    summed = _summed(tmp_path)
    assert summed.get(("sales_agent_active_calls", inbound), 0) == 0
    assert summed[("sales_agent_greeting_seconds_count", inbound)] == 2  # history is kept


def test_the_directory_must_be_set_before_prometheus_client_is_imported(tmp_path: Path) -> None:
    # This test process imported prometheus_client with values in memory, as the worker's
    # main process would have if it imported the worker first.
    with pytest.raises(ImportedTooEarly), shared_directory(tmp_path / "metrics"):
        pass
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_starting_the_worker_imports_no_prometheus_client_before_its_directory_is_set() -> None:
    # What `python -m agent` imports before main() runs; prometheus_client among them would
    # keep the main process's metrics off the endpoint (the worker refuses to start).
    code = "import sys, agent.__main__; print('prometheus_client' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=True, timeout=120)  # fmt: skip
    assert done.stdout.strip() == "False"


def test_a_call_thread_that_ends_leaves_the_workers_own_gauges_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With the thread executor a finished "job process" is a thread of the worker: its pid is
    # the worker's, whose live gauges must stay. One in a process of its own is forgotten.
    from metrics import multiprocess

    forgotten: list[int] = []
    monkeypatch.setattr(multiprocess, "forget_process", forgotten.append)
    handlers: dict[str, Any] = {}
    pool = SimpleNamespace(on=lambda event, handler: handlers.setdefault(event, handler))
    server = SimpleNamespace(_proc_pool=pool, on=lambda event, handler: handler())
    multiprocess.forget_finished_processes(server)
    handlers["process_closed"](SimpleNamespace(pid=os.getpid()))
    handlers["process_closed"](SimpleNamespace(pid=os.getpid() + 1))
    assert forgotten == [os.getpid() + 1]
