"""A job process's warm-up and wrap-up yield the core to live calls (agent/priority.py).

Whatever lowers a whole process runs in a child process: a nice value once raised cannot be
lowered again without privilege, and the test process would keep it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from agent import priority

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(not priority.supported(), reason="a thread's own nice value is Linux's"),
]

KEYS = {"DEEPGRAM_API_KEY": "d", "OPENAI_API_KEY": "o", "CARTESIA_API_KEY": "c"}


def own_nice() -> int:
    return priority.thread_nice(threading.get_native_id())


def test_the_work_runs_in_a_thread_of_its_own_at_the_low_priority_and_returns_its_result() -> None:
    before = own_nice()

    def work() -> tuple[int, int]:
        return threading.get_native_id(), own_nice()

    tid, nice = priority.at_low_priority(work)
    assert tid != threading.get_native_id()
    assert nice == max(before, priority.WARMING_NICE)
    assert own_nice() == before  # the caller, and the threads it starts later, keep theirs


def test_the_works_exception_reaches_the_caller() -> None:
    def work() -> None:
        raise LookupError("no model here")

    with pytest.raises(LookupError, match="no model here"):
        priority.at_low_priority(work)


def test_a_thread_the_work_leaves_running_is_named_as_kept_at_the_low_priority(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    started: list[int] = []

    def work() -> None:
        def linger() -> None:
            started.append(threading.get_native_id())
            release.wait(10)

        threading.Thread(target=linger, daemon=True).start()
        while not started:
            pass

    with caplog.at_level(logging.WARNING, logger="agent.priority"):
        priority.at_low_priority(work)
    release.set()
    (record,) = [r for r in caplog.records if r.name == "agent.priority"]
    assert "low priority" in record.getMessage()
    assert record.threads == started  # type: ignore[attr-defined]


def test_a_work_that_starts_no_thread_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.priority"):
        assert priority.at_low_priority(lambda: 7) == 7
    assert not [r for r in caplog.records if r.name == "agent.priority"]


def test_the_worker_warms_each_job_process_through_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agent import worker
    from agent.settings import load_worker_settings

    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in KEYS.items()))
    settings = load_worker_settings(env)
    seen: list[tuple[int, int, Any]] = []

    def warm(got: Any, proc: Any, call_ends: Any) -> None:
        assert got is settings
        seen.append((threading.get_native_id(), own_nice(), call_ends))

    monkeypatch.setattr(worker, "_warm", warm)
    ends = object()
    worker.prewarm(settings, object(), call_ends=ends)  # type: ignore[arg-type]
    ((tid, nice, got_ends),) = seen
    assert tid != threading.get_native_id() and nice >= priority.WARMING_NICE
    assert got_ends is ends


WIND_DOWN = """
import json, logging, sys, threading
from pathlib import Path
from agent import priority, worker
from agent.settings import load_worker_settings

logging.basicConfig(level=logging.INFO)
settings = load_worker_settings(Path(sys.argv[1]))
release = threading.Event()
threading.Thread(target=release.wait, args=(10,), daemon=True).start()  # a call's thread
worker.wind_down(settings)
worker.wind_down(settings)  # called again once a transfer settles: nothing left to lower
print(json.dumps([priority.thread_nice(tid) for tid in priority.process_threads()]))
release.set()
"""


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_a_finished_calls_process_lowers_every_thread_but_a_shared_one_does_not(
    tmp_path: Path, executor: str
) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "".join(f"{k}={v}\n" for k, v in KEYS.items()) + f"WORKER_JOB_EXECUTOR={executor}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", WIND_DOWN, str(env)],
        capture_output=True, text=True, timeout=60, check=True,
        cwd=Path(__file__).resolve().parents[1], env={**os.environ, "PYTHONPATH": "."},
    )  # fmt: skip
    nices = json.loads(done.stdout.splitlines()[-1])
    assert len(nices) >= 2  # the main thread and the call's
    base = own_nice()
    if executor == "process":
        assert all(n >= priority.WRAPUP_NICE for n in nices)
        assert (done.stderr + done.stdout).count("its wrap-up yields to live calls") == 1
    else:
        assert all(n == base for n in nices)


def test_lowering_never_raises_a_threads_priority() -> None:
    """A thread already lower than the wrap-up's level stays where it is."""
    result: list[int] = []

    def work() -> None:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, 15)
        assert not priority._lower(tid, priority.WRAPUP_NICE)
        result.append(own_nice())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert result == [15]
