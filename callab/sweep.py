"""What the benchmarks share: comma lists of worker settings swept as every combination,
and the agent's lines prepared the way the TTS stand-in synthesises them."""

from __future__ import annotations

import argparse
import itertools
import re
from collections.abc import Iterable, Mapping
from types import SimpleNamespace

from agent.sales_agent import greeting
from calls.business import load_business_profile


def csv_floats(text: str) -> list[str]:
    return [str(float(v)) for v in text.split(",")]


def csv_ints(text: str) -> list[str]:
    return [str(int(v)) for v in text.split(",")]


def setting_grid(args: argparse.Namespace, flags: Mapping[str, str]) -> list[dict[str, str]]:
    """Every combination of the swept values, as worker settings: ``flags`` maps each CLI
    flag's attribute to its setting's env name; a flag not given is not swept."""
    axes = [
        [(env, value) for value in getattr(args, flag)]
        for flag, env in flags.items()
        if getattr(args, flag)
    ]
    return [dict(combo) for combo in itertools.product(*axes)]


def sentences(texts: Iterable[str]) -> list[str]:
    """The texts split by sentence, as the TTS stand-in synthesises them (a bench warms them
    up so espeak-ng's synthesis time never adds to the configured time to first audio)."""
    return [part for text in texts for part in re.split(r"(?<=[.!?;:])\s+", text)]


def bench_greeting(*, announce: bool) -> str:
    """What our worker greets a new inbound caller with in English; ``announce``: the AI and
    recording notices are on."""
    services = SimpleNamespace(
        business=load_business_profile(), announce_ai=announce, announce_recording=announce
    )
    state = SimpleNamespace(contact=None, lead=None, direction="inbound")
    call = SimpleNamespace(services=services, state=state, language="en")
    return greeting(call)  # type: ignore[arg-type]  # only these fields are read
