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
immediate and deterministic (the SDK answers "not available" without running any of our
code, and livekit-server offers the call to another worker), and a busy neighbour can no
longer make a free worker look full. How many calls a host can carry is a sizing decision
(`WORKER_MAX_CALLS`, measured with bench/voice_latency.py), not a CPU sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from livekit.agents import AgentServer
from livekit.agents.utils.aio import ChanClosed

logger = logging.getLogger("agent.capacity")

# livekit-server offers a job only to a worker reporting a load below its agents
# `target_load`; 0.7 is its default. A full worker reports exactly this.
LOAD_WHEN_FULL = 0.7


class CallSlots:
    """`load` is the worker's `load_fnc`, `threshold` its `load_threshold`, and
    `idle_processes` its `num_idle_processes`: one warm process per free slot."""

    def __init__(self, max_calls: int) -> None:
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        self.max_calls = max_calls

    def load(self, server: Any) -> float:
        """The AgentServer passes itself; only its `active_jobs` is read."""
        calls = len(server.active_jobs)
        if calls >= self.max_calls:
            return LOAD_WHEN_FULL  # exactly: 0.7 * 3 / 3 is 0.6999999999999998
        return LOAD_WHEN_FULL * calls / self.max_calls

    @property
    def threshold(self) -> float:
        """Half a slot below full. The SDK adds an estimate for calls it has accepted but not
        started yet (the load per running call, or threshold / num_idle_processes while none
        runs) and takes a call only while that sum is below the threshold: with a whole
        number of slots in use the sum sits a half slot away from it, so float rounding can
        never let in a call too many or turn away the last free slot."""
        return LOAD_WHEN_FULL * (self.max_calls - 0.5) / self.max_calls

    @property
    def idle_processes(self) -> int:
        # The SDK lowers its idle target to the free slots as calls come in.
        return self.max_calls


def report_slot_changes_at_once(server: AgentServer) -> None:
    """Tell livekit-server the new load as soon as a call starts or ends.

    The SDK sends its status every 2.5 s, and livekit-server offers calls by the last one it
    got: for up to 2.5 s after a call ended, a worker with free slots still looked full, and
    livekit-server dropped calls it could have taken (measured: 2 of 3 calls placed right
    after a round of 3 ended). This uses the SDK's own status update, which is not public API:
    if an upgrade renames it, the worker logs a warning and falls back to the 2.5 s reports
    (tests/test_capacity.py fails first).
    """
    if not all(callable(getattr(server, name, None)) for name in _STATUS_INTERNALS):
        logger.warning("cannot report call slot changes at once: the LiveKit SDK changed")
        return
    tasks: set[asyncio.Task[None]] = set()

    async def report() -> None:
        with contextlib.suppress(ChanClosed):
            await server._refresh_worker_load()
            await server._update_worker_status()

    def on_change(_proc: object) -> None:
        # a task: the pool drops a closed process from its list right after this event
        task = asyncio.get_running_loop().create_task(report())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_started() -> None:
        pool = getattr(server, "_proc_pool", None)  # made by run()
        if pool is None:
            logger.warning("cannot report call slot changes at once: the LiveKit SDK changed")
            return
        for event in ("process_job_launched", "process_closed"):
            pool.on(event, on_change)

    server.on("worker_started", on_started)


_STATUS_INTERNALS = ("_refresh_worker_load", "_update_worker_status")
