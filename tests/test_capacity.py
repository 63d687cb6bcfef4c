"""The worker's load is its share of call slots, and both thresholds agree on it.

The availability checks are the SDK's own (`AgentServer._is_available`, which adds calls
accepted but not yet started), run on a server that is built but not started, so a change
of that arithmetic in a LiveKit upgrade fails here rather than on a phone line.
"""

from __future__ import annotations

import pytest
from livekit.agents import AgentServer

from agent.capacity import LOAD_WHEN_FULL, CallSlots, report_slot_changes_at_once
from agent.settings import load_worker_settings
from agent.worker import build_server

pytestmark = pytest.mark.unit

KEYS = {"DEEPGRAM_API_KEY": "d", "OPENAI_API_KEY": "o", "CARTESIA_API_KEY": "c"}
# livekit-server offers a job only to a worker whose reported load is below this
SERVER_TARGET_LOAD = 0.7


def server_holding(
    monkeypatch: pytest.MonkeyPatch, slots: CallSlots, *, running: int, accepted: int
) -> AgentServer:
    server = AgentServer(
        load_fnc=slots.load,
        load_threshold=slots.threshold,
        num_idle_processes=slots.idle_processes,
    )
    monkeypatch.setattr(AgentServer, "active_jobs", property(lambda _s: [object()] * running))
    server._devmode = False
    server._worker_load = slots.load(server)
    server._reserved_slots = accepted
    return server


@pytest.mark.parametrize("max_calls", [1, 2, 3, 4, 7, 10])
def test_a_call_is_taken_exactly_while_a_slot_is_free(monkeypatch, max_calls):
    slots = CallSlots(max_calls)
    for running in range(max_calls + 1):
        for accepted in range(max_calls + 1 - running):
            server = server_holding(monkeypatch, slots, running=running, accepted=accepted)
            assert server._is_available() == (running + accepted < max_calls), (
                running,
                accepted,
            )


@pytest.mark.parametrize("max_calls", [1, 2, 3, 4, 7, 10])
def test_livekit_server_offers_calls_until_the_last_slot_is_taken(max_calls):
    slots = CallSlots(max_calls)

    class Holding:
        def __init__(self, calls: int) -> None:
            self.active_jobs = [object()] * calls

    for calls in range(max_calls):
        assert slots.load(Holding(calls)) < SERVER_TARGET_LOAD
    assert slots.load(Holding(max_calls)) == LOAD_WHEN_FULL >= SERVER_TARGET_LOAD
    assert slots.load(Holding(max_calls + 2)) == LOAD_WHEN_FULL


def test_busy_neighbours_do_not_make_a_free_worker_full(monkeypatch):
    """The old load was the machine's CPU: 0.9 of it used by others refused every call."""
    slots = CallSlots(3)
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
    server = AgentServer()
    report_slot_changes_at_once(server)
    assert server._events["worker_started"]  # one listener, added to the pool once it runs
