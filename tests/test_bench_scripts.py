"""The benchmarks' own set-up runs: a bench that breaks is found by `make test`, not by the
next person who needs figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
pytestmark = pytest.mark.unit


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_voice_latency_prepares_every_line_the_agent_says() -> None:
    bench = load("voice_latency")
    lines = bench._agent_lines()
    assert lines and all(line.strip() for line in lines)
    assert any(line.startswith("Thanks for calling") for line in lines)  # the greeting
    args = bench.parse_args(["--profile", "typical,fast", "--concurrency", "1,3"])
    assert args.profile == ["typical", "fast"] and args.concurrency == [1, 3]
