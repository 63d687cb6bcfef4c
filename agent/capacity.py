"""How full the worker tells LiveKit it is: the share of its call slots in use.

LiveKit's default load is the CPU use of the whole machine (the container's cgroup when
there is one), averaged over 2.5 s, and it is compared with 0.7 twice: by the worker, which
then reports itself full and refuses job requests, and by livekit-server, which offers a job
only to a worker whose last reported load is below its `agents.target_load` (0.7 by
default). livekit-server does not retry a dispatch that no worker took, so a call that
arrives while the machine is busy is never answered: the caller waits in the room. On a
shared or small host that made answering depend on what else was running (other services,
a build, the first seconds of another call) rather than on how many calls the worker holds.

So the load is `LOAD_WHEN_FULL * calls / max_calls`: below 0.7 while a slot is free, exactly
0.7 when every slot is taken. Both thresholds then mean the same thing, refusals are
immediate and deterministic (livekit-server offers the call to another worker), and a busy
neighbour can no longer make a free worker look full. How many calls a host can carry is a
sizing decision (`WORKER_MAX_CALLS`, measured with bench/voice_latency.py), not a CPU sample.

A call's slot is free from its hang-up, not from the end of its job. After the caller has
gone a job still runs for ≈2.6 s (LiveKit's session close waits 2 s before deleting the
room, then the wrap-up writes the record), and while a full worker's jobs wound down it told
livekit-server it was full: calls placed in that window were offered to no one and rang out
(measured: 3 calls hung up together, 3 placed at once, none got a job request). So the job
marks its call ended the moment the caller leaves (`CallEnds`, a file per job in a directory
the main process made; agent/worker.py `free_slot_at_hang_up`), and the main process counts
only the calls not marked, sees a mark within `WATCH_INTERVAL_S` and reports the freed slot
to livekit-server at once. A call placed in that gap is dropped by livekit-server as before;
the SIP bridge offers it again (sipbridge/internal/bridge/reoffer.go).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from livekit.agents import AgentServer, JobRequest
from livekit.agents.utils.aio import ChanClosed

logger = logging.getLogger("agent.capacity")

# livekit-server offers a job only to a worker reporting a load below its agents
# `target_load`; 0.7 is its default. A full worker reports exactly this.
LOAD_WHEN_FULL = 0.7
# How often the main process looks for calls marked ended.
WATCH_INTERVAL_S = 0.1


class CallEnds:
    """Calls whose caller has gone while their job winds down: a file per job id.

    Written by the job (its own process, or a thread of the main one), read by the main
    process; a file, so both job executors work the same way."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def temporary(cls) -> CallEnds:
        """A new directory, removed when the main process exits."""
        ends = cls(Path(tempfile.mkdtemp(prefix="agent-call-ends-")))
        atexit.register(ends.remove)
        return ends

    def mark(self, job_id: str) -> None:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise ValueError(f"not a job id: {job_id!r}")
        with contextlib.suppress(FileNotFoundError):  # the worker is shutting down
            (self.directory / job_id).touch()

    def marked(self) -> set[str]:
        try:
            return {entry.name for entry in self.directory.iterdir()}
        except FileNotFoundError:
            return set()

    def forget(self, job_ids: Iterable[str]) -> None:
        """Marks of jobs that have finished, so the directory holds only running ones."""
        for job_id in job_ids:
            (self.directory / job_id).unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class CallSlots:
    """`load` is the worker's `load_fnc`, `threshold` its `load_threshold`, `idle_processes`
    its `num_idle_processes` (one warm process per free slot) and `take` its `on_request`."""

    def __init__(self, max_calls: int, ends: CallEnds | None = None) -> None:
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        self.max_calls = max_calls
        self.ends = ends or CallEnds.temporary()
        self._accepting = 0  # calls accepted whose job has not started yet

    def in_progress(self, server: Any) -> int:
        """Running jobs whose caller is still there. The AgentServer passes itself; only its
        `active_jobs` is read."""
        ended = self.ends.marked()
        return sum(1 for info in server.active_jobs if info.job.id not in ended)

    def load(self, server: Any) -> float:
        calls = self.in_progress(server)
        if calls >= self.max_calls:
            return LOAD_WHEN_FULL  # exactly: 0.7 * 3 / 3 is 0.6999999999999998
        return LOAD_WHEN_FULL * calls / self.max_calls

    @property
    def threshold(self) -> float:
        """Half a slot below full. The SDK adds an estimate for calls it has accepted but not
        started yet (the load per running job, or threshold / num_idle_processes while none
        runs) and takes a call only while that sum is below the threshold: with a whole
        number of slots in use the sum sits a half slot away from it, so float rounding can
        never let in a call too many or turn away the last free slot. While ended jobs wind
        down the per-job estimate is too low and the SDK would let in too many: `take` is the
        exact check."""
        return LOAD_WHEN_FULL * (self.max_calls - 0.5) / self.max_calls

    @property
    def idle_processes(self) -> int:
        # The SDK lowers its idle target to the free slots as calls come in.
        return self.max_calls

    def free(self, server: Any) -> int:
        return max(self.max_calls - self.in_progress(server) - self._accepting, 0)

    async def take(self, server: Any, request: JobRequest) -> None:
        """Accept the call if a slot is free counting calls accepted but not started, else
        refuse it at once, so livekit-server offers it to another worker."""
        if self.free(server) == 0:
            logger.info("call refused: all %d slots taken", self.max_calls,
                        extra={"job_id": request.id, "room": request.room.name})  # fmt: skip
            await request.reject(terminate=False)
            return
        self._accepting += 1
        try:
            await request.accept()  # returns once the job has started, or raises
        finally:
            self._accepting -= 1


def report_slot_changes_at_once(server: AgentServer, slots: CallSlots) -> None:
    """Tell livekit-server the new load as soon as a call starts or ends.

    The SDK sends its status every 2.5 s, and livekit-server offers calls by the last one it
    got: for up to 2.5 s after a call ended, a worker with free slots still looked full, and
    livekit-server dropped calls it could have taken (measured: 2 of 3 calls placed right
    after a round of 3 ended). A call ends for its slot at the hang-up (`CallEnds`), seen by
    a watch every `WATCH_INTERVAL_S`; a job starting or finishing is reported on the process
    pool's events. This uses the SDK's own status update and its pool's idle target, which
    are not public API: if an upgrade renames them, the worker logs a warning and falls back
    to the 2.5 s reports (tests/test_capacity.py fails first).
    """
    if not all(callable(getattr(server, name, None)) for name in _STATUS_INTERNALS):
        logger.warning("cannot report call slot changes at once: the LiveKit SDK changed")
        return
    tasks: set[asyncio.Task[None]] = set()

    async def report() -> None:
        pool = getattr(server, "_proc_pool", None)
        if pool is not None and callable(getattr(pool, "set_target_idle_processes", None)):
            # a warm process for every free slot, ended jobs still winding down or not
            pool.set_target_idle_processes(slots.free(server))
        with contextlib.suppress(ChanClosed):
            await server._refresh_worker_load()
            await server._update_worker_status()

    def on_change(_proc: object = None) -> None:
        # a task: the pool drops a closed process from its list right after this event
        task = asyncio.get_running_loop().create_task(report())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def watch_call_ends() -> None:
        seen = slots.in_progress(server)
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            running = {info.job.id for info in server.active_jobs}
            slots.ends.forget(slots.ends.marked() - running)
            now = slots.in_progress(server)
            if now < seen:
                on_change()
            seen = now

    def on_started() -> None:
        pool = getattr(server, "_proc_pool", None)  # made by run()
        if pool is None:
            logger.warning("cannot report call slot changes at once: the LiveKit SDK changed")
            return
        for event in ("process_job_launched", "process_closed"):
            pool.on(event, on_change)
        task = asyncio.get_running_loop().create_task(watch_call_ends())
        tasks.add(task)

    server.on("worker_started", on_started)


_STATUS_INTERNALS = ("_refresh_worker_load", "_update_worker_status")
