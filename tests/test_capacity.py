"""The worker's load is its share of call slots, and both thresholds agree on it.

The availability checks are the SDK's own (`AgentServer._is_available`, which adds calls
accepted but not yet started), run on a server that is built but not started, so a change
of that arithmetic in a LiveKit upgrade fails here rather than on a phone line.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from livekit.agents import AgentServer

from agent.capacity import (
    LOAD_WHEN_FULL,
    WATCH_INTERVAL_S,
    CallEnds,
    CallSlots,
    report_slot_changes_at_once,
)
from agent.settings import load_worker_settings
from agent.worker import build_server

pytestmark = pytest.mark.unit

KEYS = {"DEEPGRAM_API_KEY": "d", "OPENAI_API_KEY": "o", "CARTESIA_API_KEY": "c"}
# livekit-server offers a job only to a worker whose reported load is below this
SERVER_TARGET_LOAD = 0.7


def jobs(count: int, *, first: int = 0) -> list[Any]:
    """What `AgentServer.active_jobs` lists: only each job's id is read."""
    return [SimpleNamespace(job=SimpleNamespace(id=f"AJ_{n}")) for n in range(first, first + count)]


def slots_in(tmp_path: Path, max_calls: int) -> CallSlots:
    directory = tmp_path / f"ends-{max_calls}"
    directory.mkdir(exist_ok=True)
    return CallSlots(max_calls, CallEnds(directory))


def server_holding(
    monkeypatch: pytest.MonkeyPatch,
    slots: CallSlots,
    *,
    running: int,
    accepted: int,
    ended: int = 0,
) -> AgentServer:
    """`running` calls in progress and `ended` ones whose callers have hung up, all still
    active jobs; `accepted`: calls the SDK said yes to that have not started yet."""
    server = AgentServer(
        load_fnc=slots.load,
        load_threshold=slots.threshold,
        num_idle_processes=slots.idle_processes,
    )
    active = jobs(running) + jobs(ended, first=running)
    for info in active[running:]:
        slots.ends.mark(info.job.id)
    monkeypatch.setattr(AgentServer, "active_jobs", property(lambda _s: active))
    server._devmode = False
    server._worker_load = slots.load(server)
    server._reserved_slots = accepted
    return server


@pytest.mark.parametrize("max_calls", [1, 2, 3, 4, 7, 10])
def test_a_call_is_taken_exactly_while_a_slot_is_free(monkeypatch, tmp_path, max_calls):
    slots = slots_in(tmp_path, max_calls)
    for running in range(max_calls + 1):
        for accepted in range(max_calls + 1 - running):
            server = server_holding(monkeypatch, slots, running=running, accepted=accepted)
            assert server._is_available() == (running + accepted < max_calls), (
                running,
                accepted,
            )


@pytest.mark.parametrize("max_calls", [1, 2, 3, 4, 7])
def test_the_sdk_never_refuses_a_free_slot_while_ended_calls_wind_down(
    monkeypatch, tmp_path, max_calls
):
    """Ended calls still wrapping up make the SDK's per-job estimate too low, never too high:
    its own check lets every call a free slot could take through to `take`."""
    for ended in range(1, 4):
        slots = slots_in(tmp_path, max_calls)
        for running in range(max_calls):
            for accepted in range(max_calls - running):
                server = server_holding(
                    monkeypatch, slots, running=running, accepted=accepted, ended=ended
                )
                assert server._is_available(), (running, accepted, ended)
            slots.ends.forget(slots.ends.marked())


@pytest.mark.parametrize("max_calls", [1, 2, 3, 4, 7, 10])
def test_livekit_server_offers_calls_until_the_last_slot_is_taken(tmp_path, max_calls):
    slots = slots_in(tmp_path, max_calls)

    def holding(calls: int, *, ended: int = 0) -> Any:
        active = jobs(calls + ended)
        for info in active[calls:]:
            slots.ends.mark(info.job.id)
        return SimpleNamespace(active_jobs=active)

    for calls in range(max_calls):
        assert slots.load(holding(calls)) < SERVER_TARGET_LOAD
    assert slots.load(holding(max_calls)) == LOAD_WHEN_FULL >= SERVER_TARGET_LOAD
    assert slots.load(holding(max_calls + 2)) == LOAD_WHEN_FULL
    # hung up, still wrapping up: the slots are free again
    slots.ends.forget(slots.ends.marked())
    assert slots.load(holding(0, ended=max_calls)) == 0.0
    slots.ends.forget(slots.ends.marked())
    assert slots.load(holding(max_calls - 1, ended=1)) < SERVER_TARGET_LOAD


class Request:
    """A job request as `take` sees it; `accept` returns once the job has started, as the
    SDK's does: here when the test says so."""

    def __init__(self, n: int) -> None:
        self.id = f"AJ_new{n}"
        self.room = SimpleNamespace(name=f"call-{n}")
        self.answer: str | None = None
        self.started = asyncio.Event()

    async def accept(self) -> None:
        self.answer = "accepted"
        await self.started.wait()

    async def reject(self, *, terminate: bool = True) -> None:
        self.answer = "terminated" if terminate else "refused"


async def test_take_counts_calls_accepted_but_not_started_and_ignores_ended_ones(tmp_path):
    """Three slots, three callers just hung up (their jobs wrapping up) and one call in
    progress; five calls arrive at once: exactly two are taken, the rest refused for
    livekit-server to offer elsewhere (never terminated)."""
    slots = slots_in(tmp_path, 3)
    active = jobs(4)
    for info in active[1:]:
        slots.ends.mark(info.job.id)
    server = SimpleNamespace(active_jobs=active)
    requests = [Request(n) for n in range(5)]
    taking = [asyncio.create_task(slots.take(server, request)) for request in requests]
    await asyncio.sleep(0)
    assert [r.answer for r in requests] == ["accepted"] * 2 + ["refused"] * 3
    assert slots.free(server) == 0
    for request in requests[:2]:  # started: now in active_jobs, no longer "accepting"
        active.append(SimpleNamespace(job=SimpleNamespace(id=request.id)))
        request.started.set()
    await asyncio.gather(*taking)
    assert slots.free(server) == 0
    slots.ends.mark(requests[0].id)  # one of them hangs up: a slot is free
    late = Request(9)
    late.started.set()
    await slots.take(server, late)
    assert late.answer == "accepted"


async def test_a_failed_accept_gives_its_slot_back(tmp_path):
    slots = slots_in(tmp_path, 1)
    server = SimpleNamespace(active_jobs=[])

    class Unassigned(Request):
        async def accept(self) -> None:
            raise TimeoutError("assignment timed out")

    with pytest.raises(TimeoutError):
        await slots.take(server, Unassigned(0))
    assert slots.free(server) == 1


def test_call_ends_are_files_any_process_can_write(tmp_path):
    ends = CallEnds(tmp_path)
    ends.mark("AJ_abc")
    assert CallEnds(tmp_path).marked() == {"AJ_abc"}
    ends.forget(["AJ_abc", "AJ_never"])
    assert ends.marked() == set()
    for bad in ("", "../x", ".hidden"):
        with pytest.raises(ValueError):
            ends.mark(bad)
    temporary = CallEnds.temporary()
    assert temporary.directory.is_dir()
    temporary.remove()
    temporary.mark("AJ_late")  # a call ending while the worker shuts down: nothing to do
    assert temporary.marked() == set()


async def test_a_hang_up_is_reported_to_livekit_server_within_the_watch(monkeypatch, tmp_path):
    """The freed slot reaches livekit-server at once, and a warm process waits for it."""
    slots = slots_in(tmp_path, 2)
    server = AgentServer()
    active = jobs(2)
    monkeypatch.setattr(AgentServer, "active_jobs", property(lambda _s: active))
    reported: list[float] = []
    idle_targets: list[int] = []

    async def refresh() -> None:
        server._worker_load = slots.load(server)

    async def update() -> None:
        reported.append(server._worker_load)

    pool = SimpleNamespace(on=lambda *_a: None, set_target_idle_processes=idle_targets.append)
    monkeypatch.setattr(server, "_refresh_worker_load", refresh)
    monkeypatch.setattr(server, "_update_worker_status", update)
    server._proc_pool = pool  # type: ignore[assignment]
    report_slot_changes_at_once(server, slots)
    server.emit("worker_started")
    await asyncio.sleep(WATCH_INTERVAL_S * 3)
    assert reported == []  # nothing changed
    slots.ends.mark("AJ_1")
    await asyncio.sleep(WATCH_INTERVAL_S * 3)
    assert reported == [LOAD_WHEN_FULL / 2]
    assert idle_targets == [1]
    active.pop()  # its job finishes: the mark goes with it
    await asyncio.sleep(WATCH_INTERVAL_S * 3)
    assert slots.ends.marked() == set()
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        task.cancel()


def test_busy_neighbours_do_not_make_a_free_worker_full(monkeypatch, tmp_path):
    """The old load was the machine's CPU: 0.9 of it used by others refused every call."""
    slots = slots_in(tmp_path, 3)
    server = server_holding(monkeypatch, slots, running=0, accepted=0)
    assert slots.load(server) == 0.0
    assert server._is_available()


def test_the_worker_is_built_with_slots_from_the_settings(monkeypatch, tmp_path):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WORKER_MAX_CALLS", "4")
    server = build_server(load_worker_settings(tmp_path / "absent.env"))
    assert server.load_fnc is not None
    assert server._load_threshold == pytest.approx(LOAD_WHEN_FULL * 3.5 / 4)
    assert server._num_idle_processes == 4


def test_max_calls_must_be_positive():
    with pytest.raises(ValueError):
        CallSlots(0)


def test_slot_changes_are_reported_through_the_sdks_own_status_update():
    """The hooks `report_slot_changes_at_once` relies on are still in this SDK version."""
    from livekit.agents.ipc.proc_pool import ProcPool

    for name in ("_refresh_worker_load", "_update_worker_status"):
        assert callable(getattr(AgentServer, name, None)), name
    assert "process_job_launched" in ProcPool.__init__.__globals__["EventTypes"].__args__
    assert "process_closed" in ProcPool.__init__.__globals__["EventTypes"].__args__
    assert callable(getattr(ProcPool, "set_target_idle_processes", None))
    server = AgentServer()
    report_slot_changes_at_once(server, CallSlots(1))
    assert server._events["worker_started"]  # one listener, added to the pool once it runs


def test_a_call_offered_twice_is_left_to_the_agent_already_there():
    """The bridge offers a ringing call again when no worker took it; should both offers be
    taken, the job that joins second finds the first agent in the room and leaves."""
    from livekit import rtc

    from agent.worker import agent_in_the_room

    agent_kind = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT

    def room(*participants: tuple[str, int, dict[str, str]]) -> Any:
        return SimpleNamespace(remote_participants={
            identity: SimpleNamespace(identity=identity, kind=kind, attributes=attributes)
            for identity, kind, attributes in participants
        })  # fmt: skip

    caller = ("sip_+14155550100", rtc.ParticipantKind.PARTICIPANT_KIND_SIP, {})
    ours = ("agent-AJ_1", agent_kind, {"lk.agent.name": "sales-agent"})
    other = ("agent-AJ_2", agent_kind, {"lk.agent.name": "survey"})
    rep = ("rep-ana", rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, {"lk.agent.name": "x"})
    assert agent_in_the_room(room(caller, ours), "sales-agent") == "agent-AJ_1"
    assert agent_in_the_room(room(caller, other, rep), "sales-agent") is None
    assert agent_in_the_room(room(), "sales-agent") is None
