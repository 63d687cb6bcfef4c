"""Work no caller is waiting for yields the core to the calls that are live.

Two kinds of a job process's work run while other calls share its core and wait on nothing
of it: a new process warming up (the prewarm: models, clients, caches; ≈0.3 s of CPU on an
idle core, 2.3-2.7 s of wall on a core holding three calls) and a finished call's wrap-up
(closing the recording, the summary, the CRM writes). Both ran at the priority of the live
calls' audio, so a call answered just as others ended waited for them: with three calls per
core the greeting's p95 was 1.0-1.5 s on busy days, all of it in the rounds after the first
(README, Benchmarks). On a quiet day it went from 499 to 390 ms with this module.

Linux's nice value belongs to a thread, and a new thread starts with its creator's. So:

- the prewarm runs in a thread of its own at `WARMING_NICE`, joined before the process says it
  is ready. The process's own threads, and every thread its call later starts from them, keep
  their priority. A thread the prewarm starts and leaves running would keep the low one, so
  any such thread is named in the log.
- once a process-per-call job has nobody left on its line (the caller gone, any transfer
  settled), every thread of the process goes to `WRAPUP_NICE`. Raising a nice value needs no
  privilege; lowering it again would, and the process ends with its call.

Under CFS a nice-10 thread weighs 110 against a nice-0 thread's 1024: on a contended core the
live calls get about nine tenths of it, and an idle core still runs the work at full speed.
Nothing changes off Linux, nor for the thread executor's wrap-up, whose threads other calls
share.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger("agent.priority")

T = TypeVar("T")

WARMING_NICE = 10
WRAPUP_NICE = 10
# The lowest priority Linux has.
_MAX_NICE = 19


def supported() -> bool:
    return sys.platform.startswith("linux")


def thread_nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def process_threads() -> list[int]:
    """The ids of this process's threads, as the kernel knows them."""
    return [int(tid) for tid in os.listdir("/proc/self/task")]


def _lower(tid: int, nice: int) -> bool:
    """Raise ``tid``'s nice value to ``nice``; False if it was there already (it is never
    lowered) or the thread is gone."""
    try:
        if thread_nice(tid) >= nice:
            return False
        os.setpriority(os.PRIO_PROCESS, tid, min(nice, _MAX_NICE))
    except ProcessLookupError:
        return False
    return True


def at_low_priority(work: Callable[[], T], *, nice: int = WARMING_NICE) -> T:
    """``work()``, run in a thread of its own at ``nice``; its result or its exception."""
    if not supported():
        return work()
    outcome: list[T] = []
    failure: list[BaseException] = []

    runner_ids: list[int] = []

    def run() -> None:
        runner_ids.append(threading.get_native_id())
        _lower(runner_ids[0], nice)
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the caller as it was raised
            failure.append(exc)

    before = set(process_threads())
    runner = threading.Thread(target=run, name="prewarm")
    runner.start()
    runner.join()
    if failure:
        raise failure[0]
    # the runner's own thread may not have quite exited yet, though joined
    _name_threads_left_low(before | set(runner_ids), nice)
    return outcome[0]


def _name_threads_left_low(known: set[int], nice: int) -> None:
    ours = thread_nice(threading.get_native_id())
    left = []
    for tid in set(process_threads()) - known:
        try:
            if thread_nice(tid) >= nice > ours:
                left.append(tid)
        except ProcessLookupError:
            continue
    if left:
        logger.warning(
            "threads started while warming up still run at its low priority",
            extra={"threads": sorted(left), "nice": nice},
        )


def yield_to_live_calls(*, nice: int = WRAPUP_NICE) -> int:
    """Lower every thread of this process to ``nice``; how many threads it took.

    Only for a process that holds one call, once nobody is left on that call's line."""
    if not supported():
        return 0
    return sum(_lower(tid, nice) for tid in process_threads())
