"""The forkserver started before the worker imports (agent/preload.py): a job process forked
from it has the worker's modules and the LiveKit environment, while the worker itself has
not imported them yet."""

from __future__ import annotations

import importlib.util
import inspect
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.preload import LIVEKIT_TAIL, forkserver_modules

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def job_view(queue: multiprocessing.Queue[dict[str, object]]) -> None:
    """Run in a process forked from the forkserver: what it inherited."""
    queue.put({
        "modules": [m for m in ("agent.worker", "livekit.agents.ipc._preload") if m in sys.modules],
        "env": {k: os.environ.get(k) for k in ("LIVEKIT_URL", "LIVEKIT_API_KEY")},
        "first_use_work": first_use_work(),
    })  # fmt: skip


def first_use_work() -> list[str]:
    """What a call's first hyphenated word and first chat items still build in this process:
    the hyphenator's pattern tree, a signature parsed for a private attribute's factory."""
    from livekit.agents import llm
    from livekit.agents.tokenize import _basic_hyphenator, basic

    done: list[str] = []
    build_tree, parse = _basic_hyphenator.Hyphenator.__init__, inspect._signature_fromstr

    def building(self: object, *args: object) -> None:
        done.append("hyphenator built")
        build_tree(self, *args)  # type: ignore[arg-type]

    def parsing(*args: object, **kwargs: object) -> object:
        done.append("signature parsed")
        return parse(*args, **kwargs)  # type: ignore[arg-type]

    _basic_hyphenator.Hyphenator.__init__ = building  # type: ignore[method-assign]
    inspect._signature_fromstr = parsing  # type: ignore[attr-defined]
    try:
        basic.hyphenate_word("transfer")
        llm.AgentConfigUpdate(instructions="Qualify the caller.")
        llm.ImageContent(image="data:image/png;base64,")
    finally:
        _basic_hyphenator.Hyphenator.__init__ = build_tree  # type: ignore[method-assign]
        inspect._signature_fromstr = parse  # type: ignore[attr-defined]
    return done


SCENARIO = """
import json, multiprocessing, sys
from agent.preload import start_forkserver
from config import LiveKitSettings
from tests.test_preload import job_view

livekit = LiveKitSettings(livekit_url="ws://127.0.0.1:7", livekit_api_key="key-1",
                          livekit_api_secret="secret-1", worker_job_executor=sys.argv[1])
started = start_forkserver(livekit)
worker_imported = "agent.worker" in sys.modules
seen = None
if started:
    ctx = multiprocessing.get_context("forkserver")
    queue = ctx.Queue()
    job = ctx.Process(target=job_view, args=(queue,))
    job.start()
    seen = queue.get(timeout=120)
    job.join(timeout=30)
print(json.dumps({"started": started, "worker_imported": worker_imported, "job": seen}))
"""


def run_scenario(executor: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO, executor], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LiveKit forks jobs on Linux")
def test_a_job_forked_from_the_early_forkserver_has_the_worker_and_the_livekit_environment() -> (
    None
):
    result = run_scenario("process")
    assert result["started"] is True
    assert result["worker_imported"] is False  # the import went on in the forkserver
    assert result["job"] == {
        "modules": ["agent.worker", "livekit.agents.ipc._preload"],
        "env": {"LIVEKIT_URL": "ws://127.0.0.1:7", "LIVEKIT_API_KEY": "key-1"},
        "first_use_work": [],  # done once, in the forkserver (agent/first_use.py)
    }


def test_a_fresh_process_builds_them_on_first_use_which_is_what_the_forkserver_spares() -> None:
    # the check above is only worth its empty list if, undone, the work shows
    check = "from tests.test_preload import first_use_work; print(first_use_work())"
    done = subprocess.run(
        [sys.executable, "-c", check],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "['hyphenator built', 'signature parsed']"


def test_jobs_in_threads_start_no_forkserver() -> None:
    assert run_scenario("thread") == {"started": False, "worker_imported": False, "job": None}


def test_the_list_ends_with_livekits_own_warm_up_which_the_installed_sdk_has() -> None:
    modules = forkserver_modules()
    assert modules[0] == "agent.worker"
    assert tuple(modules[-len(LIVEKIT_TAIL) :]) == LIVEKIT_TAIL
    assert all(importlib.util.find_spec(name) is not None for name in LIVEKIT_TAIL)
